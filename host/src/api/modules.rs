//! `GET /v1/modules` (any valid token): the loaded modules and what they declare.
//! `GET /v1/accounts/{account_id}/modules`: the same, with whether each can run for the
//! account (every capability it declares is granted to the account) and whether it is
//! quarantined for it.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::{Access, ApiError, ApiState};
use crate::policy::{Lifecycle, capability_name};
use crate::registry::LoadedModule;

/// Every loaded module.
pub async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    if state.tokens.access(&headers) == Access::None {
        return Err(ApiError::unauthorized());
    }
    let modules = state
        .runtime
        .registry()
        .modules()
        .map(|m| describe(&state, m));
    Ok(Json(Value::Array(modules.collect())))
}

/// Every loaded module, as `account_id` sees it.
pub async fn for_account(
    State(state): State<Arc<ApiState>>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, &account_id)?;
    let policy = state.runtime.policy();
    let modules = state.runtime.registry().modules().map(|module| {
        let missing =
            policy
                .grants
                .missing_for_account(&account_id, module.name(), module.capabilities());
        let mut entry = describe(&state, module);
        entry["usable"] = json!(missing.is_none());
        entry["missing_capability"] = json!(missing.map(capability_name));
        entry["quarantined"] = json!(
            state
                .runtime
                .health()
                .is_quarantined(&account_id, module.name())
        );
        entry
    });
    Ok(Json(Value::Array(modules.collect())))
}

fn describe(state: &ApiState, module: &LoadedModule) -> Value {
    let description = module.description();
    let schema: Value = serde_json::from_str(&description.data_schema).unwrap_or(Value::Null);
    let lifecycle = match state.runtime.policy().lifecycle(module.name()) {
        Lifecycle::PerNode => json!({"kind": "per-node"}),
        Lifecycle::Pooled { max_uses } => json!({"kind": "pooled", "max_uses": max_uses}),
    };
    let capabilities: Vec<&str> = module
        .capabilities()
        .iter()
        .map(|c| capability_name(*c))
        .collect();
    json!({
        "name": description.name,
        "version": description.version,
        "summary": description.summary,
        "capabilities": capabilities,
        "data_schema": schema,
        "lifecycle": lifecycle,
    })
}
