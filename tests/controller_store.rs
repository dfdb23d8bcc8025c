//! The metadata store client against a real HTTPS server started in the test.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum_server::tls_rustls::RustlsConfig;
use scangate::report::Report;
use scangate::scan::store::{MetadataStore, ScanIdentity};
use serde_json::{Value, json};

#[derive(Default)]
struct Seen {
    requests: Vec<(HeaderMap, Value)>,
}

/// Starts an HTTPS store on loopback: 200 `{"url"}` for the right token, 401 otherwise.
async fn start_store(dir: &std::path::Path, seen: Arc<Mutex<Seen>>) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bundle = scangate::cmd::certs::generate(&["127.0.0.1".to_string()], 2).expect("certs");
    bundle.write(dir).expect("write certs");
    let config = RustlsConfig::from_pem(bundle.cert.into_bytes(), bundle.key.into_bytes())
        .await
        .expect("tls config");
    let app = axum::Router::new().route(
        "/api/v1/reports",
        post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let seen = seen.clone();
            async move {
                let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
                    == Some("Bearer s3cret");
                seen.lock().expect("lock").requests.push((headers, body));
                if authorized {
                    (
                        StatusCode::CREATED,
                        Json(json!({"url": "https://store.example/reports/42"})),
                    )
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        Json(json!({"error": "bad token"})),
                    )
                }
            }
        }),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = axum_server::from_tcp_rustls(listener, config).expect("server");
    tokio::spawn(async move { server.serve(app.into_make_service()).await });
    format!("https://{addr}")
}

fn identity() -> ScanIdentity {
    ScanIdentity {
        kind: "ImageScan".into(),
        namespace: "apps".into(),
        name: "busybox".into(),
        uid: "uid-1".into(),
    }
}

fn report() -> Report {
    scangate::cmd::report::read_report(
        std::path::Path::new("tests/fixtures/reports/grype/grype-0.94.0_busybox-1.32.1.json"),
        None,
    )
    .expect("fixture report")
}

#[tokio::test]
async fn sends_the_normalized_report_with_the_token_and_reads_the_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let url = start_store(dir.path(), seen.clone()).await;
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").expect("token");
    let store = MetadataStore::new(
        &format!("{url}/"),
        Some(token),
        Some(dir.path().join("ca.crt")),
    )
    .expect("client");
    assert_eq!(store.endpoint(), format!("{url}/api/v1/reports"));
    let sent = store.send(&identity(), &report()).await.expect("sent");
    assert_eq!(sent, "https://store.example/reports/42");

    let seen = seen.lock().expect("lock");
    let (headers, body) = &seen.requests[0];
    assert_eq!(
        headers.get("x-scangate-scan").and_then(|v| v.to_str().ok()),
        Some("ImageScan/apps/busybox")
    );
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    assert_eq!(body["scanner"]["name"], "grype");
    assert_eq!(body["vulnerabilities"].as_array().map(Vec::len), Some(15));
}

#[tokio::test]
async fn a_refused_or_unreachable_store_is_an_error_with_the_cause() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let url = start_store(dir.path(), seen).await;
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "nope").expect("token");
    let store =
        MetadataStore::new(&url, Some(wrong), Some(dir.path().join("ca.crt"))).expect("client");
    let error = store
        .send(&identity(), &report())
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        error.contains("401") && error.contains("bad token"),
        "{error}"
    );

    // A CA that did not sign the store's certificate.
    let other = tempfile::tempdir().expect("tempdir");
    scangate::cmd::certs::generate(&["127.0.0.1".to_string()], 2)
        .and_then(|b| b.write(other.path()))
        .expect("certs");
    let untrusted =
        MetadataStore::new(&url, None, Some(other.path().join("ca.crt"))).expect("client");
    let error = untrusted
        .send(&identity(), &report())
        .await
        .expect_err("untrusted")
        .to_string();
    assert!(
        error.contains("POST") && error.to_lowercase().contains("certificate"),
        "{error}"
    );

    // Nothing listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let closed = MetadataStore::new(
        &format!("https://127.0.0.1:{port}"),
        None,
        Some(dir.path().join("ca.crt")),
    )
    .expect("client");
    let error = closed
        .send(&identity(), &report())
        .await
        .expect_err("closed")
        .to_string();
    assert!(error.contains("POST https://127.0.0.1"), "{error}");
    assert!(MetadataStore::new(&url, None, Some(dir.path().join("missing.crt"))).is_err());
}
