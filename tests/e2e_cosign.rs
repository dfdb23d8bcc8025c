//! Signed scan results with the real cosign (`make cosign` builds it into target/tools/cosign),
//! both ways, on the real apiserver, the real webhook and the real registry (the CNCF
//! distribution registry, tests/common/registry.rs, without the referrers API):
//!
//! - in: `cosign generate-key-pair` and `cosign attest --type vuln` of the busybox Grype report
//!   (cosign 3's default Sigstore bundle) make an ImageScan with `resultsFrom: Attestation`
//!   Failed and its digest denied naming the key; a clean report (`--new-bundle-format=false`,
//!   cosign's `.att` tag) is admitted; neither has a report ConfigMap. cosign's own output,
//!   signed with another key, moved to another digest, altered after signing, or of a scan
//!   older than `maxAge`, gives its condition and no verdict.
//! - out: with `attestations.sign` naming a key Secret made by `cosign generate-key-pair
//!   k8s://…`, `cosign verify-attestation` verifies scangate's SVR for the Failed and the
//!   Completed digest; a tenant's scan gets none, and the tenant cannot read the key nor write
//!   the record. A push the registry refuses says why in `status.verdictAttestation.error`, the
//!   verdict stands, and a later try pushes it once the admin fixes the push secret.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::cluster::{cluster, deployment, stderr};
use common::controller::Controller;
use common::enforced::Enforced;
use common::fixtures::GRYPE_BUSYBOX;
use common::registry::{PASSWORD, Pushed, USER, registry};
use scangate::image::ImageRef;
use scangate::registry::{DockerConfig, Resolver};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);
const PASSWORD_ENV: &str = "cosign-test-password";
const SVR: &str = "https://in-toto.io/attestation/svr/v0.1";

fn cosign_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/cosign");
    assert!(
        path.exists(),
        "{} is missing: run `make cosign`",
        path.display()
    );
    path
}

/// Runs cosign in `dir` with the keys' password, and `KUBECONFIG` when given.
fn cosign(dir: &Path, args: &[&str], kubeconfig: Option<&Path>) -> Output {
    let mut command = Command::new(cosign_binary());
    command
        .args(args)
        .current_dir(dir)
        .env("COSIGN_PASSWORD", PASSWORD_ENV)
        .env("COSIGN_YES", "true");
    if let Some(kubeconfig) = kubeconfig {
        command.env("KUBECONFIG", kubeconfig);
    }
    command.output().expect("run cosign")
}

