//! Hostile registries for tests: HTTPS (or plain HTTP) servers on a loopback port whose answers
//! the test writes (redirects elsewhere, realms elsewhere, a manifest), recording what they were
//! asked, and bare listeners that count every connection made to them.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum_server::tls_rustls::RustlsConfig;
use scangate::image::ImageRef;
use scangate::registry::manifest::sha256_digest;
use scangate::registry::{Egress, Resolver};

/// The manifest [`manifest`] serves: an OCI image manifest with no layers.
pub const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":2},"layers":[]}"#;

/// A listener on loopback that accepts connections, counts them and closes them.
pub struct Sink {
    pub port: u16,
    connections: Arc<AtomicUsize>,
}

pub async fn sink() -> Sink {
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
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// What a hostile registry was asked: the path (and query), and the Authorization it came with.
pub type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A registry of the test's making on a loopback port, over HTTPS (its CA in `ca`) or plain
/// HTTP; `answer` is given the registry's own `127.0.0.1:PORT`, the request's URI and headers.
pub struct Hostile {
    pub host: String,
    pub ca: Vec<u8>,
    seen: Seen,
}

impl Hostile {
    pub async fn start<F>(tls: bool, answer: F) -> Hostile
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

    pub fn resolver(&self, egress: Egress) -> Resolver {
        Resolver::new(Some(&self.ca))
            .expect("resolver")
            .with_egress(egress)
    }

    pub fn image(&self, tag: &str) -> ImageRef {
        ImageRef::parse(&format!("{}/team/app:{tag}", self.host)).expect("image")
    }

    pub fn seen(&self) -> Vec<(String, Option<String>)> {
        self.seen.lock().expect("lock").clone()
    }
}

pub fn redirect(to: &str) -> Response {
    (StatusCode::TEMPORARY_REDIRECT, [(LOCATION, to.to_string())]).into_response()
}

pub fn manifest() -> Response {
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
