//! Signed scan results from the registry: ImageScans with `resultsFrom: Attestation` in the
//! trusted namespace take their results from cosign vulnerability attestations attached to the
//! image in a real registry (the CNCF distribution registry, tests/common/registry.rs, which
//! has no referrers API: cosign's `sha256-<hex>.att` tag), verified with the key the admission
//! config names. The attestations are built here as cosign builds them (DSSE envelopes of
//! in-toto Statements, ECDSA P-256). Checked on the real apiserver with the real webhook: the
//! busybox Grype report makes the scan Failed and a workload of that digest denied, naming the
//! key; a clean report is admitted; a wrong key, another subject, an unknown predicate, no
//! attestation or one older than `maxAge` give their condition and no verdict; no report
//! ConfigMap is written.
//!
//! Also without an apiserver: the registry client finds the envelopes by cosign's tag, and a
//! verdict's blob upload that the registry sends to another port is refused.

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::cluster::{cluster, deployment, stderr};
use common::controller::Controller;
use common::enforced::Enforced;
use common::fixtures::GRYPE_BUSYBOX;
use common::registry::{PASSWORD, USER, registry};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey as _, LineEnding};
use scangate::attest::{self, COSIGN_VULN_V1, IN_TOTO_PAYLOAD_TYPE, TrustedKey};
use scangate::image::ImageRef;
use scangate::registry::{DockerConfig, Resolver};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

fn signing_key(seed: u8) -> SigningKey {
    let mut bytes = [seed; 32];
    bytes[0] = 1;
    SigningKey::from_slice(&bytes).expect("a P-256 key")
}

fn public_pem(key: &SigningKey) -> String {
    key.verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("PEM")
}

fn grype_busybox() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GRYPE_BUSYBOX);
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON")
}

fn grype_clean() -> Value {
    json!({
        "matches": [],
        "source": {"type": "image", "target": {"userInput": "app"}},
        "descriptor": {"name": "grype", "version": "0.94.0"},
    })
}

/// A DSSE envelope of an in-toto Statement about `digest` with a predicate of
/// `predicate_type`, carrying `result` as cosign's `vuln/v1` does, signed with `key`.
fn envelope(
    key: &SigningKey,
    digest: &str,
    predicate_type: &str,
    result: Value,
    finished: &str,
) -> Vec<u8> {
    let statement = serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": predicate_type,
        "subject": [{"name": "app", "digest": {"sha256": digest.trim_start_matches("sha256:")}}],
        "predicate": {
            "invocation": {"parameters": null, "uri": "", "event_id": "", "builder.id": ""},
            "scanner": {"uri": "pkg:github/anchore/grype@0.94.0", "version": "0.94.0",
                        "db": {"uri": "", "version": "v6.0.2"}, "result": result},
            "metadata": {"scanStartedOn": finished, "scanFinishedOn": finished},
        },
    }))
    .expect("statement");
    let signature: Signature = key.sign(&attest::pae(IN_TOTO_PAYLOAD_TYPE, &statement));
    serde_json::to_vec(&json!({
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "payload": STANDARD.encode(&statement),
        "signatures": [{"keyid": "", "sig": STANDARD.encode(signature.to_der().as_bytes())}],
    }))
    .expect("envelope")
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

