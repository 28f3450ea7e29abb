//! Files in the data and module directories: names that cannot escape a directory, and writes
//! that readers never see half of.

use std::io::Write;
use std::path::Path;

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
