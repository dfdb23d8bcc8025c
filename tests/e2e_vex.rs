//! OpenVEX triage on a real kube-apiserver, with the real webhook and controller: an approver's
//! `under_investigation` statement for a CVE the policy denies puts the scan Under Review and
//! keeps the image denied; the approver's `not_affected` settles it and admits the image in
//! that namespace only, until the statement expires; a tenant with `edit` records nothing, with
//! kubectl, `scangate vex import` or the results page's form (where the approver records the
//! statement under investigation); `scangate vex import` then `export` round-trips a document.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::cluster::{Cluster, cluster, deployment, stderr};
use common::controller::Controller;
use common::enforced::Enforced;
use common::fixtures::{BUSYBOX, FAILED, GRYPE_BUSYBOX, grype_template};
use common::webhook::client_builder;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
/// busybox 1.32.1's one critical CVE: the only one a critical-only policy denies.
const CRITICAL: &str = "CVE-2022-48174";
/// The OpenVEX fixture import and export round-trip.
const FIXTURE: &str = "tests/fixtures/vex/busybox.openvex.json";

/// `scangate ARGS` with `kubeconfig`, from the repository root (fixtures are relative to it).
fn scangate(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("KUBECONFIG", kubeconfig)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("scangate");
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .expect("stdin");
    }
    child.wait_with_output().expect("scangate output")
}

/// An OpenVEX document of one statement about busybox 1.32.1's critical CVE.
fn statement(status: &str, extra: Value) -> String {
    let mut statement = json!({
        "vulnerability": {"name": CRITICAL},
        "products": [{"@id": "busybox:1.32.1"}],
        "status": status,
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        statement[k] = v.clone();
    }
    json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": format!("https://example.com/vex/{status}"),
        "author": "e2e",
        "timestamp": jiff::Timestamp::now().to_string(),
        "version": 1,
        "statements": [statement],
    })
    .to_string()
}

/// A ServiceAccount of the test's namespace that may see the results page (scangate-view
/// cluster-wide, removed when dropped), with `role` bound in the namespace; its token.
struct Viewer<'e> {
    env: &'e Enforced,
    binding: String,
    token: String,
}

impl<'e> Viewer<'e> {
    fn new(env: &'e Enforced, name: &str, role: &str) -> Viewer<'e> {
        let ns = &env.ns.name;
        env.ns.kubectl_ok(&["create", "serviceaccount", name]);
        env.ns.kubectl_ok(&[
            "create",
            "rolebinding",
            &format!("{name}-{role}"),
            &format!("--clusterrole={role}"),
            &format!("--serviceaccount={ns}:{name}"),
        ]);
        let binding = format!("{ns}-{name}-view");
        env.cluster.kubectl_ok(&[
            "create",
            "clusterrolebinding",
            &binding,
            "--clusterrole=scangate-view",
            &format!("--serviceaccount={ns}:{name}"),
        ]);
        let token = env
            .ns
            .kubectl_ok(&["create", "token", name, "--duration=1h"])
            .trim()
            .to_string();
        Viewer {
            env,
            binding,
            token,
        }
    }

    /// Posts a form (`Some`) or gets (`None`) `path` of the results page at `base` with the
    /// viewer's bearer token (a bearer request needs no CSRF token); the status and the body.
    fn send(&self, base: &str, path: &str, form: Option<&[(&str, &str)]>) -> (u16, String) {
        let http = client_builder(&[&self.env.dir.path().join("ca.crt")])
            .build()
            .expect("client");
        let url = format!("{base}{path}");
        let request = match form {
            Some(form) => http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(
                    form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(form)
                        .finish(),
                ),
            None => http.get(url),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let response = request
                .bearer_auth(&self.token)
                .send()
                .await
                .expect("request");
            let code = response.status().as_u16();
            (code, response.text().await.expect("body"))
        })
    }

    fn post(&self, base: &str, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        self.send(base, path, Some(form))
    }
}

impl Drop for Viewer<'_> {
    fn drop(&mut self) {
        let _ = self.env.cluster.kubectl(&[
            "delete",
            "clusterrolebinding",
            &self.binding,
            "--ignore-not-found",
        ]);
    }
}

fn import(env: &Enforced, user: &str, document: &str, expires: &str) -> Output {
    let kubeconfig = env.cluster.kubeconfig_as_user(user);
    scangate(
        &kubeconfig,
        &[
            "vex",
            "import",
            "-",
            "-n",
            &env.ns.name,
            "--expires",
            expires,
        ],
        Some(document),
    )
}

fn scan_status(env: &Enforced) -> Value {
    let text = env
        .ns
        .kubectl_ok(&["get", "imagescan", "busybox", "-o", "json"]);
    serde_json::from_str::<Value>(&text)
        .map(|v| v["status"].clone())
        .unwrap_or(Value::Null)
}

