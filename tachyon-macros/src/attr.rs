//! Parsing `#[tachyon_rpc(msg_type = N, name = "...")]`.

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;

/// The parsed attribute.
pub struct Attr {
    /// The msg_type as written (range checked in `valid`).
    pub msg_type: u64,
    /// Span of the msg_type literal, for errors.
    pub msg_type_span: Span,
    /// Optional handler name (defaults to the function name).
    pub name: Option<syn::LitStr>,
}

pub fn parse(args: TokenStream) -> syn::Result<Attr> {
    let mut msg_type: Option<(u64, Span)> = None;
    let mut name = None;
    let args_span = args.span();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("msg_type") {
            let expr: syn::Expr = meta.value()?.parse()?;
            let syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(lit), .. }) = &expr else {
                return Err(syn::Error::new_spanned(
                    &expr,
                    "msg_type must be an integer literal in 0..=65534, e.g. `msg_type = 7`",
                ));
            };
            let value = lit.base10_parse::<u64>().map_err(|_| {
                syn::Error::new(
                    lit.span(),
                    "msg_type must fit in 16 bits: use a value in 0..=65534",
                )
            })?;
            if msg_type.replace((value, lit.span())).is_some() {
                return Err(meta.error("msg_type is given twice"));
            }
            Ok(())
        } else if meta.path.is_ident("name") {
            name = Some(meta.value()?.parse::<syn::LitStr>()?);
            Ok(())
        } else {
            Err(meta.error(
                "unknown #[tachyon_rpc] argument; expected `msg_type = N` or `name = \"...\"`",
            ))
        }
    });
    syn::parse::Parser::parse2(parser, args)?;
    let Some((msg_type, msg_type_span)) = msg_type else {
        return Err(syn::Error::new(
            args_span,
            "missing msg_type: write #[tachyon_rpc(msg_type = N)] with N in 0..=65534",
        ));
    };
    Ok(Attr { msg_type, msg_type_span, name })
}
