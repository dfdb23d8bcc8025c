//! Where tag resolution (`scangate::registry`) may be sent, against hostile registries on
//! loopback: HTTPS servers started in the test that redirect elsewhere or name a realm
//! elsewhere, and bare listeners that count every connection made to them (there must be none).
//! The registry an image names is asked; being sent to another loopback port, to plain HTTP or
//! to a name that resolves to loopback is refused, with a message that names neither, and no
//! credentials go to a realm that is not the registry's own. The library is called directly (no
//! apiserver needed); the last test goes through the controller and a real apiserver, to the
//! scan's status. Runs when `SCANGATE_E2E=1`.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::response::IntoResponse;
use common::cluster::{cluster, stderr};
use common::controller::Controller;
use common::enforced::Enforced;
use common::fixtures::grype_template;
use common::hostile::{Hostile, MANIFEST, Sink, manifest, redirect, sink};
use scangate::image::ImageRef;
use scangate::registry::egress::{Allowed, HostPort};
use scangate::registry::manifest::sha256_digest;
use scangate::registry::{Credentials, Egress, Error};
use serde_json::{Value, json};

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

#[test]
fn through_the_controller_a_refused_redirect_fails_the_scan_naming_only_its_image() {
    let Some(cluster) = cluster() else { return };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let elsewhere = runtime.block_on(sink());
    let port = elsewhere.port;
    let registry = runtime.block_on(Hostile::start(true, move |_, uri, _| {
        redirect(&format!("https://127.0.0.1:{port}{}", uri.path()))
    }));
    let enforced = Enforced::with_config(cluster, "e2e-egress", &[], "trustNamespaceScans: true");
    let ns = enforced.ns.name.clone();
    let ca = enforced.dir.path().join("registry-ca.pem");
    std::fs::write(&ca, &registry.ca).expect("write the registry CA");
    // Declared after the namespace: stopped before it is deleted.
    let controller = Controller::of(cluster.kubeconfig_as("scangate-controller"), &ns)
        .config(&enforced.config)
        .args(&["--registry-ca-file", &ca.display().to_string()])
        .resolving_tags()
        .start();
    let image = registry.image("1");
    for object in [
        grype_template(&ns),
        json!({
            "apiVersion": "scanning.scangate.dev/v1beta1",
            "kind": "ScanPolicy",
            "metadata": {"name": "default", "namespace": ns},
            "spec": {"regoFile": scangate::policy::DEFAULT_POLICY},
        }),
        json!({
            "apiVersion": "scanning.scangate.dev/v1beta1",
            "kind": "ImageScan",
            "metadata": {"name": "redirected", "namespace": ns},
            "spec": {
                "registry": {"image": image.to_string()},
                "scanTemplate": "grype",
                "scanPolicy": "default",
            },
        }),
    ] {
        let out = enforced.ns.apply(&object.to_string());
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let status = cluster.eventually("the scan to be in Error", Duration::from_secs(60), || {
        let text = enforced
            .ns
            .kubectl_ok(&["get", "imagescan", "redirected", "-o", "json"]);
        serde_json::from_str::<Value>(&text)
            .ok()
            .map(|v| v["status"].clone())
            .filter(|s| s["phase"] == "Error")
    });
    let succeeded = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Succeeded"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(succeeded["reason"], "ResolveFailed", "{status}");
    let message = succeeded["message"].as_str().unwrap_or_default();
    assert!(message.contains("redirected the request"), "{message}");
    assert!(message.contains(&image.to_string()), "{message}");
    let text = status.to_string();
    assert!(
        !text.contains(&format!(":{port}")),
        "the status names the target: {text}"
    );
    assert_eq!(elsewhere.connections(), 0, "the redirect was followed");
    // The controller's log says where.
    let logs = controller.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("registry resolution failed")
                && l.contains(&format!("127.0.0.1:{port}"))),
        "{logs}"
    );
}