fn policy_condition(status: &Value) -> Value {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "PolicySucceeded"))
        .cloned()
        .unwrap_or_default()
}

/// Waits until the scan's phase is `phase` and its PolicySucceeded reason is `reason`.
fn wait_verdict(env: &Enforced, phase: &str, reason: &str) -> Value {
    env.cluster.eventually(
        &format!("the scan to be {phase} with reason {reason}"),
        WAIT,
        || {
            let status = scan_status(env);
            (status["phase"] == phase && policy_condition(&status)["reason"] == reason)
                .then_some(status)
        },
    )
}

/// A dry-run Deployment of busybox 1.32.1 in `namespace` as `user`.
fn deploy_as(env: &Enforced, user: &str, namespace: &str) -> Output {
    env.kubectl_as(
        user,
        &["-n", namespace, "apply", "--dry-run=server", "-f", "-"],
        Some(&deployment("legacy", "busybox:1.32.1")),
    )
}

/// The scan of busybox in the test's namespace, judged by the controller on Grype's real
/// report under a critical-only policy: Failed because of CVE-2022-48174.
fn failed_namespace_scan(cluster: &'static Cluster, env: &Enforced) {
    let ns = env.ns.name.clone();
    let policy = json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ScanPolicy",
        "metadata": {"name": "critical", "namespace": ns},
        "spec": {"regoFile": scangate::policy::DEFAULT_POLICY.replace(
            "notAllowedSeverities := [\"critical\", \"high\"]",
            "notAllowedSeverities := [\"critical\"]",
        )},
    });
    let scan = json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ImageScan",
        "metadata": {"name": "busybox", "namespace": ns},
        "spec": {"registry": {"image": "busybox:1.32.1"}, "scanTemplate": "grype", "scanPolicy": "critical"},
    });
    for object in [grype_template(&ns), policy, scan] {
        let out = env.ns.apply(&object.to_string());
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let job = cluster.eventually("the scan Job", WAIT, || {
        let text = env.ns.kubectl_ok(&[
            "get",
            "jobs",
            "-l",
            "scanning.scangate.dev/scan=busybox",
            "-o",
            "json",
        ]);
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|l| l["items"][0]["metadata"]["name"].as_str().map(String::from))
    });
    let out = scangate(
        &cluster.kubeconfig,
        &[
            "report",
            GRYPE_BUSYBOX,
            "--to-configmap",
            &format!("{ns}/busybox"),
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    env.ns.complete_job(&job);
    let failed = wait_verdict(env, "Failed", "EvaluationFailed");
    assert_eq!(
        policy_condition(&failed)["message"],
        "Policy violated because of 1 CVEs"
    );
}

#[test]
fn under_investigation_is_under_review_until_an_approvers_not_affected_admits_here_until_expiry() {
    let Some(cluster) = cluster() else { return };
    // The namespace's own scans decide there (the source documents' single-team flow); the
    // trusted result in scangate's namespace decides everywhere else.
    let env = Enforced::with_config(cluster, "e2e-vex", &[], "trustNamespaceScans: true");
    // The controller serves the results page too, with the webhook's test certificate.
    let (start, page) = Controller::of_enforced(&env, "vex").results_page(env.dir.path());
    let _controller = start.start();
    let ns = env.ns.name.clone();
    let other = env.namespace("e2e-vex-other");
    let tenant = env.tenant();
    let approver = format!("approver-{ns}");
    env.bind(&ns, &approver, "scangate-exception-approver");
    env.trusted_scan("busybox", "busybox:1.32.1", BUSYBOX, FAILED);
    failed_namespace_scan(cluster, &env);

    // On the scan's page, a tenant's statement is refused by the apiserver, as the tenant; an
    // approver's is recorded, with who asked.
    let vex_path = format!("/scans/{ns}/busybox/vex");
    let page_tenant = Viewer::new(&env, "page-tenant", "edit");
    let page_approver = Viewer::new(&env, "page-approver", "scangate-exception-approver");
    // The page shows the failing scan, with the form.
    let shown = env.cluster.eventually("the scan's page", WAIT, || {
        let (code, body) = page_approver.send(&page, &format!("/scans/{ns}/busybox"), None);
        (code == 200 && body.contains(CRITICAL)).then_some(body)
    });
    assert!(shown.contains(&format!("action=\"{vex_path}\"")), "{shown}");
    let (code, body) = page_tenant.post(
        &page,
        &vex_path,
        &[
            ("cve", CRITICAL),
            ("status", "not_affected"),
            ("justification", "component_not_present"),
        ],
    );
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(&format!(
            "system:serviceaccount:{ns}:page-tenant may not record the VEX statement not_affected"
        )),
        "{body}"
    );
    assert_eq!(
        env.ns.kubectl_ok(&["get", "scanexceptions", "-o", "name"]),
        ""
    );
    let (code, body) = page_approver.post(
        &page,
        &vex_path,
        &[
            ("cve", CRITICAL),
            ("status", "under_investigation"),
            ("statement", "looking into it"),
            ("expires", "1h"),
        ],
    );
    assert_eq!(code, 200, "{body}");
    let recorded: Value =
        serde_json::from_str(&env.ns.kubectl_ok(&["get", "scanexceptions", "-o", "json"]))
            .expect("scanexceptions JSON");
    let annotations = &recorded["items"][0]["metadata"]["annotations"];
    assert_eq!(
        annotations["scangate.dev/approved-by"],
        format!("system:serviceaccount:{ns}:page-approver")
    );
    assert!(
        annotations["scangate.dev/requested-by"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!(
                "system:serviceaccount:{ns}:page-approver asked to record the VEX statement \
                 under_investigation for {CRITICAL} in busybox:1.32.1 in namespace {ns} on the \
                 results page at "
            )),
        "{annotations}"
    );

    // Under investigation: the scan is Under Review, still Failed, and the image denied.
    let review = wait_verdict(&env, "Failed", "UnderReview");
    let message = policy_condition(&review)["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.starts_with(&format!(
            "Policy violated because of 1 CVEs; under review: {CRITICAL} (VEX \
             under_investigation in ScanException {ns}/vex-cve-2022-48174-"
        )),
        "{message}"
    );
    assert!(
        message.contains("an approver settles each with a not_affected, affected or fixed"),
        "{message}"
    );
    let denial = env
        .cluster
        .eventually("a denial saying under review", WAIT, || {
            let out = deploy_as(&env, &tenant, &ns);
            (!out.status.success() && stderr(&out).contains("under review")).then(|| stderr(&out))
        });
    assert!(
        denial.contains(&format!("under review: {CRITICAL}")),
        "{denial}"
    );

    // A tenant with edit records no statement: not by kubectl, not by import.
    let forged = format!(
        "apiVersion: scanning.scangate.dev/v1beta1\nkind: ScanException\nmetadata: {{name: mine}}\n\
         spec:\n  images: [\"busybox:1.32.1\"]\n  cves: [{CRITICAL}]\n  reason: mine\n  \
         expires: \"{}\"\n  vex: {{status: not_affected, justification: component_not_present}}\n",
        jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)
    );
    let out = env.kubectl_as(&tenant, &["-n", &ns, "apply", "-f", "-"], Some(&forged));
    assert!(!out.status.success(), "a tenant's statement was written");
    assert!(stderr(&out).contains("forbidden"), "{}", stderr(&out));
    let not_affected = statement(
        "not_affected",
        json!({"justification": "vulnerable_code_not_in_execute_path"}),
    );
    let out = import(&env, &tenant, &not_affected, "1h");
    assert!(!out.status.success(), "a tenant's import succeeded");
    assert!(
        stderr(&out).contains("nothing was imported") && stderr(&out).contains("forbidden"),
        "{}",
        stderr(&out)
    );
    let statuses = env.ns.kubectl_ok(&[
        "get",
        "scanexceptions",
        "-o",
        "jsonpath={.items[*].spec.vex.status}",
    ]);
    assert_eq!(statuses, "under_investigation");
    assert!(!deploy_as(&env, &tenant, &ns).status.success());

    // The approver's not_affected replaces the statement: Completed, admitted here only, until
    // it expires.
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(40);
    let out = import(&env, &approver, &not_affected, &expires.to_string());
    assert!(out.status.success(), "{}", stderr(&out));
    let statuses = env.ns.kubectl_ok(&[
        "get",
        "scanexceptions",
        "-o",
        "jsonpath={.items[*].spec.vex.status}",
    ]);
    assert_eq!(statuses, "not_affected");
    wait_verdict(&env, "Completed", "EvaluationPassed");
    let admitted = env
        .cluster
        .eventually("the statement to admit busybox", WAIT, || {
            let out = deploy_as(&env, &tenant, &ns);
            out.status.success().then(|| stderr(&out))
        });
    assert!(!admitted.contains("under review"), "{admitted}");
    let out = env.cluster.apply(
        &deployment("legacy", "busybox:1.32.1"),
        &["-n", &other.name, "--dry-run=server"],
    );
    assert!(!out.status.success(), "admitted in {}", other.name);
    assert!(
        stderr(&out).contains(&format!("failed trusted scan {}/busybox", env.system.name)),
        "{}",
        stderr(&out)
    );

    // Expired, it does nothing: the scan is back to what its findings say, the image denied.
    let failed = wait_verdict(&env, "Failed", "EvaluationFailed");
    assert_eq!(
        policy_condition(&failed)["message"],
        "Policy violated because of 1 CVEs"
    );
    env.cluster
        .eventually("the expired statement to stop admitting", WAIT, || {
            (!deploy_as(&env, &tenant, &ns).status.success()).then_some(())
        });
}

