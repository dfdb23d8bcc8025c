//! The results page end to end, at the HTTP level: `scangate controller` (as deploy/rbac's
//! ServiceAccount, by impersonation) serves it over TLS on the local control plane, whose kwok
//! node runs the pods. Tokens are real ServiceAccount tokens (`kubectl create token`), checked
//! by the controller with TokenReview and SubjectAccessReview. The page's exports are compared
//! with `kubectl get imagescans -A` and the PolicyReports, its figures with `scangate status`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::cluster::{Cluster, TestNamespace, cluster, deployment, stderr};
use common::controller::Controller;
use common::exports::{RUNNING_CSV, SCANS_CSV, parse_csv};
use common::fixtures::GRYPE_BUSYBOX;
use common::webhook::{certs, client_builder};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// The controller of every namespace, serving the page over TLS with the test certificate in
/// `dir`, keeping verdict mirror `mirror` (bound to no namespace, its parameters in `system`);
/// and the page's base URL.
fn start_controller(
    cluster: &Cluster,
    dir: &Path,
    config: &Path,
    system: &TestNamespace,
    mirror: &str,
) -> (Controller, String) {
    common::mirror::grant(cluster, &system.name);
    let (start, base) = Controller::cluster_wide(cluster.kubeconfig_as("scangate-controller"))
        .config(config)
        .results_page(dir);
    let controller = start
        .args(&[
            "--mirror",
            "--mirror-name",
            mirror,
            "--mirror-namespace-label",
            "scangate.dev/e2e-no-namespace=none",
            // A revoked viewer is refused within this (60 s by default).
            "--results-access-recheck=5s",
        ])
        .start();
    (controller, base)
}

/// An answer: status, headers, body.
struct Answer {
    code: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> String {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A client of the page (HTTPS, trusting the test CA, not following redirects).
struct Browser {
    base: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    Cookie(&'a str),
}

impl Browser {
    fn new(base: &str, ca: &Path) -> Browser {
        Browser {
            base: base.to_string(),
            http: client_builder(&[ca])
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
        }
    }

    fn send(&self, request: reqwest::RequestBuilder, auth: Auth<'_>) -> Answer {
        let request = match auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Cookie(cookie) => request.header("cookie", cookie),
        };
        self.rt.block_on(async {
            let response = request.send().await.expect("request");
            let code = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.text().await.expect("body");
            Answer {
                code,
                headers,
                body,
            }
        })
    }

    fn get(&self, path: &str, auth: Auth<'_>) -> Answer {
        self.send(self.http.get(format!("{}{path}", self.base)), auth)
    }

    fn post_form(&self, path: &str, body: &str, auth: Auth<'_>) -> Answer {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.to_string()),
            auth,
        )
    }
}

/// The text of a PDF, by `pdftotext`.
fn pdf_text(pdf: &str) -> String {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), pdf).expect("write the PDF");
    let out = Command::new("pdftotext")
        .args([&file.path().display().to_string(), "-"])
        .output()
        .expect("pdftotext (poppler-utils)");
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The CSRF token a page's forms carry.
fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    html.split_once(marker)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(value, _)| value.to_string())
        .unwrap_or_else(|| panic!("no CSRF token in {html}"))
}

/// A ServiceAccount's token (`kubectl create token`).
fn token(ns: &TestNamespace, name: &str) -> String {
    ns.kubectl_ok(&["create", "serviceaccount", name]);
    ns.kubectl_ok(&["create", "token", name, "--duration=1h"])
        .trim()
        .to_string()
}

/// The value of `data-figure="name"` on a page.
fn figure(html: &str, name: &str) -> usize {
    let needle = format!("data-figure=\"{name}\">");
    let start = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + needle.len();
    let end = start + html[start..].find('<').expect("figure end");
    html[start..end].parse().expect("an integer figure")
}

/// `name N` in a `status` line like `by phase: Pending 1, Scanning 0, …`.
fn counted(line: &str, name: &str) -> usize {
    let after = line
        .split_once(&format!("{name} "))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        .1;
    after
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count after {name} in {line}"))
}

fn rows(html: &str, table: &str) -> usize {
    let start = html
        .find(&format!("<table id=\"{table}\""))
        .unwrap_or_else(|| panic!("no table {table}"));
    let end = start + html[start..].find("</table>").expect("table end");
    html[start..end].matches("<tr data-").count()
}

