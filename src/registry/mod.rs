//! Tag resolution: asks an image's registry (OCI distribution API) which manifest a tag names
//! now, with a pull secret's credentials, following Basic and Bearer token auth. Never called
//! on the admission path. Pure parts (pull secrets, challenges, manifests) are in `auth` and
//! `manifest`; the requests are here.

pub mod auth;
pub mod manifest;

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

pub use auth::{Challenge, Credentials, DockerConfig};
pub use manifest::{MediaType, Platform};

use crate::image::{DEFAULT_REGISTRY, ImageRef};

/// How long one request to a registry (or its token endpoint) may take, connecting included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest manifest read: indexes of many platforms are a few KiB.
const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// Where Docker Hub's registry API is served.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "registry {registry} refused access to {image} ({status}) {}",
        if *credentials_sent {
            "with the pull secret's credentials: check the user name and password, and that the \
             user may pull this repository"
        } else {
            "without credentials: give the scan (or the workload) an imagePullSecret with an \
             entry for this registry"
        }
    )]
    Auth {
        registry: String,
        image: String,
        status: u16,
        credentials_sent: bool,
    },
    #[error(
        "registry {registry} has no manifest for {image} ({code}): check the repository name \
         and the tag, and that it was pushed"
    )]
    NotFound {
        registry: String,
        image: String,
        /// The registry's error code when it gave one (`MANIFEST_UNKNOWN`, `NAME_UNKNOWN`).
        code: String,
    },
    #[error(
        "registry {registry} is unreachable at {url}: {cause} (requests are bounded to {}s; \
         check the address, the network, and for certificate errors the CA bundle)",
        REQUEST_TIMEOUT.as_secs()
    )]
    Unreachable {
        registry: String,
        url: String,
        cause: String,
    },
    #[error("registry {registry} answered {url} unexpectedly: {problem}")]
    BadResponse {
        registry: String,
        url: String,
        problem: String,
    },
    #[error("the pull secret cannot be used: {problem}")]
    PullSecret { problem: String },
    #[error(
        "the registry CA bundle has no PEM certificate: give the CA that signed the registry's certificate"
    )]
    NoCertificate,
    #[error("cannot build the registry client: {0}")]
    Client(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a tag (or digest) resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The digest of the manifest or index the registry serves (`sha256:…`).
    pub digest: String,
    pub media_type: MediaType,
    /// For an index (multi-platform image), its platform manifests; empty otherwise.
    pub platforms: Vec<Platform>,
}

/// A client for registries' manifest API.
#[derive(Clone, Debug)]
pub struct Resolver {
    client: reqwest::Client,
}

/// What a manifest request is sent with.
enum Authorization<'a> {
    None,
    Basic(&'a Credentials),
    Bearer(String),
}

