//! The data directory as a store: `accounts/<id>/` holding `account.json`, `callflows/`,
//! `users/`, `devices/`, `vmboxes/` (`<id>.json` each; a box's messages in `vmboxes/<box>/`)
//! and `modules/` (`<name>.wasm`). Writes are atomic
//! ([`write_atomically`]); an account is a folder, made by the operator.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::data::{
    AccountData, AccountProfile, Document, DocumentKind, ModuleBlob, ReadProblem, TemplateParts,
};
use crate::data::{account_place, document_place};
use crate::files::{is_plain_name, write_atomically};
use crate::voicemail::Message;
use crate::{Store, StoreError};

/// A data directory.
#[derive(Debug, Clone)]
pub struct FilesStore {
    root: PathBuf,
}

impl FilesStore {
    /// The data directory `root`.
    pub fn new(root: &Path) -> Self {
        FilesStore {
            root: root.to_path_buf(),
        }
    }

    /// The ids of its accounts (the folders under `accounts/`), in order.
    pub fn account_ids(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.root.join("accounts");
        match sorted_entries(&dir, |p| p.is_dir()) {
            Ok(dirs) => Ok(dirs.iter().filter_map(|d| file_name(d)).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(StoreError::Io { place: dir, source }),
        }
    }

    /// Account `id`'s data, read now.
    fn read(&self, id: &str) -> Option<AccountData> {
        let dir = account_place(&self.root, id);
        if !dir.is_dir() {
            return None;
        }
        let mut data = AccountData::new(id, dir.clone());
        let settings = dir.join("account.json");
        if settings.exists() {
            match std::fs::read_to_string(&settings) {
                Ok(text) => {
                    data.settings = Some(Document {
                        id: id.to_string(),
                        place: settings,
                        text,
                    })
                }
                Err(error) => data.problems.push(ReadProblem {
                    place: settings,
                    error,
                }),
            }
        }
        for kind in DocumentKind::ALL {
            let folder = dir.join(kind.folder());
            for path in existing_entries(&folder, is_json, &mut data.problems) {
                let Some(doc_id) = stem(&path) else { continue };
                match std::fs::read_to_string(&path) {
                    Ok(text) => data.documents_mut(kind).push(Document {
                        id: doc_id,
                        place: path,
                        text,
                    }),
                    Err(error) => data.problems.push(ReadProblem { place: path, error }),
                }
            }
        }
        let modules = dir.join("modules");
        for path in existing_entries(&modules, is_wasm, &mut data.module_problems) {
            let Some(name) = stem(&path) else { continue };
            match std::fs::read(&path) {
                Ok(bytes) => data.modules.push(ModuleBlob {
                    name,
                    origin: path.display().to_string(),
                    bytes: Arc::from(bytes),
                }),
                Err(error) => data
                    .module_problems
                    .push(ReadProblem { place: path, error }),
            }
        }
        Some(data)
    }

    fn existing_account(&self, account_id: &str) -> Result<PathBuf, StoreError> {
        let dir = account_place(&self.root, account_id);
        if dir.is_dir() {
            Ok(dir)
        } else {
            Err(StoreError::NoAccount(account_id.to_string()))
        }
    }

    /// A box's folder: `accounts/<account>/vmboxes/<box>`.
    fn box_dir(&self, account_id: &str, box_id: &str) -> PathBuf {
        account_place(&self.root, account_id)
            .join("vmboxes")
            .join(box_id)
    }

    /// Writes `message` as `<id>.wav`, then `<id>.json` (a message is listed once its metadata
    /// is there), whether or not the account's folder exists; returns the metadata's path. An
    /// id that is no plain name (it would leave the folder) is refused.
    pub fn put_message_files(&self, message: &Message) -> Result<PathBuf, StoreError> {
        let ids = [&message.account_id, &message.box_id, &message.message_id];
        if let Some(bad) = ids.into_iter().find(|id| !is_plain_name(id)) {
            return Err(StoreError::Refused(format!(
                "`{}` cannot name a folder or file of the data directory",
                bad.escape_debug()
            )));
        }
        let dir = self.box_dir(&message.account_id, &message.box_id);
        let wav = dir.join(format!("{}.wav", message.message_id));
        write_atomically(&wav, &message.audio)
            .map_err(|source| StoreError::Io { place: wav, source })?;
        let metadata = dir.join(format!("{}.json", message.message_id));
        let text = serde_json::to_vec_pretty(&message.metadata).expect("JSON serializes");
        write_atomically(&metadata, &text).map_err(|source| StoreError::Io {
            place: metadata.clone(),
            source,
        })?;
        Ok(metadata)
    }

    /// Every message under every account's `vmboxes/`, whether or not the account is one.
    pub fn every_message(&self) -> Result<Vec<Message>, StoreError> {
        let mut messages = Vec::new();
        for account_id in self.account_ids()? {
            messages.extend(self.messages_of(&account_id)?);
        }
        Ok(messages)
    }

    fn messages_of(&self, account_id: &str) -> Result<Vec<Message>, StoreError> {
        let boxes = account_place(&self.root, account_id).join("vmboxes");
        let io = |place: &Path| {
            let place = place.to_path_buf();
            move |source| StoreError::Io { place, source }
        };
        let mut messages = Vec::new();
        let box_dirs = match sorted_entries(&boxes, |p| p.is_dir()) {
            Ok(dirs) => dirs,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(messages),
            Err(e) => return Err(io(&boxes)(e)),
        };
        for dir in box_dirs {
            let Some(box_id) = file_name(&dir) else {
                continue;
            };
            for metadata in sorted_entries(&dir, is_json).map_err(io(&dir))? {
                let Some(message_id) = stem(&metadata) else {
                    continue;
                };
                let text = std::fs::read(&metadata).map_err(io(&metadata))?;
                let wav = dir.join(format!("{message_id}.wav"));
                let audio = std::fs::read(&wav).map_err(io(&wav))?;
                messages.push(Message {
                    account_id: account_id.to_string(),
                    box_id: box_id.clone(),
                    message_id,
                    metadata: serde_json::from_slice(&text).map_err(|e| {
                        io(&metadata)(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
                    })?,
                    audio: Arc::from(audio),
                });
            }
        }
        Ok(messages)
    }

    /// Removes a message's two files; false when there was none.
    pub fn remove_message(
        &self,
        account_id: &str,
        box_id: &str,
        message_id: &str,
    ) -> Result<bool, StoreError> {
        let dir = self.box_dir(account_id, box_id);
        let had = remove(dir.join(format!("{message_id}.json")))?;
        remove(dir.join(format!("{message_id}.wav")))?;
        Ok(had)
    }

    /// A template's three files: `accounts/<account>/notifications/<id>.json`, `.text`, `.html`.
    fn template_files(&self, account_id: &str, template_id: &str) -> [PathBuf; 3] {
        let dir = account_place(&self.root, account_id).join("notifications");
        ["json", "text", "html"].map(|extension| dir.join(format!("{template_id}.{extension}")))
    }

    fn read_template(
        &self,
        account_id: &str,
        template_id: &str,
    ) -> Result<TemplateParts, StoreError> {
        let [document, text, html] =
            self.template_files(account_id, template_id).map(
                |place| match std::fs::read_to_string(&place) {
                    Ok(text) => Ok(Some(text)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(StoreError::Io { place, source }),
                },
            );
        Ok(TemplateParts {
            document: document?,
            text: text?,
            html: html?,
        })
    }

    fn module_path(&self, account_id: &str, name: &str) -> PathBuf {
        account_place(&self.root, account_id)
            .join("modules")
            .join(format!("{name}.wasm"))
    }
}

#[async_trait::async_trait]
impl Store for FilesStore {
    fn describe(&self) -> String {
        format!("data directory {}", self.root.display())
    }

    async fn read_all(&self) -> Result<Vec<AccountData>, StoreError> {
        let ids = self.account_ids()?;
        Ok(ids.iter().filter_map(|id| self.read(id)).collect())
    }

    async fn read_account(&self, account_id: &str) -> Result<Option<AccountData>, StoreError> {
        Ok(self.read(account_id))
    }

    async fn put_account(
        &self,
        account_id: &str,
        settings: Option<&str>,
    ) -> Result<(), StoreError> {
        let dir = account_place(&self.root, account_id);
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            place: dir.clone(),
            source,
        })?;
        if let Some(settings) = settings {
            let place = dir.join("account.json");
            write_atomically(&place, settings.as_bytes())
                .map_err(|source| StoreError::Io { place, source })?;
        }
        Ok(())
    }

    async fn get_document(
        &self,
        account_id: &str,
        kind: DocumentKind,
        id: &str,
    ) -> Result<Option<String>, StoreError> {
        let place = document_place(&self.root, account_id, kind, id);
        match std::fs::read_to_string(&place) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { place, source }),
        }
    }

    async fn list_documents(
        &self,
        account_id: &str,
        kind: DocumentKind,
    ) -> Result<Vec<Document>, StoreError> {
        let folder = account_place(&self.root, account_id).join(kind.folder());
        let entries = match sorted_entries(&folder, is_json) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StoreError::Io {
                    place: folder,
                    source,
                });
            }
        };
        let mut documents = Vec::new();
        for place in entries {
            let Some(id) = stem(&place).filter(|id| is_plain_name(id)) else {
                continue;
            };
            match std::fs::read_to_string(&place) {
                Ok(text) => documents.push(Document { id, place, text }),
                Err(source) => return Err(StoreError::Io { place, source }),
            }
        }
        Ok(documents)
    }

    async fn put_document(
        &self,
        account_id: &str,
        kind: DocumentKind,
        id: &str,
        text: &str,
    ) -> Result<(), StoreError> {
        self.existing_account(account_id)?;
        let place = document_place(&self.root, account_id, kind, id);
        write_atomically(&place, text.as_bytes()).map_err(|source| StoreError::Io { place, source })
    }

    async fn delete_document(
        &self,
        account_id: &str,
        kind: DocumentKind,
        id: &str,
    ) -> Result<bool, StoreError> {
        remove(document_place(&self.root, account_id, kind, id))
    }

    async fn put_module(
        &self,
        account_id: &str,
        name: &str,
        bytes: Arc<[u8]>,
    ) -> Result<(), StoreError> {
        self.existing_account(account_id)?;
        let place = self.module_path(account_id, name);
        write_atomically(&place, &bytes).map_err(|source| StoreError::Io { place, source })
    }

    async fn delete_module(&self, account_id: &str, name: &str) -> Result<bool, StoreError> {
        remove(self.module_path(account_id, name))
    }

    fn module_origin(&self, account_id: &str, name: &str) -> String {
        self.module_path(account_id, name).display().to_string()
    }

    async fn put_message(&self, message: &Message) -> Result<(), StoreError> {
        self.put_message_files(message).map(drop)
    }

    async fn list_messages(
        &self,
        account_id: &str,
        box_id: &str,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        let mut messages: Vec<Message> = self
            .messages_of(account_id)?
            .into_iter()
            .filter(|m| m.box_id == box_id)
            .collect();
        messages.sort_by_key(|m| m.message_id.clone());
        Ok(messages.into_iter().map(|m| m.metadata).collect())
    }

    async fn message_audio(
        &self,
        account_id: &str,
        box_id: &str,
        message_id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let dir = self.box_dir(account_id, box_id);
        if !dir.join(format!("{message_id}.json")).exists() {
            return Ok(None);
        }
        let place = dir.join(format!("{message_id}.wav"));
        match std::fs::read(&place) {
            Ok(audio) => Ok(Some(audio)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { place, source }),
        }
    }

    async fn delete_message(
        &self,
        account_id: &str,
        box_id: &str,
        message_id: &str,
    ) -> Result<bool, StoreError> {
        self.remove_message(account_id, box_id, message_id)
    }

    async fn account_messages(&self, account_id: &str) -> Result<Vec<Message>, StoreError> {
        self.messages_of(account_id)
    }

    async fn account_profile(
        &self,
        account_id: &str,
    ) -> Result<Option<AccountProfile>, StoreError> {
        let dir = account_place(&self.root, account_id);
        if !dir.is_dir() {
            return Ok(None);
        }
        let read = |place: PathBuf| match std::fs::read_to_string(&place) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { place, source }),
        };
        let settings_place = dir.join("account.json");
        let settings = read(settings_place.clone())?.map(|text| Document {
            id: account_id.to_string(),
            place: settings_place,
            text,
        });
        let mut problems = Vec::new();
        let folder = dir.join(DocumentKind::User.folder());
        let mut users = Vec::new();
        for place in existing_entries(&folder, is_json, &mut problems) {
            let Some(id) = stem(&place) else { continue };
            // A user file that cannot be read gives no admin address; the rest still do.
            if let Ok(Some(text)) = read(place.clone()) {
                users.push(Document { id, place, text });
            }
        }
        Ok(Some(AccountProfile { settings, users }))
    }

    async fn get_template(
        &self,
        account_id: &str,
        template_id: &str,
    ) -> Result<TemplateParts, StoreError> {
        self.read_template(account_id, template_id)
    }

    async fn put_template(
        &self,
        account_id: &str,
        template_id: &str,
        parts: &TemplateParts,
    ) -> Result<(), StoreError> {
        self.existing_account(account_id)?;
        let files = self.template_files(account_id, template_id);
        // The document last: a reader that sees it sees the bodies that go with it.
        let [document, text, html] = files;
        for (place, part) in [
            (text, &parts.text),
            (html, &parts.html),
            (document, &parts.document),
        ] {
            match part {
                Some(part) => write_atomically(&place, part.as_bytes())
                    .map_err(|source| StoreError::Io { place, source })?,
                None => {
                    remove(place)?;
                }
            }
        }
        Ok(())
    }

    async fn delete_template(
        &self,
        account_id: &str,
        template_id: &str,
    ) -> Result<bool, StoreError> {
        let mut had = false;
        for place in self.template_files(account_id, template_id) {
            had |= remove(place)?;
        }
        Ok(had)
    }

    async fn account_templates(
        &self,
        account_id: &str,
    ) -> Result<Vec<(String, TemplateParts)>, StoreError> {
        let dir = account_place(&self.root, account_id).join("notifications");
        let files = match sorted_entries(&dir, |p| p.is_file()) {
            Ok(files) => files,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StoreError::Io { place: dir, source }),
        };
        let mut ids: Vec<String> = files
            .iter()
            .filter(|f| {
                f.extension()
                    .is_some_and(|e| e == "json" || e == "text" || e == "html")
            })
            .filter_map(|f| stem(f))
            .filter(|id| is_plain_name(id))
            .collect();
        ids.sort();
        ids.dedup();
        let mut templates = Vec::with_capacity(ids.len());
        for id in ids {
            let parts = self.read_template(account_id, &id)?;
            templates.push((id, parts));
        }
        Ok(templates)
    }
}

