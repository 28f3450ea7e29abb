//! The HTTP API of `cfhost serve` (JSON in and out):
//!
//! | method and path | who | what |
//! |---|---|---|
//! | `GET /` and `/console/*` | anyone (the page asks for a token) | the web console ([`crate::console`]) |
//! | `GET /v1/session` | any valid token | what the token opens ([`accounts`]) |
//! | `GET /v1/accounts` | any valid token | the accounts it opens |
//! | `GET /v1/accounts/{account_id}/{callflows,users,devices,vmboxes}` | operator, the account | the documents of a kind ([`directory`]) |
//! | `GET`, `PUT`, `DELETE /v1/accounts/{account_id}/{users,devices,vmboxes}/{id}` | operator, the account | users, devices and voicemail boxes |
//! | `POST /v1/accounts/{account_id}/calls` | operator, the account | run a call ([`calls`]) |
//! | `GET`, `PUT`, `DELETE /v1/accounts/{account_id}/callflows/{id}` | operator, the account | callflow documents ([`callflows`] writes them) |
//! | `GET /v1/accounts/{account_id}/notifications` | operator, the account | its email templates |
//! | `GET`, `PUT`, `DELETE /v1/accounts/{account_id}/notifications/{template_id}` | operator, the account | email templates ([`notifications`]) |
//! | `POST /v1/accounts/{account_id}/notifications/{template_id}/preview` | operator, the account | a template (stored or a draft) rendered, nothing sent |
//! | `GET /v1/modules` | any valid token | the loaded modules ([`modules`]) |
//! | `GET /v1/modules/rejected` | operator | module files the last reloads rejected, and why |
//! | `GET /v1/documents/rejected` | operator | documents the last loads rejected, and whether an earlier version serves ([`documents`]) |
//! | `GET /v1/accounts/{account_id}/documents/rejected` | operator, the account | the account's |
//! | `GET /v1/accounts/{account_id}/modules` | operator, the account | the same, as the account may use them, with its own |
//! | `PUT`, `DELETE /v1/accounts/{account_id}/modules/{name}` | operator, the account | the account's own modules ([`modules`]) |
//! | `GET /healthz` | anyone | the process is up |
//! | `GET /readyz` | anyone | it takes calls (503 once shutting down) |
//! | `GET /v1/accounts/{account_id}/vmboxes/{box_id}/messages` | operator, the account | a box's voicemail messages ([`voicemail`]) |
//! | `GET .../messages/{message_id}/raw`, `DELETE .../messages/{message_id}` | operator, the account | one message's recording (`audio/wav`); remove it |
//! | `GET /v1/sip/calls` | operator | the SIP calls that ended last, with their traces ([`sip`]) |
//! | `GET /v1/sip/calls/active` | operator | the SIP calls in progress |
//! | `GET /v1/accounts/{account_id}/sip/calls`, `.../sip/calls/active` | operator, the account | the account's |
//! | `GET /v1/sip/registrations` | operator | every device's live registrations |
//! | `GET /v1/accounts/{account_id}/sip/registrations` | operator, the account | its devices' |
//! | `GET /metrics` | operator | Prometheus text ([`metrics`]) |
//! | `GET /v1/status` | operator | the node at a glance, as JSON ([`status`]) |
//!
//! Errors are `{"error": "..."}` with a status that says whose fault it is, and no answer names
//! a server path ([`scrub`]). Tokens: [`auth`].
//!
//! Clients are held to limits ([`clients`]): connections at once, header-read, idle and request
//! timeouts.
//!
//! Shutdown ([`serve`]): once the signal comes, `/readyz` says 503 (and is still answered) and
//! new calls are refused; calls in flight, with their termination callbacks, finish (up to a
//! deadline); then the connections close and the notification outbox is flushed.

mod accounts;
pub mod auth;
mod callflows;
mod calls;
mod capture;
pub mod clients;
mod directory;
mod documents;
pub mod metrics;
mod modules;
mod notifications;
mod scrub;
mod sip;
mod status;
mod voicemail;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

