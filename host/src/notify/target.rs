//! Opening the sink a [`NotificationTarget`] names: stdout or a file for JSON lines, or an AMQP
//! broker through a durable outbox.

use std::path::Path;
use std::sync::Arc;

use super::{AmqpSink, JsonLinesSink, Outbox, OutboxError, Sink};
use crate::config::NotificationTarget;

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
pub fn open_sink(
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
