//! `GET /v1/accounts/{account_id}/vmboxes/{box_id}/messages`, `GET .../messages/{id}/raw` and
//! `DELETE .../messages/{id}`: a box's voicemail messages, wherever they were recorded (the
//! store holds them: the data directory, or the database every node shares). The list is the
//! messages' metadata (KAZOO's fields), oldest first; `raw` is the recording as `audio/wav`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiError, ApiState};
use cfhost_core::files::is_plain_name;

/// The box's messages.
pub async fn list(
    State(state): State<Arc<ApiState>>,
    Path((account_id, box_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    check(&state, &headers, &account_id, &[("box", &box_id)])?;
    let messages = state
        .runtime
        .store()
        .list_messages(&account_id, &box_id)
        .await
        .map_err(ApiError::store)?;
    Ok(Json(json!({"box_id": box_id, "messages": messages})))
}

/// One message's recording.
pub async fn raw(
    State(state): State<Arc<ApiState>>,
    Path((account_id, box_id, message_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check(
        &state,
        &headers,
        &account_id,
        &[("box", &box_id), ("message", &message_id)],
    )?;
    let audio = state
        .runtime
        .store()
        .message_audio(&account_id, &box_id, &message_id)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| no_message(&box_id, &message_id))?;
    Ok(([(header::CONTENT_TYPE, "audio/wav")], audio).into_response())
}

/// Removes a message.
pub async fn delete(
    State(state): State<Arc<ApiState>>,
    Path((account_id, box_id, message_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    check(
        &state,
        &headers,
        &account_id,
        &[("box", &box_id), ("message", &message_id)],
    )?;
    let removed = state
        .runtime
        .store()
        .delete_message(&account_id, &box_id, &message_id)
        .await
        .map_err(ApiError::store)?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_message(&box_id, &message_id))
    }
}

/// The token, then ids that are plain names (a 400 naming which is not), then the account.
fn check(
    state: &ApiState,
    headers: &HeaderMap,
    account_id: &str,
    ids: &[(&str, &str)],
) -> Result<(), ApiError> {
    state.authorize(headers, account_id)?;
    for (what, id) in ids {
        if !is_plain_name(id) {
            return Err(ApiError::bad_request(format!(
                "a {what} id is 1 to 128 letters, digits, `-` and `_`"
            )));
        }
    }
    state.existing_account(account_id)
}

fn no_message(box_id: &str, message_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("box `{box_id}` has no message `{message_id}`"),
    )
}
