//! `include_schema!("quote")`: finds `schemas/quote.tachyon` in the crate's directory or
//! the nearest ancestor that has one, checks every schema beside it (msg_types are
//! unique across `schemas/`), and expands to `pub mod quote { ... }` with the code
//! `tachyon_schema::gen::rust` writes. A bad schema becomes a compile error that quotes
//! the schema's file, line and column.

use std::path::{Path, PathBuf};

use proc_macro2::{Span, TokenStream};
use quote::quote;

/// The schema file `name` refers to, from `manifest_dir`.
fn locate(manifest_dir: &Path, name: &str) -> Result<PathBuf, String> {
    if Path::new(name).extension().is_some_and(|e| e == "tachyon") {
        let p = manifest_dir.join(name);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("schema file {} not found", p.display()))
        };
    }
    let file = format!("{name}.tachyon");
    for dir in manifest_dir.ancestors() {
        let p = dir.join("schemas").join(&file);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(format!("no schemas/{file} in {} or any directory above it", manifest_dir.display()))
}

/// Expands `include_schema!(LIT)`.
pub fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let lit: syn::LitStr = syn::parse2(input)?;
    let fail = |msg: String| syn::Error::new(lit.span(), msg);
    let manifest = std::env::var("CARGO_MANIFEST_DIR")
        .map_err(|_| fail("CARGO_MANIFEST_DIR is not set".into()))?;
    let path = locate(Path::new(&manifest), &lit.value()).map_err(fail)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let pkgs = tachyon_schema::load_dir(dir).map_err(|e| fail(format!("invalid schema:\n{e}")))?;
    let pkg = pkgs
        .iter()
        .find(|p| p.path == path)
        .ok_or_else(|| fail(format!("{} was not loaded", path.display())))?;
    let body: TokenStream = tachyon_schema::gen::rust::generate(pkg)
        .parse()
        .map_err(|e| fail(format!("generated code does not parse (a generator bug): {e}")))?;
    let module = syn::Ident::new(&pkg.name, Span::call_site());
    let tracked = path.display().to_string();
    let mut doc = if pkg.doc.is_empty() {
        vec![format!(" Generated from `{}` by `tachyon::include_schema!`.", lit.value())]
    } else {
        pkg.doc.iter().map(|l| format!(" {l}")).collect()
    };
    doc.push(String::new());
    doc.push(format!(
        " Source: `schemas/{}`.",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    Ok(quote! {
        #(#[doc = #doc])*
        pub mod #module {
            // Rebuild when the schema changes.
            const _: &str = ::core::include_str!(#tracked);
            #body
        }
    })
}
