//! PostgreSQL as the store of many nodes ([`PgStore`]): accounts, documents (JSONB keyed by
//! account, kind and id) and modules (bytea) in the tables of `schema.sql`, created at
//! connect. Every write is one statement or one transaction. Triggers announce every change on
//! the `cfhost_changes` channel, whoever made it, and [`PgStore::listen`] turns the
//! announcements into [`Change`]s, with [`Change::Everything`] after a reconnect (what was
//! announced while disconnected is lost).
//!
//! Every operation is bounded in time ([`PgSettings::timeout`]): a database that does not
//! answer is [`StoreError::Unavailable`], never a hang.

mod listen;
mod mail;
mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::data::{
    AccountData, AccountProfile, Document, DocumentKind, ModuleBlob, ReadProblem, TemplateParts,
};
use crate::data::{account_place, document_place};
use crate::files::is_plain_name;
use crate::voicemail::Message;
use crate::{Store, StoreError};
pub use listen::Change;

/// The tables and triggers, applied at every connect.
const SCHEMA: &str = include_str!("schema.sql");
/// Taken while the schema is applied, so that nodes starting together do not race.
const SCHEMA_LOCK: i64 = 0x0cf0_57e0;

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// `postgres://user:password@host:port/dbname` (libpq's URL or key=value form).
    pub url: String,
    /// The longest any operation (a connect included) may take.
    pub timeout: Duration,
    /// Connections kept for reads and writes (the listener has one more of its own).
    pub pool_size: usize,
    /// A PEM file of certificates the database's may be signed by, besides the web's roots;
    /// given, connections are TLS (as with `sslmode=require` in the URL).
    pub ca_file: Option<PathBuf>,
}

impl PgSettings {
    /// `url` with the defaults: 5 s per operation, 8 connections.
    pub fn new(url: &str) -> Self {
        PgSettings {
            url: url.to_string(),
            timeout: Duration::from_secs(5),
            pool_size: 8,
            ca_file: None,
        }
    }
}

/// A PostgreSQL database as the store.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    timeout: Duration,
    describe: String,
}

