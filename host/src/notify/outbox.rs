//! A durable, bounded, in-order outbox for notifications on their way to a broker.
//!
//! Records are appended as JSON lines (`{"seq": N, "notification": {...}}`) to `outbox.log`
//! and flushed to disk before [`Outbox::append`] returns, so a notification a module was told
//! is published survives a crash. The delivery side takes records in order from the front and
//! marks them delivered once the broker confirmed them; the watermark is kept in `delivered`.
//! After a crash, records past the watermark are delivered again (at least once; each keeps
//! its `Msg-ID`, so consumers can de-duplicate). When everything is delivered the log is
//! truncated. A line cut short by a crash was never acknowledged to its module and is skipped.
//!
//! Concurrent appenders share flushes (group commit): an append whose line an earlier flush
//! already covered does not flush again.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::OutboundNotification;

const LOG_FILE: &str = "outbox.log";
const DELIVERED_FILE: &str = "delivered";
/// Truncate the log once it is fully delivered and larger than this.
const COMPACT_AT_BYTES: u64 = 1 << 20;

/// The outbox could not take or keep a notification.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("the notification outbox at {dir} is full ({capacity} undelivered notifications)")]
    Full { dir: PathBuf, capacity: usize },
    #[error("notification outbox {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Serialize, Deserialize)]
struct Record {
    seq: u64,
    notification: OutboundNotification,
}

struct Log {
    file: File,
    len: u64,
    next_seq: u64,
    written_through: u64,
    pending: VecDeque<(u64, OutboundNotification)>,
    delivered_through: u64,
}

