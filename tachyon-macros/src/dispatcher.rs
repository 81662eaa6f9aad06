//! `dispatcher![a, b::c, ...]`: a Dispatcher from endpoints, msg_types checked for
//! duplicates at compile time.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::punctuated::Punctuated;

pub fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let paths = syn::parse::Parser::parse2(
        Punctuated::<syn::Path, syn::Token![,]>::parse_terminated,
        input,
    )?;
    let paths: Vec<syn::Path> = paths.into_iter().collect();
    let names: Vec<String> =
        paths.iter().map(|p| p.to_token_stream().to_string().replace(' ', "")).collect();
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(syn::Error::new_spanned(
                &paths[i],
                format!("`{n}` is listed twice in dispatcher!"),
            ));
        }
    }
    let mut checks = Vec::new();
    for i in 0..paths.len() {
        for j in i + 1..paths.len() {
            let (a, b) = (&paths[i], &paths[j]);
            let msg = format!(
                "dispatcher!: `{}` and `{}` have the same msg_type; give each endpoint its own",
                names[i], names[j]
            );
            checks.push(quote! { ::core::assert!(#a::MSG_TYPE != #b::MSG_TYPE, #msg); });
        }
    }
    Ok(quote! {
        {
            const _: () = { #(#checks)* };
            ::tachyon::rpc::Dispatcher::new() #( .with(#paths::Endpoint) )*
        }
    })
}
