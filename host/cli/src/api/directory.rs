//! An account's documents of every kind, as KAZOO's crossbar keeps them:
//! - `GET /v1/accounts/{account_id}/{callflows|users|devices|vmboxes}`: `[{"id", "document"}]`
//!   in id order, as stored (a row another tool wrote that is not JSON has `"document": null`
//!   and its `error`);
//! - `GET | DELETE /v1/accounts/{account_id}/{callflows|users|devices|vmboxes}/{id}`;
//! - `PUT` of users, devices and voicemail boxes here, of callflows in [`super::callflows`].
//!
//! A document is validated on write as loading would read it ([`UserDocument`],
//! [`DeviceDocument`], [`VmBoxDocument`]; a 400 names the field), and against the account: a
//! device's or box's `owner_id` is one of its users, a device's SIP username and a box's
//! mailbox number are not another's, a body `id` is the path's. Then it is stored and live for
//! the calls that start next; a store that cannot be reached is a 503 naming it.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::{ApiError, ApiState, json_body};
use cfhost_core::accounts::{Account, DeviceDocument, UserDocument, VmBoxDocument};
use cfhost_core::files::is_plain_name;
use cfhost_store::{DocumentKind, StoreError};

/// Every document of `kind` in the account, as stored.
pub async fn list(
    state: Arc<ApiState>,
    account_id: String,
    headers: HeaderMap,
    kind: DocumentKind,
) -> Result<Json<Value>, ApiError> {
    state.authorize_existing(&headers, &account_id)?;
    let documents = state
        .runtime
        .store()
        .list_documents(&account_id, kind)
        .await
        .map_err(ApiError::store)?;
    Ok(Json(Value::Array(documents.iter().map(listed).collect())))
}

/// A document as the listing shows it: `{"id", "document"}`, or `"document": null` and the
/// `error` when its text is not JSON.
fn listed(document: &cfhost_store::Document) -> Value {
    match serde_json::from_str::<Value>(&document.text) {
        Ok(parsed) => json!({"id": document.id, "document": parsed}),
        Err(e) => json!({"id": document.id, "document": null, "error": e.to_string()}),
    }
}

/// The stored document.
pub async fn read(
    state: Arc<ApiState>,
    (account_id, id): (String, String),
    headers: HeaderMap,
    kind: DocumentKind,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, &account_id)?;
    check_id(&state, &account_id, &id, kind)?;
    let text = state
        .runtime
        .store()
        .get_document(&account_id, kind, &id)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| not_found(kind, &id))?;
    let document = serde_json::from_str(&text)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(document))
}

/// Validates and stores a document; answers with it.
pub async fn write(
    state: Arc<ApiState>,
    (account_id, id): (String, String),
    headers: HeaderMap,
    body: Bytes,
    kind: DocumentKind,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, &account_id)?;
    let document = json_body(&headers, &body)?;
    check_id(&state, &account_id, &id, kind)?;
    let _writing = state.writes.lock().await;
    let accounts = state.runtime.accounts();
    let account = accounts
        .get(&account_id)
        .ok_or_else(|| ApiError::no_account(&account_id))?;
    validate(kind, account, &id, &document)?;
    let text = serde_json::to_string_pretty(&document)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    state
        .runtime
        .store()
        .put_document(&account_id, kind, &id, &text)
        .await
        .map_err(ApiError::store)?;
    state.reload_account(&account_id).await;
    Ok(Json(json!({"id": id, "document": document})))
}

