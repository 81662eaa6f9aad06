//! The handler's shape, read from its signature.

use syn::spanned::Spanned;

/// What the handler returns.
pub enum Ret {
    /// `-> Resp`
    Plain(syn::Type),
    /// `-> Result<Resp, E>` (the error type is converted with `Into<ServerError>`)
    Result(syn::Type),
}

impl Ret {
    pub fn ok_type(&self) -> &syn::Type {
        match self {
            Ret::Plain(t) | Ret::Result(t) => t,
        }
    }
}

/// What the handler takes.
pub enum Arg {
    /// `&[u8]`: the request bytes, read in place.
    Raw,
    /// An owned, MessagePack-decoded request.
    Typed(syn::Type),
    /// A reference to something else (refused in `valid`).
    OtherRef(syn::Type),
}

/// A handler signature in the forms `#[tachyon_rpc]` accepts; everything else is
/// recorded so `valid` can point at it.
pub struct Handler {
    pub ident: syn::Ident,
    pub arg: Option<Arg>,
    pub extra_args: Vec<proc_macro2::Span>,
    pub ret: Option<Ret>,
    pub asyncness: Option<syn::token::Async>,
    pub generics: Option<syn::Generics>,
    pub receiver: Option<proc_macro2::Span>,
    pub sig_span: proc_macro2::Span,
}

fn is_u8_slice_ref(ty: &syn::Type) -> bool {
    let syn::Type::Reference(r) = ty else { return false };
    let syn::Type::Slice(s) = &*r.elem else { return false };
    matches!(&*s.elem, syn::Type::Path(p) if p.path.is_ident("u8")) && r.mutability.is_none()
}

fn result_ok(ty: &syn::Type) -> Option<syn::Type> {
    let syn::Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    let mut types = args.args.iter().filter_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    });
    match (types.next(), types.next(), types.next()) {
        (Some(ok), Some(_err), None) => Some(ok),
        _ => None,
    }
}

impl Handler {
    pub fn from_fn(f: &syn::ItemFn) -> Self {
        let sig = &f.sig;
        let mut arg = None;
        let mut extra_args = Vec::new();
        let mut receiver = None;
        for (i, input) in sig.inputs.iter().enumerate() {
            match input {
                syn::FnArg::Receiver(r) => receiver = Some(r.span()),
                syn::FnArg::Typed(pt) if i == 0 => {
                    arg = Some(if is_u8_slice_ref(&pt.ty) {
                        Arg::Raw
                    } else if matches!(&*pt.ty, syn::Type::Reference(_)) {
                        Arg::OtherRef((*pt.ty).clone())
                    } else {
                        Arg::Typed((*pt.ty).clone())
                    });
                }
                syn::FnArg::Typed(pt) => extra_args.push(pt.span()),
            }
        }
        let ret = match &sig.output {
            syn::ReturnType::Default => None,
            syn::ReturnType::Type(_, ty) => Some(match result_ok(ty) {
                Some(ok) => Ret::Result(ok),
                None => Ret::Plain((**ty).clone()),
            }),
        };
        let has_generics = !sig.generics.params.is_empty() || sig.generics.where_clause.is_some();
        Handler {
            ident: sig.ident.clone(),
            arg,
            extra_args,
            ret,
            asyncness: sig.asyncness,
            generics: has_generics.then(|| sig.generics.clone()),
            receiver,
            sig_span: sig.span(),
        }
    }
}
