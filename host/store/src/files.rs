//! Files in the data and module directories: names that cannot escape a directory, and writes
//! that readers never see half of.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The longest plain name: with an extension it still fits a file name (255 bytes).
pub const MAX_NAME_LEN: usize = 128;

/// Whether `name` can name a file in a directory without leaving it: 1 to [`MAX_NAME_LEN`]
/// letters, digits, `-` and `_` (account ids, callflow ids and module names).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The prefix of the temporary files [`write_atomically`] writes (tempfile's).
const TEMPORARY_PREFIX: &str = ".tmp";

/// Removes the temporary files that writes cut short (a kill during a `PUT`) left under
/// `root`, at most `depth` directories down, and returns their paths. Run it before anything
/// writes there.
pub fn remove_leftover_temporaries(root: &Path, depth: usize) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return removed;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() && depth > 0 {
            removed.extend(remove_leftover_temporaries(&path, depth - 1));
        } else if kind.is_file()
            && entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.starts_with(TEMPORARY_PREFIX))
            && std::fs::remove_file(&path).is_ok()
        {
            removed.push(path);
        }
    }
    removed
}

/// Writes `bytes` to a temporary file beside `path`, syncs it to disk and renames it into
/// place (creating the directory if needed): a reader sees the old file or the new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temporary = tempfile::NamedTempFile::new_in(dir)?;
    temporary.write_all(bytes)?;
    temporary.as_file().sync_all()?;
    temporary.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod leftover_tests {
    use super::*;

    #[test]
    fn leftover_temporaries_are_removed_and_documents_kept() {
        let root = tempfile::tempdir().unwrap();
        let callflows = root.path().join("acme/callflows");
        std::fs::create_dir_all(&callflows).unwrap();
        write_atomically(&callflows.join("main.json"), b"{}").unwrap();
        let leftover = callflows.join(".tmpAbC123");
        std::fs::write(&leftover, b"half a docu").unwrap();
        assert_eq!(remove_leftover_temporaries(root.path(), 3), [leftover]);
        assert!(callflows.join("main.json").exists());
        assert!(remove_leftover_temporaries(root.path(), 3).is_empty());
    }
}
