//! Opening the sink a [`NotificationTarget`] names: stdout or a file for JSON lines, or an AMQP
//! broker through a durable outbox.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{AmqpSink, JsonLinesSink, Outbox, OutboxError, Sink};
use crate::config::{NotificationTarget, NotificationsConfig};

/// The sink could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

/// An open sink; `amqp` is set when it delivers to a broker (to flush it at exit).
pub struct OpenSink {
    pub sink: Arc<dyn Sink>,
    pub amqp: Option<Arc<AmqpSink>>,
}

/// Opens `target`; an AMQP target keeps its outbox in `outbox_dir`, holding at most
/// `outbox_capacity` undelivered notifications.
fn open_sink(
    target: NotificationTarget,
    outbox_dir: &Path,
    outbox_capacity: usize,
) -> Result<OpenSink, OpenError> {
    let sink: Arc<dyn Sink> = match target {
        NotificationTarget::Stdout => Arc::new(JsonLinesSink::new(Box::new(std::io::stdout()))),
        NotificationTarget::File(path) => {
            let file = std::fs::File::create(&path).map_err(|source| OpenError::File {
                path: path.display().to_string(),
                source,
            })?;
            Arc::new(JsonLinesSink::new(Box::new(file)))
        }
        NotificationTarget::Amqp(url) => {
            let outbox = Outbox::open(outbox_dir, outbox_capacity)?;
            let amqp = Arc::new(AmqpSink::start(url, outbox));
            return Ok(OpenSink {
                sink: amqp.clone(),
                amqp: Some(amqp),
            });
        }
    };
    Ok(OpenSink { sink, amqp: None })
}

/// Opens the sink `config` names, `target` and `outbox_dir` (from flags) overriding it; the
/// outbox defaults to `<data_dir>/outbox`. Returns the sink and its outbox directory.
pub fn open_configured(
    config: &NotificationsConfig,
    target: Option<String>,
    outbox_dir: Option<PathBuf>,
    data_dir: &Path,
) -> Result<(OpenSink, PathBuf), OpenError> {
    let target = target
        .or_else(|| config.target.clone())
        .map_or(NotificationTarget::Stdout, |t| {
            NotificationTarget::parse(&t)
        });
    let outbox_dir = outbox_dir
        .or_else(|| config.outbox_dir.clone())
        .unwrap_or_else(|| data_dir.join("outbox"));
    let sink = open_sink(target, &outbox_dir, config.outbox_capacity)?;
    Ok((sink, outbox_dir))
}