/// (namespace, name, phase, critical, high, medium, low, unknown) of every ImageScan.
fn kubectl_scans(cluster: &Cluster) -> Vec<Vec<String>> {
    let list: Value =
        serde_json::from_str(&cluster.kubectl_ok(&["get", "imagescans", "-A", "-o", "json"]))
            .expect("JSON");
    let mut scans: Vec<Vec<String>> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let count = |sev: &str| {
                s["status"]["cveCount"][sev]
                    .as_i64()
                    .unwrap_or(0)
                    .to_string()
            };
            vec![
                s["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
                s["metadata"]["name"].as_str().unwrap_or_default().into(),
                s["status"]["phase"].as_str().unwrap_or("Pending").into(),
                count("critical"),
                count("high"),
                count("medium"),
                count("low"),
                count("unknown"),
            ]
        })
        .collect();
    scans.sort();
    scans
}

/// (namespace, workload, image, verdict, scan) of every PolicyReport result (`skip` spelled
/// `unscanned`, as the page does).
fn policy_results(cluster: &Cluster) -> Vec<Vec<String>> {
    let list: Value =
        serde_json::from_str(&cluster.kubectl_ok(&["get", "policyreports", "-A", "-o", "json"]))
            .expect("JSON");
    let mut results = vec![];
    for report in list["items"].as_array().into_iter().flatten() {
        let ns = report["metadata"]["namespace"].as_str().unwrap_or_default();
        for r in common::policy_reports::results(report) {
            let verdict = if r.result == "skip" {
                "unscanned".to_string()
            } else {
                r.result
            };
            results.push(vec![ns.to_string(), r.workload, r.image, verdict, r.scan]);
        }
    }
    results.sort();
    results
}

fn apply(ns: &TestNamespace, object: Value) {
    let out = ns.apply(&object.to_string());
    assert!(out.status.success(), "{}", stderr(&out));
}

fn scan(ns: &TestNamespace, name: &str, image: &str, policy: bool) {
    let mut spec = json!({"registry": {"image": image}});
    if policy {
        spec["scanPolicy"] = json!("default");
    }
    apply(
        ns,
        json!({
            "apiVersion": "scanning.scangate.dev/v1beta1",
            "kind": "ImageScan",
            "metadata": {"name": name, "namespace": ns.name},
            "spec": spec,
        }),
    );
}

fn policy(ns: &TestNamespace) {
    apply(
        ns,
        json!({
            "apiVersion": "scanning.scangate.dev/v1beta1",
            "kind": "ScanPolicy",
            "metadata": {"name": "default", "namespace": ns.name},
            "spec": {"regoFile": scangate::policy::DEFAULT_POLICY},
        }),
    );
}

/// Deletes a cluster-scoped binding when the test ends.
struct ClusterRoleBinding<'c>(&'c Cluster, String);

impl Drop for ClusterRoleBinding<'_> {
    fn drop(&mut self) {
        let _ = self.0.kubectl(&[
            "delete",
            "clusterrolebinding",
            &self.1,
            "--ignore-not-found",
        ]);
    }
}

