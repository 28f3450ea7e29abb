//! Callflow documents: parsing ([`parse`]), checking node data against module schemas
//! ([`validate`]) and choosing a callflow for a dialed number ([`lookup`]).
//!
//! A document is shaped as in KAZOO (kazoo-semantics.md §7):
//! `{"numbers": [...], "patterns": [...], "flow": NODE}`, where
//! `NODE = {"module": NAME, "data": {...}, "children": {KEY: NODE | {}}}`.

pub mod e164;
pub mod lookup;
pub mod parse;
pub mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use regex::Regex;

use crate::registry::DataError;

pub use lookup::AccountCallflows;
pub use parse::parse_callflow;
pub use validate::{UnknownModule, validate_callflow};

/// Keys of a node's `data` that are the executor's, not the module's: honoured for every
/// module (as KAZOO's `cf_exe` does) and taken out before the module's schema sees the data.
pub const EXECUTOR_KEYS: [&str; 1] = ["skip_module"];

/// The child key used when no other matches.
pub const DEFAULT_CHILD: &str = "_";
/// Nodes may nest at most this deep (below serde_json's recursion limit of 128 JSON levels,
/// two per node, so the error names the depth rather than the parser's limit).
pub const MAX_DEPTH: usize = 48;

/// One callflow document.
#[derive(Debug)]
pub struct Callflow {
    /// The document's `id` (or `_id`), else its file name without `.json`.
    pub id: String,
    /// Where it was read from.
    pub source: PathBuf,
    pub numbers: Vec<String>,
    pub patterns: Vec<Regex>,
    pub flow: Child,
}

/// A child of a node: a node, or `{}`, which stops the flow when reached.
#[derive(Debug)]
pub enum Child {
    Empty,
    Node(Box<Node>),
}

/// One node of a flow.
#[derive(Debug)]
pub struct Node {
    /// Where the node is in its document, e.g. `flow.children._`.
    pub path: String,
    pub module: String,
    /// The node's `data` object as JSON text, as modules receive it: without the executor's
    /// own keys ([`EXECUTOR_KEYS`]), which no module schema sees.
    pub data: String,
    /// `data.skip_module` is `true` or `"true"`.
    pub skip: bool,
    pub children: BTreeMap<String, Child>,
    /// The keys of the children that are nodes (a `{}` child leads nowhere), sorted: what
    /// `node.child-keys` answers, made once when the callflow is read.
    pub child_keys: Arc<[String]>,
}

impl Node {
    /// The child for an outcome's keys: the first key naming a non-empty child, else `_`.
    /// `None` means the flow stops here (no `_`, or `_` is `{}`).
    pub fn next(&self, keys: &[String]) -> Option<&Node> {
        keys.iter()
            .filter_map(|key| match self.children.get(key) {
                Some(Child::Node(node)) => Some(&**node),
                _ => None,
            })
            .next()
            .or_else(|| match self.children.get(DEFAULT_CHILD) {
                Some(Child::Node(node)) => Some(&**node),
                _ => None,
            })
    }

    /// The `_` child, if it is a node.
    pub fn default_child(&self) -> Option<&Node> {
        self.next(&[])
    }

    /// This node and every node below it.
    pub fn walk(&self) -> Vec<&Node> {
        let mut nodes = vec![self];
        for child in self.children.values() {
            if let Child::Node(node) = child {
                nodes.extend(node.walk());
            }
        }
        nodes
    }
}

/// A callflow document that cannot be used; each variant names the place.
#[derive(Debug, thiserror::Error)]
pub enum CallflowError {
    #[error("{file}:{line}:{column}: malformed JSON: {message}")]
    Json {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: {path}: {message}")]
    Shape {
        file: PathBuf,
        path: String,
        message: String,
    },
    #[error(
        "{file}: {path}: data breaks the schema of module `{module}`: {}",
        errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    Data {
        file: PathBuf,
        path: String,
        module: String,
        errors: Vec<DataError>,
    },
}

impl CallflowError {
    /// The callflow's file.
    pub fn file(&self) -> &std::path::Path {
        match self {
            CallflowError::Json { file, .. }
            | CallflowError::Shape { file, .. }
            | CallflowError::Data { file, .. } => file,
        }
    }
}
