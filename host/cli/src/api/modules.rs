//! The modules:
//! - `GET /v1/modules` (any valid token): the system modules and what they declare.
//! - `GET /v1/accounts/{account_id}/modules`: the modules the account's callflows can use (the
//!   system's and its own), with whether each can run for the account (every capability it
//!   declares is granted) and whether it is quarantined for it.
//! - `PUT /v1/accounts/{account_id}/modules/{name}` (body: the component, `application/wasm`):
//!   checked as loading would check it for the account (size cap, component, WIT version,
//!   world, description, schema, grants; it must describe itself as `name` and not take a
//!   system module's name), stored atomically as `accounts/<account_id>/modules/<name>.wasm`,
//!   and live for the calls that start next. A rejected upload changes nothing.
//! - `DELETE /v1/accounts/{account_id}/modules/{name}`: removes it; calls in flight keep it.
//! - `GET /v1/modules/rejected` (operator): the module files the last reloads rejected.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::{Access, ApiError, ApiState};
use cfhost_core::files::is_plain_name;
use cfhost_core::registry::LoadedModule;
use cfhost_core::runtime::InstallError;

/// Every system module.
pub async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    if state.tokens.access(&headers) == Access::None {
        return Err(ApiError::unauthorized());
    }
    let modules = state.runtime.modules();
    Ok(Json(Value::Array(
        modules.system().modules().map(|m| describe(m)).collect(),
    )))
}

/// The module files the last reloads rejected (operator only), with why; where a previous
/// version keeps serving, the error says so.
pub async fn rejected(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.authorize_operator(&headers)?;
    let rejected = state
        .runtime
        .rejected_modules()
        .into_iter()
        .map(|(account, rejection)| {
            let scope =
                account.map_or_else(|| json!("system"), |account| json!({"account": account}));
            json!({
                "scope": scope,
                "file": rejection.error.origin(),
                "kept_previous": rejection.kept_previous,
                "error": rejection.to_string(),
            })
        });
    Ok(Json(Value::Array(rejected.collect())))
}

/// Every module `account_id`'s callflows can use.
pub async fn for_account(
    State(state): State<Arc<ApiState>>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.authorize_existing(&headers, &account_id)?;
    let policy = state.runtime.policy();
    let modules = state.runtime.modules();
    let entries = modules.view(&account_id).modules().map(|module| {
        let missing = policy.grants.missing_in_account_grant(
            &account_id,
            module.name(),
            module.capabilities(),
        );
        let mut entry = describe(module);
        entry["usable"] = json!(missing.is_none());
        entry["missing_capability"] = json!(missing.map(|c| c.name()));
        entry["quarantined"] = json!(
            state
                .runtime
                .health()
                .is_quarantined(&account_id, module.name())
        );
        entry
    });
    Ok(Json(Value::Array(entries.collect())))
}

/// Checks, stores and loads an account's module.
pub async fn install(
    State(state): State<Arc<ApiState>>,
    Path((account_id, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    state.authorize(&headers, &account_id)?;
    check_name(&name)?;
    state.existing_account(&account_id)?;
    let limit = state.runtime.policy().max_wasm_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a module may be at most {limit} bytes"),
        )
    })?;
    let (module, report) = state
        .runtime
        .install_account_module(&account_id, &name, bytes.to_vec())
        .await
        .map_err(|e| match e {
            InstallError::UnknownAccount(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            InstallError::Invalid(_) | InstallError::NameMismatch { .. } => {
                ApiError::bad_request(e.to_string())
            }
            InstallError::Store(store) => ApiError::store(store),
            InstallError::NotLoaded(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        })?;
    let mut answer = describe(&module);
    let callflow_errors: Vec<Value> = report.data.errors.iter().map(|e| e.to_json()).collect();
    let warnings: Vec<String> = report
        .data
        .warnings
        .iter()
        .map(ToString::to_string)
        .collect();
    answer["callflow_errors"] = json!(callflow_errors);
    answer["warnings"] = json!(warnings);
    Ok((StatusCode::CREATED, Json(answer)))
}

/// Removes an account's module.
pub async fn remove(
    State(state): State<Arc<ApiState>>,
    Path((account_id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    state.authorize(&headers, &account_id)?;
    check_name(&name)?;
    state.existing_account(&account_id)?;
    match state
        .runtime
        .remove_account_module(&account_id, &name)
        .await
    {
        Ok(Some(_)) => Ok(StatusCode::NO_CONTENT),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("account `{account_id}` has no module `{name}`"),
        )),
        Err(e) => Err(ApiError::store(e)),
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if is_plain_name(name) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "a module name is made of letters, digits, `-` and `_`",
        ))
    }
}

fn describe(module: &LoadedModule) -> Value {
    module.to_json()
}
