//! The architecture, checked: the top-level modules of `cfhost-core` depend on each other one
//! way (no cycle among them), and the crates depend one way too: the mailer links neither the
//! runtime nor wasmtime, the runtime links neither the command line nor the HTTP server, and
//! the store links none of wasmtime, SIP and HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use cfhost_tests::repo_root;

/// Every top-level module of `cfhost-core` and the top-level modules its non-test code names
/// with `crate::`.
fn core_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let src = repo_root().join("host/core/src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = Vec::new();
    collect_rust_files(&src, &mut files);
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap();
        let module = first.as_os_str().to_str().unwrap().trim_end_matches(".rs");
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // Test modules come last in every file; what they use is not an architectural edge.
        let code = text.split("#[cfg(test)]").next().unwrap();
        let uses = graph.entry(module.to_string()).or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (at, _) in line.match_indices("crate::") {
                let name: String = line[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    uses.insert(name);
                }
            }
        }
    }
    graph
}

fn collect_rust_files(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// A cycle in `graph`, as the path that closes it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_runtime_modules_depend_on_each_other_one_way() {
    let graph = core_dependencies();
    for module in [
        "call", "policy", "engine", "executor", "imports", "context", "runtime",
    ] {
        assert!(
            graph.contains_key(module),
            "no module `{module}` in {graph:?}"
        );
    }
    if let Some(cycle) = find_cycle(&graph) {
        panic!("a dependency cycle: {}", cycle.join(" -> "));
    }
    // The three edges that once closed a cycle stay gone.
    assert!(
        !graph["imports"].contains("executor"),
        "{:?}",
        graph["imports"]
    );
    assert!(!graph["policy"].contains("engine"));
    assert!(!graph["notify"].contains("executor"));
    // The call-control boundary speaks cfhost's types, not the WIT's.
    assert!(
        !graph["switch"].contains("bindings"),
        "{:?}",
        graph["switch"]
    );
    assert!(!graph["call"].contains("bindings"), "{:?}", graph["call"]);
}

#[test]
fn a_cycle_would_be_found() {
    let graph = BTreeMap::from([
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["c".to_string()])),
        ("c".to_string(), BTreeSet::from(["a".to_string()])),
    ]);
    assert_eq!(find_cycle(&graph).unwrap(), ["a", "b", "c", "a"]);
}

/// The packages `package` links (normal dependencies, transitively), by name.
fn linked_packages(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .current_dir(repo_root())
        .args([
            "tree",
            "--offline",
            "--locked",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(["--format", "{p}", "-p", package])
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_crates_depend_one_way() {
    let mail = linked_packages("cfhost-mail");
    for forbidden in ["wasmtime", "cfhost-core", "cfhost-sip"] {
        assert!(
            !mail.contains(forbidden),
            "cfhost-mail links {forbidden}: {mail:?}"
        );
    }
    let core = linked_packages("cfhost-core");
    assert!(core.contains("wasmtime"));
    for forbidden in [
        "clap",
        "axum",
        "notify",
        "cfhost-sip",
        "cfhost-mail",
        "cfhost",
    ] {
        assert!(!core.contains(forbidden), "cfhost-core links {forbidden}");
    }
    // The store knows documents and bytes, not what runs them or how they arrive.
    let store = linked_packages("cfhost-store");
    assert!(store.contains("tokio-postgres"));
    for forbidden in ["wasmtime", "rsipstack", "axum", "cfhost-core"] {
        assert!(!store.contains(forbidden), "cfhost-store links {forbidden}");
    }
    let sip = linked_packages("cfhost-sip");
    assert!(sip.contains("cfhost-core"));
    for forbidden in ["clap", "axum", "cfhost-mail", "cfhost"] {
        assert!(!sip.contains(forbidden), "cfhost-sip links {forbidden}");
    }
}
