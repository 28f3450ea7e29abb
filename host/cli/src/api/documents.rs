//! `GET /v1/documents/rejected` (operator) and `GET /v1/accounts/{account_id}/documents/rejected`
//! (operator, the account): the documents the last loads rejected, such as a callflow another
//! tool wrote into the store that breaks a module's schema. Each says why (`file`, `error`,
//! and where known the node's `path` and `module`) and whether the version loaded before keeps
//! serving (`kept_previous`); a document with no earlier version is left out until fixed.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::{ApiError, ApiState};
use cfhost_core::accounts::RejectedDocument;

/// Every account's rejected documents (operator only).
pub async fn rejected(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.authorize_operator(&headers)?;
    let accounts = state.runtime.accounts();
    Ok(Json(Value::Array(
        accounts.rejected().map(answer).collect(),
    )))
}

/// One account's rejected documents.
pub async fn rejected_of_account(
    State(state): State<Arc<ApiState>>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.authorize_existing(&headers, &account_id)?;
    let accounts = state.runtime.accounts();
    let rejected = accounts
        .rejected()
        .filter(|rejected| rejected.account_id == account_id)
        .map(answer);
    Ok(Json(Value::Array(rejected.collect())))
}

fn answer(rejected: &RejectedDocument) -> Value {
    let mut answer = json!({
        "account": rejected.account_id,
        "kept_previous": rejected.kept_previous,
    });
    if let (Some(answer), Value::Object(details)) = (answer.as_object_mut(), &rejected.details) {
        answer.extend(details.clone());
    }
    answer
}
