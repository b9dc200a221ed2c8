//! The modules of this crate import each other without a cycle (issue #19): each file's
//! `crate::<module>` references make an edge, and the drawing must be a DAG, so each module can
//! be read (and changed) knowing only what it depends on. `lib.rs`, the root that re-exports,
//! is left out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

/// The modules each source file names through `crate::` (code only, comments skipped).
fn imports(files: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph = BTreeMap::new();
    for (module, text) in files {
        let mut deps = BTreeSet::new();
        let code: String = text
            .lines()
            .map(|line| line.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let mut rest = code.as_str();
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            for name in first_segments(rest) {
                if files.contains_key(&name) && name != *module {
                    deps.insert(name);
                }
            }
        }
        graph.insert(module.clone(), deps);
    }
    graph
}

/// The module names a path starts with: `a::X` gives `a`; a group `{a, b::{C, D}}` (over
/// any number of lines) gives `a` and `b`.
fn first_segments(path: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let Some(group) = path.strip_prefix('{') else {
        return vec![ident(path)];
    };
    let mut names = Vec::new();
    let mut depth = 0;
    let mut start = true;
    for (i, c) in group.char_indices() {
        if start && !c.is_whitespace() {
            names.push(ident(&group[i..]));
            start = false;
        }
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => start = true,
            _ => {}
        }
    }
    names
}

/// A cycle of the graph, if it has one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

fn sources() -> BTreeMap<String, String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let module = path.file_stem().unwrap().to_string_lossy().into_owned();
            if module != "lib" {
                files.insert(module, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn the_modules_of_the_realtime_crate_import_each_other_without_a_cycle() {
    let files = sources();
    assert!(files.len() >= 10, "found only {:?}", files.keys());
    let graph = imports(&files);
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "import cycle inside crates/realtime: {}\nthe whole drawing: {graph:#?}",
            cycle.join(" -> ")
        );
    }
    // The split of #19: the cache and ordering know nothing of the client protocol.
    for module in ["project", "feed", "conn", "hub"] {
        assert!(
            !graph[module].contains("protocol"),
            "{module} imports protocol"
        );
    }
}

#[test]
fn the_check_finds_a_cycle_and_reads_grouped_imports() {
    let files: BTreeMap<String, String> = [
        ("a", "use crate::{\n    b,\n    c::{X, Y},\n};\n"),
        (
            "b",
            "// use crate::a; (a comment)\nuse crate::sync::lock;\n",
        ),
        ("c", "fn f() { crate::a::g(); }\n"),
        ("sync", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let graph = imports(&files);
    assert_eq!(graph["a"], BTreeSet::from(["b".to_owned(), "c".to_owned()]));
    assert_eq!(graph["b"], BTreeSet::from(["sync".to_owned()]));
    let cycle = find_cycle(&graph).unwrap();
    assert_eq!(cycle, ["a", "c", "a"]);
}
