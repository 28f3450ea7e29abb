//! `PUT /v1/accounts/{account_id}/callflows/{id}`: an account's callflow documents, as KAZOO's
//! crossbar keeps them (read, listed and removed as every document is, [`super::directory`]).
//! A document is validated on write as loading would (shape, then every node's data against
//! its module's schema; a 400 names the node's JSON path and the module; so does a body `id`
//! other than the path's, or a number another callflow of the account lists), stored
//! (atomically as `<data>/accounts/<account_id>/callflows/<id>.json`, or as one row of
//! PostgreSQL), and live for the calls that start next. A store that cannot be reached is a
//! 503 naming it, and nothing is written.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::directory::check_id;
use super::{ApiError, ApiState, json_body};
use cfhost_core::accounts::check_callflow;
use cfhost_core::callflow::CallflowError;
use cfhost_store::DocumentKind;
use cfhost_store::data::document_place;

/// Validates and stores a document; answers with it and any warnings (unknown modules).
pub async fn put(
    State(state): State<Arc<ApiState>>,
    Path((account_id, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, &account_id)?;
    let document = json_body(&headers, &body)?;
    check_id(&state, &account_id, &id, DocumentKind::Callflow)?;
    let place = document_place(&PathBuf::new(), &account_id, DocumentKind::Callflow, &id);
    let text = serde_json::to_string_pretty(&document)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let _writing = state.writes.lock().await;
    let modules = state.runtime.modules();
    let (callflow, warnings) =
        check_callflow(&place, &text, modules.view(&account_id)).map_err(invalid_callflow)?;
    if callflow.id != id {
        return Err(ApiError::bad_request(format!(
            "the document's id `{}` is not the path's `{id}`",
            callflow.id
        ))
        .with_details(json!({"id": callflow.id, "path_id": id})));
    }
    let accounts = state.runtime.accounts();
    let existing = accounts.get(&account_id).map(|a| &a.callflows);
    for number in &callflow.numbers {
        if let Some(other) = existing.and_then(|c| c.claimant(number, &id)) {
            return Err(ApiError::bad_request(format!(
                "number `{number}` is already callflow `{}`'s in this account",
                other.id
            ))
            .with_details(json!({"number": number, "callflow": other.id})));
        }
    }
    let warnings: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    state
        .runtime
        .store()
        .put_document(&account_id, DocumentKind::Callflow, &id, &text)
        .await
        .map_err(ApiError::store)?;
    state.reload_account(&account_id).await;
    Ok(Json(
        json!({"id": id, "document": document, "warnings": warnings}),
    ))
}

/// A 400 naming what is wrong and where.
fn invalid_callflow(error: CallflowError) -> ApiError {
    let (path, module) = match &error {
        CallflowError::Data { path, module, .. } => (Some(path.clone()), Some(module.clone())),
        CallflowError::Shape { path, .. } => (Some(path.clone()), None),
        _ => (None, None),
    };
    ApiError::bad_request(error.to_string()).with_details(json!({"path": path, "module": module}))
}