impl PgStore {
    /// Connects to the database of `settings` and makes sure its tables exist.
    pub async fn connect(settings: &PgSettings) -> Result<PgStore, StoreError> {
        let mut config: tokio_postgres::Config = settings.url.parse().map_err(|e| {
            StoreError::Refused(format!("[store] url is no PostgreSQL connection URL: {e}"))
        })?;
        config.connect_timeout(settings.timeout);
        config.application_name("cfhost");
        let tls = tls::connector(&mut config, settings.ca_file.as_deref())?;
        let describe = describe(&config);
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(settings.timeout))
            .create_timeout(Some(settings.timeout))
            .recycle_timeout(Some(settings.timeout))
            .build()
            .map_err(|e| StoreError::Refused(e.to_string()))?;
        let store = PgStore {
            pool,
            config,
            tls,
            timeout: settings.timeout,
            describe,
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        self.bounded(async {
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(|e| self.error(e))?;
            transaction
                .execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
                .await
                .map_err(|e| self.error(e))?;
            transaction
                .batch_execute(SCHEMA)
                .await
                .map_err(|e| self.error(e))?;
            transaction.commit().await.map_err(|e| self.error(e))
        })
        .await
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| self.unavailable(with_causes(&e)))
    }

    /// `operation`, or [`StoreError::Unavailable`] once it has taken longer than the timeout.
    async fn bounded<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, operation)
            .await
            .unwrap_or_else(|_| {
                Err(self.unavailable(format!("no answer within {:?}", self.timeout)))
            })
    }

    fn unavailable(&self, reason: impl ToString) -> StoreError {
        StoreError::Unavailable {
            store: self.describe.clone(),
            reason: reason.to_string(),
        }
    }

    /// A database error as the store's: what the database refused (a bad value, a missing
    /// account) is the caller's; anything else means it cannot be reached.
    fn error(&self, error: tokio_postgres::Error) -> StoreError {
        use tokio_postgres::error::SqlState;
        match error.code() {
            Some(code) if *code == SqlState::FOREIGN_KEY_VIOLATION => {
                StoreError::NoAccount(String::new())
            }
            Some(code) if code.code().starts_with("22") || code.code().starts_with("23") => {
                StoreError::Refused(
                    error
                        .as_db_error()
                        .map_or_else(|| error.to_string(), |db| db.message().to_string()),
                )
            }
            _ => self.unavailable(with_causes(&error)),
        }
    }

    /// Reads the accounts `only` names (all of them when `None`) in one snapshot.
    async fn read(&self, only: Option<&str>) -> Result<Vec<AccountData>, StoreError> {
        let mut client = self.client().await?;
        let transaction = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| self.error(e))?;
        let filter = |column: &str| match only {
            Some(_) => format!("WHERE {column} = $1"),
            None => "WHERE $1::text IS NULL".to_string(),
        };
        let accounts = transaction
            .query(
                &format!(
                    "SELECT id, document::text FROM cfhost_accounts {} ORDER BY id",
                    filter("id")
                ),
                &[&only],
            )
            .await
            .map_err(|e| self.error(e))?;
        let documents = transaction
            .query(
                &format!(
                    "SELECT account_id, kind, id, document::text FROM cfhost_documents {} \
                     ORDER BY account_id, kind, id",
                    filter("account_id")
                ),
                &[&only],
            )
            .await
            .map_err(|e| self.error(e))?;
        let modules = transaction
            .query(
                &format!(
                    "SELECT account_id, name, wasm FROM cfhost_modules {} \
                     ORDER BY account_id, name",
                    filter("account_id")
                ),
                &[&only],
            )
            .await
            .map_err(|e| self.error(e))?;
        transaction.commit().await.map_err(|e| self.error(e))?;
        let mut read = Vec::with_capacity(accounts.len());
        let mut index = std::collections::HashMap::with_capacity(accounts.len());
        for row in &accounts {
            let id: String = row.get(0);
            if !is_plain_name(&id) {
                tracing::warn!(
                    "{}: account id `{}` is no plain name (letters, digits, `-` and `_`, at \
                     most 128); its rows are left out",
                    self.describe,
                    id.escape_debug()
                );
                continue;
            }
            let place = account_place(Path::new(""), &id);
            let mut data = AccountData::new(&id, place.clone());
            if let Some(text) = row.get::<_, Option<String>>(1) {
                data.settings = Some(Document {
                    id: id.clone(),
                    place: place.join("account.json"),
                    text,
                });
            }
            index.insert(id, read.len());
            read.push(data);
        }
        for row in &documents {
            let account: String = row.get(0);
            let Some(&at) = index.get(&account) else {
                continue;
            };
            let (kind, id, text): (String, String, String) = (row.get(1), row.get(2), row.get(3));
            let data = &mut read[at];
            match DocumentKind::from_folder(&kind) {
                Some(kind) if is_plain_name(&id) => data.documents_mut(kind).push(Document {
                    place: document_place(Path::new(""), &account, kind, &id),
                    id,
                    text,
                }),
                _ => data.problems.push(bad_row(
                    data.place.join(&kind).join(&id),
                    "a document whose kind is not callflows, users, devices or vmboxes, or whose id is \
                     no plain name",
                )),
            }
        }
        for row in &modules {
            let account: String = row.get(0);
            let Some(&at) = index.get(&account) else {
                continue;
            };
            let (name, bytes): (String, Vec<u8>) = (row.get(1), row.get(2));
            let data = &mut read[at];
            if !is_plain_name(&name) {
                data.module_problems.push(bad_row(
                    data.place.join("modules").join(&name),
                    "a module whose name is no plain name",
                ));
                continue;
            }
            data.modules.push(ModuleBlob {
                origin: self.module_origin(&account, &name),
                name,
                bytes: Arc::from(bytes),
            });
        }
        Ok(read)
    }

    /// Listens to the announcements of changes, on a connection of its own that comes back by
    /// itself; returns once listening has started, so nothing written from then on is missed.
    pub async fn listen(&self) -> Result<tokio::sync::mpsc::UnboundedReceiver<Change>, StoreError> {
        listen::start(
            self.config.clone(),
            self.tls.clone(),
            self.timeout,
            self.describe.clone(),
        )
        .await
    }
}

/// `error` and each of its causes that its own text does not already say (a TLS handshake's
/// `invalid peer certificate: UnknownIssuer`), joined with `: `.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let said = inner.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = inner.source();
    }
    text
}

/// A row another tool wrote that breaks the layout.
fn bad_row(place: PathBuf, what: &str) -> ReadProblem {
    ReadProblem {
        place,
        error: std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string()),
    }
}

/// The database as logs name it: host, port and database, never the password.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("PostgreSQL {host}:{port}/{db}")
}

#[async_trait::async_trait]
impl Store for PgStore {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn read_all(&self) -> Result<Vec<AccountData>, StoreError> {
        self.bounded(self.read(None)).await
    }

