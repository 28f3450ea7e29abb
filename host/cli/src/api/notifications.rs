//! `GET | PUT | DELETE /v1/accounts/{account_id}/notifications/{template_id}` and
//! `POST .../{template_id}/preview`: an account's email templates, as `cfhost mailer` renders
//! them (`cfhost_mail::templates`). A template is one JSON body: KAZOO's document fields
//! (`subject`, `from`, `to`, `cc`, `bcc`, `reply_to`, `enabled`) with its bodies as `text`
//! and `html`; it is compiled when stored (a 400 names the part and line of what does not
//! compile), then kept in the store (a data directory's
//! `accounts/<account_id>/notifications/<template_id>.json`, `.text` and `.html`, or a row of
//! PostgreSQL, where every mailer reads it). `GET` of `missed_call` with nothing stored
//! answers teletype's default, marked `"default": true`. A preview renders against the call
//! given (KAZOO's payload fields) or a sample one, and sends nothing.
//!
//! A template is stored only once it renders a sample call within the mailer's bounds
//! (`render_fuel`, `render_max_bytes`, `render_timeout_ms`), sends `from` an address the
//! operator allows and lists no more than `max_recipients` addresses; each refusal is a 400
//! naming the setting. Rendering runs off the async runtime, so no template holds up the
//! server.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};
use std::sync::Arc;

use std::collections::BTreeSet;

use super::{ApiError, ApiState, json_body};
use cfhost_core::files::is_plain_name;
use cfhost_mail::templates::{
    Document, MISSED_CALL_HTML, MISSED_CALL_SUBJECT, MISSED_CALL_TEXT, Recipients, Stored,
    TemplateLookupError,
};
use cfhost_mail::{ComposeError, Kind, Notification};

/// The stored template, or teletype's `missed_call`.
pub async fn get(
    State(state): State<Arc<ApiState>>,
    Path((account_id, template_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    check_template(&state, &headers, &account_id, &template_id)?;
    let parts = state
        .runtime
        .store()
        .get_template(&account_id, &template_id)
        .await
        .map_err(ApiError::store)?;
    let stored = Stored::parse(&parts, &account_id, &template_id).map_err(unavailable)?;
    if stored.is_empty() {
        if template_id == "missed_call" {
            return Ok(Json(json!({
                "id": template_id, "default": true, "subject": MISSED_CALL_SUBJECT,
                "to": {"type": "original"}, "text": MISSED_CALL_TEXT, "html": MISSED_CALL_HTML,
            })));
        }
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no template `{template_id}`"),
        ));
    }
    Ok(Json(answer(&template_id, &stored)))
}

