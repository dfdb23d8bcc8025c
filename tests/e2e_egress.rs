//! Where tag resolution (`scangate::registry`) may be sent, against hostile registries on
//! loopback: HTTPS servers started in the test that redirect elsewhere or name a realm
//! elsewhere, and bare listeners that count every connection made to them (there must be none).
//! The registry an image names is asked; being sent to another loopback port, to plain HTTP or
//! to a name that resolves to loopback is refused, with a message that names neither, and no
//! credentials go to a realm that is not the registry's own. No apiserver needed; runs when
//! `SCANGATE_E2E=1`.

mod common;

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum_server::tls_rustls::RustlsConfig;
use scangate::image::ImageRef;
use scangate::registry::egress::{Allowed, HostPort};
use scangate::registry::manifest::sha256_digest;
use scangate::registry::{Credentials, Egress, Error, Resolver};

const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":2},"layers":[]}"#;
const USER: &str = "tenant";
const PASSWORD: &str = "pull-secret-password";

fn enabled() -> bool {
    let on = std::env::var("SCANGATE_E2E").as_deref() == Ok("1");
    if !on {
        eprintln!("skipping: set SCANGATE_E2E=1 for registry egress tests");
    }
    on
}

fn credentials() -> Credentials {
    Credentials {
        username: USER.into(),
        password: PASSWORD.into(),
    }
}

/// A listener on loopback that accepts connections, counts them and closes them.
struct Sink {
    port: u16,
    connections: Arc<AtomicUsize>,
}

async fn sink() -> Sink {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    Sink { port, connections }
}

impl Sink {
    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// What a hostile registry was asked: the path (and query), and the Authorization it came with.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A registry of the test's making on a loopback port, over HTTPS (its CA in `ca`) or plain
/// HTTP; `answer` is given the registry's own `127.0.0.1:PORT`, the request's URI and headers.
struct Hostile {
    host: String,
    ca: Vec<u8>,
    seen: Seen,
}

impl Hostile {
    async fn start<F>(tls: bool, answer: F) -> Hostile
    where
        F: Fn(&str, &Uri, &HeaderMap) -> Response + Clone + Send + Sync + 'static,
    {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let host = format!("127.0.0.1:{}", listener.local_addr().expect("addr").port());
        let seen: Seen = Arc::default();
        let app = {
            let (host, seen) = (host.clone(), seen.clone());
            Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
                let (host, seen, answer) = (host.clone(), seen.clone(), answer.clone());
                async move {
                    let authorization = headers
                        .get(AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    seen.lock()
                        .expect("lock")
                        .push((uri.to_string(), authorization));
                    answer(&host, &uri, &headers)
                }
            })
        };
        let bundle =
            scangate::cmd::certs::generate(&["127.0.0.1".to_string(), "localhost".to_string()], 1)
                .expect("certs");
        if tls {
            let config = RustlsConfig::from_pem(bundle.cert.into_bytes(), bundle.key.into_bytes())
                .await
                .expect("tls config");
            let server = axum_server::from_tcp_rustls(listener, config).expect("server");
            tokio::spawn(async move { server.serve(app.into_make_service()).await });
        } else {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            tokio::spawn(async move { axum::serve(listener, app).await });
        }
        Hostile {
            host,
            ca: bundle.ca_cert.into_bytes(),
            seen,
        }
    }

    fn resolver(&self, egress: Egress) -> Resolver {
        Resolver::new(Some(&self.ca))
            .expect("resolver")
            .with_egress(egress)
    }

    fn image(&self, tag: &str) -> ImageRef {
        ImageRef::parse(&format!("{}/team/app:{tag}", self.host)).expect("image")
    }

    fn seen(&self) -> Vec<(String, Option<String>)> {
        self.seen.lock().expect("lock").clone()
    }
}

fn redirect(to: &str) -> Response {
    (StatusCode::TEMPORARY_REDIRECT, [(LOCATION, to.to_string())]).into_response()
}

fn manifest() -> Response {
    (
        [
            (
                CONTENT_TYPE,
                "application/vnd.oci.image.manifest.v1+json".to_string(),
            ),
            (
                axum::http::HeaderName::from_static("docker-content-digest"),
                sha256_digest(MANIFEST.as_bytes()),
            ),
        ],
        MANIFEST,
    )
        .into_response()
}