    async fn read_account(&self, account_id: &str) -> Result<Option<AccountData>, StoreError> {
        let mut read = self.bounded(self.read(Some(account_id))).await?;
        Ok(read.pop())
    }

    async fn put_account(
        &self,
        account_id: &str,
        settings: Option<&str>,
    ) -> Result<(), StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO cfhost_accounts (id, document) VALUES ($1, $2::text::jsonb) \
                     ON CONFLICT (id) DO UPDATE \
                     SET document = COALESCE(EXCLUDED.document, cfhost_accounts.document), \
                     updated_at = now()",
                    &[&account_id, &settings],
                )
                .await
                .map_err(|e| self.error(e))?;
            Ok(())
        })
        .await
    }

    async fn get_document(
        &self,
        account_id: &str,
        kind: DocumentKind,
        id: &str,
    ) -> Result<Option<String>, StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT document::text FROM cfhost_documents \
                     WHERE account_id = $1 AND kind = $2 AND id = $3",
                    &[&account_id, &kind.folder(), &id],
                )
                .await
                .map_err(|e| self.error(e))?;
            Ok(row.map(|row| row.get(0)))
        })
        .await
    }

    async fn list_documents(
        &self,
        account_id: &str,
        kind: DocumentKind,
    ) -> Result<Vec<Document>, StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT id, document::text FROM cfhost_documents \
                     WHERE account_id = $1 AND kind = $2 ORDER BY id",
                    &[&account_id, &kind.folder()],
                )
                .await
                .map_err(|e| self.error(e))?;
            Ok(rows
                .into_iter()
                .filter_map(|row| {
                    let id: String = row.get(0);
                    is_plain_name(&id).then(|| Document {
                        place: document_place(Path::new(""), account_id, kind, &id),
                        id,
                        text: row.get(1),
                    })
                })
                .collect())
        })
        .await
    }

    async fn put_document(
        &self,
        account_id: &str,
        kind: DocumentKind,
        id: &str,
        text: &str,
    ) -> Result<(), StoreError> {
        let written = self
            .bounded(async {
                let client = self.client().await?;
                client
                    .execute(
                        "INSERT INTO cfhost_documents (account_id, kind, id, document) \
                         VALUES ($1, $2, $3, $4::text::jsonb) \
                         ON CONFLICT (account_id, kind, id) DO UPDATE \
                         SET document = EXCLUDED.document, updated_at = now()",
                        &[&account_id, &kind.folder(), &id, &text],
                    )
                    .await
                    .map_err(|e| self.error(e))
            })
            .await;
        no_account_named(written, account_id).map(drop)
    }

    async fn delete_document(
        &self,
        account_id: &str,
        kind: DocumentKind,
        id: &str,
    ) -> Result<bool, StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            let removed = client
                .execute(
                    "DELETE FROM cfhost_documents WHERE account_id = $1 AND kind = $2 AND id = $3",
                    &[&account_id, &kind.folder(), &id],
                )
                .await
                .map_err(|e| self.error(e))?;
            Ok(removed > 0)
        })
        .await
    }

    async fn put_module(
        &self,
        account_id: &str,
        name: &str,
        bytes: Arc<[u8]>,
    ) -> Result<(), StoreError> {
        let written = self
            .bounded(async {
                let client = self.client().await?;
                client
                    .execute(
                        "INSERT INTO cfhost_modules (account_id, name, wasm) VALUES ($1, $2, $3) \
                         ON CONFLICT (account_id, name) DO UPDATE \
                         SET wasm = EXCLUDED.wasm, updated_at = now()",
                        &[&account_id, &name, &&*bytes],
                    )
                    .await
                    .map_err(|e| self.error(e))
            })
            .await;
        no_account_named(written, account_id).map(drop)
    }

    async fn delete_module(&self, account_id: &str, name: &str) -> Result<bool, StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            let removed = client
                .execute(
                    "DELETE FROM cfhost_modules WHERE account_id = $1 AND name = $2",
                    &[&account_id, &name],
                )
                .await
                .map_err(|e| self.error(e))?;
            Ok(removed > 0)
        })
        .await
    }

    async fn put_message(&self, message: &Message) -> Result<(), StoreError> {
        let metadata = message.metadata.to_string();
        let written = self
            .bounded(async {
                let client = self.client().await?;
                client
                    .execute(
                        "INSERT INTO cfhost_voicemail \
                         (account_id, box_id, message_id, metadata, audio) \
                         VALUES ($1, $2, $3, $4::text::jsonb, $5) \
                         ON CONFLICT (account_id, box_id, message_id) DO UPDATE \
                         SET metadata = EXCLUDED.metadata, audio = EXCLUDED.audio",
                        &[
                            &message.account_id,
                            &message.box_id,
                            &message.message_id,
                            &metadata,
                            &&*message.audio,
                        ],
                    )
                    .await
                    .map_err(|e| self.error(e))
            })
            .await;
        no_account_named(written, &message.account_id).map(drop)
    }

    async fn list_messages(
        &self,
        account_id: &str,
        box_id: &str,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT metadata::text FROM cfhost_voicemail \
                     WHERE account_id = $1 AND box_id = $2 ORDER BY message_id",
                    &[&account_id, &box_id],
                )
                .await
                .map_err(|e| self.error(e))?;
            Ok(rows
                .iter()
                .filter_map(|row| serde_json::from_str(row.get::<_, &str>(0)).ok())
                .collect())
        })
        .await
    }

    async fn message_audio(
        &self,
        account_id: &str,
        box_id: &str,
        message_id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT audio FROM cfhost_voicemail \
                     WHERE account_id = $1 AND box_id = $2 AND message_id = $3",
                    &[&account_id, &box_id, &message_id],
                )
                .await
                .map_err(|e| self.error(e))?;
            Ok(row.map(|row| row.get(0)))
        })
        .await
    }

    async fn delete_message(
        &self,
        account_id: &str,
        box_id: &str,
        message_id: &str,
    ) -> Result<bool, StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            let removed = client
                .execute(
                    "DELETE FROM cfhost_voicemail \
                     WHERE account_id = $1 AND box_id = $2 AND message_id = $3",
                    &[&account_id, &box_id, &message_id],
                )
                .await
                .map_err(|e| self.error(e))?;
            Ok(removed > 0)
        })
        .await
    }

    async fn account_messages(&self, account_id: &str) -> Result<Vec<Message>, StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT box_id, message_id, metadata::text, audio FROM cfhost_voicemail \
                     WHERE account_id = $1 ORDER BY box_id, message_id",
                    &[&account_id],
                )
                .await
                .map_err(|e| self.error(e))?;
            let mut messages = Vec::with_capacity(rows.len());
            for row in rows {
                let (box_id, message_id): (String, String) = (row.get(0), row.get(1));
                if !is_plain_name(&box_id) || !is_plain_name(&message_id) {
                    tracing::warn!(
                        "{}: voicemail message `{}` of box `{}` (account `{account_id}`) has an \
                         id that is no plain name; left out",
                        self.describe,
                        message_id.escape_debug(),
                        box_id.escape_debug()
                    );
                    continue;
                }
                let metadata: &str = row.get(2);
                let Ok(metadata) = serde_json::from_str(metadata) else {
                    continue;
                };
                messages.push(Message {
                    account_id: account_id.to_string(),
                    box_id,
                    message_id,
                    metadata,
                    audio: Arc::from(row.get::<_, Vec<u8>>(3)),
                });
            }
            Ok(messages)
        })
        .await
    }

    async fn account_profile(
        &self,
        account_id: &str,
    ) -> Result<Option<AccountProfile>, StoreError> {
        self.bounded(self.read_profile(account_id)).await
    }

    async fn get_template(
        &self,
        account_id: &str,
        template_id: &str,
    ) -> Result<TemplateParts, StoreError> {
        self.bounded(self.read_template(account_id, template_id))
            .await
    }

    async fn put_template(
        &self,
        account_id: &str,
        template_id: &str,
        parts: &TemplateParts,
    ) -> Result<(), StoreError> {
        self.bounded(self.write_template(account_id, template_id, parts))
            .await
    }

    async fn delete_template(
        &self,
        account_id: &str,
        template_id: &str,
    ) -> Result<bool, StoreError> {
        self.bounded(self.remove_template(account_id, template_id))
            .await
    }

    async fn account_templates(
        &self,
        account_id: &str,
    ) -> Result<Vec<(String, TemplateParts)>, StoreError> {
        self.bounded(self.read_templates(account_id)).await
    }

    fn module_origin(&self, account_id: &str, name: &str) -> String {
        account_place(Path::new(""), account_id)
            .join("modules")
            .join(format!("{name}.wasm"))
            .display()
            .to_string()
    }
}

/// `result` with a missing account named.
fn no_account_named<T>(result: Result<T, StoreError>, account_id: &str) -> Result<T, StoreError> {
    result.map_err(|e| match e {
        StoreError::NoAccount(_) => StoreError::NoAccount(account_id.to_string()),
        other => other,
    })
}