#[tokio::test]
async fn the_registry_client_finds_cosign_attestations_by_their_tag() {
    let Some(registry) = registry() else { return };
    let pushed = registry.push("team/attested", "1").await;
    let key = signing_key(7);
    let signed = envelope(
        &key,
        &pushed.digest,
        COSIGN_VULN_V1,
        grype_busybox(),
        &now(),
    );
    registry
        .attach_cosign_attestations(
            "team/attested",
            &pushed.digest,
            std::slice::from_ref(&signed),
        )
        .await;
    let json = json!({"auths": {format!("https://{}", registry.host):
        {"username": USER, "password": PASSWORD}}});
    let config = DockerConfig::parse(json.to_string().as_bytes()).expect("pull secret");
    let credentials = config.credentials_for(&registry.host);
    let resolver = Resolver::new(Some(&registry.ca)).expect("resolver");
    let pinned = ImageRef::parse(&pushed.reference)
        .and_then(|i| i.with_digest(&pushed.digest))
        .expect("pinned");
    let envelopes = resolver
        .attestations(&pinned, credentials)
        .await
        .expect("attestations");
    assert_eq!(envelopes, [signed]);
    let keys = [TrustedKey::from_pem("ci", &public_pem(&key)).expect("key")];
    let outcome = attest::choose(
        &envelopes,
        &keys,
        &pinned.to_string(),
        &pushed.digest,
        None,
        jiff::Timestamp::now(),
    );
    assert!(
        matches!(&outcome, attest::Outcome::Verified(a) if a.key == "ci"),
        "{outcome:?}"
    );

    // An image without attestations has none.
    let bare = registry.push("team/attested", "2").await;
    let pinned = ImageRef::parse(&bare.reference)
        .and_then(|i| i.with_digest(&bare.digest))
        .expect("pinned");
    let none = resolver
        .attestations(&pinned, credentials)
        .await
        .expect("no attestations");
    assert!(none.is_empty());
}

/// An ImageScan of `image` in the trusted namespace taking its results from attestations.
fn attested_scan(enforced: &Enforced, name: &str, image: &str) {
    let scan = json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ImageScan",
        "metadata": {"name": name, "namespace": enforced.system.name},
        "spec": {
            "registry": {"image": image, "imagePullSecret": "pull"},
            "resultsFrom": "Attestation",
        },
    });
    let out = enforced.system.apply(&scan.to_string());
    assert!(out.status.success(), "{}", stderr(&out));
}

fn status(enforced: &Enforced, name: &str) -> Value {
    let text = enforced
        .system
        .kubectl_ok(&["get", "imagescan", name, "-o", "json"]);
    serde_json::from_str::<Value>(&text)
        .map(|v| v["status"].clone())
        .unwrap_or(Value::Null)
}

/// Admission of a Deployment of `image` in the workload namespace (server-side dry run).
fn admit(enforced: &Enforced, image: &str) -> Result<String, String> {
    let out = enforced.cluster.apply(
        &deployment("app", image),
        &["-n", &enforced.ns.name, "--dry-run=server"],
    );
    if out.status.success() {
        Ok(stderr(&out))
    } else {
        Err(stderr(&out))
    }
}

/// The Scanning condition of a status.
fn scanning(status: &Value) -> Value {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Scanning").cloned())
        .unwrap_or(Value::Null)
}

