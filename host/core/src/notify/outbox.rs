//! A durable, bounded, in-order outbox for notifications on their way to a broker.
//!
//! Records are appended as JSON lines (`{"seq", "exchange", "routing_key", "payload"}`) to
//! `outbox.log`
//! and flushed to disk before [`Outbox::append`] returns, so a notification a module was told
//! is published survives a crash. The delivery side takes records in order from the front and
//! marks them delivered once the broker confirmed them; the watermark is kept in `delivered`
//! (replaced atomically, not flushed: losing it in a power cut causes re-delivery, not loss).
//! After a crash, records past the watermark are delivered again (at least once; each keeps
//! its `Msg-ID`, so consumers can de-duplicate). When everything is delivered the log is
//! truncated. A line cut short by a crash was never acknowledged to its module and is skipped.
//!
//! One writer thread does the disk work: it takes every record queued since its last flush,
//! writes them with one call and flushes once (group commit), so concurrent calls share flushes
//! and the async runtime never waits on the disk.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use serde::Deserialize;
use serde_json::value::RawValue;

use super::OutboundNotification;

const LOG_FILE: &str = "outbox.log";
const DELIVERED_FILE: &str = "delivered";
/// Truncate the log once it is fully delivered and larger than this.
const COMPACT_AT_BYTES: u64 = 1 << 20;
/// How long the writer gathers records before a flush while appends are concurrent.
const GATHER_DELAY: std::time::Duration = std::time::Duration::from_micros(200);

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

/// A notification waiting for the broker, serialized once.
#[derive(Debug, PartialEq, Eq)]
pub struct Pending {
    /// Its place in the outbox; delivery is in this order.
    pub seq: u64,
    pub exchange: String,
    pub routing_key: String,
    /// The payload's `Msg-ID`.
    pub msg_id: Option<String>,
    /// The payload as JSON, exactly as it is published.
    pub body: Vec<u8>,
}

impl Pending {
    fn new(seq: u64, notification: &OutboundNotification) -> Self {
        Pending {
            seq,
            exchange: notification.exchange.clone(),
            routing_key: notification.routing_key.clone(),
            msg_id: notification
                .payload
                .get("Msg-ID")
                .and_then(|id| id.as_str())
                .map(str::to_string),
            body: serde_json::to_vec(&notification.payload).expect("a JSON object serializes"),
        }
    }

    /// The record's line in `outbox.log`, newline included.
    fn line(&self) -> Vec<u8> {
        let mut line = Vec::with_capacity(self.body.len() + 128);
        line.extend_from_slice(format!("{{\"seq\":{},\"exchange\":", self.seq).as_bytes());
        serde_json::to_writer(&mut line, &self.exchange).expect("writing to memory");
        line.extend_from_slice(b",\"routing_key\":");
        serde_json::to_writer(&mut line, &self.routing_key).expect("writing to memory");
        line.extend_from_slice(b",\"payload\":");
        line.extend_from_slice(&self.body);
        line.extend_from_slice(b"}\n");
        line
    }

    /// Reads a line of `outbox.log`.
    fn parse(line: &str) -> Result<Pending, serde_json::Error> {
        #[derive(Deserialize)]
        struct Record<'a> {
            seq: u64,
            exchange: String,
            routing_key: String,
            #[serde(borrow)]
            payload: &'a RawValue,
        }
        #[derive(Deserialize)]
        struct Ids {
            #[serde(rename = "Msg-ID")]
            msg_id: Option<String>,
        }
        let record: Record = serde_json::from_str(line)?;
        let ids: Ids = serde_json::from_str(record.payload.get())?;
        Ok(Pending {
            seq: record.seq,
            exchange: record.exchange,
            routing_key: record.routing_key,
            msg_id: ids.msg_id,
            body: record.payload.get().as_bytes().to_vec(),
        })
    }
}

/// What the outbox holds, shared by appenders, the writer thread and delivery.
struct State {
    /// On disk, not yet delivered, in order.
    pending: VecDeque<Arc<Pending>>,
    /// Handed to the writer, not yet on disk.
    queued: usize,
    next_seq: u64,
    delivered_through: u64,
    log_len: u64,
}

struct WriteRequest {
    record: Arc<Pending>,
    /// The write's outcome; one disk error answers a whole batch, so it travels as its kind
    /// and text (an `io::Error` cannot be cloned).
    done: tokio::sync::oneshot::Sender<Result<(), (std::io::ErrorKind, String)>>,
}

/// The durable outbox.
pub struct Outbox {
    dir: PathBuf,
    capacity: usize,
    shared: Arc<Shared>,
    writer: Mutex<mpsc::Sender<WriteRequest>>,
}

