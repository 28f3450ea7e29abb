//! What the store holds of an account, as read: documents as JSON text, modules as bytes, and
//! what could not be read. Nothing here is checked: the runtime validates it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The kinds of an account's documents, each a folder of the data directory and a `kind` of
/// the database's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocumentKind {
    Callflow,
    User,
    Device,
    /// A voicemail box (KAZOO's `vmbox`).
    VmBox,
}

impl DocumentKind {
    /// Every kind.
    pub const ALL: [DocumentKind; 4] = [
        DocumentKind::Callflow,
        DocumentKind::User,
        DocumentKind::Device,
        DocumentKind::VmBox,
    ];

    /// Its folder in an account's directory, and its `kind` in the database.
    pub fn folder(self) -> &'static str {
        match self {
            DocumentKind::Callflow => "callflows",
            DocumentKind::User => "users",
            DocumentKind::Device => "devices",
            DocumentKind::VmBox => "vmboxes",
        }
    }

    /// The kind whose folder (or database `kind`) is `name`.
    pub fn from_folder(name: &str) -> Option<DocumentKind> {
        DocumentKind::ALL.into_iter().find(|k| k.folder() == name)
    }
}

/// Where a document is, as errors name it: `accounts/<account>/<folder>/<id>.json` under
/// `root` (the data directory; empty for the database, whose rows have no path).
pub fn document_place(root: &Path, account_id: &str, kind: DocumentKind, id: &str) -> PathBuf {
    account_place(root, account_id)
        .join(kind.folder())
        .join(format!("{id}.json"))
}

/// Where an account is: `accounts/<account>` under `root`.
pub fn account_place(root: &Path, account_id: &str) -> PathBuf {
    root.join("accounts").join(account_id)
}

/// One stored document.
#[derive(Debug, Clone)]
pub struct Document {
    /// Its id (the file's stem).
    pub id: String,
    /// Where it is, for errors.
    pub place: PathBuf,
    /// The JSON as stored.
    pub text: String,
}

/// One of an account's own modules.
#[derive(Debug, Clone)]
pub struct ModuleBlob {
    /// The name it is stored under.
    pub name: String,
    /// Where it comes from, for errors (a path, or `accounts/<id>/modules/<name>.wasm`).
    pub origin: String,
    pub bytes: Arc<[u8]>,
}

/// Something of an account that could not be read (a file, a folder, a row another tool wrote
/// that breaks the layout); the rest is read regardless.
#[derive(Debug)]
pub struct ReadProblem {
    pub place: PathBuf,
    pub error: std::io::Error,
}

impl ReadProblem {
    /// The error again, for a report that owns its errors (an I/O error cannot be cloned).
    pub fn io_error(&self) -> std::io::Error {
        std::io::Error::new(self.error.kind(), self.error.to_string())
    }
}

/// Everything the store holds of one account.
#[derive(Debug, Default)]
pub struct AccountData {
    pub id: String,
    /// Where the account is, for errors.
    pub place: PathBuf,
    /// Its `account.json` (realm, name, timezone), if it has one.
    pub settings: Option<Document>,
    /// Its documents of each kind, by id.
    pub callflows: Vec<Document>,
    pub users: Vec<Document>,
    pub devices: Vec<Document>,
    pub vmboxes: Vec<Document>,
    /// Its own modules, by name.
    pub modules: Vec<ModuleBlob>,
    /// Documents that could not be read.
    pub problems: Vec<ReadProblem>,
    /// Modules that could not be read.
    pub module_problems: Vec<ReadProblem>,
}

impl AccountData {
    /// An account with nothing in it yet.
    pub fn new(id: &str, place: PathBuf) -> Self {
        AccountData {
            id: id.to_string(),
            place,
            ..AccountData::default()
        }
    }

    /// Its documents of `kind`.
    pub fn documents_mut(&mut self, kind: DocumentKind) -> &mut Vec<Document> {
        match kind {
            DocumentKind::Callflow => &mut self.callflows,
            DocumentKind::User => &mut self.users,
            DocumentKind::Device => &mut self.devices,
            DocumentKind::VmBox => &mut self.vmboxes,
        }
    }
}

/// An account's email template as stored: KAZOO's notification document (JSON text) and its
/// `text/plain` and `text/html` bodies, each of which may be absent. The mailer checks and
/// compiles it; the store keeps it as given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateParts {
    pub document: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
}

impl TemplateParts {
    /// Whether none of the three is there.
    pub fn is_empty(&self) -> bool {
        self.document.is_none() && self.text.is_none() && self.html.is_none()
    }
}

/// What the mailer reads of an account: its `account.json` and its users (for the admins'
/// addresses), without its callflows, devices or modules.
#[derive(Debug, Clone, Default)]
pub struct AccountProfile {
    pub settings: Option<Document>,
    pub users: Vec<Document>,
}
