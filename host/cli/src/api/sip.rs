//! What the SIP side shows: the calls that ended last, with their traces, and the devices'
//! live registrations (contact, where it registered from, how a call rings it, time left).
//! Without SIP (`--sip-listen off`), each is an empty list.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState};

/// The SIP calls that ended last, with their traces (operator only).
pub async fn calls(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authorize_operator(&headers)?;
    let calls = state
        .sip
        .as_ref()
        .map(|sip| sip.recent_calls(None))
        .unwrap_or_default();
    Ok(Json(calls).into_response())
}

/// Every account's registrations (operator only).
pub async fn registrations(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authorize_operator(&headers)?;
    Ok(Json(registrations_of(&state, None)).into_response())
}

/// One account's registrations (operator or the account; 404 for an account that does not
/// exist).
pub async fn account_registrations(
    State(state): State<Arc<ApiState>>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authorize_existing(&headers, &account_id)?;
    Ok(Json(registrations_of(&state, Some(&account_id))).into_response())
}

fn registrations_of(
    state: &ApiState,
    account: Option<&str>,
) -> Vec<cfhost_sip::registrar::Registration> {
    state
        .sip
        .as_ref()
        .map(|sip| sip.registrations(account))
        .unwrap_or_default()
}

/// The SIP calls in progress (operator only).
pub async fn active_calls(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authorize_operator(&headers)?;
    Ok(Json(active_of(&state, None)).into_response())
}

/// One account's SIP calls in progress.
pub async fn account_active_calls(
    State(state): State<Arc<ApiState>>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authorize_existing(&headers, &account_id)?;
    Ok(Json(active_of(&state, Some(&account_id))).into_response())
}

/// One account's SIP calls that ended last, with their traces.
pub async fn account_calls(
    State(state): State<Arc<ApiState>>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authorize_existing(&headers, &account_id)?;
    let calls = state
        .sip
        .as_ref()
        .map(|sip| sip.recent_calls(Some(&account_id)))
        .unwrap_or_default();
    Ok(Json(calls).into_response())
}

fn active_of(state: &ApiState, account: Option<&str>) -> Vec<cfhost_sip::ActiveCall> {
    state
        .sip
        .as_ref()
        .map(|sip| sip.active_calls(account))
        .unwrap_or_default()
}