/// Removes the file at `place`; false when there was none.
fn remove(place: PathBuf) -> Result<bool, StoreError> {
    match std::fs::remove_file(&place) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StoreError::Io { place, source }),
    }
}

/// The entries of `dir` that `keep`, in order; none when `dir` does not exist. A `dir` that
/// exists but cannot be read (or is not a directory) is a problem.
fn existing_entries(
    dir: &Path,
    keep: impl Fn(&Path) -> bool,
    problems: &mut Vec<ReadProblem>,
) -> Vec<PathBuf> {
    match sorted_entries(dir, keep) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => {
            problems.push(ReadProblem {
                place: dir.to_path_buf(),
                error,
            });
            Vec::new()
        }
    }
}

fn sorted_entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> std::io::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| keep(path))
        .collect();
    paths.sort();
    Ok(paths)
}

fn is_json(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "json")
}

fn is_wasm(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "wasm")
}

fn file_name(path: &Path) -> Option<String> {
    path.file_name()?.to_str().map(str::to_string)
}

fn stem(path: &Path) -> Option<String> {
    path.file_stem()?.to_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn documents_and_modules_are_read_back_as_written_and_an_unreadable_folder_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("accounts/acme")).unwrap();
        let store = FilesStore::new(dir.path());
        store
            .put_document("acme", DocumentKind::User, "u1", r#"{"email":"a@b"}"#)
            .await
            .unwrap();
        store
            .put_module("acme", "router", Arc::from(&b"\0asm"[..]))
            .await
            .unwrap();
        assert!(matches!(
            store
                .put_document("nobody", DocumentKind::User, "u1", "{}")
                .await,
            Err(StoreError::NoAccount(_))
        ));
        // A folder where a document's folder should be a file cannot be listed.
        std::fs::write(dir.path().join("accounts/acme/devices"), b"not a folder").unwrap();
        let acme = store.read_account("acme").await.unwrap().unwrap();
        assert_eq!(acme.users[0].id, "u1");
        assert_eq!(acme.users[0].text, r#"{"email":"a@b"}"#);
        assert_eq!(&*acme.modules[0].bytes, b"\0asm");
        assert_eq!(acme.problems.len(), 1, "{:?}", acme.problems);
        assert!(acme.problems[0].place.ends_with("accounts/acme/devices"));
        assert!(store.delete_module("acme", "router").await.unwrap());
        assert!(!store.delete_module("acme", "router").await.unwrap());
        assert_eq!(store.read_all().await.unwrap().len(), 1);
        assert!(store.read_account("other").await.unwrap().is_none());
    }
}