#[test]
fn signed_attestations_decide_admission_and_bad_ones_give_their_condition_and_no_verdict() {
    let Some(cluster) = cluster() else { return };
    let Some(registry) = registry() else { return };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let vulnerable = runtime.block_on(registry.push("team/app", "vulnerable"));
    let clean = runtime.block_on(registry.push("team/app", "clean"));
    let wrong_key = runtime.block_on(registry.push("team/app", "wrong-key"));
    let other_subject = runtime.block_on(registry.push("team/app", "other-subject"));
    let unknown = runtime.block_on(registry.push("team/app", "unknown-predicate"));
    let bare = runtime.block_on(registry.push("team/app", "bare"));
    let expired = runtime.block_on(registry.push("team/app", "expired"));
    let ci = signing_key(7);
    let stranger = signing_key(3);
    let attach = |pushed: &common::registry::Pushed, envelope: Vec<u8>| {
        runtime.block_on(registry.attach_cosign_attestations(
            "team/app",
            &pushed.digest,
            &[envelope],
        ))
    };
    attach(
        &vulnerable,
        envelope(
            &ci,
            &vulnerable.digest,
            COSIGN_VULN_V1,
            grype_busybox(),
            &now(),
        ),
    );
    attach(
        &clean,
        envelope(&ci, &clean.digest, COSIGN_VULN_V1, grype_clean(), &now()),
    );
    attach(
        &wrong_key,
        envelope(
            &stranger,
            &wrong_key.digest,
            COSIGN_VULN_V1,
            grype_busybox(),
            &now(),
        ),
    );
    attach(
        &other_subject,
        envelope(&ci, &clean.digest, COSIGN_VULN_V1, grype_clean(), &now()),
    );
    attach(
        &unknown,
        envelope(
            &ci,
            &unknown.digest,
            "https://slsa.dev/provenance/v1",
            grype_clean(),
            &now(),
        ),
    );

    // Signed and readable, but of a scan older than maxAge (168h).
    let long_ago = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(200))
        .expect("a time")
        .to_string();
    attach(
        &expired,
        envelope(
            &ci,
            &expired.digest,
            COSIGN_VULN_V1,
            grype_busybox(),
            &long_ago,
        ),
    );

    let pem = public_pem(&ci).replace('\n', "\\n");
    let enforced = Enforced::with_config(
        cluster,
        "e2e-attest",
        &[],
        &format!("attestations: {{keys: [{{name: ci, publicKey: \"{pem}\"}}], maxAge: 168h}}"),
    );
    let ca = enforced.dir.path().join("registry-ca.pem");
    std::fs::write(&ca, &registry.ca).expect("write the registry CA");
    let controller = Controller::of(
        cluster.kubeconfig_as("scangate-controller"),
        &enforced.system.name,
    )
    .config(&enforced.config)
    .args(&["--registry-ca-file", &ca.display().to_string()])
    .start();
    enforced.system.kubectl_ok(&[
        "create",
        "secret",
        "docker-registry",
        "pull",
        &format!("--docker-server={}", registry.host),
        &format!("--docker-username={USER}"),
        &format!("--docker-password={PASSWORD}"),
    ]);
    let by_digest = |pushed: &common::registry::Pushed| {
        let repository = pushed.reference.rsplit_once(':').map_or("", |(r, _)| r);
        format!("{repository}@{}", pushed.digest)
    };
    for (name, pushed) in [
        ("vulnerable", &vulnerable),
        ("clean", &clean),
        ("wrong-key", &wrong_key),
        ("other-subject", &other_subject),
        ("unknown-predicate", &unknown),
        ("bare", &bare),
        ("expired", &expired),
    ] {
        attested_scan(&enforced, name, &by_digest(pushed));
    }

    // The busybox report, signed with the configured key: Failed with its CVEs, the key named.
    let failed = cluster.eventually("the vulnerable scan to be Failed", WAIT, || {
        Some(status(&enforced, "vulnerable")).filter(|s| s["phase"] == "Failed")
    });
    assert_eq!(failed["attestation"]["key"], "ci", "{failed}");
    assert_eq!(
        failed["attestation"]["predicateType"], COSIGN_VULN_V1,
        "{failed}"
    );
    assert_eq!(failed["attestation"]["dbVersion"], "v6.0.2", "{failed}");
    assert_eq!(failed["scannedBy"]["scanner"]["name"], "grype", "{failed}");
    assert!(
        failed["cveCount"]["critical"].as_u64().unwrap_or(0) > 0,
        "{failed}"
    );
    let denied = cluster.eventually("the webhook to deny the vulnerable digest", WAIT, || {
        admit(&enforced, &by_digest(&vulnerable)).err()
    });
    assert!(denied.contains("CVE-"), "{denied}");
    assert!(
        denied.contains("an attestation signed with key ci"),
        "{denied}"
    );

    // The clean report: Completed, and admitted without a warning.
    let completed = cluster.eventually("the clean scan to be Completed", WAIT, || {
        Some(status(&enforced, "clean")).filter(|s| s["phase"] == "Completed")
    });
    assert_eq!(completed["attestation"]["key"], "ci", "{completed}");
    cluster.eventually(
        "the webhook to admit the clean digest silently",
        WAIT,
        || {
            admit(&enforced, &by_digest(&clean))
                .ok()
                .filter(|w| !w.contains("Warning"))
        },
    );

    // Each bad attestation: its reason, phase Pending, no result; admission treats the image
    // as not scanned yet (a warning, not a verdict).
    for (name, reason) in [
        ("wrong-key", "AttestationUnverified"),
        ("other-subject", "AttestationSubjectMismatch"),
        ("unknown-predicate", "AttestationPredicateUnknown"),
        ("bare", "AttestationMissing"),
        ("expired", "AttestationExpired"),
    ] {
        let seen = cluster.eventually(&format!("{name}: {reason}"), WAIT, || {
            Some(status(&enforced, name)).filter(|s| scanning(s)["reason"] == reason)
        });
        assert_eq!(seen["phase"], "Pending", "{name}: {seen}");
        assert!(seen.get("cveCount").is_none(), "{name}: {seen}");
        assert!(seen.get("attestation").is_none(), "{name}: {seen}");
        assert!(
            !scanning(&seen)["message"].as_str().unwrap_or("").is_empty(),
            "{name}: {seen}"
        );
    }
    let pushed = [&wrong_key, &other_subject, &unknown, &expired];
    for image in pushed {
        let admitted = admit(&enforced, &by_digest(image));
        assert!(admitted.is_ok(), "{image:?}: {admitted:?}");
    }

    // No report ConfigMap for any of them.
    let config_maps = enforced.system.kubectl_ok(&[
        "get",
        "configmaps",
        "-l",
        "scanning.scangate.dev/scan",
        "-o",
        "name",
    ]);
    assert_eq!(config_maps.trim(), "", "{config_maps}");
    drop(controller);
}

