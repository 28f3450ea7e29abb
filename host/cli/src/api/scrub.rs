//! No answer names a file of the server: the errors the runtime reports (a callflow's file and
//! line, a module's origin, a data report's entries) carry the server's own paths, which say
//! how it is laid out and are no business of a tenant. Every JSON answer passes through
//! [`scrub`] on its way out, which writes the data directory's paths relative to it
//! (`accounts/acme/callflows/main.json:3:5: ...`) and the module directory's as `modules/...`.
//! The log keeps the full paths.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

/// The server's directories and what an answer says instead, longest first so that a
/// directory inside another is matched before it.
#[derive(Debug, Clone, Default)]
pub struct PrivatePaths {
    replacements: Vec<(String, String)>,
}

impl PrivatePaths {
    /// The data directory (its files written relative to it, itself as `.`) and the module
    /// directory, if any (written `modules/...`).
    pub fn new(data: &Path, modules: Option<&Path>) -> Self {
        let mut replacements = Vec::new();
        let mut add = |dir: &Path, inside: &str, itself: &str| {
            let text = json_text(dir);
            if !text.is_empty() {
                replacements.push((format!("{text}/"), inside.to_string()));
                replacements.push((text, itself.to_string()));
            }
        };
        if let Some(modules) = modules {
            add(modules, "modules/", "modules");
        }
        add(data, "", ".");
        replacements.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        PrivatePaths { replacements }
    }

    /// `text` (a JSON document) with every server path replaced; `None` when it has none.
    pub fn scrub(&self, text: &str) -> Option<String> {
        if !self
            .replacements
            .iter()
            .any(|(from, _)| text.contains(from.as_str()))
        {
            return None;
        }
        let mut text = text.to_string();
        for (from, to) in &self.replacements {
            if text.contains(from.as_str()) {
                text = text.replace(from.as_str(), to);
            }
        }
        Some(text)
    }
}

/// `dir` as it appears inside a JSON string (escaped as serde_json escapes it), without a
/// trailing `/`.
fn json_text(dir: &Path) -> String {
    let quoted = serde_json::to_string(&dir.to_string_lossy()).unwrap_or_default();
    let inner = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or_default();
    inner.trim_end_matches('/').to_string()
}

/// The middleware: a JSON answer is read and, when it names a server path, rewritten.
pub async fn scrub(
    State(paths): State<Arc<PrivatePaths>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::error!("cannot read an answer's body to scrub it: {error}");
            return Response::from_parts(parts, Body::empty());
        }
    };
    let scrubbed = std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| paths.scrub(text));
    match scrubbed {
        Some(text) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(text))
        }
        None => Response::from_parts(parts, Body::from(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_paths_become_relative_and_module_paths_modules() {
        let paths = PrivatePaths::new(
            Path::new("/srv/cfhost/data"),
            Some(Path::new("/srv/cfhost/data/modules-extra")),
        );
        let answer = r#"{"error":"/srv/cfhost/data/accounts/a/callflows/x.json:3:5: bad","file":"/srv/cfhost/data/modules-extra/m.wasm","dir":"/srv/cfhost/data"}"#;
        assert_eq!(
            paths.scrub(answer).unwrap(),
            r#"{"error":"accounts/a/callflows/x.json:3:5: bad","file":"modules/m.wasm","dir":"."}"#
        );
        assert_eq!(paths.scrub(r#"{"error":"no callflow `x`"}"#), None);
    }

    #[test]
    fn a_path_with_characters_json_escapes_is_matched_as_escaped() {
        let paths = PrivatePaths::new(Path::new("/srv/a\"b"), None);
        let answer = serde_json::json!({"error": "/srv/a\"b/accounts/x.json: bad"}).to_string();
        assert_eq!(
            paths.scrub(&answer).unwrap(),
            r#"{"error":"accounts/x.json: bad"}"#
        );
    }
}
