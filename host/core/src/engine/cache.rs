//! The on-disk cache of compiled components. Compiling a module takes milliseconds to tens of
//! milliseconds; mapping a precompiled `.cwasm` with [`Component::deserialize_file`] takes
//! tens of microseconds, which is what makes a cold start with cached modules fast.
//!
//! A file's path is `<dir>/<engine key>/<content key>.cwasm`: the engine key hashes
//! [`Engine::precompile_compatibility_hash`] (the wasmtime version, the target and every
//! engine setting that shapes compiled code: fuel, epochs, memory reservation, ...), the
//! content key is the SHA-256 of the component's bytes. Files are written to a temporary name
//! and renamed, so concurrent hosts never read half a file. A file that does not load (from
//! another build, truncated) is compiled again and replaced.
//!
//! The cache is bounded: a file's modification time is set whenever it is used, and after a
//! new file is written only the `max_files` most recently used are kept. A module that is
//! refused has its file removed ([`ComponentCache::forget`]).
//!
//! Loading a `.cwasm` runs its machine code: the cache directory must be writable only by the
//! operator who runs the host, like the binary itself.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::files::write_atomically;

/// Compiled components on disk for one engine configuration.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
    max_files: usize,
}

/// Where a component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// Mapped from a `.cwasm` written earlier.
    Cached,
    /// Compiled now (and written to the cache if it could be).
    Compiled,
}

impl ComponentCache {
    /// The cache under `root` for components compiled by `engine`, keeping at most
    /// `max_files` of them.
    pub fn new(root: &Path, engine: &Engine, max_files: usize) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        ComponentCache {
            dir: root.join(format!("{:016x}", hasher.finish())),
            max_files: max_files.max(1),
        }
    }

    fn path(&self, bytes: &[u8]) -> PathBuf {
        self.dir.join(format!("{}.cwasm", content_key(bytes)))
    }

    /// Whether a compiled file of `bytes` is there.
    pub fn holds(&self, bytes: &[u8]) -> bool {
        self.path(bytes).exists()
    }

    /// Removes the compiled file of `bytes`, if there is one.
    pub fn forget(&self, bytes: &[u8]) {
        let path = self.path(bytes);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("{}: cannot remove: {e}", path.display());
        }
    }

    /// Removes the least recently used files past `max_files` (and temporary files left by
    /// a write that was cut short).
    fn evict(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else {
                continue;
            };
            if path.extension().is_some_and(|e| e == "cwasm") {
                files.push((modified, path));
            } else if modified.elapsed().is_ok_and(|age| age.as_secs() > 3600) {
                let _ = std::fs::remove_file(&path);
            }
        }
        if files.len() <= self.max_files {
            return;
        }
        files.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
        for (_, path) in files.drain(self.max_files..) {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!("{}: cannot evict: {e}", path.display());
            }
        }
    }

    /// The directory of this engine's compiled components.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The component of `bytes`: from the cache if it holds it, else compiled and cached. A
    /// cache that cannot be read or written is logged and bypassed, never an error.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, Provenance)> {
        let path = self.path(bytes);
        if path.exists() {
            // SAFETY: the file was written by `precompile_component` of an engine with the same
            // compatibility hash (its path says so) into a directory only the operator can
            // write (see the module docs); wasmtime checks its header and version.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => {
                    // Used now: the last to be evicted.
                    let touched = std::fs::File::options()
                        .append(true)
                        .open(&path)
                        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                    if let Err(e) = touched {
                        tracing::debug!("{}: cannot mark as used: {e}", path.display());
                    }
                    return Ok((component, Provenance::Cached));
                }
                Err(e) => tracing::warn!(
                    "{}: cached component does not load, compiling again: {e:#}",
                    path.display()
                ),
            }
        }
        let compiled = engine.precompile_component(bytes)?;
        match write_atomically(&path, &compiled) {
            Ok(()) => self.evict(),
            Err(e) => tracing::warn!(
                "{}: cannot cache the compiled component: {e}",
                path.display()
            ),
        }
        // SAFETY: `compiled` is what this engine's `precompile_component` just produced.
        let component = unsafe { Component::deserialize(engine, &compiled)? };
        Ok((component, Provenance::Compiled))
    }
}

