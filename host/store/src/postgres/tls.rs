//! TLS to the database. A URL with `sslmode=require`, or a `[store] ca_file`, makes every
//! connection TLS with the server's certificate checked (as libpq's `verify-full` does: the
//! web's roots and the CA file, and the URL's host name); otherwise connections are plain,
//! for a database on a private network. libpq's `prefer` (TLS when the server offers it, its
//! certificate unchecked) is taken as plain: it stops no one who can change the traffic.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::StoreError;

/// The connector for `config`, whose TLS mode it settles (require or disable).
pub(super) fn connector(
    config: &mut tokio_postgres::Config,
    ca_file: Option<&Path>,
) -> Result<MakeRustlsConnect, StoreError> {
    let required = ca_file.is_some() || config.get_ssl_mode() == SslMode::Require;
    config.ssl_mode(if required {
        SslMode::Require
    } else {
        SslMode::Disable
    });
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(file) = ca_file {
        let refused =
            |why: String| StoreError::Refused(format!("[store] ca_file {}: {why}", file.display()));
        let certificates = CertificateDer::pem_file_iter(file)
            .map_err(|e| refused(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| refused(e.to_string()))?;
        if certificates.is_empty() {
            return Err(refused("holds no PEM certificate".to_string()));
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|e| refused(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Refused(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(client))
}