/// Checks, compiles and stores a template.
pub async fn put(
    State(state): State<Arc<ApiState>>,
    Path((account_id, template_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_template(&state, &headers, &account_id, &template_id)?;
    let Value::Object(fields) = json_body(&headers, &body)? else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    let stored = draft(&state, &template_id, fields)?;
    // Compiled, and rendered once against the sample call within every bound.
    let now = cfhost_mail::macros::unix_now();
    let sample = notification(&account_id, &template_id, Map::new(), now)?;
    match state.mail.try_template(sample, stored.clone(), now).await {
        Ok(_) | Err(ComposeError::NoRecipients) => {}
        Err(e) => return Err(unusable(e)),
    }
    state
        .runtime
        .store()
        .put_template(&account_id, &template_id, &stored.to_parts())
        .await
        .map_err(ApiError::store)?;
    Ok(Json(answer(&template_id, &stored)))
}

/// A template as a body gives it (KAZOO's document fields, `text` and `html`), checked
/// against the operator's policy; not compiled yet.
fn draft(
    state: &ApiState,
    template_id: &str,
    mut fields: Map<String, Value>,
) -> Result<Stored, ApiError> {
    let mut body_part = |name: &str| match fields.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(ApiError::bad_request(format!("`{name}` must be a string"))),
    };
    let (text, html) = (body_part("text")?, body_part("html")?);
    let document: Document = serde_json::from_value(Value::Object(fields))
        .map_err(|e| ApiError::bad_request(format!("the template document: {e}")))?;
    if let Some(id) = document.id.as_deref().filter(|id| *id != template_id) {
        return Err(ApiError::bad_request(format!(
            "the document's id `{id}` is not the path's `{template_id}`"
        )));
    }
    if template_id != "missed_call" {
        if document.subject.as_deref().is_none_or(str::is_empty) {
            return Err(ApiError::bad_request("a template needs a `subject`"));
        }
        if text.is_none() && html.is_none() {
            return Err(ApiError::bad_request(
                "a template needs a `text` or an `html` body",
            ));
        }
    }
    let policy = state.mail.policy();
    if let Some(from) = document.from.as_deref() {
        policy.check_sender(from).map_err(policy_refusal)?;
    }
    let listed: BTreeSet<&str> = [&document.to, &document.cc, &document.bcc]
        .into_iter()
        .flatten()
        .flat_map(Recipients::addresses)
        .collect();
    policy
        .check_recipients(listed.len())
        .map_err(policy_refusal)?;
    Ok(Stored {
        document: Some(document),
        text,
        html,
    })
}

/// A 400 saying why a template cannot be used (where it does not compile: the part and line).
fn unusable(error: ComposeError) -> ApiError {
    match error {
        ComposeError::Template(TemplateLookupError::Invalid { error, .. }) => {
            ApiError::bad_request(format!("the template does not compile: {error}"))
                .with_details(json!({"part": error.part, "line": error.line}))
        }
        e => ApiError::bad_request(format!("the template cannot be used: {e}")),
    }
}

/// Removes a template (a `missed_call` goes back to teletype's).
pub async fn delete(
    State(state): State<Arc<ApiState>>,
    Path((account_id, template_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    check_template(&state, &headers, &account_id, &template_id)?;
    let removed = state
        .runtime
        .store()
        .delete_template(&account_id, &template_id)
        .await
        .map_err(ApiError::store)?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no template `{template_id}`"),
        ))
    }
}

/// Renders the stored template (or the unsaved one `{"template": {...}}` gives, checked as a
/// `PUT` would check it) against `{"call": {...}}` (KAZOO's payload fields, over a sample
/// missed call) and answers subject, text, HTML and recipients; sends nothing.
pub async fn preview(
    State(state): State<Arc<ApiState>>,
    Path((account_id, template_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_template(&state, &headers, &account_id, &template_id)?;
    let mut fields = if body.is_empty() {
        Map::new()
    } else {
        match json_body(&headers, &body)? {
            Value::Object(fields) => fields,
            _ => return Err(ApiError::bad_request("the body must be a JSON object")),
        }
    };
    let given = match fields.remove("call") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(call)) => call,
        Some(_) => return Err(ApiError::bad_request("`call` must be an object")),
    };
    let now = cfhost_mail::macros::unix_now();
    let notification = notification(&account_id, &template_id, given, now)?;
    let email = match fields.remove("template") {
        None | Some(Value::Null) => {
            state
                .mail
                .preview(notification, now)
                .await
                .map_err(|e| match e {
                    ComposeError::Template(TemplateLookupError::Missing { .. }) => ApiError::new(
                        StatusCode::NOT_FOUND,
                        format!("no template `{template_id}`"),
                    ),
                    e => ApiError::bad_request(e.to_string()),
                })?
        }
        Some(Value::Object(template)) => {
            let stored = draft(&state, &template_id, template)?;
            state
                .mail
                .try_template(notification, stored, now)
                .await
                .map_err(unusable)?
        }
        Some(_) => return Err(ApiError::bad_request("`template` must be an object")),
    };
    Ok(Json(serde_json::to_value(&email).unwrap_or_default()))
}