impl Resolver {
    /// A resolver trusting `ca_bundle` (PEM) when given, else the platform's roots.
    pub fn new(ca_bundle: Option<&[u8]>) -> Result<Self> {
        let builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(5));
        let builder = match ca_bundle {
            Some(pem) => builder.tls_backend_preconfigured(tls_config(pem)?),
            None => {
                // The platform's verifier uses the process's crypto provider: ring, as `main`
                // installs it (a no-op when one is installed already).
                let _ = rustls::crypto::ring::default_provider().install_default();
                builder
            }
        };
        let client = builder
            .build()
            .map_err(|e| Error::Client(crate::admin::error_chain(&e)))?;
        Ok(Resolver { client })
    }

    /// Resolves `image`'s tag (or checks its digest) to the manifest its registry serves now.
    #[tracing::instrument(skip_all, fields(image = %image))]
    pub async fn resolve(
        &self,
        image: &ImageRef,
        credentials: Option<&Credentials>,
    ) -> Result<Resolved> {
        let url = manifest_url(image);
        let registry = image.registry().to_string();
        let response = self.get_manifest(image, &url, Authorization::None).await?;
        let (response, credentials_sent) = if response.status() == StatusCode::UNAUTHORIZED {
            let values = response.headers().get_all(WWW_AUTHENTICATE);
            let challenge = Challenge::from_headers(values.iter().filter_map(|v| v.to_str().ok()));
            let authorization = match (challenge, credentials) {
                (Some(Challenge::Basic), Some(credentials)) => Authorization::Basic(credentials),
                (Some(Challenge::Basic), None) => {
                    return Err(auth_error(image, StatusCode::UNAUTHORIZED, false));
                }
                (
                    Some(Challenge::Bearer {
                        realm,
                        service,
                        scope,
                    }),
                    credentials,
                ) => {
                    let scope = scope.unwrap_or_else(|| auth::pull_scope(image.repository()));
                    let token = self
                        .token(image, &realm, service.as_deref(), &scope, credentials)
                        .await?;
                    Authorization::Bearer(token)
                }
                (None, _) => {
                    return Err(Error::BadResponse {
                        registry,
                        url,
                        problem: "401 without a Basic or Bearer WWW-Authenticate challenge".into(),
                    });
                }
            };
            (
                self.get_manifest(image, &url, authorization).await?,
                credentials.is_some(),
            )
        } else {
            (response, false)
        };
        let status = response.status();
        match status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(auth_error(image, status, credentials_sent));
            }
            StatusCode::NOT_FOUND => {
                let body = read_body(response, &registry, &url)
                    .await
                    .unwrap_or_default();
                return Err(Error::NotFound {
                    registry,
                    image: image.to_string(),
                    code: error_code(&body).unwrap_or_else(|| "404".into()),
                });
            }
            _ => {
                return Err(Error::BadResponse {
                    registry,
                    url,
                    problem: format!("status {status}"),
                });
            }
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header(CONTENT_TYPE);
        let served_digest = header(reqwest::header::HeaderName::from_static(
            "docker-content-digest",
        ));
        let body = read_body(response, &registry, &url).await?;
        interpret(
            &body,
            content_type.as_deref(),
            served_digest.as_deref(),
            image.digest(),
        )
        .map_err(|problem| Error::BadResponse {
            registry,
            url,
            problem,
        })
    }

    async fn get_manifest(
        &self,
        image: &ImageRef,
        url: &str,
        authorization: Authorization<'_>,
    ) -> Result<reqwest::Response> {
        let request = self.client.get(url).header(ACCEPT, MediaType::accept());
        let request = match authorization {
            Authorization::None => request,
            Authorization::Basic(c) => request.basic_auth(&c.username, Some(&c.password)),
            Authorization::Bearer(token) => request.bearer_auth(token),
        };
        request.send().await.map_err(|e| Error::Unreachable {
            registry: image.registry().to_string(),
            url: url.to_string(),
            cause: crate::admin::error_chain(&e),
        })
    }

    /// A token from a Bearer challenge's realm, asked with the credentials when there are any.
    async fn token(
        &self,
        image: &ImageRef,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        credentials: Option<&Credentials>,
    ) -> Result<String> {
        let registry = image.registry().to_string();
        let mut url = reqwest::Url::parse(realm).map_err(|e| Error::BadResponse {
            registry: registry.clone(),
            url: realm.to_string(),
            problem: format!("the Bearer challenge's realm is not a URL: {e}"),
        })?;
        url.query_pairs_mut().append_pair("scope", scope);
        if let Some(service) = service {
            url.query_pairs_mut().append_pair("service", service);
        }
        let request = self.client.get(url);
        let request = match credentials {
            Some(c) => request.basic_auth(&c.username, Some(&c.password)),
            None => request,
        };
        let response = request.send().await.map_err(|e| Error::Unreachable {
            registry: registry.clone(),
            url: realm.to_string(),
            cause: crate::admin::error_chain(&e),
        })?;
        let status = response.status();
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(auth_error(image, status, credentials.is_some()));
        }
        if !status.is_success() {
            return Err(Error::BadResponse {
                registry,
                url: realm.to_string(),
                problem: format!("the token endpoint answered {status}"),
            });
        }
        let body = read_body(response, &registry, realm).await?;
        auth::token_from_answer(&body).ok_or_else(|| Error::BadResponse {
            registry,
            url: realm.to_string(),
            problem: "the token endpoint's answer has no `token` or `access_token`".into(),
        })
    }
}

fn auth_error(image: &ImageRef, status: StatusCode, credentials_sent: bool) -> Error {
    Error::Auth {
        registry: image.registry().to_string(),
        image: image.to_string(),
        status: status.as_u16(),
        credentials_sent,
    }
}

/// `https://<registry API host>/v2/<repository>/manifests/<digest or tag>`.
pub fn manifest_url(image: &ImageRef) -> String {
    let host = match image.registry() {
        DEFAULT_REGISTRY => DOCKER_HUB_API,
        other => other,
    };
    let reference = image.digest().or(image.tag()).unwrap_or("latest");
    format!(
        "https://{host}/v2/{}/manifests/{reference}",
        image.repository()
    )
}

