//! A listing of a crate's public API read from its source, so that a change to the API shows up
//! as a diff of `docs/public-api.txt` in review (`cargo public-api` needs a nightly toolchain;
//! this does not).
//!
//! Every module is read (skipping `#[cfg(test)]`), then each item is listed under the path an
//! embedder names it by: where it is defined when every module on the way is `pub`, otherwise
//! where a `pub use` in a public module re-exports it (the shortest such path). Other public names
//! of the same item are `use` lines (`use NEW = CANONICAL`). Items that no public path reaches are
//! not listed, nor are the impls of types that are not listed. `#[doc(hidden)]` items, modules,
//! re-exports and methods (public for the workspace's own crates, not API) are not listed either.
//! Items behind a `cfg` (a feature) are marked with it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

pub mod budget;
mod source;

/// Stands for the item's path in a line template until the item's public path is known.
const AT: &str = "\u{0}";

/// The listing of the crate whose `src/lib.rs` is `lib_rs`, one line per item, sorted.
pub fn listing(crate_name: &str, lib_rs: &Path) -> Result<String, String> {
    let mut krate = Crate::default();
    krate.modules.push(Module {
        path: crate_name.to_owned(),
        parent: None,
        public: true,
        ..Module::default()
    });
    source::read_file(&mut krate, 0, lib_rs, true, "")?;
    let mut lines = krate.lines();
    lines.sort();
    lines.dedup();
    let mut out = String::new();
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    Ok(out)
}

#[derive(Default)]
struct Crate {
    modules: Vec<Module>,
    items: Vec<Def>,
}

#[derive(Default)]
struct Module {
    path: String,
    parent: Option<usize>,
    /// Declared `pub` (the crate root counts as public).
    public: bool,
    cfg: String,
    children: HashMap<String, usize>,
    /// Items declared here, by name (a name may have a type and a function).
    items: HashMap<String, Vec<usize>>,
    uses: Vec<Use>,
    impls: Vec<Impl>,
}

/// A declared item: its lines with [`AT`] where its path goes, and whether it is declared `pub`.
struct Def {
    module: usize,
    name: String,
    public: bool,
    /// `#[doc(hidden)]`: never listed, under any name.
    hidden: bool,
    lines: Vec<String>,
    cfg: String,
}

impl Def {
    fn is_fn(&self) -> bool {
        self.lines.first().is_some_and(|l| l.starts_with("fn "))
    }
}

/// One leaf of a `use` tree: `name` in this module stands for `target` (`*` for a glob).
struct Use {
    public: bool,
    name: String,
    target: Vec<String>,
    cfg: String,
}

struct Impl {
    /// The self type's last path segment, generics included (`GatewayProxy < H >`).
    self_ty: String,
    /// Its name alone, to look the type up.
    self_name: Option<String>,
    /// `impl<G> Trait for`, or `impl` for inherent methods.
    head: String,
    /// For inherent impls, the public methods' signatures; empty for a trait impl.
    methods: Vec<String>,
    is_trait: bool,
    /// The implemented trait's name (its path's last segment), to look it up.
    trait_name: Option<String>,
    cfg: String,
}

/// What a name resolves to.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Item(usize),
    Module(usize),
}

impl Crate {
    /// Whether every module from the root down to `module` is `pub`.
    fn reachable(&self, module: usize) -> bool {
        let mut at = Some(module);
        while let Some(m) = at {
            if !self.modules[m].public {
                return false;
            }
            at = self.modules[m].parent;
        }
        true
    }

    /// What `name` stands for in `module`: its items, its child modules, and its `use`s, globs
    /// included. Resolving the crate's own paths needs no visibility check (the compiler made
    /// it); `public_only` keeps to what the module gives as `pub`, which is what a glob
    /// re-exports.
    fn lookup(&self, module: usize, name: &str, public_only: bool, depth: u8) -> Vec<Target> {
        if depth > 16 {
            return Vec::new();
        }
        let here = &self.modules[module];
        let mut found: Vec<Target> = here
            .items
            .get(name)
            .into_iter()
            .flatten()
            .filter(|&&d| !public_only || self.items[d].public)
            .map(|&d| Target::Item(d))
            .collect();
        if let Some(&child) = here.children.get(name) {
            if !public_only || self.modules[child].public {
                found.push(Target::Module(child));
            }
        }
        for u in here.uses.iter().filter(|u| u.public || !public_only) {
            if u.name == name {
                found.extend(self.resolve(module, &u.target, depth + 1));
            } else if u.name == "*" {
                for target in self.resolve(module, &u.target, depth + 1) {
                    if let Target::Module(m) = target {
                        found.extend(self.lookup(m, name, public_only, depth + 1));
                    }
                }
            }
        }
        found.sort();
        found.dedup();
        found
    }