pub use auth::{Access, Tokens};
pub use capture::CaptureSink;
pub use clients::ClientLimits;
use metrics::CallMetrics;

use cfhost_core::files::is_plain_name;
use cfhost_core::notify::AmqpSink;
use cfhost_core::runtime::Runtime;
use cfhost_sip::SipService;
use cfhost_store::DocumentKind;

/// Everything the handlers share.
pub struct ApiState {
    pub runtime: Arc<Runtime>,
    pub tokens: Tokens,
    /// The sink the runtime publishes to.
    pub capture: Arc<CaptureSink>,
    /// The AMQP sink behind it, if notifications go to a broker.
    pub amqp: Option<Arc<AmqpSink>>,
    /// The SIP service, when `serve` takes SIP.
    pub sip: Option<Arc<SipService>>,
    calls: CallMetrics,
    accepting: AtomicBool,
    /// Serialises document writes with the reload that follows each.
    writes: tokio::sync::Mutex<()>,
    /// The mailer's renderer, for template previews.
    mail: Arc<cfhost_mail::Composer>,
    /// Whether account tokens may have simulated calls publish (`[serve]`).
    account_calls_may_publish: bool,
}

impl ApiState {
    /// State for a started runtime publishing through `capture`.
    pub fn new(
        runtime: Arc<Runtime>,
        tokens: Tokens,
        capture: Arc<CaptureSink>,
        amqp: Option<Arc<AmqpSink>>,
    ) -> Self {
        let mail = Arc::new(cfhost_mail::Composer::for_config(
            Arc::clone(runtime.store()),
            &cfhost_mail::MailerConfig::default(),
        ));
        ApiState {
            runtime,
            tokens,
            capture,
            amqp,
            sip: None,
            calls: CallMetrics::default(),
            accepting: AtomicBool::new(true),
            writes: tokio::sync::Mutex::new(()),
            mail,
            account_calls_may_publish: false,
        }
    }

    /// This state letting account tokens have simulated calls publish, or not.
    pub fn with_account_calls_publishing(mut self, allowed: bool) -> Self {
        self.account_calls_may_publish = allowed;
        self
    }

    /// This state previewing templates as a mailer with `mailer`'s settings would render them.
    pub fn with_mailer(mut self, mailer: &cfhost_mail::MailerConfig) -> Self {
        self.mail = Arc::new(cfhost_mail::Composer::for_config(
            Arc::clone(self.runtime.store()),
            mailer,
        ));
        self
    }

    /// This state with the SIP service `sip` beside the API.
    pub fn with_sip(mut self, sip: Option<Arc<SipService>>) -> Self {
        self.sip = sip;
        self
    }

    /// Calls in progress, through the API and over SIP.
    fn calls_in_progress(&self) -> u64 {
        let sip = self.sip.as_ref().map_or(0, |sip| sip.calls_in_progress());
        self.calls.in_flight() + sip as u64
    }

    /// Whether new calls are taken (false once shutting down).
    pub fn accepting(&self) -> bool {
        self.accepting.load(Ordering::Acquire)
    }

    /// A 404 unless `account_id` is a plain name of an existing account.
    fn existing_account(&self, account_id: &str) -> Result<(), ApiError> {
        if is_plain_name(account_id) && self.runtime.accounts().get(account_id).is_some() {
            Ok(())
        } else {
            Err(ApiError::no_account(account_id))
        }
    }

    /// Reads `account_id` again after a write through the API, so that the next call sees it
    /// at once. A store that cannot be read now is logged: the write stands, and the next
    /// change or reconnect reloads it.
    async fn reload_account(&self, account_id: &str) {
        if let Err(e) = self.runtime.reload_account(account_id).await {
            tracing::error!("reloading account `{account_id}` after a write: {e}");
        }
    }