fn cosign_ok(dir: &Path, args: &[&str], kubeconfig: Option<&Path>) -> String {
    let out = cosign(dir, args, kubeconfig);
    assert!(
        out.status.success(),
        "cosign {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `repository@digest` of a pushed image.
fn by_digest(pushed: &Pushed) -> String {
    let repository = pushed.reference.rsplit_once(':').map_or("", |(r, _)| r);
    format!("{repository}@{}", pushed.digest)
}

/// cosign's vuln predicate of a Grype report, for a scan that finished at `finished`.
fn predicate(result: &Value, finished: &str) -> Value {
    json!({
        "invocation": {"parameters": null, "uri": "", "event_id": "", "builder.id": ""},
        "scanner": {"uri": "pkg:github/anchore/grype@0.94.0", "version": "0.94.0",
                    "db": {"uri": "", "version": "v6.0.2"}, "result": result},
        "metadata": {"scanStartedOn": finished, "scanFinishedOn": finished},
    })
}

struct Cosign<'a> {
    dir: &'a Path,
    ca: String,
}

impl Cosign<'_> {
    /// The registry flags: its CA and the test user.
    fn registry_flags(&self) -> Vec<String> {
        vec![
            format!("--registry-cacert={}", self.ca),
            format!("--registry-username={USER}"),
            format!("--registry-password={PASSWORD}"),
        ]
    }

    /// `cosign attest --type vuln` of `predicate` to `image` with `key` (a file in the
    /// directory), without a transparency log (none is reachable here); `legacy` attaches it
    /// under cosign's `.att` tag instead of cosign 3's Sigstore bundle.
    fn attest(&self, key: &str, predicate: &Value, image: &str, legacy: bool) {
        let file = self.dir.join(format!("predicate-{}.json", rand_suffix()));
        std::fs::write(&file, predicate.to_string()).expect("predicate");
        let mut args = vec![
            "attest".to_string(),
            format!("--key={key}"),
            "--type=vuln".into(),
            "--yes".into(),
            format!("--predicate={}", file.display()),
            "--tlog-upload=false".into(),
            "--use-signing-config=false".into(),
        ];
        if legacy {
            args.push("--new-bundle-format=false".into());
        }
        args.extend(self.registry_flags());
        args.push(image.to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cosign_ok(self.dir, &args, None);
    }

    /// `cosign verify-attestation` of `image`'s SVR with `public_key`: the Statements
    /// verified.
    fn verify_svr(&self, public_key: &Path, image: &str) -> Result<Vec<Value>, String> {
        let mut args = vec![
            "verify-attestation".to_string(),
            format!("--key={}", public_key.display()),
            format!("--type={SVR}"),
            "--insecure-ignore-tlog=true".into(),
            // The images also carry cosign 3 bundles; scangate's SVR is under the `.att` tag.
            "--new-bundle-format=false".into(),
        ];
        args.extend(self.registry_flags());
        args.push(image.to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cosign(self.dir, &args, None);
        if !out.status.success() {
            return Err(stderr(&out));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|e| STANDARD.decode(e["payload"].as_str()?).ok())
            .filter_map(|p| serde_json::from_slice(&p).ok())
            .collect())
    }
}

fn rand_suffix() -> String {
    common::registry::random_bytes(6)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn status(enforced: &Enforced, namespace: &str, name: &str) -> Value {
    let text =
        enforced
            .cluster
            .kubectl_ok(&["get", "imagescan", name, "-n", namespace, "-o", "json"]);
    serde_json::from_str::<Value>(&text)
        .map(|v| v["status"].clone())
        .unwrap_or(Value::Null)
}

fn scanning(status: &Value) -> Value {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Scanning").cloned())
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

/// The envelopes cosign attached to `pushed`, as the registry client reads them.
fn envelopes(
    runtime: &tokio::runtime::Runtime,
    registry_host: &str,
    ca: &[u8],
    pushed: &Pushed,
) -> Vec<Vec<u8>> {
    let config = json!({"auths": {format!("https://{registry_host}"):
        {"username": USER, "password": PASSWORD}}});
    let config = DockerConfig::parse(config.to_string().as_bytes()).expect("credentials");
    let resolver = Resolver::new(Some(ca)).expect("resolver");
    let image = ImageRef::parse(&by_digest(pushed)).expect("image");
    runtime
        .block_on(resolver.attestations(&image, config.credentials_for(registry_host)))
        .expect("attestations")
}

#[test]
fn real_cosign_attestations_decide_admission_and_scangate_signs_its_verdicts() {
    let Some(cluster) = cluster() else { return };
    let Some(registry) = registry() else { return };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let push = |tag: &str| runtime.block_on(registry.push("team/app", tag));
    let vulnerable = push("vulnerable");
    let clean = push("clean");
    let wrong_key = push("wrong-key");
    let moved = push("moved");
    let tampered = push("tampered");
    let expired = push("expired");

    let keys = tempfile::tempdir().expect("key dir");
    let ca = keys.path().join("registry-ca.pem");
    std::fs::write(&ca, &registry.ca).expect("CA");
    let cosign = Cosign {
        dir: keys.path(),
        ca: ca.display().to_string(),
    };
    cosign_ok(keys.path(), &["generate-key-pair"], None);
    cosign_ok(
        keys.path(),
        &["generate-key-pair", "--output-key-prefix=stranger"],
        None,
    );

    let busybox: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(GRYPE_BUSYBOX))
            .expect("fixture"),
    )
    .expect("fixture JSON");
    let mut clean_report = busybox.clone();
    clean_report["matches"] = json!([]);
    let now = jiff::Timestamp::now().to_string();
    let long_ago = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(200))
        .expect("a time")
        .to_string();
    // cosign 3's default: a Sigstore bundle under the referrers tag schema.
    cosign.attest(
        "cosign.key",
        &predicate(&busybox, &now),
        &by_digest(&vulnerable),
        false,
    );
    cosign.attest(
        "cosign.key",
        &predicate(&clean_report, &now),
        &by_digest(&clean),
        true,
    );
    cosign.attest(
        "stranger.key",
        &predicate(&busybox, &now),
        &by_digest(&wrong_key),
        true,
    );
    cosign.attest(
        "cosign.key",
        &predicate(&busybox, &long_ago),
        &by_digest(&expired),
        true,
    );
    // cosign's envelope of the clean digest, attached to another digest.
    let of_clean = envelopes(&runtime, &registry.host, &registry.ca, &clean);
    assert_eq!(of_clean.len(), 1);
    runtime.block_on(registry.attach_cosign_attestations("team/app", &moved.digest, &of_clean));
    // cosign's envelope of the busybox report, its CVEs removed after signing.
    cosign.attest(
        "cosign.key",
        &predicate(&busybox, &now),
        &by_digest(&tampered),
        true,
    );
    let signed = envelopes(&runtime, &registry.host, &registry.ca, &tampered);
    let mut envelope: Value = serde_json::from_slice(&signed[0]).expect("envelope");
    let mut statement: Value = serde_json::from_slice(
        &STANDARD
            .decode(envelope["payload"].as_str().expect("payload"))
            .expect("base64"),
    )
    .expect("statement");
    statement["predicate"]["scanner"]["result"]["matches"] = json!([]);
    envelope["payload"] = json!(STANDARD.encode(statement.to_string()));
    runtime.block_on(registry.attach_cosign_attestations(
        "team/app",
        &tampered.digest,
        &[envelope.to_string().into_bytes()],
    ));

    let public = std::fs::read_to_string(keys.path().join("cosign.pub"))
        .expect("cosign.pub")
        .replace('\n', "\\n");
    let enforced = Enforced::with_config(
        cluster,
        "e2e-cosign",
        &[],
        &format!(
            "attestations: {{keys: [{{name: ci, publicKey: \"{public}\"}}], maxAge: 168h, \
             sign: {{keySecret: verdict-key, pushSecret: verdict-push}}}}"
        ),
    );
    let system = enforced.system.name.clone();
    // The verdict key, as the admin makes it: cosign writes the Secret (cosign.key,
    // cosign.password, cosign.pub) and cosign.pub here.
    let verdict_dir = tempfile::tempdir().expect("verdict key dir");
    cosign_ok(
        verdict_dir.path(),
        &["generate-key-pair", &format!("k8s://{system}/verdict-key")],
        Some(&cluster.kubeconfig),
    );
    let verdict_pub = verdict_dir.path().join("cosign.pub");
    assert!(verdict_pub.exists(), "cosign wrote no cosign.pub");
    for name in ["pull", "verdict-push"] {
        enforced.system.kubectl_ok(&[
            "create",
            "secret",
            "docker-registry",
            name,
            &format!("--docker-server={}", registry.host),
            &format!("--docker-username={USER}"),
            &format!("--docker-password={PASSWORD}"),
        ]);
    }
    let controller_ca = ["--registry-ca-file", &cosign.ca];
    let controller = Controller::of(cluster.kubeconfig_as("scangate-controller"), &system)
        .config(&enforced.config)
        .args(&controller_ca)
        .start();
    // A controller of the tenant's namespace too, with the same config: a tenant scan there
    // is signed by no one.
    let tenant_controller = Controller::of(
        cluster.kubeconfig_as("scangate-controller"),
        &enforced.ns.name,
    )
    .config(&enforced.config)
    .args(&controller_ca)
    .start();

    for (name, pushed) in [
        ("vulnerable", &vulnerable),
        ("clean", &clean),
        ("wrong-key", &wrong_key),
        ("moved", &moved),
        ("tampered", &tampered),
        ("expired", &expired),
    ] {
        let scan = json!({
            "apiVersion": "scanning.scangate.dev/v1beta1",
            "kind": "ImageScan",
            "metadata": {"name": name, "namespace": system},
            "spec": {"registry": {"image": by_digest(pushed), "imagePullSecret": "pull"},
                     "resultsFrom": "Attestation"},
        });
        let out = enforced.system.apply(&scan.to_string());
        assert!(out.status.success(), "{}", stderr(&out));
    }

    // In: the busybox report, cosign 3's bundle: Failed, denied naming the key.
    let failed = cluster.eventually("the vulnerable scan to be Failed", WAIT, || {
        Some(status(&enforced, &system, "vulnerable")).filter(|s| s["phase"] == "Failed")
    });
    assert_eq!(failed["attestation"]["key"], "ci", "{failed}");
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
    // The clean report, cosign's `.att` tag: Completed and admitted silently.
    let completed = cluster.eventually("the clean scan to be Completed", WAIT, || {
        Some(status(&enforced, &system, "clean")).filter(|s| s["phase"] == "Completed")
    });
    assert_eq!(completed["attestation"]["key"], "ci", "{completed}");
    cluster.eventually("the clean digest admitted silently", WAIT, || {
        admit(&enforced, &by_digest(&clean))
            .ok()
            .filter(|w| !w.contains("Warning"))
    });
    // Each bad one: its condition, no verdict.
    for (name, reason) in [
        ("wrong-key", "AttestationUnverified"),
        ("moved", "AttestationSubjectMismatch"),
        ("tampered", "AttestationUnverified"),
        ("expired", "AttestationExpired"),
    ] {
        let seen = cluster.eventually(&format!("{name}: {reason}"), WAIT, || {
            Some(status(&enforced, &system, name)).filter(|s| scanning(s)["reason"] == reason)
        });
        assert_eq!(seen["phase"], "Pending", "{name}: {seen}");
        assert!(seen.get("cveCount").is_none(), "{name}: {seen}");
        assert!(seen.get("verdictAttestation").is_none(), "{name}: {seen}");
    }
    for image in [&wrong_key, &moved, &tampered, &expired] {
        let admitted = admit(&enforced, &by_digest(image));
        assert!(admitted.is_ok(), "{image:?}: {admitted:?}");
    }
    let config_maps = enforced.system.kubectl_ok(&[
        "get",
        "configmaps",
        "-l",
        "scanning.scangate.dev/scan",
        "-o",
        "name",
    ]);
    assert_eq!(config_maps.trim(), "", "{config_maps}");

    // Out: scangate's SVR for the Failed and the Completed digest, verified by cosign.
    for (name, pushed, property) in [
        ("vulnerable", &vulnerable, "SCANGATE_POLICY_FAILED"),
        ("clean", &clean, "SCANGATE_POLICY_PASSED"),
    ] {
        let signed = cluster.eventually(&format!("{name}: its verdict pushed"), WAIT, || {
            Some(status(&enforced, &system, name))
                .filter(|s| s["verdictAttestation"]["pushedAt"].is_string())
        });
        let record = &signed["verdictAttestation"];
        assert_eq!(record["digest"], pushed.digest.as_str(), "{signed}");
        assert_eq!(record["verdict"], signed["phase"], "{signed}");
        assert_eq!(
            record["ref"],
            format!(
                "{}/team/app:{}.att",
                registry.host,
                pushed.digest.replacen(':', "-", 1)
            ),
            "{signed}"
        );
        let statements = cosign
            .verify_svr(&verdict_pub, &by_digest(pushed))
            .unwrap_or_else(|e| panic!("{name}: cosign verify-attestation: {e}"));
        assert_eq!(statements.len(), 1, "{statements:?}");
        let statement = &statements[0];
        assert_eq!(statement["predicateType"], SVR);
        assert_eq!(
            statement["subject"][0]["digest"]["sha256"],
            pushed.digest.trim_start_matches("sha256:")
        );
        let predicate = &statement["predicate"];
        assert_eq!(predicate["verifier"]["id"], scangate::svr::VERIFIER_ID);
        assert_eq!(
            predicate["verifier"]["policy"]["name"],
            "scangate/default.rego"
        );
        assert_eq!(predicate["inputAttestations"][0]["signedBy"], "ci");
        let properties = predicate["properties"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(properties.contains(&json!(property)), "{predicate}");
        // The key that signed attestations in does not verify scangate's verdict.
        let other = cosign.verify_svr(&keys.path().join("cosign.pub"), &by_digest(pushed));
        assert!(other.is_err(), "{other:?}");
    }
    // No verdict for digests without one.
    let none = cosign.verify_svr(&verdict_pub, &by_digest(&wrong_key));
    assert!(none.is_err(), "{none:?}");

    // A tenant's scan of its own, Completed from a pushed report: no SVR, no attempt.
    let tenant_scan = json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ImageScan",
        "metadata": {"name": "busybox", "namespace": enforced.ns.name},
        "spec": {"registry": {"image": "busybox:1.32.1"}},
    });
    let out = enforced.ns.apply(&tenant_scan.to_string());
    assert!(out.status.success(), "{}", stderr(&out));
    cluster.push_report(&format!("{}/busybox", enforced.ns.name), &clean_report);
    let tenant = cluster.eventually("the tenant's scan Completed", WAIT, || {
        Some(status(&enforced, &enforced.ns.name, "busybox")).filter(|s| s["phase"] == "Completed")
    });
    assert!(tenant.get("verdictAttestation").is_none(), "{tenant}");
    // And the tenant cannot read the key, nor write the record.
    let user = enforced.tenant();
    let read = enforced.kubectl_as(
        &user,
        &["get", "secret", "verdict-key", "-n", &system],
        None,
    );
    assert!(!read.status.success(), "the tenant read the verdict key");
    let forged = enforced.kubectl_as(
        &user,
        &[
            "-n",
            &enforced.ns.name,
            "patch",
            "imagescan",
            "busybox",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status": {"verdictAttestation": {"digest": "sha256:0", "verdict": "Completed", "pushedAt": "2026-01-01T00:00:00Z"}}}"#,
        ],
        None,
    );
    assert!(
        !forged.status.success(),
        "the tenant wrote a verdict record"
    );
    assert!(
        !tenant_controller.logs().contains("verdict attestation"),
        "{}",
        tenant_controller.logs()
    );
    drop(tenant_controller);
    drop(controller);
}

