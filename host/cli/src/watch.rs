//! Hot reload: watches the operator's module directory and the accounts' directories
//! (`accounts/<id>/`, with its own `modules/`), and reloads what changed, a moment after the
//! last change (so that a file being copied is read once it is whole):
//! - a change in the module directory reloads the system modules, then every account;
//! - a change under `accounts/<id>/` reloads that account's modules and documents.
//!
//! A reload is atomic: calls in flight keep the modules and documents they started with; a file
//! that fails to load is rejected with its error logged, and the version it replaced keeps
//! serving; a removed file takes its module out for the calls that start next.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher};

use cfhost_core::follow::log_report;
use cfhost_core::runtime::Runtime;

/// How long after the last change a reload starts.
pub const SETTLE: Duration = Duration::from_millis(200);

/// What to reload.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Change {
    System,
    Account(String),
}

/// A running watch; dropping it stops watching.
pub struct ModuleWatch {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ModuleWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {dir}: {source}")]
pub struct WatchError {
    dir: PathBuf,
    source: notify::Error,
}

/// Starts watching `runtime`'s module directory (when it has one that exists) and its data
/// directory's `accounts/`, reloading on the current tokio runtime.
pub fn watch(runtime: Arc<Runtime>) -> Result<ModuleWatch, WatchError> {
    let accounts_dir = canonical(&runtime.data_dir().join("accounts"));
    let modules_dir = runtime
        .modules_dir()
        .filter(|dir| dir.is_dir())
        .map(canonical);
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel::<Change>();
    let classify = {
        let accounts_dir = accounts_dir.clone();
        let modules_dir = modules_dir.clone();
        move |path: &Path| change_for(path, &accounts_dir, modules_dir.as_deref())
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && changes_content(event.kind)
        {
            for change in event.paths.iter().filter_map(|path| classify(path)) {
                let _ = events.send(change);
            }
        }
    })
    .map_err(|source| WatchError {
        dir: accounts_dir.clone(),
        source,
    })?;
    let mut add = |dir: &Path, mode| {
        watcher.watch(dir, mode).map_err(|source| WatchError {
            dir: dir.to_path_buf(),
            source,
        })
    };
    add(&accounts_dir, RecursiveMode::Recursive)?;
    if let Some(dir) = &modules_dir {
        add(dir, RecursiveMode::NonRecursive)?;
    }
    let task = tokio::spawn(async move {
        while let Some(first) = received.recv().await {
            let mut pending = BTreeSet::from([first]);
            // Wait until the directory has been quiet for a moment.
            while let Ok(Some(change)) = tokio::time::timeout(SETTLE, received.recv()).await {
                pending.insert(change);
            }
            reload(&runtime, pending).await;
        }
    });
    Ok(ModuleWatch {
        _watcher: watcher,
        task,
    })
}

async fn reload(runtime: &Runtime, pending: BTreeSet<Change>) {
    if pending.contains(&Change::System) {
        match runtime.reload_system_modules().await {
            Ok(report) => log_report("system modules", &report),
            Err(e) => tracing::error!("reloading the system modules failed: {e}"),
        }
        // Every account was reloaded with them.
        return;
    }
    for change in pending {
        if let Change::Account(account) = change {
            match runtime.reload_account(&account).await {
                Ok(report) => log_report(&format!("account `{account}`"), &report),
                Err(e) => tracing::error!("reloading account `{account}` failed: {e}"),
            }
        }
    }
}

/// Whether an event can change what a reload reads: files created, written, renamed or
/// removed. Reads (a reload's own among them) and metadata changes cannot, and must not start
/// another reload.
fn changes_content(kind: EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Any => true,
        EventKind::Modify(modify) => !matches!(modify, ModifyKind::Metadata(_)),
        EventKind::Access(access) => access == AccessKind::Close(AccessMode::Write),
        EventKind::Other => false,
    }
}

/// What a change at `path` reloads, if anything.
fn change_for(path: &Path, accounts_dir: &Path, modules_dir: Option<&Path>) -> Option<Change> {
    if let Some(dir) = modules_dir
        && path.parent() == Some(dir)
    {
        return path
            .extension()
            .is_some_and(|ext| ext == "wasm")
            .then_some(Change::System);
    }
    let account = path.strip_prefix(accounts_dir).ok()?.components().next()?;
    Some(Change::Account(account.as_os_str().to_str()?.to_string()))
}

fn canonical(dir: &Path) -> PathBuf {
    dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_writes_renames_and_removals_start_a_reload() {
        use notify::event::{CreateKind, DataChange, MetadataKind, RemoveKind, RenameMode};
        assert!(changes_content(EventKind::Create(CreateKind::File)));
        assert!(changes_content(EventKind::Remove(RemoveKind::File)));
        assert!(changes_content(EventKind::Modify(ModifyKind::Data(
            DataChange::Any
        ))));
        assert!(changes_content(EventKind::Modify(ModifyKind::Name(
            RenameMode::To
        ))));
        assert!(changes_content(EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(!changes_content(EventKind::Access(AccessKind::Open(
            AccessMode::Read
        ))));
        assert!(!changes_content(EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!changes_content(EventKind::Access(AccessKind::Read)));
        assert!(!changes_content(EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::AccessTime
        ))));
    }

    #[test]
    fn changes_map_to_what_they_reload() {
        let accounts = Path::new("/data/accounts");
        let modules = Some(Path::new("/mods"));
        let at = |path: &str| change_for(Path::new(path), accounts, modules);
        assert_eq!(at("/mods/router.wasm"), Some(Change::System));
        assert_eq!(
            at("/mods/.tmpA1b2"),
            None,
            "temporary files are not modules"
        );
        assert_eq!(
            at("/data/accounts/acme/modules/router.wasm"),
            Some(Change::Account("acme".into()))
        );
        assert_eq!(
            at("/data/accounts/acme/callflows/main.json"),
            Some(Change::Account("acme".into()))
        );
        assert_eq!(
            at("/data/accounts/acme"),
            Some(Change::Account("acme".into()))
        );
        assert_eq!(at("/data/accounts"), None);
        assert_eq!(at("/elsewhere/x.wasm"), None);
    }
}