struct Shared {
    state: Mutex<State>,
    file: Mutex<File>,
    /// Signalled when records reach the disk.
    appended: tokio::sync::Notify,
    /// Signalled when records are marked delivered.
    delivered: tokio::sync::Notify,
    /// How many times the writer flushed records to disk.
    syncs: AtomicU64,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn file(&self) -> std::sync::MutexGuard<'_, File> {
        self.file.lock().unwrap_or_else(|e| e.into_inner())
    }
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
                match Pending::parse(&line) {
                    Ok(record) => {
                        last_seq = last_seq.max(record.seq);
                        if record.seq > delivered_through {
                            pending.push_back(Arc::new(record));
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
        let log_len = file.metadata().map_err(io(&log_path))?.len();
        if !pending.is_empty() {
            tracing::info!(
                "{}: {} undelivered notifications from an earlier run",
                log_path.display(),
                pending.len()
            );
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pending,
                queued: 0,
                next_seq: last_seq + 1,
                delivered_through,
                log_len,
            }),
            file: Mutex::new(file),
            appended: tokio::sync::Notify::new(),
            delivered: tokio::sync::Notify::new(),
            syncs: AtomicU64::new(0),
        });
        let (writer, requests) = mpsc::channel();
        let writer_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("cfhost-outbox".into())
            .spawn(move || write_loop(&writer_shared, &requests))
            .map_err(io(&log_path))?;
        Ok(Outbox {
            dir: dir.to_path_buf(),
            capacity,
            shared,
            writer: Mutex::new(writer),
        })
    }

    /// Where the outbox lives.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many records wait for delivery.
    pub fn len(&self) -> usize {
        self.shared.state().pending.len()
    }

    /// How many times records were flushed to disk since the outbox opened; each flush
    /// covers every record queued meanwhile (group commit).
    pub fn syncs(&self) -> u64 {
        self.shared.syncs.load(Ordering::Relaxed)
    }

    /// Whether every record was delivered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a notification; returns its sequence number once it is on disk.
    pub async fn append(&self, notification: &OutboundNotification) -> Result<u64, OutboxError> {
        let (done, flushed) = tokio::sync::oneshot::channel();
        let seq = {
            let mut state = self.shared.state();
            if state.pending.len() + state.queued >= self.capacity {
                return Err(OutboxError::Full {
                    dir: self.dir.clone(),
                    capacity: self.capacity,
                });
            }
            let seq = state.next_seq;
            state.next_seq += 1;
            state.queued += 1;
            // Sent while holding the state lock, so the writer sees records in seq order.
            let write = WriteRequest {
                record: Arc::new(Pending::new(seq, notification)),
                done,
            };
            let sent = self
                .writer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .send(write);
            if sent.is_err() {
                state.queued -= 1;
                return Err(self.writer_gone());
            }
            seq
        };
        match flushed.await {
            Ok(Ok(())) => Ok(seq),
            Ok(Err((kind, message))) => Err(OutboxError::Io {
                path: self.dir.join(LOG_FILE),
                source: std::io::Error::new(kind, message),
            }),
            Err(_) => Err(self.writer_gone()),
        }
    }

    fn writer_gone(&self) -> OutboxError {
        OutboxError::Io {
            path: self.dir.join(LOG_FILE),
            source: std::io::Error::other("the outbox writer thread stopped"),
        }
    }

    /// Up to `max` undelivered records that come after `seq`, oldest first (`seq` 0: from the
    /// oldest).
    pub fn after(&self, seq: u64, max: usize) -> Vec<Arc<Pending>> {
        let state = self.shared.state();
        let start = state.pending.partition_point(|p| p.seq <= seq);
        state.pending.range(start..).take(max).cloned().collect()
    }

    /// Waits until a record is on disk (returns at once if some are pending).
    pub async fn wait_for_pending(&self) {
        loop {
            let appended = self.shared.appended.notified();
            if !self.is_empty() {
                return;
            }
            appended.await;
        }
    }

    /// Waits until records reach the disk after the last call of this method or of
    /// [`Outbox::wait_for_pending`] (returns at once if some did meanwhile). For the one
    /// delivery task.
    pub async fn wait_for_append(&self) {
        self.shared.appended.notified().await;
    }

    /// Waits until every record is delivered.
    pub async fn wait_until_empty(&self) {
        loop {
            let delivered = self.shared.delivered.notified();
            if self.is_empty() {
                return;
            }
            delivered.await;
        }
    }

    /// Marks every record up to `seq` delivered and persists the watermark; truncates the log
    /// when everything written was delivered and it grew large.
    pub fn mark_delivered(&self, seq: u64) -> Result<(), OutboxError> {
        let mut state = self.shared.state();
        while state.pending.front().is_some_and(|p| p.seq <= seq) {
            state.pending.pop_front();
        }
        state.delivered_through = state.delivered_through.max(seq);
        let path = self.dir.join(DELIVERED_FILE);
        let tmp = self.dir.join(format!("{DELIVERED_FILE}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&tmp)?;
            writeln!(file, "{}", state.delivered_through)?;
            // Not flushed: a watermark lost in a power cut only means records delivered again
            // (with their Msg-IDs), never records lost. The rename keeps the file whole.
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|source| OutboxError::Io {
            path: path.clone(),
            source,
        })?;
        // With nothing pending or queued (checked under the state lock, which appenders need),
        // no record can be written while the log is cut.
        if state.pending.is_empty() && state.queued == 0 && state.log_len > COMPACT_AT_BYTES {
            self.shared
                .file()
                .set_len(0)
                .map_err(|source| OutboxError::Io {
                    path: self.dir.join(LOG_FILE),
                    source,
                })?;
            state.log_len = 0;
        }
        drop(state);
        self.shared.delivered.notify_waiters();
        Ok(())
    }
}