/// The port of `host:port`, as it appears in a URL or a message (`:PORT`).
fn port_of(sink: &Sink) -> String {
    format!(":{}", sink.port)
}

/// The message a refused redirect or realm leaves: it names the image, and none of `hidden`.
fn assert_names_only_the_image(error: &Error, image: &ImageRef, hidden: &[&str]) {
    let message = error.to_string();
    assert!(message.contains(&image.to_string()), "{message}");
    for text in hidden {
        assert!(!message.contains(text), "{message} names {text}");
    }
}

#[tokio::test]
async fn redirects_to_another_loopback_port_or_to_plain_http_are_not_followed() {
    if !enabled() {
        return;
    }
    let other_port = sink().await;
    let plain = sink().await;
    let (other, plain_port) = (other_port.port, plain.port);
    let registry = Hostile::start(true, move |own, uri, _| {
        let path = uri.path();
        let rest = path.trim_start_matches("/v2/team/app/manifests/");
        match rest {
            "other-port" => redirect(&format!("https://127.0.0.1:{other}{path}")),
            "loopback-name" => redirect(&format!("https://localhost:{other}{path}")),
            "plain" => redirect(&format!("http://127.0.0.1:{plain_port}{path}")),
            "own-plain" => redirect(&format!("http://{own}{path}")),
            "metadata" => redirect("https://169.254.169.254/latest/meta-data/"),
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    })
    .await;
    let resolver = registry.resolver(Egress::default());
    for tag in [
        "other-port",
        "loopback-name",
        "plain",
        "own-plain",
        "metadata",
    ] {
        let image = registry.image(tag);
        let result = resolver.resolve(&image, Some(&credentials())).await;
        let Err(error @ Error::RefusedRedirect { .. }) = &result else {
            panic!("{tag}: expected a refused redirect, got {result:?}");
        };
        assert_names_only_the_image(
            error,
            &image,
            &[
                &port_of(&other_port),
                &port_of(&plain),
                "http://",
                "localhost",
                "169.254",
            ],
        );
        assert!(
            error.to_string().contains("redirected the request"),
            "{error}"
        );
        // The controller's log says where.
        let detail = error.detail().unwrap_or_default();
        assert!(
            detail.contains("is not HTTPS") || detail.contains("loopback"),
            "{detail}"
        );
    }
    assert_eq!(
        other_port.connections(),
        0,
        "another loopback port was asked"
    );
    assert_eq!(plain.connections(), 0, "a plain HTTP port was asked");
    // The registry itself was asked once per tag, never again over plain HTTP.
    let seen = registry.seen();
    assert_eq!(seen.len(), 5, "{seen:?}");
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_not_connected_to() {
    if !enabled() {
        return;
    }
    // The machine's name resolves to loopback on many hosts; the rule is about names that do.
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|n| n.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
        .await
        .map(Iterator::collect)
        .unwrap_or_default();
    if name.is_empty() || addresses.is_empty() || !addresses.iter().all(|a| a.ip().is_loopback()) {
        eprintln!("skipping: the host name {name:?} does not resolve to loopback only");
        return;
    }
    let target = sink().await;
    let port = target.port;
    let redirect_name = name.clone();
    let registry = Hostile::start(true, move |_, uri, _| {
        redirect(&format!("https://{redirect_name}:{port}{}", uri.path()))
    })
    .await;
    let image = registry.image("1");
    let result = registry
        .resolver(Egress::default())
        .resolve(&image, None)
        .await;
    let Err(error @ Error::RefusedRedirect { .. }) = &result else {
        panic!("expected a refused redirect, got {result:?}");
    };
    assert_names_only_the_image(error, &image, &[&name, &port_of(&target)]);
    let detail = error.detail().unwrap_or_default();
    assert!(
        detail.contains("resolves only to internal addresses"),
        "{detail}"
    );
    assert_eq!(target.connections(), 0);
    // The admin may allow it.
    let allowed = Egress::new(
        vec![],
        vec![name.parse::<Allowed>().expect("allowed")],
        vec![],
    );
    let result = registry.resolver(allowed).resolve(&image, None).await;
    assert!(
        matches!(result, Err(Error::Unreachable { .. })),
        "{result:?}"
    );
    assert!(
        target.connections() >= 1,
        "the allowed name is connected to"
    );
}

#[tokio::test]
async fn a_realm_on_another_loopback_port_or_plain_http_gets_no_credentials() {
    if !enabled() {
        return;
    }
    let realm = sink().await;
    let realm_port = realm.port;
    let registry = Hostile::start(true, move |own, uri, _| {
        let challenge = match uri.path().trim_start_matches("/v2/team/app/manifests/") {
            "other-port" => {
                format!(r#"Bearer realm="https://127.0.0.1:{realm_port}/token",service="r""#)
            }
            "own-plain" => format!(r#"Bearer realm="http://{own}/token",service="r""#),
            "elsewhere" => r#"Bearer realm="https://auth.example/token""#.to_string(),
            _ => return StatusCode::NOT_FOUND.into_response(),
        };
        (StatusCode::UNAUTHORIZED, [(WWW_AUTHENTICATE, challenge)]).into_response()
    })
    .await;
    let resolver = registry.resolver(Egress::default());
    for tag in ["other-port", "own-plain", "elsewhere"] {
        let image = registry.image(tag);
        let result = resolver.resolve(&image, Some(&credentials())).await;
        let Err(error @ Error::RefusedRealm { .. }) = &result else {
            panic!("{tag}: expected a refused realm, got {result:?}");
        };
        assert_names_only_the_image(
            error,
            &image,
            &[&port_of(&realm), "http://", "/token", "auth.example"],
        );
        assert!(
            error.to_string().contains("no credentials were sent"),
            "{error}"
        );
    }
    assert_eq!(
        realm.connections(),
        0,
        "the realm on another port was asked"
    );
    // Only the manifests were asked, without credentials: no token request reached the
    // registry's own port over plain HTTP either.
    let seen = registry.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen.iter()
            .all(|(path, auth)| path.contains("/manifests/") && auth.is_none())
    );
}

#[tokio::test]
async fn the_registrys_own_realm_and_redirects_still_work() {
    if !enabled() {
        return;
    }
    let registry = Hostile::start(true, |own, uri, headers| {
        let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        match (uri.path(), authorization) {
            ("/token", Some(basic)) if basic.starts_with("Basic ") => {
                axum::Json(serde_json::json!({"token": "t0k3n"})).into_response()
            }
            ("/v2/team/app/manifests/1", Some("Bearer t0k3n")) => {
                redirect(&format!("https://{own}/v2/team/app/manifests/moved"))
            }
            ("/v2/team/app/manifests/moved", Some("Bearer t0k3n")) => manifest(),
            _ => (
                StatusCode::UNAUTHORIZED,
                [(
                    WWW_AUTHENTICATE,
                    format!(r#"Bearer realm="https://{own}/token",service="r""#),
                )],
            )
                .into_response(),
        }
    })
    .await;
    let resolved = registry
        .resolver(Egress::default())
        .resolve(&registry.image("1"), Some(&credentials()))
        .await
        .expect("resolve through the registry's own realm and redirect");
    assert_eq!(resolved.digest, sha256_digest(MANIFEST.as_bytes()));
    let seen = registry.seen();
    let token = seen
        .iter()
        .find(|(path, _)| path.starts_with("/token?"))
        .expect("a token request");
    assert!(
        token.0.contains("scope=repository%3Ateam%2Fapp%3Apull"),
        "{token:?}"
    );
    assert!(token.1.as_deref().is_some_and(|a| a.starts_with("Basic ")));
}

#[tokio::test]
async fn plain_http_only_for_registries_the_admin_lists() {
    if !enabled() {
        return;
    }
    let registry = Hostile::start(false, |_, _, _| manifest()).await;
    let image = registry.image("1");
    let refused = registry
        .resolver(Egress::default())
        .resolve(&image, None)
        .await;
    let Err(error @ Error::Unreachable { .. }) = &refused else {
        panic!("expected unreachable over HTTPS, got {refused:?}");
    };
    assert_names_only_the_image(error, &image, &["http://", "https://"]);
    let listed = Egress::new(
        vec![registry.host.parse::<HostPort>().expect("host")],
        vec![],
        vec![],
    );
    let resolved = registry
        .resolver(listed)
        .resolve(&image, None)
        .await
        .expect("resolve over plain HTTP");
    assert_eq!(resolved.digest, sha256_digest(MANIFEST.as_bytes()));
}