    /// Refuses a request without the operator's token.
    fn authorize_operator(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match self.tokens.access(headers) {
            Access::Operator => Ok(()),
            Access::None => Err(ApiError::unauthorized()),
            Access::Account(_) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "this is for the operator's token",
            )),
        }
    }

    /// Whether the request's token may have a simulated call publish.
    fn may_publish(&self, headers: &HeaderMap) -> bool {
        match self.tokens.access(headers) {
            Access::Operator => true,
            Access::Account(_) => self.account_calls_may_publish,
            Access::None => false,
        }
    }

    /// Refuses a request whose token does not cover `account`.
    fn authorize(&self, headers: &HeaderMap, account: &str) -> Result<(), ApiError> {
        match self.tokens.access(headers) {
            access if access.allows(account) => Ok(()),
            Access::None => Err(ApiError::unauthorized()),
            _ => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("this token does not give access to account `{account}`"),
            )),
        }
    }

    /// The token covers `account_id` (else 401 or 403) and the account exists (else 404), in
    /// that order, so that a token learns nothing of accounts it does not cover.
    fn authorize_existing(&self, headers: &HeaderMap, account_id: &str) -> Result<(), ApiError> {
        self.authorize(headers, account_id)?;
        self.existing_account(account_id)
    }
}

/// An error answer: its status and `{"error": message}`, with more fields when they help.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    details: Option<serde_json::Value>,
}

impl ApiError {
    /// The 404 of an account that does not exist.
    fn no_account(account_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("account `{account_id}` does not exist"),
        )
    }

    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            details: None,
        }
    }

    /// Adds the fields of `details` (an object) to the answer.
    fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// What the store said, with the status that says whose fault it is: a store that cannot
    /// be reached (or a disk that fails) is a 503 naming the store, a value it refuses is the
    /// client's. The log keeps the detail.
    fn store(error: cfhost_store::StoreError) -> Self {
        use cfhost_store::StoreError;
        match error {
            StoreError::NoAccount(_) => ApiError::new(StatusCode::NOT_FOUND, error.to_string()),
            StoreError::Refused(_) => ApiError::bad_request(error.to_string()),
            StoreError::Unavailable { .. } | StoreError::Io { .. } => {
                tracing::error!("{error}");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
            }
        }
    }

    fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a valid `Authorization: Bearer <token>` header is required",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({"error": self.message});
        if let (Some(serde_json::Value::Object(details)), Some(object)) =
            (self.details, body.as_object_mut())
        {
            object.extend(details);
        }
        (self.status, axum::Json(body)).into_response()
    }
}

/// A JSON request body, parsed by the handler once the token is checked (an extractor would
/// parse it before, for anyone): `application/json` (or no content type), else a 415; a body
/// that is not JSON is a 400 naming the line and column. Both answer `{"error": ...}`.
fn json_body(headers: &HeaderMap, body: &[u8]) -> Result<serde_json::Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    if let Some(content_type) = content_type
        && content_type != "application/json"
        && !content_type.ends_with("+json")
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("the body must be `application/json`, not `{content_type}`"),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))
}

/// The API's routes.
pub fn router(state: Arc<ApiState>) -> Router {
    let private = Arc::new(scrub::PrivatePaths::new(
        state.runtime.data_dir(),
        state.runtime.modules_dir(),
    ));
    let documents = DocumentKind::ALL
        .into_iter()
        .fold(Router::new(), |router, kind| {
            router.merge(directory::routes(kind))
        });
    Router::new()
        .merge(crate::console::routes())
        .merge(documents)
        .route("/v1/session", get(accounts::session))
        .route("/v1/accounts", get(accounts::list))
        .route("/v1/status", get(status::status))
        .route("/v1/accounts/{account_id}/calls", post(calls::run))
        .route(
            "/v1/accounts/{account_id}/notifications",
            get(notifications::list),
        )
        .route(
            "/v1/accounts/{account_id}/notifications/{template_id}",
            get(notifications::get)
                .put(notifications::put)
                .delete(notifications::delete),
        )
        .route(
            "/v1/accounts/{account_id}/notifications/{template_id}/preview",
            post(notifications::preview),
        )
        .route("/v1/modules", get(modules::list))
        .route("/v1/modules/rejected", get(modules::rejected))
        .route("/v1/documents/rejected", get(documents::rejected))
        .route(
            "/v1/accounts/{account_id}/documents/rejected",
            get(documents::rejected_of_account),
        )
        .route(
            "/v1/accounts/{account_id}/modules",
            get(modules::for_account),
        )
        .route(
            "/v1/accounts/{account_id}/modules/{name}",
            put(modules::install)
                .delete(modules::remove)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/v1/accounts/{account_id}/vmboxes/{box_id}/messages",
            get(voicemail::list),
        )
        .route(
            "/v1/accounts/{account_id}/vmboxes/{box_id}/messages/{message_id}",
            axum::routing::delete(voicemail::delete),
        )
        .route(
            "/v1/accounts/{account_id}/vmboxes/{box_id}/messages/{message_id}/raw",
            get(voicemail::raw),
        )
        .route("/v1/sip/calls", get(sip::calls))
        .route("/v1/sip/calls/active", get(sip::active_calls))
        .route(
            "/v1/accounts/{account_id}/sip/calls",
            get(sip::account_calls),
        )
        .route(
            "/v1/accounts/{account_id}/sip/calls/active",
            get(sip::account_active_calls),
        )
        .route("/v1/sip/registrations", get(sip::registrations))
        .route(
            "/v1/accounts/{account_id}/sip/registrations",
            get(sip::account_registrations),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "no such method on this route",
            )
        })
        .layer(axum::middleware::from_fn(errors_as_json))
        .layer(axum::middleware::from_fn_with_state(private, scrub::scrub))
        .with_state(state)
}