    /// What a `use` path written in `module` stands for; empty for another crate's items.
    fn resolve(&self, module: usize, path: &[String], depth: u8) -> Vec<Target> {
        let Some((first, rest)) = path.split_first() else {
            return Vec::new();
        };
        let mut at = match first.as_str() {
            "crate" => 0,
            "self" => module,
            "super" => match self.modules[module].parent {
                Some(parent) => parent,
                None => return Vec::new(),
            },
            _ => return self.walk(module, path, depth),
        };
        let mut rest = rest;
        while let Some(("super", more)) = rest.split_first().map(|(s, m)| (s.as_str(), m)) {
            match self.modules[at].parent {
                Some(parent) => at = parent,
                None => return Vec::new(),
            }
            rest = more;
        }
        if rest.is_empty() || rest == ["*"] {
            return vec![Target::Module(at)];
        }
        self.walk(at, rest, depth)
    }

    /// Follows `path` from `module`: all but the last segment are modules.
    fn walk(&self, module: usize, path: &[String], depth: u8) -> Vec<Target> {
        let Some((last, init)) = path.split_last() else {
            return Vec::new();
        };
        let mut at = module;
        for segment in init {
            match self
                .lookup(at, segment, false, depth)
                .into_iter()
                .find_map(|t| match t {
                    Target::Module(m) => Some(m),
                    Target::Item(_) => None,
                }) {
                Some(m) => at = m,
                None => return Vec::new(),
            }
        }
        if last == "*" || (last == "self" && !init.is_empty()) {
            return vec![Target::Module(at)];
        }
        self.lookup(at, last, false, depth)
    }

    /// Every public name of each item: (path of the module that names it, the name it is given).
    fn public_names(&self) -> BTreeMap<usize, BTreeSet<(String, String)>> {
        let mut names: BTreeMap<usize, BTreeSet<(String, String)>> = BTreeMap::new();
        for (index, def) in self.items.iter().enumerate() {
            if def.public && !def.hidden && self.reachable(def.module) {
                names
                    .entry(index)
                    .or_default()
                    .insert((self.modules[def.module].path.clone(), def.name.clone()));
            }
        }
        for (module, m) in self.modules.iter().enumerate() {
            if !self.reachable(module) {
                continue;
            }
            for u in m.uses.iter().filter(|u| u.public) {
                let targets = self.resolve(module, &u.target, 0);
                if u.name == "*" {
                    for target in targets {
                        let Target::Module(source) = target else {
                            continue;
                        };
                        for (name, items) in self.exported(source) {
                            for item in items.into_iter().filter(|&i| !self.items[i].hidden) {
                                names
                                    .entry(item)
                                    .or_default()
                                    .insert((m.path.clone(), name.clone()));
                            }
                        }
                    }
                    continue;
                }
                for target in targets {
                    if let Target::Item(item) = target {
                        if self.items[item].hidden {
                            continue;
                        }
                        names
                            .entry(item)
                            .or_default()
                            .insert((m.path.clone(), u.name.clone()));
                    }
                }
            }
        }
        names
    }

    /// The public names a module gives (its `pub` items and `pub use`s), for globs.
    fn exported(&self, module: usize) -> BTreeMap<String, Vec<usize>> {
        let m = &self.modules[module];
        let mut names: BTreeSet<&str> = m.items.keys().map(String::as_str).collect();
        names.extend(m.uses.iter().filter(|u| u.public).map(|u| u.name.as_str()));
        names.remove("*");
        names
            .into_iter()
            .map(|name| {
                let items = self
                    .lookup(module, name, true, 0)
                    .into_iter()
                    .filter_map(|t| match t {
                        Target::Item(i) => Some(i),
                        Target::Module(_) => None,
                    })
                    .collect();
                (name.to_owned(), items)
            })
            .collect()
    }

