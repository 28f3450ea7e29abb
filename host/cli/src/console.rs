//! The web console: a few static files embedded in the binary (`host/cli/console/`), served at
//! `/` and `/console/<file>`. The page holds no data of its own: it signs in with an API token
//! (kept in the tab's session storage) and does everything through the same HTTP API as
//! `curl`, with its rules. Nothing is fetched from elsewhere, and no Node is needed to build or
//! run it: the files are plain ES modules.
//!
//! Every file is answered with a content security policy that lets the page load only its own
//! files (scripts, styles, and the recordings it fetches as blobs), never be framed, and send
//! nowhere else; a template's HTML preview is shown in a sandboxed frame.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file: its name under `/console/`, its media type and its text.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    text: &'static str,
}

macro_rules! asset {
    ($name:literal, $media_type:expr) => {
        Asset {
            name: $name,
            media_type: $media_type,
            text: include_str!(concat!("../console/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// The page (`/`) and its files.
const PAGE: Asset = asset!("index.html", "text/html; charset=utf-8");
const ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("tree.js", JS),
    asset!("schema-form.js", JS),
    asset!("callflows.js", JS),
    asset!("calls.js", JS),
    asset!("modules.js", JS),
    asset!("directory.js", JS),
    asset!("voicemail.js", JS),
    asset!("emails.js", JS),
    asset!("operator.js", JS),
];

/// What the page may load and where it may send.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; media-src 'self' blob:; \
     connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'";

/// The console's routes.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { answer(&PAGE) }))
        .route("/console/{name}", get(file))
}

async fn file(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == name) {
        Some(asset) => answer(asset),
        None => (StatusCode::NOT_FOUND, "no such file of the console").into_response(),
    }
}

fn answer(asset: &Asset) -> Response {
    (
        [
            (header::CONTENT_TYPE, asset.media_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        asset.text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_served() {
        let served: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        for asset in ASSETS.iter().chain([&PAGE]) {
            for (at, _) in asset.text.match_indices("./") {
                let rest = &asset.text[at + 2..];
                let Some(end) = rest.find(['"', '\'']) else {
                    continue;
                };
                let name = &rest[..end];
                if name.ends_with(".js") || name.ends_with(".css") {
                    assert!(served.contains(&name), "{} imports {name}", asset.name);
                }
            }
        }
    }
}
