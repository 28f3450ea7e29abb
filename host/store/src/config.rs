//! `[store]`: where the accounts' documents and modules live.
//!
//! ```toml
//! [store]
//! url = "postgres://cfhost:secret@db.example:5432/cfhost"  # default: the data directory
//! timeout_secs = 5     # the longest any database operation may take
//! pool_size = 8        # connections for reads and writes (one more listens for changes)
//! ca_file = "/etc/cfhost/db-ca.pem"  # TLS, the server's certificate signed by one of these
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::postgres::PgSettings;

/// The `[store]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// A PostgreSQL URL; without one, the data directory is the store.
    pub url: Option<String>,
    pub timeout_secs: u64,
    pub pool_size: usize,
    /// Certificates (PEM) the database's may be signed by; given, connections are TLS.
    pub ca_file: Option<PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        let defaults = PgSettings::new("");
        StoreConfig {
            url: None,
            timeout_secs: defaults.timeout.as_secs(),
            pool_size: defaults.pool_size,
            ca_file: None,
        }
    }
}

impl StoreConfig {
    /// The database's settings, when a URL is configured.
    pub fn postgres(&self) -> Option<PgSettings> {
        let url = self.url.as_deref().filter(|url| !url.trim().is_empty())?;
        Some(PgSettings {
            url: url.to_string(),
            timeout: Duration::from_secs(self.timeout_secs.max(1)),
            pool_size: self.pool_size.max(1),
            ca_file: self.ca_file.clone(),
        })
    }
}
