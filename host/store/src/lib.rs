//! Where cfhost's state lives, behind one interface ([`Store`]) with two backends:
//! - [`FilesStore`]: a data directory (`accounts/<id>/callflows/*.json`, ...), the embedded
//!   default of a single node;
//! - [`PgStore`]: PostgreSQL, shared by many nodes, with every write a transaction and every
//!   change announced to every node (LISTEN/NOTIFY).
//!
//! The store keeps KAZOO's documents as JSON text and modules as bytes, and knows nothing of
//! how they are checked or run: the runtime reads an account's [`AccountData`] and validates
//! it, so a document another tool wrote that does not validate is reported there and the last
//! good version keeps serving.
//!
//! ```
//! # async fn example() -> Result<(), cfhost_store::StoreError> {
//! use cfhost_store::{DocumentKind, FilesStore, Store};
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::create_dir_all(dir.path().join("accounts/acme")).unwrap();
//! let store = FilesStore::new(dir.path());
//! store.put_document("acme", DocumentKind::Callflow, "main", r#"{"numbers": ["100"]}"#).await?;
//! let acme = store.read_account("acme").await?.expect("the account exists");
//! assert_eq!(acme.callflows[0].id, "main");
//! # Ok(()) }
//! ```

pub mod claims;
pub mod config;
pub mod copy;
pub mod data;
pub mod files;
mod files_store;
mod postgres;
pub mod voicemail;

use std::path::PathBuf;
use std::sync::Arc;

pub use claims::{Claim, Claims};
pub use config::StoreConfig;
pub use copy::{CopySummary, copy_all};
pub use data::{
    AccountData, AccountProfile, Document, DocumentKind, ModuleBlob, ReadProblem, TemplateParts,
};
pub use files_store::FilesStore;
pub use postgres::{Change, PgSettings, PgStore};
pub use voicemail::{Kept, Message, MessageSpool};

/// Why the store could not do what was asked. Nothing was half-written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (down, restarting, or the network between): try again
    /// when it returns.
    #[error("the store ({store}) is unreachable: {reason}")]
    Unavailable { store: String, reason: String },
    /// A file of the data directory could not be read or written.
    #[error("{}: {source}", place.display())]
    Io {
        place: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The account is not in the store.
    #[error("account `{0}` is not in the store")]
    NoAccount(String),
    /// The database refused the value (e.g. JSON text PostgreSQL cannot keep, such as `\u0000`).
    #[error("the store refused it: {0}")]
    Refused(String),
}

/// The state of every account: its documents and its own modules.
///
/// Every method names the account; the caller (the API, the runtime) has already checked that
/// the account, the kind and the id are plain names ([`files::is_plain_name`]).
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// What this store is, for logs and errors (`data directory /srv/cfhost`,
    /// `PostgreSQL db.example:5432/cfhost`), without credentials.
    fn describe(&self) -> String;

    /// Every account's data, in id order.
    async fn read_all(&self) -> Result<Vec<AccountData>, StoreError>;

    /// One account's data; `None` when the store has no such account.
    async fn read_account(&self, account_id: &str) -> Result<Option<AccountData>, StoreError>;

    /// Creates account `account_id` if it is not there, with `settings` as its `account.json`
    /// when given (what it had is kept when not).
    async fn put_account(&self, account_id: &str, settings: Option<&str>)
    -> Result<(), StoreError>;

    /// Document `id` of `kind` as stored, `None` when there is none.
    async fn get_document(
        &self,
        account_id: &str,
        kind: DocumentKind,
        id: &str,
    ) -> Result<Option<String>, StoreError>;

    /// The account's documents of `kind`, in id order (none when the account has none, or is
    /// not in the store). A row whose id is no plain name is left out: loading reports it.
    async fn list_documents(
        &self,
        account_id: &str,
        kind: DocumentKind,
    ) -> Result<Vec<Document>, StoreError>;

    /// Stores document `id` of `kind` (JSON `text`), replacing any; the account must exist.
    async fn put_document(
        &self,
        account_id: &str,
        kind: DocumentKind,
        id: &str,
        text: &str,
    ) -> Result<(), StoreError>;

    /// Removes document `id` of `kind`; false when there was none.
    async fn delete_document(
        &self,
        account_id: &str,
        kind: DocumentKind,
        id: &str,
    ) -> Result<bool, StoreError>;

    /// Stores the account's module `name` (a component's bytes), replacing any.
    async fn put_module(
        &self,
        account_id: &str,
        name: &str,
        bytes: Arc<[u8]>,
    ) -> Result<(), StoreError>;

    /// Removes the account's module `name`; false when there was none.
    async fn delete_module(&self, account_id: &str, name: &str) -> Result<bool, StoreError>;

    /// Where a module the account stores as `name` comes from, as load errors name it.
    fn module_origin(&self, account_id: &str, name: &str) -> String;

    /// Stores a voicemail message (its audio and metadata together), replacing one of the same
    /// id.
    async fn put_message(&self, message: &Message) -> Result<(), StoreError>;

    /// The metadata of a box's messages, oldest first.
    async fn list_messages(
        &self,
        account_id: &str,
        box_id: &str,
    ) -> Result<Vec<serde_json::Value>, StoreError>;

    /// A message's recording (a WAV file), `None` when the box has no such message.
    async fn message_audio(
        &self,
        account_id: &str,
        box_id: &str,
        message_id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// Removes a message; false when there was none.
    async fn delete_message(
        &self,
        account_id: &str,
        box_id: &str,
        message_id: &str,
    ) -> Result<bool, StoreError>;

    /// Every message of an account, with its audio (for `cfhost store export`).
    async fn account_messages(&self, account_id: &str) -> Result<Vec<Message>, StoreError>;

    /// The account's settings and users; `None` when the store has no such account.
    async fn account_profile(&self, account_id: &str)
    -> Result<Option<AccountProfile>, StoreError>;

    /// The account's email template `template_id`; empty parts when none is stored.
    async fn get_template(
        &self,
        account_id: &str,
        template_id: &str,
    ) -> Result<TemplateParts, StoreError>;

    /// Stores template `template_id` (its three parts together, replacing any; an absent part
    /// is removed); the account must exist.
    async fn put_template(
        &self,
        account_id: &str,
        template_id: &str,
        parts: &TemplateParts,
    ) -> Result<(), StoreError>;

    /// Removes template `template_id`; false when there was none.
    async fn delete_template(
        &self,
        account_id: &str,
        template_id: &str,
    ) -> Result<bool, StoreError>;

    /// Every template of the account, by id (for `cfhost store export`).
    async fn account_templates(
        &self,
        account_id: &str,
    ) -> Result<Vec<(String, TemplateParts)>, StoreError>;
}