#[test]
fn a_verdict_the_registry_refuses_says_why_keeps_the_verdict_and_is_pushed_once_allowed() {
    let Some(cluster) = cluster() else { return };
    let Some(registry) = registry() else { return };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let vulnerable = runtime.block_on(registry.push("team/refused", "1"));
    let keys = tempfile::tempdir().expect("key dir");
    let ca = keys.path().join("registry-ca.pem");
    std::fs::write(&ca, &registry.ca).expect("CA");
    let cosign = Cosign {
        dir: keys.path(),
        ca: ca.display().to_string(),
    };
    cosign_ok(keys.path(), &["generate-key-pair"], None);
    let busybox: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(GRYPE_BUSYBOX))
            .expect("fixture"),
    )
    .expect("fixture JSON");
    let now = jiff::Timestamp::now().to_string();
    cosign.attest(
        "cosign.key",
        &predicate(&busybox, &now),
        &by_digest(&vulnerable),
        true,
    );
    let public = std::fs::read_to_string(keys.path().join("cosign.pub"))
        .expect("cosign.pub")
        .replace('\n', "\\n");
    let enforced = Enforced::with_config(
        cluster,
        "e2e-cosign-refused",
        &[],
        &format!(
            "attestations: {{keys: [{{name: ci, publicKey: \"{public}\"}}], \
             sign: {{keySecret: verdict-key, pushSecret: verdict-push}}}}"
        ),
    );
    let system = enforced.system.name.clone();
    let verdict_dir = tempfile::tempdir().expect("verdict key dir");
    cosign_ok(
        verdict_dir.path(),
        &["generate-key-pair", &format!("k8s://{system}/verdict-key")],
        Some(&cluster.kubeconfig),
    );
    let secret = |name: &str, password: &str| {
        let yaml = enforced.system.kubectl_ok(&[
            "create",
            "secret",
            "docker-registry",
            name,
            &format!("--docker-server={}", registry.host),
            &format!("--docker-username={USER}"),
            &format!("--docker-password={password}"),
            "--dry-run=client",
            "-o",
            "yaml",
        ]);
        let out = enforced.system.apply(&yaml);
        assert!(out.status.success(), "{}", stderr(&out));
    };
    secret("pull", PASSWORD);
    // Credentials the registry refuses.
    secret("verdict-push", "not-the-password");
    let controller = Controller::of(cluster.kubeconfig_as("scangate-controller"), &system)
        .config(&enforced.config)
        .args(&["--registry-ca-file", &cosign.ca])
        .start();
    let scan = json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ImageScan",
        "metadata": {"name": "vulnerable", "namespace": system},
        "spec": {"registry": {"image": by_digest(&vulnerable), "imagePullSecret": "pull"},
                 "resultsFrom": "Attestation"},
    });
    let out = enforced.system.apply(&scan.to_string());
    assert!(out.status.success(), "{}", stderr(&out));

    let refused = cluster.eventually("the refused push recorded", WAIT, || {
        Some(status(&enforced, &system, "vulnerable"))
            .filter(|s| s["verdictAttestation"]["error"].is_string())
    });
    let record = &refused["verdictAttestation"];
    assert_eq!(refused["phase"], "Failed", "{refused}");
    assert!(record.get("pushedAt").is_none(), "{refused}");
    assert!(
        record["failedAttempts"].as_u64().unwrap_or(0) >= 1,
        "{refused}"
    );
    let error = record["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("refused to store the verdict attestation"),
        "{error}"
    );
    assert!(error.contains("push secret"), "{error}");
    let denied = admit(&enforced, &by_digest(&vulnerable));
    assert!(denied.is_err(), "{denied:?}");

    // The admin fixes the credentials: a later try pushes it, once.
    secret("verdict-push", PASSWORD);
    let pushed = cluster.eventually("the verdict pushed after all", WAIT, || {
        Some(status(&enforced, &system, "vulnerable"))
            .filter(|s| s["verdictAttestation"]["pushedAt"].is_string())
    });
    assert!(
        pushed["verdictAttestation"].get("error").is_none(),
        "{pushed}"
    );
    let statements = cosign
        .verify_svr(
            &verdict_dir.path().join("cosign.pub"),
            &by_digest(&vulnerable),
        )
        .expect("cosign verify-attestation");
    assert_eq!(statements.len(), 1, "{statements:?}");
    drop(controller);
}