/// The writer thread: writes every queued record with one call, flushes once, then makes the
/// records pending and tells their appenders. Ends when the outbox is dropped.
fn write_loop(shared: &Shared, requests: &mpsc::Receiver<WriteRequest>) {
    let mut last_batch = 0;
    while let Ok(first) = requests.recv() {
        // Concurrent appenders released by the last flush come back within microseconds;
        // waiting for them briefly makes the next flush cover them too (group commit delay,
        // only under concurrency, so a lone call never waits).
        if last_batch > 1 {
            std::thread::sleep(GATHER_DELAY);
        }
        let mut batch = vec![first];
        batch.extend(requests.try_iter());
        last_batch = batch.len();
        let mut bytes = Vec::new();
        for write in &batch {
            bytes.extend_from_slice(&write.record.line());
        }
        let result = {
            let mut file = shared.file();
            file.write_all(&bytes).and_then(|()| file.sync_data())
        };
        shared.syncs.fetch_add(1, Ordering::Relaxed);
        let mut state = shared.state();
        state.queued -= batch.len();
        if result.is_ok() {
            state.log_len += bytes.len() as u64;
            state
                .pending
                .extend(batch.iter().map(|write| Arc::clone(&write.record)));
        }
        drop(state);
        if result.is_ok() {
            shared.appended.notify_one();
        }
        for write in batch {
            let _ = write.done.send(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| (e.kind(), e.to_string())),
            );
        }
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

    #[tokio::test]
    async fn undelivered_records_survive_a_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), 10).unwrap();
        for n in 1..=4 {
            assert_eq!(outbox.append(&notification(n)).await.unwrap(), n);
        }
        outbox.mark_delivered(2).unwrap();
        drop(outbox);
        let reopened = Outbox::open(dir.path(), 10).unwrap();
        let front = reopened.after(0, 10);
        assert_eq!(front.iter().map(|p| p.seq).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(*front[0], Pending::new(3, &notification(3)));
        assert_eq!(
            front[0].msg_id.as_deref(),
            Some("00000000000000000000000000000003")
        );
        assert_eq!(reopened.after(3, 10).len(), 1);
        assert_eq!(reopened.append(&notification(5)).await.unwrap(), 5);
    }

    #[tokio::test]
    async fn a_line_cut_short_by_a_crash_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), 10).unwrap();
        outbox.append(&notification(1)).await.unwrap();
        drop(outbox);
        let mut log = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG_FILE))
            .unwrap();
        log.write_all(br#"{"seq": 2, "exchange": "notifi"#).unwrap();
        let reopened = Outbox::open(dir.path(), 10).unwrap();
        assert_eq!(reopened.len(), 1);
    }

    #[tokio::test]
    async fn a_full_outbox_refuses_clearly_and_takes_more_once_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), 2).unwrap();
        outbox.append(&notification(1)).await.unwrap();
        outbox.append(&notification(2)).await.unwrap();
        let err = outbox.append(&notification(3)).await.unwrap_err();
        assert!(err.to_string().contains("is full (2 undelivered"), "{err}");
        outbox.mark_delivered(1).unwrap();
        assert_eq!(outbox.append(&notification(3)).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_fully_delivered_large_log_is_truncated_and_numbering_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), 100_000).unwrap();
        let mut last = 0;
        while std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len() <= COMPACT_AT_BYTES {
            last = outbox.append(&notification(last + 1)).await.unwrap();
        }
        outbox.mark_delivered(last).unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len(),
            0
        );
        drop(outbox);
        let reopened = Outbox::open(dir.path(), 10).unwrap();
        assert!(reopened.is_empty());
        assert_eq!(reopened.append(&notification(0)).await.unwrap(), last + 1);
    }
}