/// Removes a document.
pub async fn remove(
    state: Arc<ApiState>,
    (account_id, id): (String, String),
    headers: HeaderMap,
    kind: DocumentKind,
) -> Result<StatusCode, ApiError> {
    state.authorize(&headers, &account_id)?;
    check_id(&state, &account_id, &id, kind)?;
    let _writing = state.writes.lock().await;
    let removed = state
        .runtime
        .store()
        .delete_document(&account_id, kind, &id)
        .await
        .map_err(|error| match error {
            // The disk's fault, not the client's: the cause, and the path only in the log.
            StoreError::Io { place, source } => {
                tracing::error!("cannot remove {}: {source}", place.display());
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("{} `{id}` could not be removed: {source}", singular(kind)),
                )
            }
            other => ApiError::store(other),
        })?;
    if !removed {
        return Err(not_found(kind, &id));
    }
    state.reload_account(&account_id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A 400 unless `document` reads as loading reads a document of `kind` and fits `account`.
fn validate(
    kind: DocumentKind,
    account: &Account,
    id: &str,
    document: &Value,
) -> Result<(), ApiError> {
    if !document.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    if let Some(body_id) = document.get("id")
        && body_id.as_str() != Some(id)
    {
        return Err(ApiError::bad_request(format!(
            "the document's id {body_id} is not the path's `{id}`"
        ))
        .with_details(json!({"field": "id"})));
    }
    let invalid = |e: serde_json::Error| {
        ApiError::bad_request(format!("not a valid {}: {e}", singular(kind)))
    };
    match kind {
        DocumentKind::User => {
            let user: UserDocument = serde_json::from_value(document.clone()).map_err(invalid)?;
            if let Some(email) = &user.email
                && !email.contains('@')
            {
                return Err(field_error(
                    "email",
                    format!("`{email}` is no email address"),
                ));
            }
        }
        DocumentKind::Device => {
            let device: DeviceDocument =
                serde_json::from_value(document.clone()).map_err(invalid)?;
            owner_exists(account, device.owner_id.as_deref())?;
            let sip = &device.sip;
            if sip.username.is_empty() || sip.password.is_empty() {
                return Err(field_error(
                    "sip",
                    "`sip.username` and `sip.password` must not be empty",
                ));
            }
            if let Some(other) = account
                .device_by_username(&sip.username)
                .filter(|other| other.id != id)
            {
                return Err(field_error(
                    "sip.username",
                    format!(
                        "SIP username `{}` is already device `{}`'s",
                        sip.username, other.id
                    ),
                ));
            }
        }
        DocumentKind::VmBox => {
            let vmbox: VmBoxDocument = serde_json::from_value(document.clone()).map_err(invalid)?;
            owner_exists(account, vmbox.owner_id.as_deref())?;
            let taken = account
                .vmboxes()
                .iter()
                .find(|(other, b)| other.as_str() != id && b.mailbox == vmbox.mailbox);
            if let Some((other, _)) = taken {
                return Err(field_error(
                    "mailbox",
                    format!("mailbox `{}` is already box `{other}`'s", vmbox.mailbox),
                ));
            }
        }
        DocumentKind::Callflow => unreachable!("callflows are written by callflows::put"),
    }
    Ok(())
}

/// A 400 unless `owner_id` (when given) is a user of the account.
fn owner_exists(account: &Account, owner_id: Option<&str>) -> Result<(), ApiError> {
    match owner_id {
        Some(owner) if account.user(owner).is_none() => Err(field_error(
            "owner_id",
            format!("the account has no user `{owner}`"),
        )),
        _ => Ok(()),
    }
}

fn field_error(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message).with_details(json!({"field": field}))
}

/// A 400 unless `id` is a plain name, a 404 unless the account exists.
pub(super) fn check_id(
    state: &ApiState,
    account_id: &str,
    id: &str,
    kind: DocumentKind,
) -> Result<(), ApiError> {
    if !is_plain_name(id) {
        return Err(ApiError::bad_request(format!(
            "a {} id is 1 to 128 letters, digits, `-` and `_`",
            singular(kind)
        )));
    }
    state.existing_account(account_id)
}

fn not_found(kind: DocumentKind, id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no {} `{id}`", singular(kind)),
    )
}

/// What one document of `kind` is called in messages.
fn singular(kind: DocumentKind) -> &'static str {
    match kind {
        DocumentKind::Callflow => "callflow",
        DocumentKind::User => "user",
        DocumentKind::Device => "device",
        DocumentKind::VmBox => "voicemail box",
    }
}

/// The routes of one kind: its listing and its documents (a callflow is written by
/// [`super::callflows::put`], which checks its nodes against their modules).
pub fn routes(kind: DocumentKind) -> axum::Router<Arc<ApiState>> {
    use axum::routing::get;
    let folder = kind.folder();
    let document = get(
        move |State(state): State<Arc<ApiState>>,
              Path(ids): Path<(String, String)>,
              headers: HeaderMap| read(state, ids, headers, kind),
    )
    .delete(
        move |State(state): State<Arc<ApiState>>,
              Path(ids): Path<(String, String)>,
              headers: HeaderMap| remove(state, ids, headers, kind),
    );
    let document = if kind == DocumentKind::Callflow {
        document.put(super::callflows::put)
    } else {
        document.put(
            move |State(state): State<Arc<ApiState>>,
                  Path(ids): Path<(String, String)>,
                  headers: HeaderMap,
                  body: Bytes| write(state, ids, headers, body, kind),
        )
    };
    axum::Router::new()
        .route(
            &format!("/v1/accounts/{{account_id}}/{folder}"),
            get(
                move |State(state): State<Arc<ApiState>>,
                      Path(account_id): Path<String>,
                      headers: HeaderMap| list(state, account_id, headers, kind),
            ),
        )
        .route(
            &format!("/v1/accounts/{{account_id}}/{folder}/{{id}}"),
            document,
        )
}
