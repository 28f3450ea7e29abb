//! Parses a callflow document, checking its shape; errors name the file and the JSON path
//! (or line and column for malformed JSON).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use regex::Regex;
use serde_json::{Map, Value};

use super::{Callflow, CallflowError, Child, EXECUTOR_KEYS, MAX_DEPTH, Node};

/// Parses `text`, read from `file`, into a [`Callflow`]. `default_id` is used when the document
/// has no `id` or `_id`.
pub fn parse_callflow(
    file: &Path,
    default_id: &str,
    text: &str,
) -> Result<Callflow, CallflowError> {
    let document: Value = serde_json::from_str(text).map_err(|e| CallflowError::Json {
        file: file.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let shape = |path: &str, message: &str| CallflowError::Shape {
        file: file.to_path_buf(),
        path: path.to_string(),
        message: message.to_string(),
    };
    let Value::Object(document) = document else {
        return Err(shape("$", "a callflow must be a JSON object"));
    };
    let id = ["id", "_id"]
        .iter()
        .find_map(|key| document.get(*key).and_then(Value::as_str))
        .unwrap_or(default_id)
        .to_string();
    let numbers = strings(&document, "numbers").map_err(|m| shape("numbers", m))?;
    let patterns = strings(&document, "patterns")
        .map_err(|m| shape("patterns", m))?
        .iter()
        .enumerate()
        .map(|(i, pattern)| {
            Regex::new(pattern).map_err(|e| shape(&format!("patterns[{i}]"), &e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let flow = match document.get("flow") {
        None => return Err(shape("flow", "a callflow needs a `flow`")),
        Some(flow) => child(flow, "flow", 1).map_err(|(path, m)| shape(&path, &m))?,
    };
    Ok(Callflow {
        id,
        source: file.to_path_buf(),
        numbers,
        patterns,
        flow,
    })
}

fn strings(document: &Map<String, Value>, key: &str) -> Result<Vec<String>, &'static str> {
    match document.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or("must be a list of strings"),
        Some(_) => Err("must be a list of strings"),
    }
}

type ShapeError = (String, String);

fn child(value: &Value, path: &str, depth: usize) -> Result<Child, ShapeError> {
    let fail = |message: &str| Err((path.to_string(), message.to_string()));
    let Value::Object(object) = value else {
        return fail("a node must be a JSON object");
    };
    if object.is_empty() {
        return Ok(Child::Empty);
    }
    if depth > MAX_DEPTH {
        return fail(&format!("nodes nest deeper than {MAX_DEPTH} levels"));
    }
    let module = match object.get("module") {
        Some(Value::String(m)) if (1..=64).contains(&m.chars().count()) => m.clone(),
        Some(_) => return fail("`module` must be a string of 1 to 64 characters"),
        None => return fail("a node needs a `module`"),
    };
    let mut data = match object.get("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(data)) => data.clone(),
        Some(_) => return fail("`data` must be an object"),
    };
    let skip = matches!(data.get("skip_module"), Some(Value::Bool(true)))
        || data.get("skip_module").and_then(Value::as_str) == Some("true");
    for key in EXECUTOR_KEYS {
        data.remove(key);
    }
    let mut children = BTreeMap::new();
    match object.get("children") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (key, value) in map {
                let child_path = format!("{path}.children.{key}");
                children.insert(key.clone(), child(value, &child_path, depth + 1)?);
            }
        }
        Some(_) => return fail("`children` must be an object"),
    }
    Ok(Child::Node(Box::new(Node {
        path: path.to_string(),
        module,
        data: Value::Object(data).to_string(),
        skip,
        child_keys: node_keys(&children),
        children,
    })))
}

/// The keys of `children` that are nodes, sorted ([`Node::child_keys`]).
fn node_keys(children: &BTreeMap<String, Child>) -> Arc<[String]> {
    children
        .iter()
        .filter(|(_, child)| matches!(child, Child::Node(_)))
        .map(|(key, _)| key.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Callflow, CallflowError> {
        parse_callflow(Path::new("cf.json"), "cf", text)
    }

    #[test]
    fn malformed_json_names_line_and_column() {
        let err = parse("{\n  \"flow\": {\n    \"module\": \"user\",,\n  }\n}").unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("cf.json:3:"), "{message}");
        assert!(matches!(err, CallflowError::Json { line: 3, .. }));
    }

    #[test]
    fn bad_nodes_name_their_path() {
        let err = parse(r#"{"flow": {"module": "user", "children": {"_": {"data": {}}}}}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "cf.json: flow.children._: a node needs a `module`");
        let err = parse(r#"{"flow": {"module": "", "data": {}}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("flow: `module` must be a string"), "{err}");
        let err = parse(r#"{"numbers": "+1", "flow": {}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("numbers: must be a list"), "{err}");
    }

    #[test]
    fn empty_children_and_skip_module_are_understood() {
        let cf = parse(
            r#"{"id": "x", "numbers": ["1"], "flow": {"module": "a", "data": {"skip_module": "true"},
                "children": {"_": {}, "other": {"module": "b"}}}}"#,
        )
        .unwrap();
        assert_eq!(cf.id, "x");
        let Child::Node(root) = &cf.flow else {
            panic!()
        };
        assert!(root.skip);
        assert_eq!(
            root.data, "{}",
            "the executor's key is not the module's data"
        );
        assert!(matches!(root.children["_"], Child::Empty));
        assert_eq!(root.next(&["other".into()]).unwrap().module, "b");
        assert!(root.next(&["missing".into()]).is_none());
        assert_eq!(root.next(&["other".into()]).unwrap().data, "{}");
    }

    #[test]
    fn nesting_is_bounded() {
        let mut flow = String::from(r#"{"module": "leaf"}"#);
        for _ in 0..MAX_DEPTH {
            flow = format!(r#"{{"module": "m", "children": {{"_": {flow}}}}}"#);
        }
        let err = parse(&format!(r#"{{"flow": {flow}}}"#))
            .unwrap_err()
            .to_string();
        assert!(err.contains("deeper than 48"), "{err}");
    }
}
