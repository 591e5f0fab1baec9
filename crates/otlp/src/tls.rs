//! TLS to an `https://` OTLP endpoint: which certificates to trust (the system's roots, or a
//! private CA instead) and the optional client certificate, turned into one rustls client
//! configuration that both transports use: hyper-rustls connectors under the OTLP/HTTP client
//! and under the gRPC channel. One configuration (rather than tonic's own TLS features for
//! gRPC) keeps the two transports verifying the same way, and reuses the rustls, ring and
//! hyper-rustls the Kubernetes client already builds.
//!
//! The files are read when the exporter starts, so a missing or unreadable file stops the
//! start with a clear error; a server whose certificate does not verify fails each export
//! (counted, and reported once on stderr), never capture.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The PEM files that say how to verify the endpoint and how to prove who we are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificates to trust instead of the system's roots (as the OpenTelemetry SDKs
    /// treat `OTEL_EXPORTER_OTLP_CERTIFICATE`).
    pub ca: Option<PathBuf>,
    /// A client certificate chain and its key, for endpoints that ask for mutual TLS.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl TlsFiles {
    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.client_cert.is_none() && self.client_key.is_none()
    }

    /// The rustls client configuration, without ALPN (the connector sets what its transport
    /// speaks: `h2` for gRPC, `http/1.1` for OTLP/HTTP).
    pub fn client_config(&self) -> Result<rustls::ClientConfig, String> {
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err(HALF_CLIENT_IDENTITY.to_string());
        }
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca {
            Some(path) => {
                for cert in certificates(path)? {
                    roots
                        .add(cert)
                        .map_err(|err| format!("CA certificate {}: {err}", path.display()))?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _ignored) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    let why = found
                        .errors
                        .first()
                        .map(|err| format!(" ({err})"))
                        .unwrap_or_default();
                    return Err(format!(
                        "no system root certificates found{why}: install the system's CA \
                         certificates or give the endpoint's CA (--otlp-ca)"
                    ));
                }
            }
        }
        // ring, the provider the rest of the tree builds (named, so another provider enabled
        // elsewhere in a build cannot make the choice ambiguous).
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS: {err}"))?
        .with_root_certificates(roots);
        let config = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                let chain = certificates(cert)?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|err| format!("client key {}: {err}", key.display()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|err| format!("client certificate {}: {err}", cert.display()))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(HALF_CLIENT_IDENTITY.to_string()),
        };
        Ok(config)
    }
}

const HALF_CLIENT_IDENTITY: &str = "a client certificate needs its key and a key its \
     certificate (--otlp-client-cert and --otlp-client-key)";

/// Every certificate in a PEM file; none is an error (a file of something else).
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|err| format!("{}: {err}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_files_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("agentscope-otlp-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "not a certificate\n").unwrap();
        let missing = TlsFiles {
            ca: Some(dir.join("missing.pem")),
            ..TlsFiles::default()
        };
        assert!(missing.client_config().unwrap_err().contains("missing.pem"));
        let empty = TlsFiles {
            ca: Some(not_pem.clone()),
            ..TlsFiles::default()
        };
        assert!(empty
            .client_config()
            .unwrap_err()
            .contains("no PEM certificate"));
        let half = TlsFiles {
            client_cert: Some(not_pem),
            ..TlsFiles::default()
        };
        assert!(half.client_config().unwrap_err().contains("needs its key"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
