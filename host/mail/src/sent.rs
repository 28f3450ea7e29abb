//! What was sent, kept on disk so that a notification delivered twice (the host is
//! at-least-once; a mailer that dies before its ack has the broker deliver again, maybe to
//! another mailer) is emailed once.
//!
//! Each mailer appends the identities it sent (64 hex digits and a newline each) to a log file
//! of its own in the directory, `<started>-<pid>.log`, after the SMTP server accepted the
//! email and before the ack. A thread of its own writes what is waiting in one `write` and
//! one `fdatasync`, so that 64 emails in flight cost one sync, not 64, and the async runtime
//! never waits on the disk. Every log of the directory is read at start, and the other
//! mailers' logs again (what they appended since) before each check, so a notification one
//! mailer sent is known to all. Logs last written longer ago than the retention are removed
//! at start.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;

/// Records waiting at most for one sync.
const BATCH: usize = 1024;
/// An identity's line: 64 hex digits and a newline.
const LINE: usize = 65;

type Request = (String, oneshot::Sender<Result<(), String>>);

/// The record of sent notifications.
#[derive(Debug, Clone)]
pub struct SentLog {
    dir: PathBuf,
    own: PathBuf,
    known: Arc<Mutex<Known>>,
    writer: mpsc::Sender<Request>,
}

/// The identities read so far, and how far each other log was read.
#[derive(Debug, Default)]
struct Known {
    sent: HashSet<String>,
    read: HashMap<PathBuf, u64>,
}

impl SentLog {
    /// The record in `dir` (created if missing): every log there read, logs older than
    /// `retention` removed, and a log of this process's own opened.
    pub fn open(dir: &Path, retention: Duration) -> std::io::Result<SentLog> {
        std::fs::create_dir_all(dir)?;
        let cutoff = SystemTime::now()
            .checked_sub(retention)
            .unwrap_or(UNIX_EPOCH);
        for entry in std::fs::read_dir(dir)?.filter_map(Result::ok) {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified < cutoff);
            if old && is_log(&entry.path()) {
                std::fs::remove_file(entry.path())?;
            }
        }
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let own = dir.join(format!("{started}-{}.log", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&own)?;
        let known = Arc::new(Mutex::new(Known::default()));
        let (writer, requests) = mpsc::channel::<Request>();
        let recorded = Arc::clone(&known);
        std::thread::Builder::new()
            .name("sent-log".into())
            .spawn(move || write_batches(file, &requests, &recorded))?;
        let log = SentLog {
            dir: dir.to_path_buf(),
            own,
            known,
            writer,
        };
        log.catch_up()?;
        Ok(log)
    }

    /// Reads what the other logs gained since they were last read.
    fn catch_up(&self) -> std::io::Result<()> {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        for entry in std::fs::read_dir(&self.dir)?.filter_map(Result::ok) {
            let path = entry.path();
            if path == self.own || !is_log(&path) {
                continue;
            }
            let from = known.read.get(&path).copied().unwrap_or(0);
            let Ok(length) = entry.metadata().map(|m| m.len()) else {
                continue;
            };
            if length <= from {
                continue;
            }
            let mut file = std::fs::File::open(&path)?;
            file.seek(SeekFrom::Start(from))?;
            let mut text = String::new();
            file.read_to_string(&mut text)?;
            // Whole lines only: the other mailer may be in the middle of one.
            let whole = text.len() - text.len() % LINE;
            for identity in text[..whole].lines() {
                known.sent.insert(identity.to_string());
            }
            known.read.insert(path, from + whole as u64);
        }
        Ok(())
    }

    /// Whether `identity` was sent, by this mailer or another sharing the directory.
    pub fn contains(&self, identity: &str) -> bool {
        if let Err(e) = self.catch_up() {
            tracing::warn!("mailer: cannot read the other mailers' sent logs: {e}");
        }
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.sent.contains(identity)
    }

    /// Records that `identity` (64 hex digits) was sent; returns once it is on disk.
    pub async fn record(&self, identity: &str) -> std::io::Result<()> {
        if identity.len() != LINE - 1 || !identity.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(std::io::Error::other(format!(
                "`{identity}` is not an identity"
            )));
        }
        let (done, written) = oneshot::channel();
        let stopped = || std::io::Error::other("the sent log's writer stopped");
        self.writer
            .send((identity.to_string(), done))
            .map_err(|_| stopped())?;
        match written.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(std::io::Error::other(message)),
            Err(_) => Err(stopped()),
        }
    }
}

fn is_log(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "log")
}

/// The writer: takes what is waiting, appends it in one write, syncs once, then answers.
fn write_batches(
    mut file: std::fs::File,
    requests: &mpsc::Receiver<Request>,
    known: &Mutex<Known>,
) {
    while let Ok(first) = requests.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let mut text = String::with_capacity(batch.len() * LINE);
        for (identity, _) in &batch {
            text.push_str(identity);
            text.push('\n');
        }
        let result = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| e.to_string());
        if result.is_ok() {
            let mut known = known.lock().unwrap_or_else(|e| e.into_inner());
            known
                .sent
                .extend(batch.iter().map(|(identity, _)| identity.clone()));
        }
        for (_, done) in batch {
            let _ = done.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn identity(n: usize) -> String {
        format!("{n:064x}")
    }

    #[tokio::test]
    async fn a_record_survives_reopening_and_other_mailers_see_it() {
        let dir = tempfile::tempdir().unwrap();
        let one = SentLog::open(dir.path(), DAY).unwrap();
        let other = SentLog::open(dir.path(), DAY).unwrap();
        assert!(!one.contains(&identity(1)));
        one.record(&identity(1)).await.unwrap();
        assert!(one.contains(&identity(1)));
        assert!(
            other.contains(&identity(1)),
            "another mailer sees it at once"
        );
        let reopened = SentLog::open(dir.path(), DAY).unwrap();
        assert!(reopened.contains(&identity(1)));
        assert!(one.record("../etc").await.is_err());
    }

    #[tokio::test]
    async fn records_made_at_once_are_all_written_and_old_logs_removed() {
        let dir = tempfile::tempdir().unwrap();
        let log = SentLog::open(dir.path(), DAY).unwrap();
        let writes = (0..200).map(|n| {
            let log = log.clone();
            async move { log.record(&identity(n)).await }
        });
        for result in futures::future::join_all(writes).await {
            result.unwrap();
        }
        let text = std::fs::read_to_string(&log.own).unwrap();
        assert_eq!(text.len(), 200 * LINE);
        assert!((0..200).all(|n| log.contains(&identity(n))));
        std::thread::sleep(Duration::from_millis(20));
        let fresh = SentLog::open(dir.path(), Duration::from_millis(10)).unwrap();
        assert!(
            !fresh.contains(&identity(0)),
            "a log past the retention is removed"
        );
    }
}