    fn lines(&self) -> Vec<String> {
        let names = self.public_names();
        let mut lines = Vec::new();
        // The name an item is listed under: where it is defined when that is public, else the
        // shortest path that re-exports it (then the first by text).
        let mut canonical: HashMap<usize, String> = HashMap::new();
        for (&item, paths) in &names {
            let def = &self.items[item];
            let defined = (self.modules[def.module].path.clone(), def.name.clone());
            let Some((module, name)) = paths.get(&defined).or_else(|| {
                paths
                    .iter()
                    .min_by_key(|(module, name)| (module.matches("::").count(), module, name))
            }) else {
                continue;
            };
            let path = format!("{module}::{name}");
            for line in &def.lines {
                let line = line.replacen(&format!("{AT}{}", def.name), &path, 1);
                lines.push(format!("{line}{}", def.cfg));
            }
            for (other_module, other_name) in paths {
                if (other_module, other_name) != (module, name) {
                    lines.push(format!(
                        "use {other_module}::{other_name} = {path}{}",
                        def.cfg
                    ));
                }
            }
            canonical.insert(item, path);
        }
        for (module, m) in self.modules.iter().enumerate() {
            if module != 0 && self.reachable(module) {
                lines.push(format!("mod {}{}", m.path, m.cfg));
            }
            // Re-exports of other crates' items, which have no definition here.
            if self.reachable(module) {
                for u in m.uses.iter().filter(|u| u.public) {
                    if self.resolve(module, &u.target, 0).is_empty() {
                        lines.push(format!(
                            "use {}::{} = {}{}",
                            m.path,
                            u.name,
                            u.target.join("::"),
                            u.cfg
                        ));
                    }
                }
            }
            for imp in &m.impls {
                let listed = match &imp.self_name {
                    Some(name) => self
                        .lookup(module, name, false, 0)
                        .into_iter()
                        .filter_map(|t| match t {
                            Target::Item(i) if !self.items[i].is_fn() => {
                                canonical.get(&i).map(|p| (i, p))
                            }
                            _ => None,
                        })
                        .next()
                        .map(|(item, path)| {
                            let own = &self.items[item].name;
                            let generics = imp.self_ty.strip_prefix(own.as_str()).unwrap_or("");
                            format!("{path}{generics}")
                        }),
                    None => None,
                };
                let self_ty = match listed {
                    Some(path) => path,
                    // A type of another crate, a type parameter, a reference or a tuple: by the
                    // orphan rule the trait is then ours, and the impl is API when the trait is
                    // listed. (A type of ours declared inside a macro, e.g. `pin_project!`, is
                    // unknown here too; its impls of other crates' traits are left out by this.)
                    None if imp.is_trait
                        && !self.is_local_type(module, imp)
                        && self.trait_is_listed(module, imp, &canonical) =>
                    {
                        imp.self_ty.clone()
                    }
                    None => continue,
                };
                if imp.is_trait {
                    lines.push(format!("{} {self_ty}{}", imp.head, imp.cfg));
                }
                for sig in &imp.methods {
                    lines.push(format!("impl {self_ty}: {sig}{}", imp.cfg));
                }
            }
        }
        lines
    }

    fn trait_is_listed(
        &self,
        module: usize,
        imp: &Impl,
        canonical: &HashMap<usize, String>,
    ) -> bool {
        imp.trait_name.as_deref().is_some_and(|name| {
            self.lookup(module, name, false, 0)
                .into_iter()
                .any(|t| matches!(t, Target::Item(i) if canonical.contains_key(&i)))
        })
    }

    fn is_local_type(&self, module: usize, imp: &Impl) -> bool {
        imp.self_name
            .as_deref()
            .is_some_and(|name| !self.lookup(module, name, false, 0).is_empty())
    }
}

#[cfg(test)]
mod tests {
    /// `#[doc(hidden)]` items, modules, re-exports, methods and impls are not listed; what a
    /// hidden module gives through a visible `pub use` is.
    #[test]
    fn hidden_items_are_not_listed() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let lib = dir.path().join("lib.rs");
        std::fs::write(
            &lib,
            "pub struct Shown;\n\
             impl Shown { pub fn new() -> Self { Shown } #[doc(hidden)] pub fn plumbing(&self) {} }\n\
             #[doc(hidden)] pub struct Hidden;\n\
             impl Clone for Hidden { fn clone(&self) -> Self { Hidden } }\n\
             #[doc(hidden)] impl From<u8> for Shown { fn from(_: u8) -> Self { Shown } }\n\
             #[doc(hidden)] pub mod internals { pub fn helper() {} pub struct Given; }\n\
             pub use internals::Given;\n\
             #[doc(hidden)] pub use internals::helper;\n",
        )
        .expect("write the fixture");
        let listing = super::listing("demo", &lib).expect("list the fixture");
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(
            lines,
            [
                "impl demo::Shown: fn new () -> Self",
                "struct demo::Given",
                "struct demo::Shown",
            ],
            "{listing}"
        );
    }
}
