//! What to emit when a handler is invalid: the error, the function as written, and stub
//! items of the generated module. The user then sees one error, not a cascade from code
//! that names `handler::call` or `handler::Endpoint`.

use proc_macro2::TokenStream;
use quote::quote;

use crate::attr::Attr;

pub fn endpoint(func: &syn::ItemFn, attr: Option<&Attr>, err: &syn::Error) -> TokenStream {
    let error = err.to_compile_error();
    let ident = &func.sig.ident;
    let vis = &func.vis;
    let msg_type = attr.map_or(0, |a| a.msg_type.min(0xFFFE) as u16);
    let name = ident.to_string();
    quote! {
        #error
        #func

        #[allow(unused_imports, dead_code)]
        #vis mod #ident {
            pub const MSG_TYPE: u16 = #msg_type;
            pub const NAME: &str = #name;
            #[derive(Debug, Clone, Copy, Default)]
            pub struct Endpoint;
            impl ::tachyon::rpc::Endpoint for Endpoint {
                const MSG_TYPE: u16 = MSG_TYPE;
                const NAME: &'static str = NAME;
                fn handle(
                    &self,
                    _: &[u8],
                    _: &mut ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<(), ::tachyon::rpc::ServerError> {
                    ::core::result::Result::Err(::tachyon::rpc::ServerError::from("invalid #[tachyon_rpc] handler"))
                }
            }
        }
    }
}
