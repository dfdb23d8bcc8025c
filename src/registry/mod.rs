//! Tag resolution: asks an image's registry (OCI distribution API) which manifest a tag names
//! now, with a pull secret's credentials, following Basic and Bearer token auth. Never called
//! on the admission path. Pure parts (pull secrets, challenges, manifests, where requests may
//! go) are in `auth`, `manifest` and `egress`; the requests are here.
//!
//! The errors' messages end up in the tenant's scan status: they name the failure and the
//! image and registry the tenant named, never what the registry answered, where it redirected
//! or what it resolves to. That detail is logged (tracing) when a resolution fails.

mod attestations;
pub mod auth;
pub mod egress;
pub mod manifest;
mod push;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{StatusCode, Url};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

pub use attestations::cosign_tag;
pub use auth::{Challenge, Credentials, DockerConfig};
pub use egress::Egress;
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
        /// The registry's error code when it is one of the distribution spec's
        /// (`MANIFEST_UNKNOWN`, `NAME_UNKNOWN`), else `404`.
        code: &'static str,
    },
    #[error(
        "registry {registry} is unreachable for {image} (requests are bounded to {}s; check the \
         address, the network, and for certificate errors the CA bundle; the controller's log \
         has the cause)",
        REQUEST_TIMEOUT.as_secs()
    )]
    Unreachable {
        registry: String,
        image: String,
        /// The connection error, with the URL asked: for the log only.
        detail: String,
    },
    #[error(
        "registry {registry} redirected the request for {image} where the controller does not \
         go (plain HTTP, an internal address, or too many redirects), and nothing was fetched \
         there: an admin can allow it (--registry-insecure-hosts, --registry-allowed-private); \
         the controller's log says where"
    )]
    RefusedRedirect {
        registry: String,
        image: String,
        /// The refused target and the rule: for the log only.
        detail: String,
    },
    #[error(
        "registry {registry} asked for a token for {image} from a realm the controller does not \
         use (plain HTTP, an internal address, or neither the registry's own host:port nor a \
         host in --registry-realm-hosts), and no credentials were sent there: the controller's \
         log says which"
    )]
    RefusedRealm {
        registry: String,
        image: String,
        /// The refused realm and the rule: for the log only.
        detail: String,
    },
    #[error(
        "registry {registry} gave no usable {answer} for {image} (the controller's log has the \
         detail)"
    )]
    BadResponse {
        registry: String,
        image: String,
        answer: Answer,
        /// What was wrong with it, URL included: for the log only.
        detail: String,
    },
    #[error(
        "registry {registry} refused to store the verdict attestation of {image} ({status}) \
         {}",
        if *credentials_sent {
            "with the push secret's credentials: check that its user may push to this repository"
        } else {
            "without credentials: name a dockerconfigjson Secret that may push to this \
             repository in the admission config's attestations.sign.pushSecret"
        }
    )]
    PushRefused {
        registry: String,
        image: String,
        status: u16,
        credentials_sent: bool,
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

impl Error {
    /// What the tenant's message leaves out (URLs, addresses, what was answered), for the log.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Error::Unreachable { detail, .. }
            | Error::RefusedRedirect { detail, .. }
            | Error::RefusedRealm { detail, .. }
            | Error::BadResponse { detail, .. } => Some(detail),
            _ => None,
        }
    }
}

/// Which answer of a registry was not usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Manifest,
    Challenge,
    Token,
    Referrers,
    Attestation,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Answer::Manifest => "manifest",
            Answer::Challenge => "authentication challenge",
            Answer::Token => "token",
            Answer::Referrers => "referrers list",
            Answer::Attestation => "attestation",
        })
    }
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

/// A client for registries' manifest API, within the admin's egress rules.
#[derive(Clone, Debug)]
pub struct Resolver {
    /// The TLS configuration trusting the admin's CA bundle; `None`: the platform's roots.
    tls: Option<rustls::ClientConfig>,
    egress: Arc<Egress>,
}

/// What a manifest request is sent with.
enum Authorization<'a> {
    None,
    Basic(&'a Credentials),
    Bearer(String),
}

/// Which request of a resolution failed: it tells a refused redirect from a refused realm.
#[derive(Clone, Copy)]
enum Asking {
    Manifest,
    Token,
}

/// One resolution: the image, the URL of its manifest at its registry, and a client whose
/// redirect policy and DNS resolver apply the egress rules for that registry.
struct Resolution<'a> {
    image: &'a ImageRef,
    manifest: Url,
    client: reqwest::Client,
    egress: &'a Egress,
}