/// The notification a preview renders: the sample call with `given` over it.
fn notification(
    account_id: &str,
    template_id: &str,
    given: Map<String, Value>,
    now: i64,
) -> Result<Notification, ApiError> {
    let mut payload = sample_call(account_id, template_id, now);
    payload.extend(given);
    // Its identity stays the template's: the preview's fields choose what renders.
    payload.insert("Account-ID".into(), json!(account_id));
    let kind = if template_id == "missed_call" {
        Kind::MissedCall
    } else {
        Kind::CfNotification
    };
    payload.insert("Event-Name".into(), json!(kind.event_name()));
    if kind == Kind::CfNotification {
        payload.insert("Template-ID".into(), json!(template_id));
    }
    Notification::parse(&serde_json::to_vec(&payload).unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("the call: {e}")))
}

/// A 400 for what the operator's policy does not allow, naming the setting.
fn policy_refusal(error: cfhost_mail::PolicyError) -> ApiError {
    ApiError::bad_request(error.to_string())
}

/// A missed call to render a preview with: KAZOO's payload fields.
fn sample_call(account_id: &str, template_id: &str, now: i64) -> Map<String, Value> {
    let gregorian = now + cfhost_mail::macros::GREGORIAN_TO_UNIX;
    let sample = json!({
        "App-Name": "callflow", "App-Version": "4.0.0", "Event-Category": "notification",
        "Event-Name": "missed_call", "Msg-ID": "preview", "Account-ID": account_id,
        "Template-ID": template_id, "Call-ID": "preview", "Call-Bridged": false,
        "Message-Left": false, "Caller-ID-Name": "Jane Caller",
        "Caller-ID-Number": "+15550001234", "To-User": "+15554441111",
        "From-User": "+15550001234", "Timestamp": gregorian,
        "Notify": {"Hangup-Cause": "NO_ANSWER"},
    });
    match sample {
        Value::Object(fields) => fields,
        _ => Map::new(),
    }
}

/// The account's stored templates, and teletype's `missed_call` when it has none of its own:
/// `[{"id", "subject", "default"}]` in id order.
pub async fn list(
    State(state): State<Arc<ApiState>>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.authorize_existing(&headers, &account_id)?;
    let templates = state
        .runtime
        .store()
        .account_templates(&account_id)
        .await
        .map_err(ApiError::store)?;
    let mut entries: Vec<Value> = templates
        .iter()
        .map(|(id, parts)| {
            let subject = Stored::parse(parts, &account_id, id)
                .ok()
                .and_then(|stored| stored.document.and_then(|d| d.subject));
            json!({"id": id, "subject": subject, "default": false})
        })
        .collect();
    if !templates.iter().any(|(id, _)| id == "missed_call") {
        entries.push(json!({"id": "missed_call", "subject": MISSED_CALL_SUBJECT, "default": true}));
        entries.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    }
    Ok(Json(Value::Array(entries)))
}

/// Checks that the token covers the account, the account exists and the id is a plain name.
fn check_template(
    state: &ApiState,
    headers: &HeaderMap,
    account_id: &str,
    template_id: &str,
) -> Result<(), ApiError> {
    state.authorize(headers, account_id)?;
    if !is_plain_name(template_id) {
        return Err(ApiError::bad_request(
            "a template id is 1 to 128 letters, digits, `-` and `_`",
        ));
    }
    state.existing_account(account_id)
}

/// A stored template as the API shows it.
fn answer(template_id: &str, stored: &Stored) -> Value {
    let mut answer = serde_json::to_value(stored.document.clone().unwrap_or_default())
        .unwrap_or_else(|_| json!({}));
    answer["id"] = json!(template_id);
    answer["text"] = json!(stored.text);
    answer["html"] = json!(stored.html);
    answer
}

fn unavailable(error: cfhost_mail::templates::TemplateLookupError) -> ApiError {
    tracing::error!("{error}");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the template could not be read",
    )
}