/// What a served manifest says: its digest (of the bytes served, which must match the
/// registry's `Docker-Content-Digest` and a digest asked for), media type, and platforms.
pub fn interpret(
    body: &[u8],
    content_type: Option<&str>,
    served_digest: Option<&str>,
    asked_digest: Option<&str>,
) -> Result<Resolved, String> {
    let digest = manifest::sha256_digest(body);
    if let Some(served) = served_digest.filter(|d| d.starts_with("sha256:"))
        && served != digest
    {
        return Err(format!(
            "its Docker-Content-Digest {served} is not the digest of the manifest it sent \
             ({digest})"
        ));
    }
    if let Some(asked) = asked_digest.filter(|d| d.starts_with("sha256:"))
        && asked != digest
    {
        return Err(format!(
            "it sent a manifest of digest {digest} when asked for {asked}"
        ));
    }
    let media_type = content_type
        .and_then(MediaType::parse)
        .or_else(|| manifest::media_type_of_body(body))
        .ok_or_else(|| {
            format!(
                "the manifest's media type {:?} is none of {}",
                content_type.unwrap_or(""),
                MediaType::accept()
            )
        })?;
    let platforms = if media_type.is_index() {
        manifest::platforms(body)?
    } else {
        Vec::new()
    };
    Ok(Resolved {
        digest,
        media_type,
        platforms,
    })
}

/// The first error code of a registry's error body (`{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`).
fn error_code(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value
        .pointer("/errors/0/code")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
}

/// Reads a response body, at most [`MAX_MANIFEST_BYTES`].
async fn read_body(mut response: reqwest::Response, registry: &str, url: &str) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let chunk = response.chunk().await.map_err(|e| Error::Unreachable {
            registry: registry.to_string(),
            url: url.to_string(),
            cause: crate::admin::error_chain(&e),
        })?;
        let Some(chunk) = chunk else {
            return Ok(body);
        };
        if body.len() + chunk.len() > MAX_MANIFEST_BYTES {
            return Err(Error::BadResponse {
                registry: registry.to_string(),
                url: url.to_string(),
                problem: format!("the answer is over {MAX_MANIFEST_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
}

fn tls_config(pem: &[u8]) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem).flatten() {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(Error::NoCertificate);
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .map_err(|e| Error::Client(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(reference: &str) -> ImageRef {
        ImageRef::parse(reference).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn manifest_urls() {
        assert_eq!(
            manifest_url(&image("nginx")),
            "https://registry-1.docker.io/v2/library/nginx/manifests/latest"
        );
        assert_eq!(
            manifest_url(&image("localhost:5000/team/app:1.0")),
            "https://localhost:5000/v2/team/app/manifests/1.0"
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            manifest_url(&image(&format!("r.example/app:1@{digest}"))),
            format!("https://r.example/v2/app/manifests/{digest}")
        );
    }

    #[test]
    fn served_manifests_are_checked() {
        let body =
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
        let digest = manifest::sha256_digest(body);
        let ok = interpret(body, Some("application/json"), Some(&digest), None);
        assert_eq!(
            ok,
            Ok(Resolved {
                digest: digest.clone(),
                media_type: MediaType::OciManifest,
                platforms: vec![],
            })
        );
        let other = format!("sha256:{}", "0".repeat(64));
        let lying = interpret(body, None, Some(&other), None)
            .err()
            .unwrap_or_default();
        assert!(lying.contains("is not the digest"), "{lying}");
        let wrong = interpret(body, None, None, Some(&other))
            .err()
            .unwrap_or_default();
        assert!(wrong.contains("when asked for"), "{wrong}");
        let unknown = interpret(b"{}", Some("text/html"), None, None)
            .err()
            .unwrap_or_default();
        assert!(unknown.contains("media type \"text/html\""), "{unknown}");
    }

    #[test]
    fn clients_build_with_or_without_a_ca_bundle() {
        assert!(Resolver::new(None).is_ok());
        let bundle = crate::cmd::certs::generate(&["127.0.0.1".to_string()], 1)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(Resolver::new(Some(bundle.ca_cert.as_bytes())).is_ok());
        assert!(matches!(
            Resolver::new(Some(b"not PEM")),
            Err(Error::NoCertificate)
        ));
    }

    #[test]
    fn errors_tell_the_admin_what_to_do() {
        let image = image("localhost:5000/app:1");
        let without = auth_error(&image, StatusCode::UNAUTHORIZED, false).to_string();
        assert!(without.contains("without credentials"), "{without}");
        assert!(without.contains("localhost:5000"), "{without}");
        let with = auth_error(&image, StatusCode::FORBIDDEN, true).to_string();
        assert!(
            with.contains("with the pull secret's credentials"),
            "{with}"
        );
        assert!(with.contains("403"), "{with}");
        assert_eq!(
            error_code(br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"x"}]}"#),
            Some("MANIFEST_UNKNOWN".into())
        );
        assert_eq!(error_code(b"not json"), None);
    }
}
