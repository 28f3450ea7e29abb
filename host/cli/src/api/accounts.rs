//! Who is signed in and what they see:
//! - `GET /v1/session` (any valid token): `{"role": "operator"}` or `{"role": "account",
//!   "account_id": ...}`, so that a client (the console) knows what its token opens;
//! - `GET /v1/accounts`: the accounts the token opens (every one for the operator, its own
//!   for an account), each with its name, realm and how many documents of each kind it has
//!   loaded.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::{Access, ApiError, ApiState};

/// What the token opens.
pub async fn session(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    match state.tokens.access(&headers) {
        Access::Operator => Ok(Json(json!({"role": "operator"}))),
        Access::Account(account_id) => {
            Ok(Json(json!({"role": "account", "account_id": account_id})))
        }
        Access::None => Err(ApiError::unauthorized()),
    }
}

/// The accounts the token opens, in id order.
pub async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let access = state.tokens.access(&headers);
    if access == Access::None {
        return Err(ApiError::unauthorized());
    }
    let accounts = state.runtime.accounts();
    let visible = accounts
        .iter()
        .filter(|(id, _)| access.allows(id))
        .map(|(id, account)| {
            json!({
                "id": id,
                "name": account.name,
                "realm": account.realm,
                "callflows": account.callflows.iter().count(),
                "users": account.user_count(),
                "devices": account.devices().len(),
                "vmboxes": account.vmboxes().len(),
            })
        });
    Ok(Json(Value::Array(visible.collect())))
}