#[test]
fn import_then_export_round_trips_an_openvex_document() {
    let Some(cluster) = cluster() else { return };
    let env = Enforced::start(cluster, "e2e-vex-io", &[]);
    let ns = env.ns.name.clone();
    let approver = format!("approver-{ns}");
    env.bind(&ns, &approver, "scangate-exception-approver");
    let kubeconfig = cluster.kubeconfig_as_user(&approver);

    // A bad document imports nothing, and says which statement and field is wrong.
    let mut bad: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE))
            .expect("fixture"),
    )
    .expect("fixture JSON");
    bad["statements"][3]["status"] = json!("maybe");
    let out = scangate(
        &kubeconfig,
        &["vex", "import", "-", "-n", &ns, "--expires", "7d"],
        Some(&bad.to_string()),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("statements[3].status \"maybe\" is not an OpenVEX status"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        env.ns.kubectl_ok(&["get", "scanexceptions", "-o", "name"]),
        ""
    );

    let out = scangate(
        &kubeconfig,
        &["vex", "import", FIXTURE, "-n", &ns, "--expires", "7d"],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // One ScanException per (vulnerability, image); the later statement about CVE-2021-42380
    // (fixed) replaced the earlier one (under_investigation).
    let names = env.ns.kubectl_ok(&["get", "scanexceptions", "-o", "name"]);
    assert_eq!(names.lines().count(), 4, "{names}");
    let approvers = env.ns.kubectl_ok(&[
        "get",
        "scanexceptions",
        "-o",
        "jsonpath={.items[*].metadata.annotations.scangate\\.dev/approved-by}",
    ]);
    assert_eq!(approvers, [approver.as_str(); 4].join(" "));

    let out = scangate(&kubeconfig, &["vex", "export", "-n", &ns], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let exported: Value = serde_json::from_slice(&out.stdout).expect("exported JSON");
    for field in ["@context", "@id", "author", "timestamp", "version"] {
        assert!(!exported[field].is_null(), "{field} missing: {exported}");
    }
    assert_eq!(exported["@context"], "https://openvex.dev/ns/v0.2.0");
    assert_eq!(exported["author"], approver);

    // The same statements: (vulnerability, product, status, justification, statements).
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE))
            .expect("fixture"),
    )
    .expect("fixture JSON");
    let summary = |doc: &Value| {
        let mut all: Vec<String> = doc["statements"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| {
                !(s["vulnerability"]["name"] == "CVE-2021-42380"
                    && s["status"] == "under_investigation")
            })
            .map(|s| {
                format!(
                    "{} {} {} {} {} {}",
                    s["vulnerability"]["name"],
                    s["vulnerability"]["aliases"],
                    s["status"],
                    s["justification"],
                    s["impact_statement"],
                    s["action_statement"],
                )
            })
            .collect();
        all.sort();
        all
    };
    assert_eq!(summary(&exported), summary(&fixture));
    // Products come out as pkg:oci purls that import reads back as the same images.
    let products: Vec<String> = exported["statements"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            s["products"][0]["@id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(
        products.contains(&"pkg:oci/busybox@sha256%3Aae39a6f5c07297d7ab64dbd4f82c77c874cc6a94cea29fdec309d0992574b4f7?repository_url=docker.io%2Flibrary%2Fbusybox".to_string()),
        "{products:?}"
    );
    assert!(
        products.contains(
            &"pkg:oci/busybox?repository_url=docker.io%2Flibrary%2Fbusybox&tag=1.32.1".to_string()
        ),
        "{products:?}"
    );
    // Importing the export again changes nothing.
    let before = env.ns.kubectl_ok(&[
        "get",
        "scanexceptions",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.images} {.spec.cves} {.spec.vex}{\"\\n\"}{end}",
    ]);
    let out = scangate(
        &kubeconfig,
        &["vex", "import", "-", "-n", &ns, "--expires", "7d"],
        Some(&String::from_utf8_lossy(&out.stdout)),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let after = env.ns.kubectl_ok(&[
        "get",
        "scanexceptions",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.images} {.spec.cves} {.spec.vex}{\"\\n\"}{end}",
    ]);
    assert_eq!(before, after);
}