#[test]
fn the_results_page_shows_what_kubectl_shows_to_those_allowed() {
    let Some(cluster) = cluster() else { return };
    // The page shows the whole cluster: start from one without earlier tests' leftovers.
    cluster.wait_until_no_namespace_terminates();
    let dir = tempfile::tempdir().expect("tempdir");
    certs(dir.path());
    let a = cluster.namespace("e2e-page-a", &[]);
    let b = cluster.namespace("e2e-page-b", &[]);
    let system = cluster.namespace("e2e-page-sys", &[]);
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "scangateNamespace: {}\ntrustNamespaceScans: true\n",
            system.name
        ),
    )
    .expect("write config");
    let mirror = format!("scangate-{}", system.name);
    let _mirror_objects = common::mirror::Objects {
        cluster,
        name: mirror.clone(),
    };
    let (controller, base) = start_controller(cluster, dir.path(), &config, &system, &mirror);
    let page = Browser::new(&base, &dir.path().join("ca.crt"));

    // Scans: busybox Failed in a, Completed in b (CI pushes the reports), one never scanned.
    policy(&a);
    policy(&b);
    scan(&a, "busybox", "busybox:1.32.1", true);
    scan(&b, "busybox", "busybox:1.32.1", true);
    scan(&b, "pending", "registry.example/app:1", false);
    let vulnerable: Value =
        serde_json::from_str(&std::fs::read_to_string(GRYPE_BUSYBOX).expect("fixture"))
            .expect("fixture JSON");
    let mut clean = vulnerable.clone();
    clean["matches"] = json!([]);
    cluster.push_report(&format!("{}/busybox", a.name), &vulnerable);
    cluster.push_report(&format!("{}/busybox", b.name), &clean);
    let phase = |ns: &TestNamespace| {
        ns.kubectl_ok(&[
            "get",
            "imagescan",
            "busybox",
            "-o",
            "jsonpath={.status.phase}",
        ])
    };
    cluster.eventually("the scans decided", WAIT, || {
        (phase(&a) == "Failed" && phase(&b) == "Completed").then_some(())
    });
    // Running: busybox in a (fail), in b (pass), an unscanned quay.io image in b (warn).
    for (ns, name, image) in [
        (&a, "bad", "busybox:1.32.1"),
        (&b, "good", "busybox:1.32.1"),
        (&b, "other", "quay.io/example/other:1"),
    ] {
        let out = ns.apply(&deployment(name, image));
        assert!(out.status.success(), "{}", stderr(&out));
    }

    // Tokens: no rights; `edit` in one namespace; scangate-view cluster-wide.
    let nobody = token(&a, "nobody");
    let tenant = token(&a, "tenant");
    a.kubectl_ok(&[
        "create",
        "rolebinding",
        "tenant-edit",
        "--clusterrole=edit",
        &format!("--serviceaccount={}:tenant", a.name),
    ]);
    let reader_binding = format!("{}-reader", a.name);
    let _binding = ClusterRoleBinding(cluster, reader_binding.clone());
    cluster.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        &reader_binding,
        "--clusterrole=scangate-view",
        &format!("--serviceaccount={}:reader", a.name),
    ]);
    let reader = token(&a, "reader");

    // Never anonymous.
    let anonymous = page.get("/", Auth::None);
    assert_eq!(anonymous.code, 401, "{}", anonymous.body);
    assert_eq!(anonymous.header("www-authenticate"), "Bearer");
    assert!(
        anonymous.body.contains("action=\"/login\""),
        "{}",
        anonymous.body
    );
    assert_eq!(page.get("/scans.csv", Auth::None).code, 401);
    assert_eq!(
        page.get("/running.json", Auth::Bearer("not-a-token")).code,
        401
    );
    let login_form = page.get("/login", Auth::None);
    assert_eq!(login_form.code, 200);
    assert_eq!(page.get("/static/app.js", Auth::None).code, 200);
    let forbidden = page.get("/", Auth::Bearer(&nobody));
    assert_eq!(forbidden.code, 403, "{}", forbidden.body);
    assert!(
        forbidden
            .body
            .contains(&format!("system:serviceaccount:{}:nobody", a.name))
    );
    assert_eq!(page.get("/scans.csv", Auth::Bearer(&tenant)).code, 403);
    let reader_token = reader;
    let reader = Auth::Bearer(&reader_token);
    let landing = page.get("/", reader);
    assert_eq!(landing.code, 200, "{}", landing.body);
    for (name, value) in [
        ("content-security-policy", "default-src 'self'"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(landing.header(name), value, "{name}");
    }

    // /scans.csv equals kubectl's ImageScans.
    let csv_scans = cluster.eventually(
        "/scans.csv to equal kubectl get imagescans -A",
        WAIT,
        || {
            let answer = page.get("/scans.csv", reader);
            assert_eq!(answer.code, 200, "{}", answer.body);
            let (header, records) = parse_csv(&answer.body);
            assert_eq!(header, SCANS_CSV);
            let mut page_scans: Vec<Vec<String>> = records
                .iter()
                .map(|r| {
                    let mut row = r[..2].to_vec();
                    row.extend_from_slice(&r[3..9]);
                    row
                })
                .collect();
            page_scans.sort();
            (page_scans == kubectl_scans(cluster) && page_scans.len() >= 3).then_some(page_scans)
        },
    );
    assert!(
        csv_scans
            .iter()
            .any(|s| s[0] == a.name && s[2] == "Failed" && s[3..8] != ["0"; 5]),
        "{csv_scans:?}"
    );
    let scans_json = page.get("/scans.json", reader);
    let scans_json: Value = serde_json::from_str(&scans_json.body).expect("JSON");
    assert!(scans_json[0]["critical"].is_i64(), "{scans_json}");

    // /running.json equals the PolicyReports' results.
    let running = cluster.eventually("/running.json to equal the PolicyReports", WAIT, || {
        let answer = page.get("/running.json", reader);
        assert_eq!(answer.code, 200, "{}", answer.body);
        let list: Value = serde_json::from_str(&answer.body).expect("JSON");
        let mut rows: Vec<Vec<String>> = list
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                ["namespace", "workload", "image", "verdict", "scan"]
                    .iter()
                    .map(|k| r[*k].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .collect();
        rows.sort();
        (rows.len() == 3 && rows == policy_results(cluster)).then_some(list)
    });
    let verdicts: BTreeMap<String, String> = running
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["workload"].as_str().unwrap_or_default().to_string(),
                r["verdict"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        BTreeMap::from([
            ("Deployment/bad".into(), "fail".into()),
            ("Deployment/good".into(), "pass".into()),
            ("Deployment/other".into(), "warn".into()),
        ])
    );
    for r in running.as_array().into_iter().flatten() {
        let workload = r["workload"].as_str().unwrap_or_default();
        let name = workload.trim_start_matches("Deployment/");
        assert!(
            r["pod"]
                .as_str()
                .is_some_and(|p| p.starts_with(&format!("{name}-"))),
            "{r}"
        );
        assert_eq!(r["container"], "app", "{r}");
    }
    let csv = page.get("/running.csv", reader);
    let (header, records) = parse_csv(&csv.body);
    assert_eq!(header, RUNNING_CSV);
    assert_eq!(records.len(), 3, "{}", csv.body);

    // The landing page's figures are `scangate status`'s.
    let status = Command::new(env!("CARGO_BIN_EXE_scangate"))
        .args([
            "status",
            "--config",
            &config.display().to_string(),
            "--mirror-name",
            &mirror,
        ])
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env_remove("SCANGATE_CONFIG")
        .env_remove("SCANGATE_NAMESPACE")
        .output()
        .expect("scangate status");
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.status.success(), "{text}{}", stderr(&status));
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {text}"))
            .to_string()
    };
    // The page's mirror line and `status` agree (no trusted scan here is Failed).
    let in_sync = line("verdict mirror:");
    assert_eq!(
        in_sync, "verdict mirror: in sync (0 denied digests)",
        "{text}"
    );
    let html = page.get("/", reader).body;
    assert!(
        html.contains("Verdict mirror: in sync: 0 denied digests in 0 DeniedDigests objects"),
        "{html}"
    );
    let phases = line("by phase:");
    let images = line("running pods:");
    let html = page.get("/", reader).body;
    let total: usize = ["Pending", "Scanning", "Completed", "Failed", "Error"]
        .iter()
        .map(|p| counted(&phases, p))
        .sum();
    assert_eq!(figure(&html, "scans-total"), total, "{text}");
    assert_eq!(
        figure(&html, "scans-completed"),
        counted(&phases, "Completed"),
        "{text}"
    );
    assert_eq!(
        figure(&html, "scans-failed"),
        counted(&phases, "Failed"),
        "{text}"
    );
    assert_eq!(
        figure(&html, "scans-error"),
        counted(&phases, "Error"),
        "{text}"
    );
    assert_eq!(
        figure(&html, "scans-pending"),
        counted(&phases, "Pending") + counted(&phases, "Scanning"),
        "{text}"
    );
    // busybox:1.32.1 and registry.example/app:1 here, and any other test's still in the cluster.
    let scans: Value =
        serde_json::from_str(&cluster.kubectl_ok(&["get", "imagescans", "-A", "-o", "json"]))
            .expect("imagescans");
    let scanned: std::collections::BTreeSet<&str> = scans["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["spec"]["registry"]["image"].as_str())
        .collect();
    assert!(scanned.contains("busybox:1.32.1") && scanned.contains("registry.example/app:1"));
    assert_eq!(
        figure(&html, "images-scanned"),
        scanned.len(),
        "{scanned:?}"
    );
    // Every namespace here enforces (the default), one workload per image: the same counts.
    assert_eq!(
        figure(&html, "running-total"),
        counted(&images, "their images:"),
        "{text}"
    );
    assert_eq!(
        figure(&html, "running-fail"),
        counted(&images, "denied"),
        "{text}"
    );
    assert_eq!(
        figure(&html, "running-warn"),
        counted(&images, "warned"),
        "{text}"
    );
    assert_eq!(
        figure(&html, "running-pass") + figure(&html, "running-unscanned"),
        counted(&images, "admitted"),
        "{text}"
    );
    assert!(html.contains("<tr data-registry=\"quay.io\">"), "{html}");
    assert!(
        html.contains(&format!(
            "<a href=\"/running?namespace={0}\">{0}</a>",
            b.name
        )),
        "{html}"
    );

    // Server-side filters.
    let all = page.get("/running", reader).body;
    assert_eq!(rows(&all, "running"), 3, "{all}");
    let quay = page.get("/running?registry=quay.io", reader).body;
    assert_eq!(rows(&quay, "running"), 1, "{quay}");
    assert!(
        quay.contains("data-registry=\"quay.io\" data-verdict=\"warn\""),
        "{quay}"
    );
    assert_eq!(figure(&quay, "shown"), 1);
    let in_a = page.get(&format!("/running.json?namespace={}", a.name), reader);
    assert_eq!(
        serde_json::from_str::<Value>(&in_a.body)
            .expect("JSON")
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let failed = page.get("/scans?phase=Failed", reader).body;
    assert_eq!(rows(&failed, "scans"), 1, "{failed}");

    // A scan's page: its conditions, and its violations by CVE id.
    let detail = page.get(&format!("/scans/{}/busybox", a.name), reader);
    assert_eq!(detail.code, 200, "{}", detail.body);
    assert!(
        detail.body.contains("<table id=\"conditions\""),
        "{}",
        detail.body
    );
    assert!(
        detail.body.contains("<tr data-cve=\"CVE-"),
        "{}",
        detail.body
    );
    assert_eq!(
        page.get(&format!("/scans/{}/nope", a.name), reader).code,
        404
    );

    // The login form: a session cookie that opens the pages, until logout.
    let refused = page.post_form("/login", &format!("token={nobody}"), Auth::None);
    assert_eq!(refused.code, 403, "{}", refused.body);
    assert!(refused.header("set-cookie").is_empty());
    let Auth::Bearer(reader_token) = reader else {
        unreachable!()
    };
    let login = page.post_form("/login", &format!("token={reader_token}"), Auth::None);
    assert_eq!(login.code, 303, "{}", login.body);
    assert_eq!(login.header("location"), "/");
    let set_cookie = login.header("set-cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().expect("cookie").to_string();
    assert!(cookie.starts_with("scangate-session="), "{cookie}");
    let opened = page.get("/", Auth::Cookie(&cookie));
    assert_eq!(opened.code, 200, "{}", opened.body);
    assert_eq!(figure(&opened.body, "running-total"), 3);
    assert_eq!(
        page.post_form("/logout", "", Auth::Cookie(&cookie)).code,
        303
    );
    assert_eq!(page.get("/", Auth::Cookie(&cookie)).code, 401);

    // Actions, each with the viewer's own rights, from a session with its CSRF token.
    let login = page.post_form("/login", &format!("token={reader_token}"), Auth::None);
    let session = login
        .header("set-cookie")
        .split(';')
        .next()
        .expect("cookie")
        .to_string();
    let scan_page = page.get(
        &format!("/scans/{}/busybox", a.name),
        Auth::Cookie(&session),
    );
    let csrf = csrf_of(&scan_page.body);
    let rescan = format!("/scans/{}/busybox/rescan", a.name);
    let annotations = |ns: &TestNamespace, name: &str| -> Value {
        serde_json::from_str::<Value>(&ns.kubectl_ok(&["get", "imagescan", name, "-o", "json"]))
            .map(|scan| scan["metadata"]["annotations"].clone())
            .unwrap_or(Value::Null)
    };
    // A viewer who may only read is refused by the apiserver, as themself; nothing changes.
    let refused = page.post_form(&rescan, &format!("csrf={csrf}"), Auth::Cookie(&session));
    assert_eq!(refused.code, 403, "{}", refused.body);
    assert!(
        refused.body.contains(&format!(
            "system:serviceaccount:{}:reader may not rescan imagescan {}/busybox",
            a.name, a.name
        )),
        "{}",
        refused.body
    );
    assert!(annotations(&a, "busybox")["scangate.dev/rescan"].is_null());
    // Given `edit` in the namespace, the same viewer rescans; a form without the session's
    // CSRF token (another site's) is refused first.
    a.kubectl_ok(&[
        "create",
        "rolebinding",
        "reader-edit",
        "--clusterrole=edit",
        &format!("--serviceaccount={}:reader", a.name),
    ]);
    let forged = page.post_form(&rescan, "csrf=guess", Auth::Cookie(&session));
    assert_eq!(forged.code, 403, "{}", forged.body);
    assert!(forged.body.contains("CSRF token"), "{}", forged.body);
    assert!(annotations(&a, "busybox")["scangate.dev/rescan"].is_null());
    let done = page.post_form(&rescan, &format!("csrf={csrf}"), Auth::Cookie(&session));
    assert_eq!(done.code, 200, "{}", done.body);
    let recorded = annotations(&a, "busybox");
    assert!(recorded["scangate.dev/rescan"].is_string(), "{recorded}");
    let by = recorded["scangate.dev/requested-by"]
        .as_str()
        .unwrap_or_default();
    assert!(
        by.starts_with(&format!(
            "system:serviceaccount:{}:reader asked to rescan imagescan {}/busybox on the results page at ",
            a.name, a.name
        )),
        "{recorded}"
    );
    // The scan's PDF: every vulnerability of its report (the viewer may now read the
    // namespace's ConfigMaps), its violations and its verdict.
    let pdf = page.get(&format!("/scans/{}/busybox/report.pdf", a.name), reader);
    assert_eq!(pdf.code, 200);
    assert_eq!(pdf.header("content-type"), "application/pdf");
    let text = pdf_text(&pdf.body);
    let report =
        scangate::report::Report::from_path(GRYPE_BUSYBOX, scangate::report::Limits::default())
            .expect("fixture");
    assert!(!report.vulnerabilities.is_empty());
    for v in &report.vulnerabilities {
        assert!(text.contains(&v.id), "{} not in the PDF:\n{text}", v.id);
    }
    for section in ["Vulnerability matching", "Policy evaluation", "Decided at"] {
        assert!(text.contains(section), "{section} not in the PDF:\n{text}");
    }
    // A bearer request needs no CSRF token (no other site can send one).
    let reevaluated = page.post_form(&format!("/scans/{}/busybox/reevaluate", a.name), "", reader);
    assert_eq!(reevaluated.code, 200, "{}", reevaluated.body);
    assert!(annotations(&a, "busybox")["scangate.dev/reevaluate"].is_string());
    // Scan now creates a trusted scan in scangate's namespace: refused until the admin grants
    // scangate-scan-requester there.
    let scan_now = format!("csrf={csrf}&image=quay.io%2Fexample%2Fother%3A1");
    let refused = page.post_form("/scan-now", &scan_now, Auth::Cookie(&session));
    assert_eq!(refused.code, 403, "{}", refused.body);
    system.kubectl_ok(&[
        "create",
        "rolebinding",
        "reader-scans",
        "--clusterrole=scangate-scan-requester",
        &format!("--serviceaccount={}:reader", a.name),
    ]);
    let created = page.post_form("/scan-now", &scan_now, Auth::Cookie(&session));
    assert_eq!(created.code, 200, "{}", created.body);
    let scans: Value =
        serde_json::from_str(&system.kubectl_ok(&["get", "imagescans", "-o", "json"]))
            .expect("imagescans");
    let requested = scans["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["spec"]["registry"]["image"] == "quay.io/example/other:1")
        .unwrap_or_else(|| panic!("no ImageScan of the image in {}: {scans}", system.name));
    assert!(
        requested["metadata"]["annotations"]["scangate.dev/requested-by"]
            .as_str()
            .is_some_and(|b| b.contains("asked to scan quay.io/example/other:1 now")),
        "{requested}"
    );
    page.post_form("/logout", "", Auth::Cookie(&session));

    // Counted by route and code.
    let metrics = controller.metrics();
    for series in [
        "scangate_results_requests_total{page=\"/\",code=\"401\"}",
        "scangate_results_requests_total{page=\"/\",code=\"200\"}",
        "scangate_results_requests_total{page=\"/scans/{namespace}/{name}\",code=\"404\"}",
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }

    // The viewer's binding is removed: its session, and its token, lose the page within the
    // minute after which a session's rights are asked again.
    let login = page.post_form("/login", &format!("token={reader_token}"), Auth::None);
    let cookie = login
        .header("set-cookie")
        .split(';')
        .next()
        .expect("cookie")
        .to_string();
    assert_eq!(page.get("/", Auth::Cookie(&cookie)).code, 200);
    cluster.kubectl_ok(&["delete", "clusterrolebinding", &reader_binding]);
    let mut session_refused = false;
    cluster.eventually(
        "the revoked viewer's session and token to be refused",
        Duration::from_secs(30),
        || {
            // Refused once (403), the session is gone (401 after).
            let session = page.get("/", Auth::Cookie(&cookie)).code;
            if session == 403 {
                session_refused = true;
            }
            assert!(
                session == 200 || session_refused,
                "the session answered {session} before it was refused"
            );
            let token = page.get("/", reader).code;
            (session_refused && token == 403).then_some(())
        },
    );
}
