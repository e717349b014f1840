//! The top-level module graph of the `ods` library, derived from its source: which
//! top-level module uses which (through `crate::x` paths, `use crate::{x, y}` groups,
//! and `super::x` from a file directly under the crate root). The test prints it and
//! fails on any cycle, on a module that uses `http`, and on `db` or `jobs` using
//! anything above them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading src") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first path segment of every item a `{a, b::c, d::{e}}` group names.
fn group_heads(s: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expect_head = true;
    for (i, c) in s.char_indices() {
        match c {
            '{' => {
                depth += 1;
                expect_head = depth == 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => expect_head = true,
            c if expect_head && depth == 1 && (c.is_ascii_alphabetic() || c == '_') => {
                heads.push(ident_at(&s[i..]).to_string());
                expect_head = false;
            }
            _ => {}
        }
    }
    heads
}

/// The top-level modules a source text refers to. `at_root` says the file sits
/// directly under the crate root, where `super::x` means the top-level module `x`.
fn uses(text: &str, at_root: bool) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        let mut prefixes = vec!["crate::"];
        if at_root {
            prefixes.push("super::");
        }
        for prefix in prefixes {
            let mut rest = line;
            while let Some(at) = rest.find(prefix) {
                let before = rest[..at].chars().next_back();
                let tail = &rest[at + prefix.len()..];
                rest = tail;
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                    continue; // `foo_crate::`, not ours
                }
                if tail.starts_with('{') {
                    found.extend(group_heads(tail));
                } else {
                    let id = ident_at(tail);
                    if !id.is_empty() {
                        found.insert(id.to_string());
                    }
                }
            }
        }
    }
    found
}

fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    if first == "lib.rs" || first == "main.rs" {
        return None; // the crate roots put the parts together
    }
    Some(first.trim_end_matches(".rs").to_string())
}

fn graph_of(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top_module(src, f)).collect();
    let mut graph: Graph = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for file in &files {
        let Some(module) = top_module(src, file) else {
            continue;
        };
        let rel = file.strip_prefix(src).expect("under src");
        let depth = rel.components().count();
        // `src/x.rs` and `src/x/mod.rs` are the module itself: `super::` is the root.
        let at_root = depth == 1 || (depth == 2 && rel.ends_with("mod.rs"));
        let text = std::fs::read_to_string(file).expect("reading a source file");
        for used in uses(&text, at_root) {
            if used != module && modules.contains(&used) {
                graph.get_mut(&module).expect("known").insert(used);
            }
        }
    }
    graph
}

/// A cycle of the graph (its modules in order), if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        g: &Graph,
        m: &str,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(m.to_string(), Mark::Open);
        path.push(m.to_string());
        for next in g.get(m).into_iter().flatten() {
            match marks.get(next.as_str()).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let from = path.iter().position(|p| p == next).expect("on the path");
                    let mut cycle = path[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(g, next, marks, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks.insert(m.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for m in graph.keys() {
        if marks.get(m.as_str()).copied().unwrap_or(Mark::New) == Mark::New
            && let Some(c) = visit(graph, m, &mut marks, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[test]
fn parses_paths_groups_and_super() {
    let text = "use crate::app::App;\nuse crate::{db::{self, Db}, model, jobs::Job};\n\
                // crate::http in a comment\nlet x = crate::storage::gc::BlobGc {};\n\
                use super::catalog;\nlet y = my_crate::peers::x;";
    let found: Vec<String> = uses(text, true).into_iter().collect();
    assert_eq!(
        found,
        ["app", "catalog", "db", "jobs", "model", "storage"],
        "{found:?}"
    );
    assert!(
        !uses(text, false).contains("catalog"),
        "super:: below a module"
    );
}

#[test]
fn finds_a_cycle() {
    let g = |edges: &[(&str, &str)]| {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    assert_eq!(find_cycle(&g(&[("a", "b"), ("b", "c"), ("a", "c")])), None);
    let cycle = find_cycle(&g(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]));
    assert_eq!(cycle.expect("a cycle").len(), 4, "a -> b -> c -> a");
}

#[test]
fn top_level_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph_of(&src);
    println!("top-level module graph of crates/ods/src (module -> modules it uses):");
    for (m, deps) in &graph {
        let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
        println!("  {m:<8} -> {}", deps.join(", "));
    }
    // The parser sees the graph at all (a graph without edges would prove nothing).
    assert!(graph["http"].contains("app"), "{graph:?}");
    assert!(graph["catalog"].contains("db"), "{graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("the module graph has a cycle: {}", cycle.join(" -> "));
    }
    for (m, deps) in &graph {
        assert!(
            !deps.contains("http"),
            "{m} uses http: only the crate root may"
        );
    }
    let allowed = |m: &str, ok: &[&str]| {
        let extra: Vec<&String> = graph[m]
            .iter()
            .filter(|d| !ok.contains(&d.as_str()))
            .collect();
        assert!(extra.is_empty(), "{m} uses {extra:?}, above it");
    };
    allowed("db", &["model", "secrets"]);
    allowed("jobs", &["db", "model"]);
    allowed("model", &[]);
}

#[test]
fn every_module_says_what_it_owns() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let silent: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).expect("reading a source file");
            !text.trim_start().starts_with("//!")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(silent.is_empty(), "files without a `//!` line: {silent:?}");
}
