//! Sending reports to a metadata store.
//!
//! # Request
//!
//! `POST <url>/api/v1/reports` with
//! - `Content-Type: application/json`, body: the normalized report (the policy's `input`:
//!   `{artifact, scanner, vulnerabilities, exceptions}`);
//! - `Authorization: Bearer <token>` when a token file is configured (read at every send, so
//!   a rotated token is picked up);
//! - `X-Scangate-Scan: <kind>/<namespace>/<name>` and `X-Scangate-Scan-Uid: <uid>`: the scan
//!   the report belongs to.
//!
//! # Response
//!
//! A 2xx status with the JSON body `{"url": "<where the store keeps the results>"}`; the URL
//! becomes `status.metadataURL`. Anything else is an error, shown in the `SendingResults`
//! condition and retried on the controller's error-retry schedule. Sending never changes the
//! scan's verdict.
//!
//! TLS: the store's CA (PEM) comes from `--metadata-store-ca-file`; without one the platform's
//! trust store is used.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;

use super::Error;
use crate::report::Report;

/// The path reports are posted to, under the store's base URL.
pub const REPORTS_PATH: &str = "/api/v1/reports";

/// How long one send may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// The scan a report is sent for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanIdentity {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// A configured metadata store.
#[derive(Clone, Debug)]
pub struct MetadataStore {
    endpoint: String,
    token_file: Option<PathBuf>,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct Answer {
    url: String,
}

impl MetadataStore {
    /// A client for the store at `base_url`.
    pub fn new(
        base_url: &str,
        token_file: Option<PathBuf>,
        ca_file: Option<PathBuf>,
    ) -> Result<Self, Error> {
        let builder = reqwest::Client::builder().timeout(SEND_TIMEOUT);
        let builder = match &ca_file {
            Some(path) => builder.tls_backend_preconfigured(tls_config(path)?),
            None => builder,
        };
        let client = builder.build().map_err(|e| Error::Client(e.to_string()))?;
        Ok(MetadataStore {
            endpoint: format!("{}{REPORTS_PATH}", base_url.trim_end_matches('/')),
            token_file,
            client,
        })
    }

    /// The URL reports are posted to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends a report; returns the URL the store keeps it at.
    pub async fn send(&self, scan: &ScanIdentity, report: &Report) -> Result<String, Error> {
        let body = serde_json::to_vec(report)?;
        let mut request = self
            .client
            .post(&self.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                "X-Scangate-Scan",
                format!("{}/{}/{}", scan.kind, scan.namespace, scan.name),
            )
            .header("X-Scangate-Scan-Uid", scan.uid.clone())
            .body(body);
        if let Some(path) = &self.token_file {
            let token = std::fs::read_to_string(path).map_err(|cause| Error::TokenFile {
                path: path.clone(),
                cause,
            })?;
            request = request.bearer_auth(token.trim());
        }
        let url = self.endpoint.clone();
        let response = request.send().await.map_err(|e| Error::Request {
            url: url.clone(),
            cause: crate::admin::error_chain(&e),
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|e| Error::Request {
            url: url.clone(),
            cause: crate::admin::error_chain(&e),
        })?;
        if !status.is_success() {
            return Err(Error::Status {
                url,
                status: status.as_u16(),
                body: text.chars().take(300).collect(),
            });
        }
        let answer: Answer = serde_json::from_str(&text).map_err(|e| Error::Answer {
            url: url.clone(),
            cause: e.to_string(),
        })?;
        Ok(answer.url)
    }
}

/// A rustls client config trusting the CA certificates of a PEM file.
fn tls_config(path: &PathBuf) -> Result<rustls::ClientConfig, Error> {
    let pem = std::fs::read(path).map_err(|cause| Error::CaFile {
        path: path.clone(),
        cause,
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(Error::NoCertificate { path: path.clone() });
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Client(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(config)
}
