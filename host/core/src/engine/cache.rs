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
    /// The cache under `root` for components compiled by `engine`.
    pub fn new(root: &Path, engine: &Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        ComponentCache {
            dir: root.join(format!("{:016x}", hasher.finish())),
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
        let path = self.dir.join(format!("{}.cwasm", content_key(bytes)));
        if path.exists() {
            // SAFETY: the file was written by `precompile_component` of an engine with the same
            // compatibility hash (its path says so) into a directory only the operator can
            // write (see the module docs); wasmtime checks its header and version.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, Provenance::Cached)),
                Err(e) => tracing::warn!(
                    "{}: cached component does not load, compiling again: {e:#}",
                    path.display()
                ),
            }
        }
        let compiled = engine.precompile_component(bytes)?;
        if let Err(e) = write_atomically(&path, &compiled) {
            tracing::warn!(
                "{}: cannot cache the compiled component: {e}",
                path.display()
            );
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
        let cache = ComponentCache::new(root.path(), &engine);
        let (_, first) = cache.load_or_compile(&engine, COMPONENT).unwrap();
        let (_, second) = cache.load_or_compile(&engine, COMPONENT).unwrap();
        assert_eq!((first, second), (Provenance::Compiled, Provenance::Cached));
    }

    #[test]
    fn engine_settings_and_content_are_part_of_the_key() {
        let root = tempfile::tempdir().unwrap();
        let (plain, fueled) = (engine(false), engine(true));
        let plain_cache = ComponentCache::new(root.path(), &plain);
        assert_ne!(
            plain_cache.dir(),
            ComponentCache::new(root.path(), &fueled).dir()
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
        let cache = ComponentCache::new(root.path(), &engine);
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

    #[test]
    fn an_unwritable_cache_still_compiles() {
        let root = tempfile::tempdir().unwrap();
        let blocker = root.path().join("file");
        std::fs::write(&blocker, b"").unwrap();
        let engine = engine(false);
        let cache = ComponentCache::new(&blocker, &engine);
        let (_, provenance) = cache.load_or_compile(&engine, COMPONENT).unwrap();
        assert_eq!(provenance, Provenance::Compiled);
    }
}
