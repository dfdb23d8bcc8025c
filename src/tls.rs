//! The serving certificate: loaded from PEM files and reloaded when they change, including the
//! kubelet's atomic `..data` symlink swap of a mounted Secret. A reload that fails (a key that
//! does not match the certificate, half-written files) keeps the previous certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key")]
    NoKey { path: PathBuf },
    #[error("{path} is not valid PEM: {cause}")]
    Pem { path: PathBuf, cause: pem::Error },
    #[error("the certificate {cert} and key {key} cannot serve TLS: {cause}")]
    Rustls {
        cert: PathBuf,
        key: PathBuf,
        cause: rustls::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the certificate and key are read from.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The files' contents as last read, to tell when they change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
}

/// A server config built from the files, with what it was built from.
pub struct Loaded {
    pub config: Arc<ServerConfig>,
    /// When the leaf certificate expires, as Unix seconds (when it can be read).
    pub expires_at: Option<i64>,
    pub contents: Contents,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|cause| Error::Read {
        path: path.to_path_buf(),
        cause,
    })
}

impl TlsFiles {
    /// Reads both files.
    pub fn read(&self) -> Result<Contents> {
        Ok(Contents {
            cert: read(&self.cert)?,
            key: read(&self.key)?,
        })
    }

    /// Reads and builds a server config.
    pub fn load(&self) -> Result<Loaded> {
        self.build(self.read()?)
    }

    /// Builds a server config: TLS 1.2 and 1.3 only, HTTP/2 and HTTP/1.1 by ALPN.
    pub fn build(&self, contents: Contents) -> Result<Loaded> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&contents.cert)
            .collect::<Result<_, _>>()
            .map_err(|cause| Error::Pem {
                path: self.cert.clone(),
                cause,
            })?;
        let Some(leaf) = certs.first() else {
            return Err(Error::NoCertificate {
                path: self.cert.clone(),
            });
        };
        let expires_at = expiry(leaf);
        let key = PrivateKeyDer::from_pem_slice(&contents.key).map_err(|cause| match cause {
            pem::Error::NoItemsFound => Error::NoKey {
                path: self.key.clone(),
            },
            cause => Error::Pem {
                path: self.key.clone(),
                cause,
            },
        })?;
        let rustls_error = |cause| Error::Rustls {
            cert: self.cert.clone(),
            key: self.key.clone(),
            cause,
        };
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map_err(rustls_error)?
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .map_err(rustls_error)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Loaded {
            config: Arc::new(config),
            expires_at,
            contents,
        })
    }
}

/// The leaf certificate's notAfter, as Unix seconds.
fn expiry(leaf: &CertificateDer<'_>) -> Option<i64> {
    x509_parser::parse_x509_certificate(leaf)
        .ok()
        .map(|(_, cert)| cert.validity().not_after.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_bundle(dir: &Path) -> TlsFiles {
        crate::cmd::certs::generate(&["127.0.0.1".to_string()], 30)
            .and_then(|b| b.write(dir))
            .unwrap_or_else(|e| panic!("{e}"));
        TlsFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        }
    }

    #[test]
    fn loads_a_certificate_and_reads_its_expiry() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let files = write_bundle(dir.path());
        let loaded = files.load().unwrap_or_else(|e| panic!("{e}"));
        let now = jiff::Timestamp::now().as_second();
        let expires = loaded.expires_at.unwrap_or_default();
        assert!(
            expires > now + 29 * 86400 && expires < now + 32 * 86400,
            "{expires}"
        );
        assert_eq!(loaded.config.alpn_protocols[0], b"h2".to_vec());
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let files = write_bundle(dir.path());
        let missing = TlsFiles {
            cert: dir.path().join("nope.crt"),
            key: files.key.clone(),
        };
        assert!(matches!(missing.load(), Err(Error::Read { .. })));
        std::fs::write(&files.cert, "not pem").unwrap_or_else(|e| panic!("{e}"));
        let message = files
            .load()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains("holds no PEM certificate"), "{message}");
        // A key from another bundle does not match the certificate.
        let other = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let other_files = write_bundle(other.path());
        let mismatched = TlsFiles {
            cert: other_files.cert.clone(),
            key: write_bundle(dir.path()).key,
        };
        let message = mismatched
            .load()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains("cannot serve TLS"), "{message}");
        std::fs::write(&files.key, "").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            &files.cert,
            std::fs::read(&other_files.cert).unwrap_or_default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(files.load(), Err(Error::NoKey { .. })));
    }
}
