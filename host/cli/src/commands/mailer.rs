//! `cfhost mailer`: the mailer as its own process ([`cfhost_mail::Mailer`]), any number side
//! by side on one queue; and its dead letters, listed or put back.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use cfhost_store::{Claims, FilesStore, PgStore, Store};

use crate::config::{Config, Flags};

/// The command's arguments.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Configuration file (TOML); its [mailer] section.
    #[arg(long, env = "CFHOST_CONFIG")]
    pub config: Option<PathBuf>,
    /// The data directory `serve` uses: accounts and their templates, and the sent log in its
    /// `mailer/` (default ./data); with [store] url, PostgreSQL holds all three instead.
    #[arg(long, env = "CFHOST_DATA_DIR")]
    pub data: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<MailerCommand>,
}

/// What to do instead of running.
#[derive(Debug, clap::Subcommand)]
pub enum MailerCommand {
    /// The notifications given up on, with their reasons (JSON lines on stdout).
    #[command(subcommand)]
    DeadLetters(DeadLetters),
}

#[derive(Debug, clap::Subcommand)]
pub enum DeadLetters {
    /// Print them; they stay where they are.
    List,
    /// Put every one back in the queue, to be tried again.
    Requeue,
}

pub async fn run(options: Options) -> anyhow::Result<ExitCode> {
    let flags = Flags {
        data_dir: options.data,
        ..Flags::default()
    };
    let config = Config::load(options.config.as_deref(), flags)?;
    let mailer = config.mailer;
    let data = config.serve.data_dir;
    let store_settings = config.store.postgres();
    match options.command {
        Some(MailerCommand::DeadLetters(command)) => {
            let url = mailer
                .amqp
                .as_deref()
                .context("[mailer] amqp is not set (amqp://user:pass@host:port/vhost)")?;
            match command {
                DeadLetters::List => {
                    let letters = cfhost_mail::queues::list_dead_letters(url, &mailer.queue)
                        .await
                        .context("cannot list the dead letters")?;
                    for letter in &letters {
                        println!("{}", serde_json::to_string(letter)?);
                    }
                    eprintln!("{} dead letters", letters.len());
                }
                DeadLetters::Requeue => {
                    let moved = cfhost_mail::queues::requeue_dead_letters(url, &mailer.queue)
                        .await
                        .context("cannot requeue the dead letters")?;
                    eprintln!("{moved} dead letters put back in {}", mailer.queue);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        None => {
            // With PostgreSQL, accounts and templates are read from it and what was sent is
            // claimed in it, so that mailers on several machines send each email once.
            let (store, claims): (Arc<dyn Store>, Option<Arc<dyn Claims>>) = match store_settings {
                Some(settings) => {
                    let store = Arc::new(
                        PgStore::connect(&settings)
                            .await
                            .context("cannot open the store ([store] url)")?,
                    );
                    eprintln!("cfhost mailer: store {}", store.describe());
                    (store.clone(), Some(store))
                }
                None => (Arc::new(FilesStore::new(&data)), None),
            };
            let service = Arc::new(cfhost_mail::Mailer::new(mailer, &data, store, claims)?);
            let (stop, stopped) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                super::serve::termination_signal().await;
                let _ = stop.send(true);
            });
            eprintln!("cfhost mailer: running on {}", data.display());
            service.run(stopped).await;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_host_declares_the_queue_the_mailer_consumes() {
        assert_eq!(
            cfhost_core::notify::MAILER_QUEUE,
            cfhost_mail::config::MAILER_QUEUE
        );
        assert_eq!(
            cfhost_core::notify::MAILER_ROUTING_KEYS,
            [
                cfhost_mail::Kind::MissedCall.routing_key(),
                cfhost_mail::Kind::CfNotification.routing_key()
            ]
        );
    }
}
