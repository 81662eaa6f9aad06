//! Every semantic check, each error spanned on the offending token.

use crate::ast::{Arg, Handler};
use crate::attr::Attr;

const SENTINEL: u64 = 0xFFFF;

pub fn check(attr: &Attr, h: &Handler) -> syn::Result<()> {
    if attr.msg_type == SENTINEL {
        return Err(syn::Error::new(
            attr.msg_type_span,
            "msg_type 0xFFFF is reserved for the error sentinel; use a value in 0..=65534",
        ));
    }
    if attr.msg_type > SENTINEL {
        return Err(syn::Error::new(
            attr.msg_type_span,
            format!(
                "msg_type {} is out of range: it must fit in 16 bits, 0..=65534",
                attr.msg_type
            ),
        ));
    }
    if let Some(g) = &h.generics {
        return Err(syn::Error::new_spanned(g, "#[tachyon_rpc] handlers cannot be generic: the request and response types must be concrete"));
    }
    if let Some(r) = h.receiver {
        return Err(syn::Error::new(r, "#[tachyon_rpc] applies to free functions, not methods"));
    }
    if let Some(extra) = h.extra_args.first() {
        return Err(syn::Error::new(
            *extra,
            "a #[tachyon_rpc] handler takes exactly one argument, the request",
        ));
    }
    let Some(arg) = &h.arg else {
        return Err(syn::Error::new(
            h.sig_span,
            "a #[tachyon_rpc] handler takes one argument, the request: `req: T` (MessagePack) or `req: &[u8]` (raw bytes)",
        ));
    };
    if let Arg::OtherRef(ty) = arg {
        return Err(syn::Error::new_spanned(
            ty,
            "take the request by value (`req: T`); only raw handlers borrow it, as `&[u8]`",
        ));
    }
    let Some(ret) = &h.ret else {
        return Err(syn::Error::new(
            h.sig_span,
            "a #[tachyon_rpc] handler must return its response: `-> Resp`, `-> Result<Resp, E>`, or for raw handlers `-> Vec<u8>`",
        ));
    };
    if matches!(arg, Arg::Raw) && !is_vec_u8(ret.ok_type()) {
        return Err(syn::Error::new_spanned(
            ret.ok_type(),
            "a raw handler (taking `&[u8]`) returns `Vec<u8>` or `Result<Vec<u8>, E>`",
        ));
    }
    Ok(())
}

fn is_vec_u8(ty: &syn::Type) -> bool {
    let syn::Type::Path(p) = ty else { return false };
    let Some(last) = p.path.segments.last() else { return false };
    if last.ident != "Vec" {
        return false;
    }
    let syn::PathArguments::AngleBracketed(a) = &last.arguments else { return false };
    matches!(a.args.first(), Some(syn::GenericArgument::Type(syn::Type::Path(t))) if t.path.is_ident("u8"))
}
