//! Taking HTTP clients under limits (`[serve.clients]`): at most `max_connections` at once
//! (past it a connection gets a 503 and is closed), each request's headers within
//! `header_read_timeout_ms` (counted from the connection's start, or from its last answer, so
//! this is also how long a kept-alive connection may wait for its next request), no
//! connection without a byte read or written for `idle_timeout_ms` while it is not being
//! answered, and each request answered within `request_timeout_ms` (else a 503; a call it
//! started goes on). Each limit reached is logged.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::ApiError;

/// `[serve.clients]`: limits on HTTP clients.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// How long a request's headers may take to arrive.
    pub header_read_timeout_ms: u64,
    /// How long a connection may go without a byte in either direction, outside of requests
    /// being answered.
    pub idle_timeout_ms: u64,
    /// How long a request may take to be answered, its body included.
    pub request_timeout_ms: u64,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            max_connections: 1024,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            request_timeout_ms: 30_000,
        }
    }
}

/// Serves `app` on `listener` under `limits` until `stop` completes, then lets the requests
/// being answered finish within `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ClientLimits,
    stop: impl Future<Output = ()>,
    grace: Duration,
) {
    let cap = limits.max_connections.max(1);
    let connections = Arc::new(Semaphore::new(cap));
    let (closing, _) = tokio::sync::watch::channel(false);
    let mut refused = RefusalLog::default();
    let limits = Arc::new(limits);
    let mut stop = std::pin::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors, most likely: wait a little rather than spin.
                tracing::warn!("cannot accept an HTTP connection: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            refused.count(cap);
            tokio::spawn(refuse(stream));
            continue;
        };
        let (app, limits, closing) = (app.clone(), Arc::clone(&limits), closing.subscribe());
        tokio::spawn(async move {
            connection(stream, app, &limits, closing).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = closing.send(true);
    let all_closed = connections.acquire_many(u32::try_from(cap).unwrap_or(u32::MAX));
    if tokio::time::timeout(grace, all_closed).await.is_err() {
        tracing::warn!("HTTP connections still open after {grace:?}; leaving them");
    }
}

/// The answer to a connection past the cap.
const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\ncontent-length: 33\r\nretry-after: 1\r\n\
connection: close\r\n\r\n{\"error\":\"too many connections\"}\n";

/// Answers 503 and closes, giving the client a second to take the answer.
async fn refuse(mut stream: TcpStream) {
    let answer = async {
        stream.write_all(TOO_MANY_CONNECTIONS).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
}

/// Logs refused connections at most once a second, with how many (the accept loop's own).
#[derive(Default)]
struct RefusalLog {
    since_logged: usize,
    last: Option<Instant>,
}

impl RefusalLog {
    fn count(&mut self, cap: usize) {
        self.since_logged += 1;
        if self
            .last
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
        {
            self.last = Some(Instant::now());
            tracing::warn!(
                "HTTP connection limit of {cap} reached: refused {} connection(s) with 503",
                self.since_logged
            );
            self.since_logged = 0;
        }
    }
}

/// One client connection: HTTP/1.1 with the header-read timeout, each request under the
/// request timeout; closed once idle too long, or once `closing` turns true and the request
/// being answered (if any) is.
async fn connection(
    stream: TcpStream,
    app: Router,
    limits: &ClientLimits,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: Arc::clone(&activity),
    });
    let request_timeout = Duration::from_millis(limits.request_timeout_ms);
    let in_request = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |request| {
        let app = app.clone();
        let answering = in_request.answering();
        async move {
            let answered = tokio::time::timeout(request_timeout, app.oneshot(request)).await;
            drop(answering);
            let response = match answered {
                Ok(Ok(response)) => response,
                Ok(Err(infallible)) => match infallible {},
                Err(_) => {
                    tracing::warn!("an HTTP request took longer than {request_timeout:?}");
                    let message = format!(
                        "the request was not answered within {request_timeout:?}; a call it \
                         started goes on"
                    );
                    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message).into_response()
                }
            };
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms));
    let mut served = std::pin::pin!(builder.serve_connection(io, service));
    let idle_timeout = Duration::from_millis(limits.idle_timeout_ms);
    let mut shutting_down = false;
    loop {
        let idle_left = idle_timeout.saturating_sub(activity.idle());
        tokio::select! {
            _ = served.as_mut() => return,
            changed = closing.changed(), if !shutting_down => {
                shutting_down = true;
                if changed.is_err() || *closing.borrow() {
                    served.as_mut().graceful_shutdown();
                }
            }
            () = tokio::time::sleep(idle_left) => {
                if activity.idle() >= idle_timeout {
                    tracing::info!("closing an HTTP connection idle for {idle_timeout:?}");
                    return;
                }
            }
        }
    }
}

/// When a connection last read or wrote, and how many of its requests are being answered.
struct Activity {
    started: Instant,
    last_millis: AtomicU64,
    answering: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity {
            started: Instant::now(),
            last_millis: AtomicU64::new(0),
            answering: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_millis.store(now, Ordering::Relaxed);
    }

    /// How long the connection has been idle (zero while a request is being answered).
    fn idle(&self) -> Duration {
        if self.answering.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_millis.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// Marks a request as being answered until the guard drops.
    fn answering(self: &Arc<Self>) -> Answering {
        self.answering.fetch_add(1, Ordering::Relaxed);
        Answering(Arc::clone(self))
    }
}

struct Answering(Arc<Activity>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.touch();
        self.0.answering.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream that records its activity.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) {
            self.activity.touch();
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(_))) {
            self.activity.touch();
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