/// The default cache root: `$CFHOST_CACHE_DIR`, else `$XDG_CACHE_HOME/cfhost/components`, else
/// `$HOME/.cache/cfhost/components`; `None` when none of them is set.
pub fn default_cache_root() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CFHOST_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))?;
    Some(base.join("cfhost").join("components"))
}

fn content_key(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(fuel: bool) -> Engine {
        let mut config = wasmtime::Config::new();
        config.consume_fuel(fuel);
        Engine::new(&config).unwrap()
    }

    const COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    #[test]
    fn compiles_once_then_maps_the_cached_file() {
        let root = tempfile::tempdir().unwrap();
        let engine = engine(false);
        let cache = ComponentCache::new(root.path(), &engine, 8);
        let (_, first) = cache.load_or_compile(&engine, COMPONENT).unwrap();
        let (_, second) = cache.load_or_compile(&engine, COMPONENT).unwrap();
        assert_eq!((first, second), (Provenance::Compiled, Provenance::Cached));
    }

    #[test]
    fn engine_settings_and_content_are_part_of_the_key() {
        let root = tempfile::tempdir().unwrap();
        let (plain, fueled) = (engine(false), engine(true));
        let plain_cache = ComponentCache::new(root.path(), &plain, 8);
        assert_ne!(
            plain_cache.dir(),
            ComponentCache::new(root.path(), &fueled, 8).dir()
        );
        assert_ne!(
            content_key(COMPONENT),
            content_key(b"\0asm\x0d\0\x01\0\0\0")
        );
    }

    #[test]
    fn a_corrupt_cached_file_is_compiled_again_and_replaced() {
        let root = tempfile::tempdir().unwrap();
        let engine = engine(false);
        let cache = ComponentCache::new(root.path(), &engine, 8);
        cache.load_or_compile(&engine, COMPONENT).unwrap();
        let file = std::fs::read_dir(cache.dir())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::write(&file, b"not a cwasm").unwrap();
        let (_, provenance) = cache.load_or_compile(&engine, COMPONENT).unwrap();
        assert_eq!(provenance, Provenance::Compiled);
        let (_, provenance) = cache.load_or_compile(&engine, COMPONENT).unwrap();
        assert_eq!(provenance, Provenance::Cached);
    }

    /// A minimal component with `n` in a custom section: distinct bytes, distinct files.
    fn component(n: u8) -> Vec<u8> {
        let mut bytes = COMPONENT.to_vec();
        bytes.extend_from_slice(&[0, 3, 1, b'n', n]);
        bytes
    }

    fn files(cache: &ComponentCache) -> usize {
        std::fs::read_dir(cache.dir()).unwrap().count()
    }

    #[test]
    fn the_least_recently_used_files_go_past_the_bound_and_forget_removes_one() {
        let root = tempfile::tempdir().unwrap();
        let engine = engine(false);
        let cache = ComponentCache::new(root.path(), &engine, 3);
        for n in 0..3 {
            cache.load_or_compile(&engine, &component(n)).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // Component 0 is used again: component 1 is now the least recently used.
        let (_, used) = cache.load_or_compile(&engine, &component(0)).unwrap();
        assert_eq!(used, Provenance::Cached);
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.load_or_compile(&engine, &component(3)).unwrap();
        assert_eq!(files(&cache), 3);
        let provenance = |n| cache.load_or_compile(&engine, &component(n)).unwrap().1;
        assert_eq!(provenance(0), Provenance::Cached);
        assert_eq!(provenance(3), Provenance::Cached);
        assert_eq!(
            provenance(1),
            Provenance::Compiled,
            "the oldest was evicted"
        );
        cache.forget(&component(1));
        assert!(!cache.path(&component(1)).exists());
        assert_eq!(files(&cache), 2);
    }

    #[test]
    fn an_unwritable_cache_still_compiles() {
        let root = tempfile::tempdir().unwrap();
        let blocker = root.path().join("file");
        std::fs::write(&blocker, b"").unwrap();
        let engine = engine(false);
        let cache = ComponentCache::new(&blocker, &engine, 8);
        let (_, provenance) = cache.load_or_compile(&engine, COMPONENT).unwrap();
        assert_eq!(provenance, Provenance::Compiled);
    }
}