/// A registry of the test's making with the referrers API: an index listing one attestation
/// manifest, whose layers are a good envelope, one declared over the size bound, and one that
/// redirects elsewhere when `redirect_blob` (to `sink`, another loopback port).
async fn referrers_registry(
    digest: String,
    envelope: Vec<u8>,
    redirect_blob: Option<u16>,
) -> common::hostile::Hostile {
    use axum::http::StatusCode;
    use axum::http::header::CONTENT_TYPE;
    use axum::response::IntoResponse;
    use scangate::registry::manifest::sha256_digest;
    let envelope_digest = sha256_digest(&envelope);
    let huge = format!("sha256:{}", "e".repeat(64));
    let moved = format!("sha256:{}", "f".repeat(64));
    let mut layers = vec![
        json!({"mediaType": attest::DSSE_MEDIA_TYPE, "digest": envelope_digest, "size": envelope.len()}),
        json!({"mediaType": attest::DSSE_MEDIA_TYPE, "digest": huge, "size": 1u64 << 40}),
    ];
    if redirect_blob.is_some() {
        layers.push(json!({"mediaType": attest::DSSE_MEDIA_TYPE, "digest": moved, "size": 10}));
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": attest::DSSE_MEDIA_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": sha256_digest(b"{}"), "size": 2},
        "layers": layers,
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 10},
    }))
    .expect("manifest");
    let manifest_digest = sha256_digest(&manifest);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
             "size": manifest.len(), "artifactType": attest::DSSE_MEDIA_TYPE},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": format!("sha256:{}", "d".repeat(64)), "size": 10,
             "artifactType": "application/spdx+json"},
        ],
    }))
    .expect("index");
    common::hostile::Hostile::start(true, move |_, uri, _| {
        let path = uri.path();
        if path == format!("/v2/team/app/referrers/{digest}") {
            return (
                [(CONTENT_TYPE, "application/vnd.oci.image.index.v1+json")],
                index.clone(),
            )
                .into_response();
        }
        if path == format!("/v2/team/app/manifests/{manifest_digest}") {
            return (
                [(CONTENT_TYPE, "application/vnd.oci.image.manifest.v1+json")],
                manifest.clone(),
            )
                .into_response();
        }
        if path == format!("/v2/team/app/blobs/{envelope_digest}") {
            return envelope.clone().into_response();
        }
        if path == format!("/v2/team/app/blobs/{moved}")
            && let Some(port) = redirect_blob
        {
            return common::hostile::redirect(&format!("https://127.0.0.1:{port}{path}"));
        }
        StatusCode::NOT_FOUND.into_response()
    })
    .await
}