/// The durable outbox.
pub struct Outbox {
    dir: PathBuf,
    capacity: usize,
    log: Mutex<Log>,
    /// The highest sequence number known to be on disk.
    synced_through: Mutex<u64>,
    /// Signalled when a record is appended.
    appended: tokio::sync::Notify,
    /// Signalled when records are marked delivered.
    delivered: tokio::sync::Notify,
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir`, holding at most `capacity` undelivered records.
    /// Records left undelivered by an earlier run are pending again.
    pub fn open(dir: &Path, capacity: usize) -> Result<Outbox, OutboxError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| OutboxError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let delivered_path = dir.join(DELIVERED_FILE);
        let delivered_through = match std::fs::read_to_string(&delivered_path) {
            Ok(text) => text.trim().parse().unwrap_or(0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io(&delivered_path)(e)),
        };
        let log_path = dir.join(LOG_FILE);
        let mut pending = VecDeque::new();
        let mut last_seq = delivered_through;
        if let Ok(file) = File::open(&log_path) {
            for line in BufReader::new(file).lines() {
                let line = line.map_err(io(&log_path))?;
                match serde_json::from_str::<Record>(&line) {
                    Ok(record) => {
                        last_seq = last_seq.max(record.seq);
                        if record.seq > delivered_through {
                            pending.push_back((record.seq, record.notification));
                        }
                    }
                    Err(e) => tracing::warn!(
                        "{}: skipping a record cut short by a crash: {e}",
                        log_path.display()
                    ),
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(&log_path))?;
        let len = file.metadata().map_err(io(&log_path))?.len();
        if !pending.is_empty() {
            tracing::info!(
                "{}: {} undelivered notifications from an earlier run",
                log_path.display(),
                pending.len()
            );
        }
        Ok(Outbox {
            dir: dir.to_path_buf(),
            capacity,
            log: Mutex::new(Log {
                file,
                len,
                next_seq: last_seq + 1,
                written_through: last_seq,
                pending,
                delivered_through,
            }),
            synced_through: Mutex::new(last_seq),
            appended: tokio::sync::Notify::new(),
            delivered: tokio::sync::Notify::new(),
        })
    }

    /// Where the outbox lives.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many records wait for delivery.
    pub fn len(&self) -> usize {
        self.lock().pending.len()
    }

    /// Whether every record was delivered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn io_error(&self, source: std::io::Error) -> OutboxError {
        OutboxError::Io {
            path: self.dir.join(LOG_FILE),
            source,
        }
    }

    /// Appends a notification and flushes it to disk; returns its sequence number. Blocks on
    /// the disk: call it off the async runtime's threads.
    pub fn append(&self, notification: &OutboundNotification) -> Result<u64, OutboxError> {
        let seq = {
            let mut log = self.lock();
            if log.pending.len() >= self.capacity {
                return Err(OutboxError::Full {
                    dir: self.dir.clone(),
                    capacity: self.capacity,
                });
            }
            let seq = log.next_seq;
            let record = Record {
                seq,
                notification: notification.clone(),
            };
            let mut line = serde_json::to_vec(&record).map_err(|e| self.io_error(e.into()))?;
            line.push(b'\n');
            log.file.write_all(&line).map_err(|e| self.io_error(e))?;
            log.len += line.len() as u64;
            log.next_seq += 1;
            log.written_through = seq;
            log.pending.push_back((seq, notification.clone()));
            seq
        };
        self.sync_through(seq)?;
        self.appended.notify_one();
        Ok(seq)
    }

    /// Makes sure record `seq` is on disk, flushing unless a concurrent flush covered it.
    fn sync_through(&self, seq: u64) -> Result<(), OutboxError> {
        let mut synced = self
            .synced_through
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if *synced >= seq {
            return Ok(());
        }
        let (file, written) = {
            let log = self.lock();
            (
                log.file.try_clone().map_err(|e| self.io_error(e))?,
                log.written_through,
            )
        };
        file.sync_data().map_err(|e| self.io_error(e))?;
        *synced = written;
        Ok(())
    }

    /// Up to `max` undelivered records, oldest first.
    pub fn front(&self, max: usize) -> Vec<(u64, OutboundNotification)> {
        self.lock().pending.iter().take(max).cloned().collect()
    }

    /// Waits until a record is appended (returns at once if some are pending).
    pub async fn wait_for_pending(&self) {
        loop {
            let appended = self.appended.notified();
            if !self.is_empty() {
                return;
            }
            appended.await;
        }
    }

    /// Waits until every record is delivered.
    pub async fn wait_until_empty(&self) {
        loop {
            let delivered = self.delivered.notified();
            if self.is_empty() {
                return;
            }
            delivered.await;
        }
    }

    /// Marks every record up to `seq` delivered and persists the watermark.
    pub fn mark_delivered(&self, seq: u64) -> Result<(), OutboxError> {
        let mut log = self.lock();
        while log.pending.front().is_some_and(|(s, _)| *s <= seq) {
            log.pending.pop_front();
        }
        log.delivered_through = log.delivered_through.max(seq);
        let path = self.dir.join(DELIVERED_FILE);
        let tmp = self.dir.join(format!("{DELIVERED_FILE}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&tmp)?;
            writeln!(file, "{}", log.delivered_through)?;
            file.sync_data()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|source| OutboxError::Io {
            path: path.clone(),
            source,
        })?;
        if log.pending.is_empty() && log.len > COMPACT_AT_BYTES {
            log.file.set_len(0).map_err(|e| self.io_error(e))?;
            log.len = 0;
        }
        drop(log);
        self.delivered.notify_waiters();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn notification(n: u64) -> OutboundNotification {
        OutboundNotification {
            exchange: "notifications".into(),
            routing_key: "notifications.sip.missed_call".into(),
            payload: json!({"Msg-ID": format!("{n:032x}")})
                .as_object()
                .unwrap()
                .clone(),
        }
    }

    #[test]
    fn undelivered_records_survive_a_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), 10).unwrap();
        for n in 1..=4 {
            assert_eq!(outbox.append(&notification(n)).unwrap(), n);
        }
        outbox.mark_delivered(2).unwrap();
        drop(outbox);
        let reopened = Outbox::open(dir.path(), 10).unwrap();
        let front = reopened.front(10);
        assert_eq!(front.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(front[0].1, notification(3));
        assert_eq!(reopened.append(&notification(5)).unwrap(), 5);
    }

    #[test]
    fn a_line_cut_short_by_a_crash_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), 10).unwrap();
        outbox.append(&notification(1)).unwrap();
        drop(outbox);
        let mut log = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG_FILE))
            .unwrap();
        log.write_all(br#"{"seq": 2, "notifica"#).unwrap();
        let reopened = Outbox::open(dir.path(), 10).unwrap();
        assert_eq!(reopened.len(), 1);
    }

    #[test]
    fn a_full_outbox_refuses_clearly_and_takes_more_once_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), 2).unwrap();
        outbox.append(&notification(1)).unwrap();
        outbox.append(&notification(2)).unwrap();
        let err = outbox.append(&notification(3)).unwrap_err();
        assert!(err.to_string().contains("is full (2 undelivered"), "{err}");
        outbox.mark_delivered(1).unwrap();
        assert_eq!(outbox.append(&notification(3)).unwrap(), 3);
    }

    #[test]
    fn a_fully_delivered_large_log_is_truncated_and_numbering_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), 100_000).unwrap();
        let mut last = 0;
        while std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len() <= COMPACT_AT_BYTES {
            last = outbox.append(&notification(last + 1)).unwrap();
        }
        outbox.mark_delivered(last).unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len(),
            0
        );
        drop(outbox);
        let reopened = Outbox::open(dir.path(), 10).unwrap();
        assert!(reopened.is_empty());
        assert_eq!(reopened.append(&notification(0)).unwrap(), last + 1);
    }
}
