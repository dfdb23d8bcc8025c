//! The webhook binary over real TLS on loopback, with scans from `examples/scans`.

mod common;

use std::time::{Duration, Instant};

use common::webhook::{Webhook, certs, client, http_get, mount_secret};
use serde_json::{Value, json};

fn review(namespace: &str, image: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "7f0d2b39-5c5e-4f39-9a52-1c1d1d7c0a11",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": "web", "namespace": namespace, "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": namespace},
                "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}
            }
        }
    })
}

struct Setup {
    dir: tempfile::TempDir,
    webhook: Webhook,
}

fn setup(extra: &[&str]) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    certs(dir.path());
    let mut args = vec!["--scans-dir", "examples/scans"];
    args.extend_from_slice(extra);
    let webhook = Webhook::start(dir.path(), dir.path(), &args);
    Setup { dir, webhook }
}

async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> (u16, Value) {
    let response = client
        .post(format!("{url}/validate/workloads"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.expect("an AdmissionReview");
    (status, body)
}

#[tokio::test]
async fn denies_a_failed_image_and_admits_a_passed_one() {
    let s = setup(&[]);
    let client = client(&[&s.dir.path().join("ca.crt")]);
    let body = serde_json::to_vec(&review("shop", "busybox:1.32.1")).expect("json");
    let (status, answer) = post(&client, &s.webhook.url, body).await;
    assert_eq!(status, 200);
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(
        answer["response"]["uid"],
        "7f0d2b39-5c5e-4f39-9a52-1c1d1d7c0a11"
    );
    assert_eq!(answer["response"]["allowed"], false);
    let message = answer["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("failed trusted scan scangate-system/busybox"),
        "{message}"
    );
    assert!(message.contains("CVE-2022-48174 (critical)"), "{message}");

    let body = serde_json::to_vec(&review("shop", "alpine:3.10")).expect("json");
    let (_, answer) = post(&client, &s.webhook.url, body).await;
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"]["warnings"].is_null());

    // Unscanned: admitted with a warning (the default onUnscanned).
    let body = serde_json::to_vec(&review("shop", "redis:7")).expect("json");
    let (_, answer) = post(&client, &s.webhook.url, body).await;
    assert_eq!(answer["response"]["allowed"], true);
    let warning = answer["response"]["warnings"][0]
        .as_str()
        .unwrap_or_default();
    assert!(
        warning.contains(
            "docker.io/library/redis:7 has no trusted scan (trusted: scans in scangate-system)"
        ),
        "{warning}"
    );

    // A namespace labelled warn admits the failed image with a warning.
    let body = serde_json::to_vec(&review("sandbox", "busybox:1.32.1")).expect("json");
    let (_, answer) = post(&client, &s.webhook.url, body).await;
    assert_eq!(answer["response"]["allowed"], true);
    let warning = answer["response"]["warnings"][0]
        .as_str()
        .unwrap_or_default();
    assert!(
        warning.starts_with("namespace sandbox is in warn mode; this would be denied"),
        "{warning}"
    );
}

#[tokio::test]
async fn bad_bodies_get_a_clear_admission_review() {
    let s = setup(&["--max-body-bytes", "65536"]);
    let client = client(&[&s.dir.path().join("ca.crt")]);
    let (status, answer) = post(&client, &s.webhook.url, b"not json".to_vec()).await;
    assert_eq!(status, 400);
    assert_eq!(answer["response"]["allowed"], false);
    assert!(
        answer["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not JSON")
    );

    // Identifiable by uid: HTTP 200 with a denial the apiserver can match.
    let broken = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                        "request": {"uid": "abc", "operation": "NOPE"}});
    let (status, answer) = post(
        &client,
        &s.webhook.url,
        serde_json::to_vec(&broken).expect("json"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["response"]["uid"], "abc");
    assert_eq!(answer["response"]["allowed"], false);

    // Over the size limit.
    let mut huge = review("shop", "alpine:3.10");
    huge["request"]["object"]["metadata"]["annotations"] = json!({"big": "x".repeat(100_000)});
    let (status, answer) = post(
        &client,
        &s.webhook.url,
        serde_json::to_vec(&huge).expect("json"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        answer["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("over 65536 bytes")
    );

    // The webhook is still serving afterwards.
    let body = serde_json::to_vec(&review("shop", "busybox:1.32.1")).expect("json");
    assert_eq!(
        post(&client, &s.webhook.url, body).await.1["response"]["allowed"],
        false
    );
}

#[test]
fn there_is_no_plaintext_admission_port() {
    let s = setup(&[]);
    let plain = s.webhook.url.replace("https://", "http://");
    // A plain HTTP request to the TLS port gets no HTTP answer.
    assert_eq!(http_get(&plain, "/validate/workloads"), None);
}

#[tokio::test]
async fn admin_port_serves_health_and_metrics() {
    let s = setup(&[]);
    assert_eq!(http_get(&s.webhook.admin, "/livez").map(|r| r.0), Some(200));
    assert_eq!(
        http_get(&s.webhook.admin, "/readyz").map(|r| r.0),
        Some(200)
    );
    let client = client(&[&s.dir.path().join("ca.crt")]);
    let body = serde_json::to_vec(&review("shop", "busybox:1.32.1")).expect("json");
    post(&client, &s.webhook.url, body).await;
    let (_, metrics) = http_get(&s.webhook.admin, "/metrics").expect("metrics");
    for line in [
        "scangate_admission_requests_total{endpoint=\"validate_workloads\",kind=\"Deployment\",verdict=\"deny\",mode=\"enforce\"} 1",
        "scangate_scan_index_scans 2",
        "scangate_config_valid 1",
        "scangate_tls_certificate_expiry_timestamp_seconds ",
        "scangate_admission_duration_seconds_count{endpoint=\"validate_workloads\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
}

#[tokio::test]
async fn certificate_rotation_by_symlink_swap_fails_no_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (old, new, mount) = (
        dir.path().join("old"),
        dir.path().join("new"),
        dir.path().join("mount"),
    );
    for d in [&old, &new, &mount] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    certs(&old);
    certs(&new);
    mount_secret(&mount, "..2026_01_01_00_00_00.1", &old);
    let webhook = Webhook::start(dir.path(), &mount, &["--scans-dir", "examples/scans"]);
    let both = client(&[&old.join("ca.crt"), &new.join("ca.crt")]);
    let only_new = client(&[&new.join("ca.crt")]);
    let body = serde_json::to_vec(&review("shop", "busybox:1.32.1")).expect("json");

    // Load on kept-alive connections and on fresh ones, across the swap.
    let url = webhook.url.clone();
    let load = {
        let body = body.clone();
        let (old, new) = (old.clone(), new.clone());
        tokio::spawn(async move {
            let mut failures = vec![];
            let mut sent = 0;
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(3) && sent < 5_000 {
                let fresh = sent % 10 == 0;
                let c = if fresh {
                    common::webhook::client(&[&old.join("ca.crt"), &new.join("ca.crt")])
                } else {
                    both.clone()
                };
                match c
                    .post(format!("{url}/validate/workloads"))
                    .body(body.clone())
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => {}
                    Ok(r) => failures.push(format!("HTTP {}", r.status())),
                    Err(e) => failures.push(e.to_string()),
                }
                sent += 1;
            }
            (sent, failures)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    mount_secret(&mount, "..2026_02_01_00_00_00.2", &new);

    // The new certificate is served within a few reload intervals.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = only_new
            .post(format!("{}/validate/workloads", webhook.url))
            .body(body.clone())
            .send()
            .await;
        if ok.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new certificate not served; log:\n{}",
            webhook.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (sent, failures) = load.await.expect("load task");
    assert!(sent > 10, "only {sent} requests sent");
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let (_, metrics) = http_get(&webhook.admin, "/metrics").expect("metrics");
    assert!(
        metrics.contains("scangate_tls_certificate_reloads_total{result=\"ok\"} 1"),
        "{metrics}"
    );
}

/// Replaces a file in one step (as a ConfigMap volume's symlink swap does): the webhook never
/// reads it half-written (an empty file is a valid config: the defaults).
fn write_atomically(path: &std::path::Path, text: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, text).expect("write config");
    std::fs::rename(&next, path).expect("replace config");
}

#[tokio::test]
async fn config_reload_applies_and_a_broken_file_keeps_the_last_good_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    certs(dir.path());
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "onUnscanned: warn\n").expect("write config");
    let config_arg = config.display().to_string();
    let webhook = Webhook::start(
        dir.path(),
        dir.path(),
        &["--scans-dir", "examples/scans", "--config", &config_arg],
    );
    let client = client(&[&dir.path().join("ca.crt")]);
    let body = serde_json::to_vec(&review("shop", "redis:7")).expect("json");
    assert_eq!(
        post(&client, &webhook.url, body.clone()).await.1["response"]["allowed"],
        true
    );

    write_atomically(&config, "onUnscanned: deny\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while post(&client, &webhook.url, body.clone()).await.1["response"]["allowed"] == true {
        assert!(
            Instant::now() < deadline,
            "config not reloaded; log:\n{}",
            webhook.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    write_atomically(&config, "onUnscanned: [broken\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = http_get(&webhook.admin, "/metrics").expect("metrics");
        if metrics.contains("scangate_config_valid 0") {
            break;
        }
        assert!(Instant::now() < deadline, "broken config not noticed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Still the last good config: unscanned images are denied.
    assert_eq!(
        post(&client, &webhook.url, body).await.1["response"]["allowed"],
        false
    );
    assert!(
        webhook
            .logs()
            .contains("admission config not valid; keeping the last good one")
    );
}

#[tokio::test]
async fn sigterm_stops_the_webhook_cleanly() {
    let s = setup(&["--shutdown-delay", "0s"]);
    let status = s.webhook.terminate();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn on_sigterm_it_says_not_ready_and_keeps_serving_for_the_shutdown_delay() {
    let s = setup(&["--shutdown-delay", "3s"]);
    let mut webhook = s.webhook;
    let client = client(&[&s.dir.path().join("ca.crt")]);
    let body = serde_json::to_vec(&review("shop", "busybox:1.32.1")).expect("json");
    // A connection opened before the signal.
    assert_eq!(post(&client, &webhook.url, body.clone()).await.0, 200);
    webhook.sigterm();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = http_get(&webhook.admin, "/readyz");
        if answer == Some((503, "not ready: shutting down\n".to_string())) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still says {answer:?}; log:\n{}",
            webhook.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Still answering, on the open connection and on a new one.
    let (status, answer) = post(&client, &webhook.url, body.clone()).await;
    assert_eq!(
        (status, &answer["response"]["allowed"]),
        (200, &json!(false))
    );
    let fresh = common::webhook::client(&[&s.dir.path().join("ca.crt")]);
    assert_eq!(post(&fresh, &webhook.url, body).await.0, 200);
    assert!(
        webhook.exited().is_none(),
        "stopped before its shutdown delay"
    );
    let status = tokio::task::spawn_blocking(move || webhook.wait())
        .await
        .expect("wait");
    assert!(status.success(), "{status:?}");
}

#[test]
fn startup_errors_are_clear() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args([
            "webhook",
            "--tls-cert",
            "/nonexistent/tls.crt",
            "--tls-key",
            "/nonexistent/tls.key",
            "--scans-dir",
            "examples/scans",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read /nonexistent/tls.crt"),
        "{stderr}"
    );
}

/// `maxResultAge`: a Completed result older than it counts as unscanned (`onUnscanned`), and
/// the message says since when; within it, the result admits.
#[tokio::test]
async fn a_completed_result_older_than_the_max_result_age_is_unscanned() {
    let dir = tempfile::tempdir().expect("tempdir");
    certs(dir.path());
    let config = dir.path().join("config.yaml");
    // examples/scans/alpine.yaml was scanned on 2026-11-20.
    std::fs::write(&config, "onUnscanned: deny\nmaxResultAge: 36500d\n").expect("write config");
    let config_arg = config.display().to_string();
    let webhook = Webhook::start(
        dir.path(),
        dir.path(),
        &["--scans-dir", "examples/scans", "--config", &config_arg],
    );
    let client = client(&[&dir.path().join("ca.crt")]);
    let body = serde_json::to_vec(&review("shop", "alpine:3.10")).expect("json");
    assert_eq!(
        post(&client, &webhook.url, body.clone()).await.1["response"]["allowed"],
        true
    );

    write_atomically(&config, "onUnscanned: deny\nmaxResultAge: 1s\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let answer = post(&client, &webhook.url, body.clone()).await.1;
        if answer["response"]["allowed"] == false {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "config not reloaded; log:\n{}",
            webhook.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let message = answer["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("has no recent trusted scan")
            && message
                .contains("(scanned 2026-11-20T10:00:00Z) is stale since 2026-11-20T10:00:01Z")
            && message.contains("older than maxResultAge 1s"),
        "{message}"
    );
}

/// Until the scans, exceptions and namespace modes are listed from the apiserver, a workload
/// review is answered 503, so the apiserver applies the webhook's failurePolicy: a Failed image
/// is never "unscanned" because the index is still empty. (The apiserver here is a closed
/// port: the webhook stays unsynced.)
#[tokio::test]
async fn workload_reviews_get_503_until_the_index_is_synced() {
    let dir = tempfile::tempdir().expect("tempdir");
    certs(dir.path());
    let closed = common::net::free_port();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
             clusters: [{{name: c, cluster: {{server: \"https://127.0.0.1:{closed}\", insecure-skip-tls-verify: true}}}}]\n\
             contexts: [{{name: c, context: {{cluster: c, user: u}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\n"
        ),
    )
    .expect("kubeconfig");
    let webhook = Webhook::start_alive(dir.path(), dir.path(), &[], &[("KUBECONFIG", &kubeconfig)]);
    let (status, text) = http_get(&webhook.admin, "/readyz").expect("readyz");
    assert_eq!(status, 503, "{text}");
    let client = client(&[&dir.path().join("ca.crt")]);
    for path in ["/validate/workloads", "/mutate/pin"] {
        let response = client
            .post(format!("{}{path}", webhook.url))
            .header("content-type", "application/json")
            .body(review("shop", "busybox:1.32.1").to_string())
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 503, "{path}");
        let text = response.text().await.unwrap_or_default();
        assert!(
            text.contains("scangate cannot decide workloads yet: waiting for")
                && text.contains("scans"),
            "{path}: {text}"
        );
    }
}
