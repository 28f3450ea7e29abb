//! What was sent, kept on disk so that a notification delivered twice (the host is
//! at-least-once; a mailer that dies before its ack has the broker deliver again, maybe to
//! another mailer) is emailed once. One small file per notification identity, under
//! `<dir>/<first two hex digits>/<identity>`, written whole (a temporary file renamed, then
//! synced) after the SMTP server accepted the email and before the ack; every mailer sharing
//! the directory sees it. Records older than the retention are removed at start.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The record of sent notifications.
#[derive(Debug, Clone)]
pub struct SentLog {
    dir: PathBuf,
}

impl SentLog {
    /// The record in `dir`, created if missing.
    pub fn open(dir: &Path) -> std::io::Result<SentLog> {
        std::fs::create_dir_all(dir)?;
        Ok(SentLog {
            dir: dir.to_path_buf(),
        })
    }

    fn file(&self, identity: &str) -> PathBuf {
        let shard = identity.get(..2).unwrap_or("__");
        self.dir.join(shard).join(identity)
    }

    /// Whether `identity` was sent.
    pub fn contains(&self, identity: &str) -> bool {
        self.file(identity).exists()
    }

    /// Records that `identity` was sent as `message_id`, durably.
    pub fn record(&self, identity: &str, message_id: &str) -> std::io::Result<()> {
        let file = self.file(identity);
        let dir = file.parent().expect("a record has a directory");
        std::fs::create_dir_all(dir)?;
        let mut temporary = tempfile::NamedTempFile::new_in(dir)?;
        temporary.write_all(message_id.as_bytes())?;
        temporary.as_file().sync_all()?;
        temporary.persist(&file).map_err(|e| e.error)?;
        std::fs::File::open(dir)?.sync_all()
    }

    /// Removes the records older than `retention`; says how many.
    pub fn prune(&self, retention: Duration) -> std::io::Result<usize> {
        let cutoff = SystemTime::now()
            .checked_sub(retention)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut removed = 0;
        for shard in std::fs::read_dir(&self.dir)? {
            let shard = shard?.path();
            let Ok(entries) = std::fs::read_dir(&shard) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|modified| modified < cutoff);
                if old && std::fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_reopening_and_is_pruned_when_old() {
        let dir = tempfile::tempdir().unwrap();
        let identity = "ab".repeat(32);
        let log = SentLog::open(dir.path()).unwrap();
        assert!(!log.contains(&identity));
        log.record(&identity, "<x@y>").unwrap();
        let reopened = SentLog::open(dir.path()).unwrap();
        assert!(reopened.contains(&identity));
        assert_eq!(reopened.prune(Duration::from_secs(3600)).unwrap(), 0);
        assert_eq!(reopened.prune(Duration::ZERO).unwrap(), 1);
        assert!(!reopened.contains(&identity));
    }
}