#[tokio::test]
async fn referrers_are_read_first_within_the_bounds_and_the_egress_rules() {
    if std::env::var("SCANGATE_E2E").as_deref() != Ok("1") {
        eprintln!("skipping: set SCANGATE_E2E=1 for registry tests");
        return;
    }
    let digest = format!("sha256:{}", "1".repeat(64));
    let signed = envelope(
        &signing_key(7),
        &digest,
        COSIGN_VULN_V1,
        grype_clean(),
        &now(),
    );
    let registry = referrers_registry(digest.clone(), signed.clone(), None).await;
    let resolver = registry.resolver(scangate::registry::Egress::default());
    let image = registry
        .image("1")
        .with_digest(&digest)
        .expect("pinned image");
    let envelopes = resolver
        .attestations(&image, None)
        .await
        .expect("attestations");
    assert_eq!(envelopes, std::slice::from_ref(&signed));
    let asked: Vec<String> = registry.seen().into_iter().map(|(p, _)| p).collect();
    assert_eq!(asked[0], format!("/v2/team/app/referrers/{digest}"));
    // The layer declared over the bound, and the referrer of another type, are not fetched.
    assert!(
        !asked
            .iter()
            .any(|p| p.contains(&"e".repeat(64)) || p.contains(&"d".repeat(64))),
        "{asked:?}"
    );
    // cosign's tag is looked at too (404 here).
    assert!(
        asked
            .iter()
            .any(|p| p.ends_with(&format!("{}.att", digest.replacen(':', "-", 1)))),
        "{asked:?}"
    );

    // A blob that redirects to another loopback port: refused, nothing fetched there.
    let sink = common::hostile::sink().await;
    let registry = referrers_registry(digest.clone(), signed, Some(sink.port)).await;
    let resolver = registry.resolver(scangate::registry::Egress::default());
    let image = registry
        .image("1")
        .with_digest(&digest)
        .expect("pinned image");
    match resolver.attestations(&image, None).await {
        Err(error @ scangate::registry::Error::RefusedRedirect { .. }) => {
            let message = error.to_string();
            assert!(message.contains(&image.to_string()), "{message}");
            assert!(!message.contains(&sink.port.to_string()), "{message}");
        }
        other => panic!("expected a refused redirect, got {other:?}"),
    }
    assert_eq!(sink.connections(), 0);
}

/// Verdicts out: a registry whose blob upload sends the upload to another loopback port gets
/// nothing there; the push fails with a refused redirect, and the verdict is not stored.
#[tokio::test]
async fn a_verdict_upload_sent_elsewhere_is_refused_with_nothing_sent_there() {
    if std::env::var("SCANGATE_E2E").as_deref() != Ok("1") {
        eprintln!("skipping: set SCANGATE_E2E=1 for registry tests");
        return;
    }
    use axum::http::StatusCode;
    use axum::http::header::LOCATION;
    use axum::response::IntoResponse;
    let sink = common::hostile::sink().await;
    let port = sink.port;
    let registry = common::hostile::Hostile::start(true, move |_, uri, _| {
        if uri.path() == "/v2/team/app/blobs/uploads/" {
            return (
                StatusCode::ACCEPTED,
                [(LOCATION, format!("https://127.0.0.1:{port}/upload"))],
            )
                .into_response();
        }
        StatusCode::NOT_FOUND.into_response()
    })
    .await;
    let resolver = registry.resolver(scangate::registry::Egress::default());
    let digest = format!("sha256:{}", "1".repeat(64));
    let image = registry
        .image("1")
        .with_digest(&digest)
        .expect("pinned image");
    let pushed = resolver
        .push_attestation(&image, None, b"{}", scangate::svr::SVR_V01)
        .await;
    match pushed {
        Err(error @ scangate::registry::Error::RefusedRedirect { .. }) => {
            let message = error.to_string();
            assert!(message.contains(&image.to_string()), "{message}");
            assert!(!message.contains(&port.to_string()), "{message}");
        }
        other => panic!("expected a refused redirect, got {other:?}"),
    }
    assert_eq!(sink.connections(), 0);
    // No manifest was written.
    let asked: Vec<String> = registry.seen().into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        asked.iter().filter(|p| p.contains("/manifests/")).count(),
        1,
        "only the existing attestations were asked: {asked:?}"
    );
}