impl Resolver {
    /// A resolver trusting `ca_bundle` (PEM) when given, else the platform's roots, with the
    /// strictest egress rules (no insecure registries, no internal destinations, no realm
    /// hosts beyond registries' own) until [`Resolver::with_egress`] gives the admin's.
    pub fn new(ca_bundle: Option<&[u8]>) -> Result<Self> {
        let tls = ca_bundle.map(tls_config).transpose()?;
        if tls.is_none() {
            // The platform's verifier uses the process's crypto provider: ring, as `main`
            // installs it (a no-op when one is installed already).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        Ok(Resolver {
            tls,
            egress: Arc::new(Egress::default()),
        })
    }

    /// The same resolver within the admin's egress rules.
    pub fn with_egress(self, egress: Egress) -> Self {
        Resolver {
            egress: Arc::new(egress),
            ..self
        }
    }

    /// Resolves `image`'s tag (or checks its digest) to the manifest its registry serves now.
    /// A failure is logged with its detail; the error's message is the tenant's.
    #[tracing::instrument(skip_all, fields(image = %image))]
    pub async fn resolve(
        &self,
        image: &ImageRef,
        credentials: Option<&Credentials>,
    ) -> Result<Resolved> {
        let result = self.resolution(image)?.resolve(credentials).await;
        if let Err(error) = &result {
            tracing::warn!(
                %error,
                detail = error.detail().unwrap_or_default(),
                "registry resolution failed"
            );
        }
        result
    }

    fn resolution<'a>(&'a self, image: &'a ImageRef) -> Result<Resolution<'a>> {
        let manifest = Url::parse(&manifest_url(image, &self.egress))
            .map_err(|e| Error::Client(format!("{image} gives no manifest URL: {e}")))?;
        Ok(Resolution {
            image,
            client: self.client(&manifest)?,
            manifest,
            egress: &self.egress,
        })
    }

    /// A client for one resolution at the registry `manifest` is on: redirects judged by
    /// [`Egress::check_redirect`], names resolved to the addresses [`Egress::connectable`]
    /// leaves, no proxy (the rules speak of the addresses connected to).
    fn client(&self, manifest: &Url) -> Result<reqwest::Client> {
        let registry = manifest.clone();
        let egress = Arc::clone(&self.egress);
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            match egress.check_redirect(&registry, attempt.url(), attempt.previous().len()) {
                Ok(()) => attempt.follow(),
                Err(refusal) => attempt.error(refusal),
            }
        });
        let dns = CheckedDns {
            egress: Arc::clone(&self.egress),
            registry_host: manifest.host_str().unwrap_or_default().to_string(),
        };
        let builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(REQUEST_TIMEOUT)
            .redirect(redirects)
            .referer(false)
            .no_proxy()
            .dns_resolver(dns);
        let builder = match &self.tls {
            Some(tls) => builder.tls_backend_preconfigured(tls.clone()),
            None => builder,
        };
        builder
            .build()
            .map_err(|e| Error::Client(crate::admin::error_chain(&e)))
    }
}

/// The system's resolver, keeping of a name's addresses those [`Egress::connectable`] allows
/// in a resolution at `registry_host`. IP literals never get here: the redirect and realm
/// rules judge them.
struct CheckedDns {
    egress: Arc<Egress>,
    registry_host: String,
}

impl reqwest::dns::Resolve for CheckedDns {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let egress = Arc::clone(&self.egress);
        let registry_host = self.registry_host.clone();
        let name = name.as_str().to_string();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed = egress.connectable(&registry_host, &name, resolved)?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl Resolution<'_> {
    async fn resolve(&self, credentials: Option<&Credentials>) -> Result<Resolved> {
        let response = self.get_manifest(Authorization::None).await?;
        let (response, credentials_sent) = if response.status() == StatusCode::UNAUTHORIZED {
            let authorization = self.authorize(&response, credentials).await?;
            (
                self.get_manifest(authorization).await?,
                credentials.is_some(),
            )
        } else {
            (response, false)
        };
        let status = response.status();
        match status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(self.auth_error(status, credentials_sent));
            }
            StatusCode::NOT_FOUND => {
                let body = self
                    .read_body(response, Answer::Manifest, Asking::Manifest)
                    .await
                    .unwrap_or_default();
                return Err(Error::NotFound {
                    registry: self.registry(),
                    image: self.image.to_string(),
                    code: error_code(&body).unwrap_or("404"),
                });
            }
            _ => {
                return Err(self.bad_response(
                    Answer::Manifest,
                    format!("{} answered status {status}", response.url()),
                ));
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
        let url = response.url().clone();
        let body = self
            .read_body(response, Answer::Manifest, Asking::Manifest)
            .await?;
        interpret(
            &body,
            content_type.as_deref(),
            served_digest.as_deref(),
            self.image.digest(),
        )
        .map_err(|problem| self.bad_response(Answer::Manifest, format!("{url}: {problem}")))
    }

