//! Copies every account from one store to another: `cfhost store import DIR` (a data
//! directory into the database) and `cfhost store export DIR` (back). Each account, document,
//! module, email template and voicemail message is written over what the target has of the
//! same id, so a copy can be run again (after one cut short, or to bring changes over) and
//! ends the same; what the target has
//! that the source does not is left alone. Documents are written as indented JSON.

use crate::{AccountData, Document, DocumentKind, Store, StoreError};

/// What a copy did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CopySummary {
    pub accounts: usize,
    pub documents: usize,
    pub modules: usize,
    pub messages: usize,
    pub templates: usize,
    /// What was not copied, each `place: why` (a file that cannot be read, a document that is
    /// not JSON).
    pub skipped: Vec<String>,
}

impl std::fmt::Display for CopySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} accounts, {} documents, {} modules, {} messages, {} templates copied; {} skipped",
            self.accounts,
            self.documents,
            self.modules,
            self.messages,
            self.templates,
            self.skipped.len()
        )
    }
}

/// Copies every account of `from` into `to`. Stops at the first write `to` refuses for a
/// reason other than the value (it cannot be reached): run it again once it can.
pub async fn copy_all(from: &dyn Store, to: &dyn Store) -> Result<CopySummary, StoreError> {
    let mut summary = CopySummary::default();
    for account in from.read_all().await? {
        copy_account(&account, to, &mut summary).await?;
        for (id, parts) in from.account_templates(&account.id).await? {
            match to.put_template(&account.id, &id, &parts).await {
                Ok(()) => summary.templates += 1,
                Err(StoreError::Refused(why)) => summary.skipped.push(format!(
                    "template `{id}` of account `{}`: {why}",
                    account.id
                )),
                Err(e) => return Err(e),
            }
        }
        for message in from.account_messages(&account.id).await? {
            to.put_message(&message).await?;
            summary.messages += 1;
        }
    }
    Ok(summary)
}

async fn copy_account(
    account: &AccountData,
    to: &dyn Store,
    summary: &mut CopySummary,
) -> Result<(), StoreError> {
    let skip = |summary: &mut CopySummary, place: &std::path::Path, why: &dyn ToString| {
        summary
            .skipped
            .push(format!("{}: {}", place.display(), why.to_string()));
    };
    for problem in account.problems.iter().chain(&account.module_problems) {
        skip(summary, &problem.place, &problem.error);
    }
    let settings = match &account.settings {
        Some(document) => match indented(document) {
            Ok(text) => Some(text),
            Err(e) => {
                skip(summary, &document.place, &e);
                None
            }
        },
        None => None,
    };
    to.put_account(&account.id, settings.as_deref()).await?;
    summary.accounts += 1;
    let documents = [
        (DocumentKind::Callflow, &account.callflows),
        (DocumentKind::User, &account.users),
        (DocumentKind::Device, &account.devices),
        (DocumentKind::VmBox, &account.vmboxes),
    ];
    for (kind, documents) in documents {
        for document in documents {
            let text = match indented(document) {
                Ok(text) => text,
                Err(e) => {
                    skip(summary, &document.place, &e);
                    continue;
                }
            };
            match to
                .put_document(&account.id, kind, &document.id, &text)
                .await
            {
                Ok(()) => summary.documents += 1,
                Err(StoreError::Refused(why)) => skip(summary, &document.place, &why),
                Err(e) => return Err(e),
            }
        }
    }
    for module in &account.modules {
        to.put_module(&account.id, &module.name, module.bytes.clone())
            .await?;
        summary.modules += 1;
    }
    Ok(())
}

/// The document as indented JSON, or why it is not JSON.
fn indented(document: &Document) -> Result<String, serde_json::Error> {
    let value: serde_json::Value = serde_json::from_str(&document.text)?;
    serde_json::to_string_pretty(&value)
}
