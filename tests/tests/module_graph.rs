//! The module graph of every crate is a tree: no file imports (`crate::…`) a module that imports
//! it back, directly or through others. A file may name its own ancestors (a backend names the
//! trait its parent module defines); every other `crate::` path is an edge, and the edges must not
//! form a cycle. Test modules (`mod tests { … }` at the end of a file) are left out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A crate's files by module path (`screen::view`), the crate root as the empty path.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "bin") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            match parts.last().map(String::as_str) {
                // A binary's main is its own crate, and names the library by name.
                Some("main") if parts.len() == 1 => continue,
                Some("mod" | "lib") => {
                    parts.pop();
                }
                _ => {}
            }
            if parts.first().is_some_and(|p| p == "bin") {
                continue;
            }
            out.insert(parts.join("::"), path);
        }
    }
    out
}

/// The code of a file without comments and without its trailing test module.
fn product_text(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => &text,
    };
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::a::b` path in the text, with `{…}` groups expanded one level.
fn crate_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        if text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &text[at + "crate::".len()..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let prefix = rest[..end].trim_end_matches(':').to_string();
        if rest[end..].starts_with('{') && (end == 0 || rest[..end].ends_with("::")) {
            let close = rest[end..].find('}').map_or(rest.len(), |c| end + c);
            for item in rest[end + 1..close].split(',') {
                let item = item.trim().trim_start_matches('{');
                if item.is_empty() || item == "self" {
                    out.push(prefix.clone());
                } else if prefix.is_empty() {
                    out.push(item.to_string());
                } else {
                    out.push(format!("{prefix}::{item}"));
                }
            }
        } else {
            out.push(prefix);
        }
    }
    out
}

/// The longest module that a path names.
fn resolve<'a>(path: &str, modules: &'a BTreeMap<String, PathBuf>) -> Option<&'a str> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find_map(|m| modules.get_key_value(&m).map(|(k, _)| k.as_str()))
}

fn is_ancestor(ancestor: &str, of: &str) -> bool {
    ancestor.is_empty() || of == ancestor || of.starts_with(&format!("{ancestor}::"))
}

/// Every cycle in the crate's import graph, as the modules along each (breaking each cycle found at
/// its last edge before looking for the next).
fn find_cycles(src: &Path) -> Vec<Vec<String>> {
    let modules = modules(src);
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (module, path) in &modules {
        let targets = edges.entry(module.as_str()).or_default();
        for used in crate_paths(&product_text(path)) {
            if let Some(target) = resolve(&used, &modules)
                && !is_ancestor(target, module)
            {
                targets.insert(target);
            }
        }
    }
    let mut cycles = Vec::new();
    while let Some(cycle) = first_cycle(&edges) {
        let (from, to) = (&cycle[cycle.len() - 2], &cycle[cycle.len() - 1]);
        let from = modules.get_key_value(from).unwrap().0.as_str();
        edges.get_mut(from).unwrap().remove(to.as_str());
        cycles.push(cycle);
    }
    cycles
}

/// The first cycle met by a depth-first search.
fn first_cycle(edges: &BTreeMap<&str, BTreeSet<&str>>) -> Option<Vec<String>> {
    // Depth-first search with colours: a grey node met again closes a cycle.
    fn visit<'a>(
        node: &'a str,
        edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        state.insert(node, 1);
        path.push(node);
        for &next in edges.get(node).into_iter().flatten() {
            match state.get(next).copied().unwrap_or(0) {
                1 => {
                    let from = path.iter().position(|n| *n == next).unwrap();
                    let mut cycle: Vec<String> =
                        path[from..].iter().map(|s| s.to_string()).collect();
                    cycle.push(next.to_string());
                    return Some(cycle);
                }
                0 => {
                    if let Some(cycle) = visit(next, edges, state, path) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(node, 2);
        None
    }
    let mut state = BTreeMap::new();
    for &node in edges.keys() {
        if state.get(node).copied().unwrap_or(0) == 0
            && let Some(cycle) = visit(node, edges, &mut state, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn no_crate_has_an_import_cycle() {
    let mut cycles = Vec::new();
    for krate in [
        "proto",
        "net",
        "agent",
        "relay",
        "technician-console",
        "x11-selection",
    ] {
        for cycle in find_cycles(&workspace().join(krate).join("src")) {
            cycles.push(format!("{krate}: {}", cycle.join(" -> ")));
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// The checker itself finds a cycle of two files and ignores a child naming its parent.
#[test]
fn the_checker_sees_a_cycle_and_allows_a_parent() {
    let dir = std::env::temp_dir().join(format!("tether-module-graph-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("screen")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a; mod b; mod screen;").unwrap();
    std::fs::write(
        src.join("screen/mod.rs"),
        "mod x11; use crate::screen::x11::Cap;",
    )
    .unwrap();
    std::fs::write(src.join("screen/x11.rs"), "use crate::screen::Source;").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::{b::Thing, screen};").unwrap();
    std::fs::write(src.join("b.rs"), "pub struct Thing;").unwrap();
    assert_eq!(find_cycles(&src), Vec::<Vec<String>>::new());
    std::fs::write(src.join("b.rs"), "fn f() { crate::a::g() }").unwrap();
    assert_eq!(find_cycles(&src), [["a", "b", "a"]]);
    std::fs::remove_dir_all(&dir).unwrap();
}
