//! `POST /v1/accounts/{account_id}/calls`: runs a call (a scenario entry of `cfhost simulate`,
//! without `account_id`) on the simulated switch against the live configuration, and answers
//! with its trace, the notifications it made and the termination callbacks it ran.
//!
//! A simulated call is for trying a callflow: its notifications are in the answer and go no
//! further, unless the body says `"publish": true` (the operator's token always may; an
//! account's only with `[serve] account_calls_may_publish`), when they are published as a
//! real call's are.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use serde_json::Value;

use super::{ApiError, ApiState, json_body};
use cfhost_core::call::Call;
use cfhost_core::notify::OutboundNotification;
use cfhost_core::notify::wire::new_msg_id;
use cfhost_core::runtime::CallError;
use cfhost_core::scenario::ScenarioCall;
use cfhost_core::switch::SimulatedSwitch;

/// The answer to a call.
#[derive(Debug, Serialize)]
pub struct CallResponse {
    pub call_id: String,
    pub callflow_id: String,
    /// Why the flow ended.
    pub end: String,
    /// The trace, one line per event, as `cfhost simulate` prints it.
    pub trace: Vec<String>,
    pub notifications: Vec<OutboundNotification>,
    /// Whether the notifications were published (else only answered).
    pub published: bool,
    pub callbacks: Vec<CallbackRun>,
}

/// One termination callback that ran.
#[derive(Debug, Serialize)]
pub struct CallbackRun {
    pub module: String,
    pub error: Option<String>,
}

/// Runs one call for `account_id`.
pub async fn run(
    State(state): State<Arc<ApiState>>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<CallResponse>, ApiError> {
    state.authorize(&headers, &account_id)?;
    let mut body = json_body(&headers, &body)?;
    if !state.accepting() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the host is shutting down",
        ));
    }
    let object = body
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object (a call)"))?;
    let publish = match object.remove("publish") {
        None | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(_) => return Err(ApiError::bad_request("publish: must be true or false")),
    };
    if publish && !state.may_publish(&headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "publish: an account's token may not publish a simulated call's notifications \
             ([serve] account_calls_may_publish)",
        ));
    }
    match object.get("account_id") {
        Some(given) if given.as_str() != Some(account_id.as_str()) => {
            return Err(ApiError::bad_request(
                "account_id: the body names another account than the path",
            ));
        }
        _ => {
            object.insert("account_id".into(), Value::String(account_id.clone()));
        }
    }
    let call: ScenarioCall = serde_json::from_value(body)
        .map_err(|e| ApiError::bad_request(format!("the call: {e}")))?;
    let mut details = call.details(0);
    if call.call_id.is_none() {
        details.call_id = format!("api-{}", new_msg_id());
    }
    let details = state.runtime.complete_details(details);
    let call_id = details.call_id.clone();
    let switch = Arc::new(SimulatedSwitch::new(
        call.behaviour,
        call.starts_at(SystemTime::now()),
    ));

    // The call runs in a task of its own: a client that hangs up does not cut it (or its
    // termination callbacks) short, and shutdown waits for it.
    state.calls.start();
    let running = Arc::clone(&state);
    let task = tokio::spawn(async move {
        let started = Instant::now();
        running.capture.watch(&call_id, publish);
        let call = Arc::new(Call::new(details));
        let result = running.runtime.run_call(call, switch).await;
        let notifications = running.capture.take(&call_id);
        running.calls.finished(result.is_ok(), started.elapsed());
        (result, notifications)
    });
    let (result, notifications) = task
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let report = result.map_err(|e| match e {
        CallError::UnknownAccount(_) | CallError::NoCallflow { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, e.to_string())
        }
        other => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, other.to_string()),
    })?;
    let callbacks = report
        .callbacks()
        .into_iter()
        .map(|(module, error)| CallbackRun {
            module: module.to_string(),
            error: error.map(str::to_string),
        })
        .collect();
    Ok(Json(CallResponse {
        call_id: report.call_id.clone(),
        callflow_id: report.callflow_id.clone(),
        end: report.end.describe().to_string(),
        trace: report.trace.iter().map(ToString::to_string).collect(),
        notifications,
        published: publish,
        callbacks,
    }))
}
