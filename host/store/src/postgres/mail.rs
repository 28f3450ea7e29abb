//! What the mailer reads and writes in PostgreSQL: an account's profile, its templates
//! (`cfhost_templates`) and the claims of sent notifications (`cfhost_mailer_sent`).

use std::path::Path;
use std::time::Duration;

use super::{PgStore, no_account_named};
use crate::data::{AccountProfile, Document, DocumentKind, TemplateParts};
use crate::data::{account_place, document_place};
use crate::files::is_plain_name;
use crate::{Claim, Claims, StoreError};

impl PgStore {
    /// The account's settings and users, in one snapshot.
    pub(super) async fn read_profile(
        &self,
        account_id: &str,
    ) -> Result<Option<AccountProfile>, StoreError> {
        let mut client = self.client().await?;
        let transaction = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| self.error(e))?;
        let Some(account) = transaction
            .query_opt(
                "SELECT document::text FROM cfhost_accounts WHERE id = $1",
                &[&account_id],
            )
            .await
            .map_err(|e| self.error(e))?
        else {
            return Ok(None);
        };
        let users = transaction
            .query(
                "SELECT id, document::text FROM cfhost_documents \
                 WHERE account_id = $1 AND kind = $2 ORDER BY id",
                &[&account_id, &DocumentKind::User.folder()],
            )
            .await
            .map_err(|e| self.error(e))?;
        transaction.commit().await.map_err(|e| self.error(e))?;
        let place = account_place(Path::new(""), account_id);
        Ok(Some(AccountProfile {
            settings: account.get::<_, Option<String>>(0).map(|text| Document {
                id: account_id.to_string(),
                place: place.join("account.json"),
                text,
            }),
            users: users
                .iter()
                .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1)))
                .filter(|(id, _)| is_plain_name(id))
                .map(|(id, text)| Document {
                    place: document_place(Path::new(""), account_id, DocumentKind::User, &id),
                    id,
                    text,
                })
                .collect(),
        }))
    }

    pub(super) async fn read_template(
        &self,
        account_id: &str,
        template_id: &str,
    ) -> Result<TemplateParts, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT document::text, text_body, html_body FROM cfhost_templates \
                 WHERE account_id = $1 AND id = $2",
                &[&account_id, &template_id],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(
            row.map_or_else(TemplateParts::default, |row| TemplateParts {
                document: row.get(0),
                text: row.get(1),
                html: row.get(2),
            }),
        )
    }

    pub(super) async fn write_template(
        &self,
        account_id: &str,
        template_id: &str,
        parts: &TemplateParts,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let written = client
            .execute(
                "INSERT INTO cfhost_templates (account_id, id, document, text_body, html_body) \
                 VALUES ($1, $2, $3::text::jsonb, $4, $5) \
                 ON CONFLICT (account_id, id) DO UPDATE \
                 SET document = EXCLUDED.document, text_body = EXCLUDED.text_body, \
                 html_body = EXCLUDED.html_body, updated_at = now()",
                &[
                    &account_id,
                    &template_id,
                    &parts.document,
                    &parts.text,
                    &parts.html,
                ],
            )
            .await
            .map_err(|e| self.error(e));
        no_account_named(written, account_id).map(drop)
    }

    pub(super) async fn remove_template(
        &self,
        account_id: &str,
        template_id: &str,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let removed = client
            .execute(
                "DELETE FROM cfhost_templates WHERE account_id = $1 AND id = $2",
                &[&account_id, &template_id],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(removed > 0)
    }

    pub(super) async fn read_templates(
        &self,
        account_id: &str,
    ) -> Result<Vec<(String, TemplateParts)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, document::text, text_body, html_body FROM cfhost_templates \
                 WHERE account_id = $1 ORDER BY id",
                &[&account_id],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows
            .iter()
            .map(|row| {
                let parts = TemplateParts {
                    document: row.get(1),
                    text: row.get(2),
                    html: row.get(3),
                };
                (row.get::<_, String>(0), parts)
            })
            .filter(|(id, _)| {
                let plain = is_plain_name(id);
                if !plain {
                    tracing::warn!(
                        "{}: template `{}` of account `{account_id}` has an id that is no \
                         plain name; left out",
                        self.describe,
                        id.escape_debug()
                    );
                }
                plain
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl Claims for PgStore {
    async fn claim(
        &self,
        identity: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let lease = lease.as_secs_f64();
        self.bounded(async {
            let client = self.client().await?;
            // A claim released between the two statements is claimed on the next round.
            loop {
                let taken = client
                    .query_opt(
                        "INSERT INTO cfhost_mailer_sent (identity, owner) VALUES ($1, $2) \
                         ON CONFLICT (identity) DO UPDATE \
                         SET owner = EXCLUDED.owner, claimed_at = now() \
                         WHERE NOT cfhost_mailer_sent.sent \
                         AND cfhost_mailer_sent.claimed_at < now() - make_interval(secs => $3) \
                         RETURNING owner",
                        &[&identity, &owner, &lease],
                    )
                    .await
                    .map_err(|e| self.error(e))?;
                if taken.is_some() {
                    return Ok(Claim::Ours);
                }
                let holder = client
                    .query_opt(
                        "SELECT owner, sent FROM cfhost_mailer_sent WHERE identity = $1",
                        &[&identity],
                    )
                    .await
                    .map_err(|e| self.error(e))?;
                match holder {
                    Some(row) if row.get::<_, bool>(1) => return Ok(Claim::AlreadySent),
                    Some(row) => return Ok(Claim::HeldElsewhere { owner: row.get(0) }),
                    None => continue,
                }
            }
        })
        .await
    }

    async fn settle(&self, identity: &str, owner: &str, sent: bool) -> Result<(), StoreError> {
        let statement = if sent {
            "UPDATE cfhost_mailer_sent SET sent = true, claimed_at = now() \
             WHERE identity = $1 AND owner = $2"
        } else {
            "DELETE FROM cfhost_mailer_sent WHERE identity = $1 AND owner = $2 AND NOT sent"
        };
        self.bounded(async {
            let client = self.client().await?;
            client
                .execute(statement, &[&identity, &owner])
                .await
                .map_err(|e| self.error(e))?;
            Ok(())
        })
        .await
    }

    async fn forget_older_than(&self, age: Duration) -> Result<u64, StoreError> {
        let age = age.as_secs_f64();
        self.bounded(async {
            let client = self.client().await?;
            client
                .execute(
                    "DELETE FROM cfhost_mailer_sent \
                     WHERE sent AND claimed_at < now() - make_interval(secs => $1)",
                    &[&age],
                )
                .await
                .map_err(|e| self.error(e))
        })
        .await
    }
}
