//! `GET /v1/status` (operator): the node at a glance, as JSON (what `/metrics` says for
//! Prometheus, in the shape a person reads): accounts, calls (finished so far and in progress,
//! through the API and over SIP: a client takes two readings for calls per second), each
//! module's nodes, callbacks and failures by kind, the quarantines in force, the AMQP outbox,
//! and the modules and documents the last loads rejected.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Map, Value, json};

use super::{ApiError, ApiState};

/// The node's state.
pub async fn status(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.authorize_operator(&headers)?;
    let runtime = &state.runtime;
    let health = runtime.health();
    let modules = health.counters().into_iter().map(|(name, counters)| {
        let failures: Map<String, Value> = counters
            .failures
            .iter()
            .map(|(kind, n)| (kind.to_string(), json!(n)))
            .collect();
        json!({
            "name": name,
            "nodes": counters.nodes,
            "callbacks": counters.callbacks,
            "failures": failures,
            "failures_total": counters.total_failures(),
            "quarantines": counters.quarantines,
            "skipped_in_quarantine": counters.skipped_in_quarantine,
        })
    });
    let quarantined = health
        .quarantines()
        .into_iter()
        .map(|(account, module, left)| {
            json!({"account": account, "module": module, "seconds_left": left.as_secs()})
        });
    let sip_ended = state
        .sip
        .as_ref()
        .map_or(0, |sip| sip.metrics().calls_ended());
    let accounts = runtime.accounts();
    Ok(Json(json!({
        "accounts": accounts.iter().count(),
        "calls": {
            "finished": state.calls.finished_total() + sip_ended,
            "in_progress": state.calls_in_progress(),
        },
        "modules": modules.collect::<Vec<_>>(),
        "quarantined": quarantined.collect::<Vec<_>>(),
        "outbox": state.amqp.as_ref().map(|amqp| amqp.outbox().len()),
        "notifications_published": state.capture.published(),
        "rejected_modules": runtime.rejected_modules().len(),
        "rejected_documents": accounts.rejected().count(),
    })))
}
