//! `simulate --emails DIR`: beside the sink that publishes them, every notification is rendered
//! by the mailer's own renderer ([`cfhost_mail::Composer`]) into the email `cfhost mailer`
//! would send, written as `DIR/<call id>-<template id>.eml`, so that the emails can be seen
//! without a broker or an SMTP server.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cfhost_core::notify::{OutboundNotification, Sink, SinkError};
use cfhost_mail::macros::unix_now;
use cfhost_mail::{Composed, Composer, MailerConfig, Notification};

/// A sink that publishes through `inner` and writes each notification's email.
pub struct EmlSink {
    inner: Arc<dyn Sink>,
    composer: Arc<Composer>,
    dir: PathBuf,
    /// One line per notification: the file written, or why there is none.
    written: Mutex<Vec<String>>,
}

impl EmlSink {
    /// Emails for the data directory `data`, as `mailer` would send them, into `dir`
    /// (created).
    pub fn new(
        inner: Arc<dyn Sink>,
        data: &Path,
        mailer: &MailerConfig,
        dir: &Path,
    ) -> std::io::Result<EmlSink> {
        std::fs::create_dir_all(dir)?;
        Ok(EmlSink {
            inner,
            composer: Arc::new(Composer::for_config(
                Arc::new(cfhost_store::FilesStore::new(data)),
                mailer,
            )),
            dir: dir.to_path_buf(),
            written: Mutex::new(Vec::new()),
        })
    }

    /// What was written so far, one line per notification.
    pub fn report(&self) -> Vec<String> {
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn write(&self, notification: &OutboundNotification) -> String {
        let body = serde_json::to_vec(&notification.payload).unwrap_or_default();
        let parsed = match Notification::parse(&body) {
            Ok(parsed) => parsed,
            Err(e) => return format!("no email for a notification: {e}"),
        };
        let what = format!(
            "{} of call {}",
            parsed.template_id,
            parsed.call_id.as_deref().unwrap_or("-")
        );
        let email = match self.composer.compose(parsed.clone(), unix_now()).await {
            Ok(Composed::Email(email)) => email,
            Ok(Composed::Disabled) => {
                return format!("no email for {what}: the template is disabled");
            }
            Err(e) => return format!("no email for {what}: {e}"),
        };
        let eml = match email.to_eml() {
            Ok(eml) => eml,
            Err(e) => return format!("no email for {what}: {e}"),
        };
        let name: String = format!(
            "{}-{}.eml",
            parsed.call_id.as_deref().unwrap_or("call"),
            parsed.template_id
        )
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
        let file = self.dir.join(name);
        match std::fs::write(&file, eml) {
            Ok(()) => format!(
                "email {} to {}: {}",
                file.display(),
                email.to.join(", "),
                email.rendered.subject
            ),
            Err(e) => format!("no email for {what}: cannot write {}: {e}", file.display()),
        }
    }
}

#[async_trait::async_trait]
impl Sink for EmlSink {
    async fn publish(&self, notification: &OutboundNotification) -> Result<(), SinkError> {
        self.inner.publish(notification).await?;
        let line = self.write(notification).await;
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
        Ok(())
    }
}
