//! Reading the crate's source with syn: modules (following `mod x;` to its file), items with
//! their lines, `use` trees, impls.

use std::path::{Path, PathBuf};

use quote::ToTokens;
use syn::{Attribute, ImplItem, Item, TraitItem, UseTree, Visibility};

use super::{Crate, Def, Impl, Module, Use, AT};

pub(super) fn read_file(
    krate: &mut Crate,
    module: usize,
    file: &Path,
    mod_rs: bool,
    cfg: &str,
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
    read_items(krate, module, &parsed.items, &dir, &base, cfg)
}

fn read_items(
    krate: &mut Crate,
    module: usize,
    items: &[Item],
    dir: &Path,
    base: &Path,
    cfg: &str,
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
                let name = m.ident.to_string();
                let child = krate.modules.len();
                krate.modules.push(Module {
                    path: format!("{}::{name}", krate.modules[module].path),
                    parent: Some(module),
                    public: is_pub(&m.vis) && !is_hidden(attrs),
                    cfg: cfg.clone(),
                    ..Module::default()
                });
                krate.modules[module].children.insert(name.clone(), child);
                if let Some((_, inline)) = &m.content {
                    read_items(krate, child, inline, &dir.join(&name), base, &cfg)?;
                } else {
                    let (file, mod_rs) = module_file(attrs, &name, dir, base)?;
                    read_file(krate, child, &file, mod_rs, &cfg)?;
                }
            }
            // A `#[doc(hidden)]` impl (e.g. a conversion from a crate-private type) is no API.
            Item::Impl(_) if is_hidden(attrs) => {}
            Item::Impl(imp) => {
                let found = impl_of(imp, &cfg);
                krate.modules[module].impls.push(found);
            }
            Item::Use(u) => {
                let mut leaves = Vec::new();
                use_leaves(&u.tree, &mut Vec::new(), &mut leaves);
                for (name, target) in leaves {
                    krate.modules[module].uses.push(Use {
                        public: is_pub(&u.vis) && !is_hidden(attrs),
                        name,
                        target,
                        cfg: cfg.clone(),
                    });
                }
            }
            other => {
                if let Some((name, public, lines)) = item_lines(other) {
                    let def = krate.items.len();
                    krate.items.push(Def {
                        module,
                        name: name.clone(),
                        public,
                        hidden: is_hidden(attrs),
                        lines,
                        cfg: cfg.clone(),
                    });
                    krate.modules[module]
                        .items
                        .entry(name)
                        .or_default()
                        .push(def);
                }
            }
        }
    }
    Ok(())
}

/// Flattens a `use` tree into (name in this module, path), `*` naming a glob.
fn use_leaves(tree: &UseTree, prefix: &mut Vec<String>, out: &mut Vec<(String, Vec<String>)>) {
    match tree {
        UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_leaves(&p.tree, prefix, out);
            prefix.pop();
        }
        UseTree::Name(n) => {
            let mut target = prefix.clone();
            target.push(n.ident.to_string());
            let name = if n.ident == "self" {
                prefix.last().cloned().unwrap_or_default()
            } else {
                n.ident.to_string()
            };
            out.push((name, target));
        }
        UseTree::Rename(r) => {
            let mut target = prefix.clone();
            target.push(r.ident.to_string());
            out.push((r.rename.to_string(), target));
        }
        UseTree::Glob(_) => {
            let mut target = prefix.clone();
            target.push("*".to_owned());
            out.push(("*".to_owned(), target));
        }
        UseTree::Group(g) => {
            for tree in &g.items {
                use_leaves(tree, prefix, out);
            }
        }
    }
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

fn impl_of(imp: &syn::ItemImpl, cfg: &str) -> Impl {
    let (self_ty, self_name) = match &*imp.self_ty {
        syn::Type::Path(p) if p.qself.is_none() => match p.path.segments.last() {
            Some(last) => (tokens(last), Some(last.ident.to_string())),
            None => (tokens(&imp.self_ty), None),
        },
        other => (tokens(other), None),
    };
    let generics = tokens(&imp.generics);
    let (head, is_trait) = match &imp.trait_ {
        Some((_, trait_path, _)) => (format!("impl{generics} {} for", tokens(trait_path)), true),
        None => ("impl".to_owned(), false),
    };
    let trait_name = imp
        .trait_
        .as_ref()
        .and_then(|(_, path, _)| path.segments.last())
        .map(|last| last.ident.to_string());
    let methods = if is_trait {
        Vec::new()
    } else {
        imp.items
            .iter()
            .filter_map(|member| match member {
                ImplItem::Fn(f)
                    if is_pub(&f.vis) && !is_test_only(&f.attrs) && !is_hidden(&f.attrs) =>
                {
                    Some(tokens(&f.sig))
                }
                _ => None,
            })
            .collect()
    };
    Impl {
        self_ty,
        self_name,
        head,
        methods,
        is_trait,
        trait_name,
        cfg: cfg.to_owned(),
    }
}

/// An item's name, whether it is declared `pub`, and its lines with [`AT`] before its name.
fn item_lines(item: &Item) -> Option<(String, bool, Vec<String>)> {
    let named = |kind: &str, ident: &syn::Ident, detail: String| {
        let non_exhaustive = if attrs_of(item)
            .iter()
            .any(|a| a.path().is_ident("non_exhaustive"))
        {
            " #[non_exhaustive]"
        } else {
            ""
        };
        format!("{kind} {AT}{ident}{detail}{non_exhaustive}")
    };
    let (vis, ident, lines) = match item {
        Item::Struct(s) => (
            &s.vis,
            &s.ident,
            vec![named("struct", &s.ident, public_fields(&s.fields))],
        ),
        Item::Enum(e) => {
            let variants: Vec<String> = e.variants.iter().map(|v| v.ident.to_string()).collect();
            let detail = format!(" {{ {} }}", variants.join(", "));
            (&e.vis, &e.ident, vec![named("enum", &e.ident, detail)])
        }
        Item::Fn(f) => (
            &f.vis,
            &f.sig.ident,
            vec![format!("fn {AT}{}: {}", f.sig.ident, tokens(&f.sig))],
        ),
        Item::Type(t) => {
            let detail = format!(" = {}", tokens(&t.ty));
            (&t.vis, &t.ident, vec![named("type", &t.ident, detail)])
        }
        Item::Const(c) => {
            let detail = format!(": {}", tokens(&c.ty));
            (&c.vis, &c.ident, vec![named("const", &c.ident, detail)])
        }
        Item::Static(s) => {
            let detail = format!(": {}", tokens(&s.ty));
            (&s.vis, &s.ident, vec![named("static", &s.ident, detail)])
        }
        Item::Trait(t) => {
            let mut lines = vec![format!("trait {AT}{}", t.ident)];
            for member in &t.items {
                if let TraitItem::Fn(f) = member {
                    lines.push(format!("trait {AT}{}: {}", t.ident, tokens(&f.sig)));
                }
            }
            (&t.vis, &t.ident, lines)
        }
        _ => return None,
    };
    Some((ident.to_string(), is_pub(vis), lines))
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

/// `#[doc(hidden)]`: public for the workspace's own crates, not part of the API.
fn is_hidden(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|a| match &a.meta {
        syn::Meta::List(list) if a.path().is_ident("doc") => list.tokens.to_string() == "hidden",
        _ => false,
    })
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
