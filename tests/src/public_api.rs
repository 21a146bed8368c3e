//! A listing of a crate's public API read from its source, so that a change to the API shows up
//! as a diff of `docs/public-api.txt` in review (`cargo public-api` needs a nightly toolchain;
//! this does not).
//!
//! Every module is walked (skipping `#[cfg(test)]`); every item declared exactly `pub` is listed
//! under the path where it is defined, with the signatures of its public methods, and `pub use`
//! re-exports are listed where they are made. With the `unreachable_pub` lint on, an item declared
//! `pub` is reachable from outside, so the listing is the API, if not always under its shortest
//! path. Items behind a `cfg` (a feature) are marked with it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use quote::ToTokens;
use syn::{Attribute, ImplItem, Item, TraitItem, Visibility};

/// The listing of the crate whose `src/lib.rs` is `lib_rs`, one line per item, sorted.
pub fn listing(crate_name: &str, lib_rs: &Path) -> Result<String, String> {
    let mut lines = Vec::new();
    walk_file(lib_rs, crate_name, true, "", &mut lines)?;
    lines.sort();
    lines.dedup();
    let mut out = String::new();
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    Ok(out)
}

fn walk_file(
    file: &Path,
    path: &str,
    mod_rs: bool,
    cfg: &str,
    lines: &mut Vec<String>,
) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let parsed = syn::parse_file(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    // Where `mod child;` declared in this file looks for `child.rs`.
    let dir = match (mod_rs, file.parent(), file.file_stem()) {
        (true, Some(parent), _) => parent.to_owned(),
        (false, Some(parent), Some(stem)) => parent.join(stem),
        _ => return Err(format!("{}: no directory", file.display())),
    };
    let base = file.parent().map(Path::to_owned).unwrap_or_default();
    walk_items(&parsed.items, path, &dir, &base, cfg, lines)
}

fn walk_items(
    items: &[Item],
    path: &str,
    dir: &Path,
    base: &Path,
    cfg: &str,
    lines: &mut Vec<String>,
) -> Result<(), String> {
    for item in items {
        let attrs = attrs_of(item);
        if is_test_only(attrs) {
            continue;
        }
        let cfg = match cfg_of(attrs) {
            Some(own) if cfg.is_empty() => format!("  #[cfg({own})]"),
            Some(own) => format!("{cfg} #[cfg({own})]"),
            None => cfg.to_owned(),
        };
        match item {
            Item::Mod(m) => {
                let child = format!("{path}::{}", m.ident);
                if is_pub(&m.vis) {
                    lines.push(format!("mod {child}{cfg}"));
                }
                if let Some((_, inline)) = &m.content {
                    walk_items(
                        inline,
                        &child,
                        &dir.join(m.ident.to_string()),
                        base,
                        &cfg,
                        lines,
                    )?;
                } else {
                    let (file, mod_rs) = module_file(attrs, &m.ident.to_string(), dir, base)?;
                    walk_file(&file, &child, mod_rs, &cfg, lines)?;
                }
            }
            Item::Impl(imp) => impl_lines(imp, path, &cfg, lines),
            Item::Trait(t) if is_pub(&t.vis) => {
                lines.push(format!("trait {path}::{}{cfg}", t.ident));
                for member in &t.items {
                    if let TraitItem::Fn(f) = member {
                        let sig = tokens(&f.sig);
                        lines.push(format!("trait {path}::{}: {sig}{cfg}", t.ident));
                    }
                }
            }
            Item::Use(u) if is_pub(&u.vis) => {
                lines.push(format!("use {path}::{}{cfg}", tokens(&u.tree)));
            }
            other => {
                if let Some(line) = item_line(other, path) {
                    lines.push(format!("{line}{cfg}"));
                }
            }
        }
    }
    Ok(())
}

