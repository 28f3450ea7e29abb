//! Where notifications go (the `[notifications]` section of the configuration), and opening the
//! sink a [`NotificationTarget`] names: stdout or a file for JSON lines, or an AMQP broker
//! through a durable outbox.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::{AmqpSink, JsonLinesSink, Outbox, OutboxError, Sink};

/// `[notifications]`: where notifications go and how undelivered ones are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// An AMQP URL, a file for JSON lines, or `-` for stdout (the default).
    pub target: Option<String>,
    /// The AMQP outbox's directory (default: `<data dir>/outbox`).
    pub outbox_dir: Option<PathBuf>,
    /// Undelivered notifications kept at most.
    pub outbox_capacity: usize,
    /// How long a stopping host waits for the broker's confirms.
    pub flush_timeout_secs: u64,
    /// The mailers' durable queue, declared by the AMQP sink so that notifications published
    /// while no `cfhost mailer` runs wait for one; `""` declares none.
    pub mailer_queue: String,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            target: None,
            outbox_dir: None,
            outbox_capacity: 100_000,
            flush_timeout_secs: 30,
            mailer_queue: MAILER_QUEUE.to_string(),
        }
    }
}

/// The mailers' queue (`cfhost-mail` names the same in its `[mailer] queue`).
pub const MAILER_QUEUE: &str = "cfhost.mailer";

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationTarget {
    Stdout,
    File(PathBuf),
    /// An `amqp://` or `amqps://` URL.
    Amqp(String),
}

impl NotificationTarget {
    /// Reads a target: an AMQP URL, `-` for stdout, or a file path.
    pub fn parse(text: &str) -> Self {
        if text.starts_with("amqp://") || text.starts_with("amqps://") {
            NotificationTarget::Amqp(text.to_string())
        } else if text == "-" {
            NotificationTarget::Stdout
        } else {
            NotificationTarget::File(PathBuf::from(text))
        }
    }
}

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
    mailer_queue: Option<String>,
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
            let amqp = Arc::new(AmqpSink::start(url, outbox, mailer_queue));
            return Ok(OpenSink {
                sink: amqp.clone(),
                amqp: Some(amqp),
            });
        }
    };
    Ok(OpenSink { sink, amqp: None })
}

impl NotificationsConfig {
    /// The outbox directory: the configured one, else `<data_dir>/outbox`.
    pub fn outbox_dir(&self, data_dir: &Path) -> PathBuf {
        self.outbox_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("outbox"))
    }

    /// Opens the sink this configuration names; the outbox defaults to `<data_dir>/outbox`.
    pub fn open(&self, data_dir: &Path) -> Result<OpenSink, OpenError> {
        let target = self
            .target
            .as_deref()
            .map_or(NotificationTarget::Stdout, NotificationTarget::parse);
        let mailer_queue = Some(self.mailer_queue.clone()).filter(|q| !q.is_empty());
        open_sink(
            target,
            &self.outbox_dir(data_dir),
            self.outbox_capacity,
            mailer_queue,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_defaults() {
        assert_eq!(
            NotificationTarget::parse("amqp://g:g@localhost:5672/%2f"),
            NotificationTarget::Amqp("amqp://g:g@localhost:5672/%2f".into())
        );
        assert_eq!(NotificationTarget::parse("-"), NotificationTarget::Stdout);
        assert_eq!(
            NotificationTarget::parse("out.jsonl"),
            NotificationTarget::File("out.jsonl".into())
        );
        let config: NotificationsConfig = toml::from_str("target = \"-\"").unwrap();
        assert_eq!(config.outbox_capacity, 100_000);
        assert_eq!(
            config.outbox_dir(Path::new("/data")),
            PathBuf::from("/data/outbox")
        );
        let err = toml::from_str::<NotificationsConfig>("target_url = \"x\"").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `target_url`"),
            "{err}"
        );
    }
}