/// Errors that axum's extractors answer as plain text (a path segment that is not UTF-8, for
/// example) become `{"error": text}`, like every error of the API.
async fn errors_as_json(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let text = match axum::body::to_bytes(response.into_body(), 64 * 1024).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    ApiError::new(status, message).into_response()
}

async fn readyz(axum::extract::State(state): axum::extract::State<Arc<ApiState>>) -> Response {
    if state.accepting() {
        "ready\n".into_response()
    } else {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
    }
}

async fn metrics(
    axum::extract::State(state): axum::extract::State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.authorize_operator(&headers)?;
    let snapshot = metrics::Snapshot {
        calls: &state.calls,
        health: state.runtime.health(),
        notifications_published: state.capture.published(),
        outbox: state.amqp.as_ref().map(|amqp| amqp.outbox().len()),
        rejected_modules: state.runtime.rejected_modules().len(),
    };
    let mut text = metrics::render(&snapshot);
    if let Some(sip) = &state.sip {
        text.push_str(&sip.render_metrics());
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// How a shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Calls still running when the deadline passed (0 when all finished).
    pub calls_cut_off: u64,
    /// Notifications the broker had not confirmed when the flush gave up (they stay in the
    /// outbox for the next start).
    pub unconfirmed: usize,
}

/// Serves the API on `listener`, with `limits` on its clients, until `signal` completes; then
/// stops taking calls (`/readyz` answers 503, still served), lets the calls in flight (and
/// their termination callbacks) finish within `drain`, closes the connections, and flushes
/// the AMQP outbox within `flush`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    limits: ClientLimits,
    signal: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
    flush: Duration,
) -> ShutdownReport {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let app = router(Arc::clone(&state));
    // Requests being answered when the connections close get this long.
    let grace = Duration::from_secs(5).min(drain);
    let server = tokio::spawn(clients::serve(
        listener,
        app,
        limits,
        async move {
            let _ = stop_rx.await;
        },
        grace,
    ));
    signal.await;
    state.accepting.store(false, Ordering::Release);
    if let Some(sip) = &state.sip {
        sip.stop_accepting();
    }
    tracing::info!("shutting down: no new calls; waiting for the calls in flight");
    let deadline = tokio::time::Instant::now() + drain;
    // Calls outlive their requests (a client that hangs up does not cut a call short).
    while state.calls_in_progress() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop_tx.send(());
    if let Err(error) = server.await {
        tracing::error!("the HTTP server failed: {error}");
    }
    let calls_cut_off = state.calls_in_progress();
    let unconfirmed = match &state.amqp {
        Some(amqp) => amqp.flush(flush).await,
        None => 0,
    };
    ShutdownReport {
        calls_cut_off,
        unconfirmed,
    }
}