    /// What to send after `response`, a 401: the pull secret's credentials for a Basic
    /// challenge, a token from the realm of a Bearer challenge.
    async fn authorize<'c>(
        &self,
        response: &reqwest::Response,
        credentials: Option<&'c Credentials>,
    ) -> Result<Authorization<'c>> {
        self.authorize_for(response, credentials, None).await
    }

    /// [`Resolution::authorize`] with a token asked for `scope` when given (a push), else for
    /// the challenge's scope or a pull.
    async fn authorize_for<'c>(
        &self,
        response: &reqwest::Response,
        credentials: Option<&'c Credentials>,
        own_scope: Option<&str>,
    ) -> Result<Authorization<'c>> {
        let values = response.headers().get_all(WWW_AUTHENTICATE);
        let challenge = Challenge::from_headers(values.iter().filter_map(|v| v.to_str().ok()));
        match (challenge, credentials) {
            (Some(Challenge::Basic), Some(credentials)) => Ok(Authorization::Basic(credentials)),
            (Some(Challenge::Basic), None) => Err(self.auth_error(StatusCode::UNAUTHORIZED, false)),
            (
                Some(Challenge::Bearer {
                    realm,
                    service,
                    scope,
                }),
                credentials,
            ) => {
                let scope = match own_scope {
                    Some(asked) => asked.to_string(),
                    None => scope.unwrap_or_else(|| auth::pull_scope(self.image.repository())),
                };
                let token = self
                    .token(&realm, service.as_deref(), &scope, credentials)
                    .await?;
                Ok(Authorization::Bearer(token))
            }
            (None, _) => Err(self.bad_response(
                Answer::Challenge,
                format!(
                    "{}: 401 without a Basic or Bearer WWW-Authenticate challenge",
                    response.url()
                ),
            )),
        }
    }

    async fn get_manifest(&self, authorization: Authorization<'_>) -> Result<reqwest::Response> {
        let request = self
            .client
            .get(self.manifest.clone())
            .header(ACCEPT, MediaType::accept());
        let request = match authorization {
            Authorization::None => request,
            Authorization::Basic(c) => request.basic_auth(&c.username, Some(&c.password)),
            Authorization::Bearer(token) => request.bearer_auth(token),
        };
        request
            .send()
            .await
            .map_err(|e| self.request_error(&e, Asking::Manifest))
    }

    /// A token from a Bearer challenge's realm, asked with the credentials when there are any,
    /// once the realm passes [`Egress::check_realm`].
    async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        credentials: Option<&Credentials>,
    ) -> Result<String> {
        let mut url = self
            .egress
            .check_realm(&self.manifest, realm)
            .map_err(|refusal| Error::RefusedRealm {
                registry: self.registry(),
                image: self.image.to_string(),
                detail: refusal.to_string(),
            })?;
        url.query_pairs_mut().append_pair("scope", scope);
        if let Some(service) = service {
            url.query_pairs_mut().append_pair("service", service);
        }
        let request = self.client.get(url.clone());
        let request = match credentials {
            Some(c) => request.basic_auth(&c.username, Some(&c.password)),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|e| self.request_error(&e, Asking::Token))?;
        let status = response.status();
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(self.auth_error(status, credentials.is_some()));
        }
        if !status.is_success() {
            return Err(self.bad_response(
                Answer::Token,
                format!("the token endpoint {url} answered {status}"),
            ));
        }
        let body = self
            .read_body(response, Answer::Token, Asking::Token)
            .await?;
        auth::token_from_answer(&body).ok_or_else(|| {
            self.bad_response(
                Answer::Token,
                format!("the answer of {url} has no `token` or `access_token`"),
            )
        })
    }

    /// Reads a response body, at most [`MAX_MANIFEST_BYTES`].
    async fn read_body(
        &self,
        response: reqwest::Response,
        answer: Answer,
        asking: Asking,
    ) -> Result<Vec<u8>> {
        self.read_at_most(response, answer, asking, MAX_MANIFEST_BYTES)
            .await
    }

    /// Reads a response body, at most `limit` bytes.
    async fn read_at_most(
        &self,
        mut response: reqwest::Response,
        answer: Answer,
        asking: Asking,
        limit: usize,
    ) -> Result<Vec<u8>> {
        let url = response.url().clone();
        let mut body = Vec::new();
        loop {
            let chunk = response
                .chunk()
                .await
                .map_err(|e| self.request_error(&e, asking))?;
            let Some(chunk) = chunk else {
                return Ok(body);
            };
            if body.len() + chunk.len() > limit {
                return Err(
                    self.bad_response(answer, format!("the answer of {url} is over {limit} bytes"))
                );
            }
            body.extend_from_slice(&chunk);
        }
    }

    /// The registry as the image names it.
    fn registry(&self) -> String {
        self.image.registry().to_string()
    }

    fn auth_error(&self, status: StatusCode, credentials_sent: bool) -> Error {
        auth_error(self.image, status, credentials_sent)
    }

    fn bad_response(&self, answer: Answer, detail: String) -> Error {
        Error::BadResponse {
            registry: self.registry(),
            image: self.image.to_string(),
            answer,
            detail,
        }
    }

    /// A request that got no answer: refused by the egress rules (a redirect, or a name that
    /// resolves inside; for a token request, its realm), or unreachable.
    fn request_error(&self, error: &reqwest::Error, asking: Asking) -> Error {
        let registry = self.registry();
        let image = self.image.to_string();
        let detail = crate::admin::error_chain(error);
        match (refused_by_egress(error), asking) {
            (true, Asking::Manifest) => Error::RefusedRedirect {
                registry,
                image,
                detail,
            },
            (true, Asking::Token) => Error::RefusedRealm {
                registry,
                image,
                detail,
            },
            (false, _) => Error::Unreachable {
                registry,
                image,
                detail,
            },
        }
    }
}