/// The file of `mod name;`: `#[path]` relative to the declaring file's directory, else
/// `dir/name.rs` or `dir/name/mod.rs`.
fn module_file(
    attrs: &[Attribute],
    name: &str,
    dir: &Path,
    base: &Path,
) -> Result<(PathBuf, bool), String> {
    for attr in attrs {
        if attr.path().is_ident("path") {
            if let syn::Meta::NameValue(nv) = &attr.meta {
                if let syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) = &nv.value
                {
                    return Ok((base.join(s.value()), true));
                }
            }
        }
    }
    let flat = dir.join(format!("{name}.rs"));
    if flat.exists() {
        return Ok((flat, false));
    }
    let nested = dir.join(name).join("mod.rs");
    if nested.exists() {
        return Ok((nested, true));
    }
    Err(format!("module {name} not found under {}", dir.display()))
}

fn impl_lines(imp: &syn::ItemImpl, path: &str, cfg: &str, lines: &mut Vec<String>) {
    let ty = tokens(&imp.self_ty);
    let generics = tokens(&imp.generics);
    if let Some((_, trait_path, _)) = &imp.trait_ {
        let trait_path = tokens(trait_path);
        lines.push(format!("impl{generics} {trait_path} for {path}::{ty}{cfg}"));
        return;
    }
    for member in &imp.items {
        if let ImplItem::Fn(f) = member {
            if is_pub(&f.vis) && !is_test_only(&f.attrs) {
                let sig = tokens(&f.sig);
                lines.push(format!("impl {path}::{ty}: {sig}{cfg}"));
            }
        }
    }
}

fn item_line(item: &Item, path: &str) -> Option<String> {
    let (kind, vis, ident, detail) = match item {
        Item::Struct(s) => ("struct", &s.vis, &s.ident, public_fields(&s.fields)),
        Item::Enum(e) => {
            let variants: Vec<String> = e.variants.iter().map(|v| v.ident.to_string()).collect();
            (
                "enum",
                &e.vis,
                &e.ident,
                format!(" {{ {} }}", variants.join(", ")),
            )
        }
        Item::Fn(f) => {
            return is_pub(&f.vis).then(|| format!("fn {path}: {}", tokens(&f.sig)));
        }
        Item::Type(t) => ("type", &t.vis, &t.ident, format!(" = {}", tokens(&t.ty))),
        Item::Const(c) => ("const", &c.vis, &c.ident, format!(": {}", tokens(&c.ty))),
        Item::Static(s) => ("static", &s.vis, &s.ident, format!(": {}", tokens(&s.ty))),
        _ => return None,
    };
    let non_exhaustive = if attrs_of(item)
        .iter()
        .any(|a| a.path().is_ident("non_exhaustive"))
    {
        " #[non_exhaustive]"
    } else {
        ""
    };
    is_pub(vis).then(|| format!("{kind} {path}::{ident}{detail}{non_exhaustive}"))
}

fn public_fields(fields: &syn::Fields) -> String {
    let named: Vec<String> = fields
        .iter()
        .filter(|f| is_pub(&f.vis))
        .map(|f| match &f.ident {
            Some(name) => format!("{name}: {}", tokens(&f.ty)),
            None => tokens(&f.ty),
        })
        .collect();
    if named.is_empty() {
        String::new()
    } else {
        format!(" {{ {} }}", named.join(", "))
    }
}

fn attrs_of(item: &Item) -> &[Attribute] {
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

fn is_pub(vis: &Visibility) -> bool {
    matches!(vis, Visibility::Public(_))
}

fn is_test_only(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|a| match &a.meta {
        syn::Meta::List(list) if a.path().is_ident("cfg") => list.tokens.to_string() == "test",
        _ => false,
    })
}

fn cfg_of(attrs: &[Attribute]) -> Option<String> {
    attrs
        .iter()
        .find(|a| a.path().is_ident("cfg"))
        .map(|a| match &a.meta {
            syn::Meta::List(list) => list.tokens.to_string(),
            other => tokens(other),
        })
}

fn tokens(t: &impl ToTokens) -> String {
    t.to_token_stream().to_string()
}
