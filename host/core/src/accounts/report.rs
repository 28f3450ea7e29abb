//! What loading a data directory found: the documents it rejected and what deserves a look,
//! typed so that the API can render them field by field and the CLI can print them.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::callflow::{CallflowError, UnknownModule};

/// A data document that was rejected; everything else loads regardless.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// A callflow that is malformed or whose node data breaks a module's schema.
    #[error(transparent)]
    Callflow(#[from] CallflowError),
    /// A user or account document that is not valid JSON of its shape.
    #[error("{file}:{line}:{column}: {message}")]
    Malformed {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A document or directory that could not be read.
    #[error("{file}: cannot read: {source}")]
    Unreadable {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A realm or a global number another account has already: it stays with that one.
    #[error("{file}: {what} belongs to account `{owner}`; it is not given to this account")]
    Taken {
        file: PathBuf,
        what: String,
        owner: String,
    },
}

impl DocumentError {
    /// The rejected file.
    pub fn file(&self) -> &Path {
        match self {
            DocumentError::Callflow(e) => e.file(),
            DocumentError::Malformed { file, .. }
            | DocumentError::Unreadable { file, .. }
            | DocumentError::Taken { file, .. } => file,
        }
    }

    /// The error as JSON for the API: `file`, `error`, and where it is known the node's `path`
    /// and `module`.
    pub fn to_json(&self) -> Value {
        let (path, module) = match self {
            DocumentError::Callflow(CallflowError::Data { path, module, .. }) => {
                (Some(path.as_str()), Some(module.as_str()))
            }
            DocumentError::Callflow(CallflowError::Shape { path, .. }) => {
                (Some(path.as_str()), None)
            }
            _ => (None, None),
        };
        json!({
            "file": self.file().display().to_string(),
            "path": path,
            "module": module,
            "error": self.to_string(),
        })
    }
}

/// Something that loads but deserves a look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// A node names no loaded module: at run time it is skipped, as KAZOO does.
    UnknownModule(UnknownModule),
    /// The store has no accounts yet.
    NoAccounts { store: String },
    /// An account's `timezone` is no IANA time zone: the account loads, and modules that need
    /// its time zone (`time_of_day`) fail on its calls.
    BadTimezone {
        file: PathBuf,
        timezone: String,
        reason: String,
    },
    /// A device whose `owner_id` names no user of its account: it registers and calls, but a
    /// call to its owner cannot ring it.
    UnknownOwner { file: PathBuf, owner_id: String },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::UnknownModule(unknown) => unknown.fmt(f),
            Warning::NoAccounts { store } => write!(f, "{store}: no accounts yet"),
            Warning::BadTimezone {
                file,
                timezone,
                reason,
            } => write!(
                f,
                "{}: timezone `{timezone}` is no IANA time zone ({reason}); time_of_day nodes \
                 fail on this account's calls",
                file.display()
            ),
            Warning::UnknownOwner { file, owner_id } => write!(
                f,
                "{}: owner_id `{owner_id}` names no user of this account; no call to a user \
                 rings this device",
                file.display()
            ),
        }
    }
}

/// What loading a data directory rejected, and what it noticed.
#[derive(Debug, Default)]
pub struct DataReport {
    /// Documents that were rejected, each with its file and place.
    pub errors: Vec<DocumentError>,
    /// The files of rejected documents whose previous version keeps serving.
    pub kept_previous: BTreeSet<PathBuf>,
    /// Things that load but deserve a look.
    pub warnings: Vec<Warning>,
}

impl DataReport {
    /// Each error as a log line, saying where the previous version keeps serving.
    pub fn error_lines(&self) -> impl Iterator<Item = String> + '_ {
        self.errors.iter().map(|error| {
            if self.kept_previous.contains(error.file()) {
                format!("{error} (the previous version keeps serving)")
            } else {
                error.to_string()
            }
        })
    }

    /// The rejected documents, as account `account_id`'s.
    pub fn rejected(&self, account_id: &str) -> Vec<RejectedDocument> {
        self.errors
            .iter()
            .map(|error| RejectedDocument {
                account_id: account_id.to_string(),
                details: error.to_json(),
                kept_previous: self.kept_previous.contains(error.file()),
            })
            .collect()
    }

    /// Adds what `other` found.
    pub fn append(&mut self, other: DataReport) {
        self.errors.extend(other.errors);
        self.kept_previous.extend(other.kept_previous);
        self.warnings.extend(other.warnings);
    }
}

/// A document the loaded configuration left out, or whose previous version it kept.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedDocument {
    pub account_id: String,
    /// [`DocumentError::to_json`]: `file`, `error`, and where known `path` and `module`.
    pub details: Value,
    /// Whether the version loaded before keeps serving (else the document is left out).
    pub kept_previous: bool,
}