/// Whether the egress rules stopped a request: the redirect policy's or the DNS resolver's
/// refusal is somewhere in the error's chain.
fn refused_by_egress(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if cause.is::<egress::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

fn auth_error(image: &ImageRef, status: StatusCode, credentials_sent: bool) -> Error {
    Error::Auth {
        registry: image.registry().to_string(),
        image: image.to_string(),
        status: status.as_u16(),
        credentials_sent,
    }
}

/// `https://<registry API host>/v2/<repository>/manifests/<digest or tag>`, `http://` for a
/// registry the admin lists as insecure.
pub fn manifest_url(image: &ImageRef, egress: &Egress) -> String {
    let reference = image.digest().or(image.tag()).unwrap_or("latest");
    format!("{}/manifests/{reference}", repository_url(image, egress))
}

/// `https://<registry API host>/v2/<repository>`, `http://` for a registry the admin lists as
/// insecure.
pub fn repository_url(image: &ImageRef, egress: &Egress) -> String {
    let host = match image.registry() {
        DEFAULT_REGISTRY => DOCKER_HUB_API,
        other => other,
    };
    format!("{}/v2/{}", egress.base_url(host), image.repository())
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

/// The error codes of the distribution spec: the only ones a registry's error body gets to
/// put in a tenant's message.
const ERROR_CODES: [&str; 14] = [
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
];

/// The first error code of a registry's error body (`{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`)
/// when it is one of the spec's.
fn error_code(body: &[u8]) -> Option<&'static str> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = value.pointer("/errors/0/code")?.as_str()?;
    ERROR_CODES.iter().copied().find(|known| *known == code)
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
        let strict = Egress::default();
        assert_eq!(
            manifest_url(&image("nginx"), &strict),
            "https://registry-1.docker.io/v2/library/nginx/manifests/latest"
        );
        assert_eq!(
            manifest_url(&image("localhost:5000/team/app:1.0"), &strict),
            "https://localhost:5000/v2/team/app/manifests/1.0"
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            manifest_url(&image(&format!("r.example/app:1@{digest}")), &strict),
            format!("https://r.example/v2/app/manifests/{digest}")
        );
        let insecure = Egress::new(
            vec!["localhost:5000".parse().unwrap_or_else(|e| panic!("{e}"))],
            vec![],
            vec![],
        );
        assert_eq!(
            manifest_url(&image("localhost:5000/team/app:1.0"), &insecure),
            "http://localhost:5000/v2/team/app/manifests/1.0"
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
            Some("MANIFEST_UNKNOWN")
        );
        assert_eq!(error_code(b"not json"), None);
        // A body is not echoed: only the spec's codes are.
        assert_eq!(
            error_code(br#"{"errors":[{"code":"SSH-2.0-OpenSSH"}]}"#),
            None
        );
    }

    #[test]
    fn tenant_messages_leave_the_detail_to_the_log() {
        let image = image("10.0.0.7:5000/app:1");
        let detail = "error following redirect for url (https://10.0.0.8:22/): refused";
        let named = || (image.registry().to_string(), image.to_string());
        let errors = [
            {
                let (registry, image) = named();
                Error::Unreachable {
                    registry,
                    image,
                    detail: detail.into(),
                }
            },
            {
                let (registry, image) = named();
                Error::RefusedRedirect {
                    registry,
                    image,
                    detail: detail.into(),
                }
            },
            {
                let (registry, image) = named();
                Error::RefusedRealm {
                    registry,
                    image,
                    detail: detail.into(),
                }
            },
            {
                let (registry, image) = named();
                Error::BadResponse {
                    registry,
                    image,
                    answer: Answer::Manifest,
                    detail: detail.into(),
                }
            },
        ];
        for error in errors {
            let message = error.to_string();
            assert!(message.contains("10.0.0.7:5000/app:1"), "{message}");
            assert!(!message.contains("10.0.0.8"), "{message}");
            assert_eq!(error.detail(), Some(detail));
        }
    }
}
