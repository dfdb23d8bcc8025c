//! The results page in real headless Chromium (tests/common/browser.rs): `scangate controller`
//! (cluster-wide, as deploy/rbac's ServiceAccount by impersonation) serves the page over TLS
//! on the local control plane whose kwok node runs the pods. The landing page's figures equal
//! what kubectl shows; choosing a registry or typing one narrows the lists; the CSV exports
//! parse and match the tables; a Failed scan's page printed to PDF holds its CVE ids; the
//! login form and the bearer header both let a viewer in. Screenshots of each page are left in
//! target/screenshots/ for review.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::browser::{Browser, Page, assert_png, browser, pdf_text};
use common::cluster::{Cluster, TestNamespace, cluster, deployment, stderr};
use common::enforced::Enforced;
use common::exports::{RUNNING_CSV, SCANS_CSV, parse_csv};
use common::fixtures::{ALPINE, GRYPE_BUSYBOX as FIXTURE, PASSED};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn phase(enforced: &Enforced, name: &str) -> String {
    enforced
        .ns
        .kubectl_ok(&["get", "imagescan", name, "-o", "jsonpath={.status.phase}"])
}

/// (workload, result) of each result of the namespace's PolicyReport.
fn results(ns: &TestNamespace) -> BTreeSet<(String, String)> {
    let out = ns.kubectl(&["get", "policyreport", "scangate", "-o", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    common::policy_reports::results(&report)
        .into_iter()
        .map(|r| (r.workload, r.result))
        .collect()
}

fn json_of(cluster: &Cluster, args: &[&str]) -> Value {
    serde_json::from_str(&cluster.kubectl_ok(args)).expect("kubectl JSON")
}

/// The landing page's figures as kubectl gives them: the ImageScans by phase (none: Pending),
/// their distinct images, the running images from the Running pods, and those by verdict from
/// scangate's PolicyReports (`skip` is shown as unscanned).
fn expected_figures(cluster: &Cluster) -> BTreeMap<String, u64> {
    let scans = json_of(cluster, &["get", "imagescans", "-A", "-o", "json"]);
    let scans = scans["items"].as_array().cloned().unwrap_or_default();
    let phase = |s: &Value| {
        s["status"]["phase"]
            .as_str()
            .unwrap_or("Pending")
            .to_string()
    };
    let count = |phases: &[&str]| {
        scans
            .iter()
            .filter(|s| phases.contains(&phase(s).as_str()))
            .count() as u64
    };
    let images: BTreeSet<&str> = scans
        .iter()
        .filter_map(|s| s["spec"]["registry"]["image"].as_str())
        .collect();
    let reports = json_of(
        cluster,
        &[
            "get",
            "policyreports",
            "-A",
            "-l",
            "app.kubernetes.io/managed-by=scangate",
            "-o",
            "json",
        ],
    );
    let verdict = |key: &str| -> u64 {
        reports["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["summary"][key].as_u64().unwrap_or_default())
            .sum()
    };
    let (pass, fail, warn, skip) = (
        verdict("pass"),
        verdict("fail"),
        verdict("warn"),
        verdict("skip"),
    );
    BTreeMap::from([
        ("images-scanned".into(), images.len() as u64),
        ("scans-total".into(), scans.len() as u64),
        ("scans-completed".into(), count(&["Completed"])),
        ("scans-failed".into(), count(&["Failed"])),
        ("scans-error".into(), count(&["Error"])),
        ("scans-pending".into(), count(&["Pending", "Scanning"])),
        (
            "running-total".into(),
            running_pods(cluster, &["-A"]).len() as u64,
        ),
        ("running-pass".into(), pass),
        ("running-fail".into(), fail),
        ("running-warn".into(), warn),
        ("running-unscanned".into(), skip),
    ])
}

/// The landing page's figures (`[data-figure]` but `shown`), as integers.
fn page_figures(page: &Page<'_>) -> BTreeMap<String, u64> {
    let figures: BTreeMap<String, String> = page
        .eval(
            "Object.fromEntries([...document.querySelectorAll('[data-figure]')]\
             .map(e => [e.dataset.figure, e.textContent.trim()]))",
        )
        .expect("the figures");
    figures
        .into_iter()
        .filter(|(name, _)| name != "shown")
        .map(|(name, text)| {
            let value = text
                .parse()
                .unwrap_or_else(|_| panic!("figure {name} is {text:?}, not an integer"));
            (name, value)
        })
        .collect()
}

/// The `(namespace, workload, image)` each Running pod runs (`kubectl get pods -o json` in
/// `args`' scope), one per workload and image as the inventory counts them: a ReplicaSet's pods
/// are their Deployment's; containers, init and ephemeral containers and image volumes.
fn running_pods(cluster: &Cluster, args: &[&str]) -> BTreeSet<(String, String, String)> {
    let mut all = vec!["get", "pods", "-o", "json"];
    all.extend_from_slice(args);
    let pods = json_of(cluster, &all);
    let mut running = BTreeSet::new();
    for pod in pods["items"].as_array().into_iter().flatten() {
        if pod["status"]["phase"] != "Running" {
            continue;
        }
        let meta = &pod["metadata"];
        let owners = meta["ownerReferences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let owner = owners
            .iter()
            .find(|o| o["controller"] == true)
            .or_else(|| owners.first());
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let workload = match owner {
            None => format!("Pod/{}", s(&meta["name"])),
            Some(o) if o["kind"] == "ReplicaSet" && o["apiVersion"] == "apps/v1" => {
                let name = s(&o["name"]);
                let hash = s(&meta["labels"]["pod-template-hash"]);
                match name.strip_suffix(&format!("-{hash}")) {
                    Some(deployment) if !hash.is_empty() && !deployment.is_empty() => {
                        format!("Deployment/{deployment}")
                    }
                    _ => format!("ReplicaSet/{name}"),
                }
            }
            Some(o) => format!("{}/{}", s(&o["kind"]), s(&o["name"])),
        };
        let spec = &pod["spec"];
        let containers = ["initContainers", "containers", "ephemeralContainers"]
            .iter()
            .flat_map(|k| spec[k].as_array().cloned().unwrap_or_default())
            .map(|c| s(&c["image"]));
        let volumes = spec["volumes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| v["image"]["reference"].as_str().map(str::to_string));
        for image in containers.chain(volumes) {
            running.insert((s(&meta["namespace"]), workload.clone(), image));
        }
    }
    running
}

/// The `data-*` attributes `names` of each `tbody tr` of `table`, and whether it is shown.
fn rows(page: &Page<'_>, table: &str, names: &[&str]) -> Vec<(Vec<String>, bool)> {
    page.eval(&format!(
        "[...document.querySelectorAll({})].map(r => [{}.map(n => r.getAttribute('data-' + n) ?? ''), !r.hidden])",
        json!(format!("table#{table} tbody tr")),
        json!(names),
    ))
    .expect("the table's rows")
}

/// The shown-rows figure.
fn shown(page: &Page<'_>) -> usize {
    let text: String = page
        .eval(r#"document.querySelector('[data-figure="shown"]').textContent.trim()"#)
        .expect("the shown figure");
    text.parse()
        .unwrap_or_else(|_| panic!("[data-figure=shown] is {text:?}"))
}

/// Fetches `path` in the page (its cookie or header applies): (status, body).
fn fetch(page: &Page<'_>, path: &str) -> (u16, String) {
    page.eval(&format!(
        "fetch({}).then(async r => [r.status, await r.text()])",
        json!(path)
    ))
    .expect("fetch")
}

fn screenshots() -> PathBuf {
    repo().join("target/screenshots")
}

fn screenshot(page: &Page<'_>, name: &str) {
    let path = screenshots().join(format!("{name}.png"));
    page.screenshot(&path).expect("screenshot");
    // A rendered page, not a blank one: a few kilobytes at least.
    assert_png(&path, 4096);
}

/// A ServiceAccount token of `ns/name` (as `kubectl create token`).
fn token(ns: &TestNamespace, name: &str) -> String {
    ns.kubectl_ok(&["create", "serviceaccount", name]);
    ns.kubectl_ok(&["create", "token", name, "--duration=1h"])
        .trim()
        .to_string()
}

/// Removes the ClusterRoleBinding `name` on drop.
struct Binding<'c> {
    cluster: &'c Cluster,
    name: String,
}

impl Drop for Binding<'_> {
    fn drop(&mut self) {
        let _ = self.cluster.kubectl(&[
            "delete",
            "clusterrolebinding",
            &self.name,
            "--ignore-not-found",
        ]);
    }
}

/// Logs in through the form with `token`: the session cookie then lets the page in.
fn log_in<'b>(browser: &'b Browser, base: &str, token: &str) -> Page<'b> {
    let page = browser.new_page();
    page.navigate(&format!("{base}/")).expect("navigate");
    assert_eq!(page.status().expect("status"), 401, "no credentials");
    screenshot(&page, "login");
    page.type_into("input[name=token]", token)
        .expect("type the token");
    page.click_and_wait("form button[type=submit], form input[type=submit]")
        .expect("submit the login form");
    page.navigate(&format!("{base}/")).expect("navigate");
    assert_eq!(
        page.status().expect("status"),
        200,
        "logged in: the session cookie lets the page in"
    );
    page
}

#[test]
fn the_results_page_in_a_real_browser() {
    let Some(cluster) = cluster() else { return };
    // The page shows the whole cluster: start from one without earlier tests' leftovers.
    cluster.wait_until_no_namespace_terminates();
    let Some(browser) = browser() else { return };
    let enforced = Enforced::with_config(
        cluster,
        "e2e-results-browser",
        &[],
        // A pending scan admits its image: it runs unscanned.
        "trustNamespaceScans: true\nonPending: allow",
    );
    let ns = enforced.ns.name.clone();
    // A namespace no webhook enforces on: its image is running unscanned.
    let free = cluster.namespace("e2e-results-free", &[]);
    let (_controller, base) = enforced.results_page("scangate-e2e-results");
    let apply = |object: Value| {
        let out = enforced.ns.apply(&object.to_string());
        assert!(out.status.success(), "{}", stderr(&out));
    };
    apply(json!({
        "apiVersion": "scanning.scangate.dev/v1beta1",
        "kind": "ScanPolicy",
        "metadata": {"name": "default", "namespace": ns},
        "spec": {"regoFile": scangate::policy::DEFAULT_POLICY},
    }));
    // Scanned by CI: no template, the results come from pushed reports.
    for (name, image) in [
        ("busybox", "busybox:1.32.1"),
        ("queued", "ghcr.io/acme/queued:1"),
    ] {
        apply(json!({
            "apiVersion": "scanning.scangate.dev/v1beta1",
            "kind": "ImageScan",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"registry": {"image": image}, "scanPolicy": "default"},
        }));
    }
    let vulnerable: Value =
        serde_json::from_str(&std::fs::read_to_string(FIXTURE).expect("fixture"))
            .expect("fixture JSON");
    let mut clean = vulnerable.clone();
    clean["matches"] = json!([]);
    enforced
        .cluster
        .push_report(&format!("{}/busybox", enforced.ns.name), &clean);
    cluster.eventually("the busybox scan Completed", WAIT, || {
        (phase(&enforced, "busybox") == "Completed").then_some(())
    });
    enforced.trusted_scan("alpine", "alpine:3.10", ALPINE, PASSED);
    for (name, image) in [
        ("app", "busybox:1.32.1"),
        ("web", "alpine:3.10"),
        ("queued", "ghcr.io/acme/queued:1"),
    ] {
        let out = enforced.ns.apply(&deployment(name, image));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = free.apply(&deployment("stray", "registry.example/stray:1"));
    assert!(out.status.success(), "{}", stderr(&out));
    cluster.eventually("two running images to pass, one unscanned", WAIT, || {
        let passing = BTreeSet::from([
            ("Deployment/app".to_string(), "pass".to_string()),
            ("Deployment/web".to_string(), "pass".to_string()),
            ("Deployment/queued".to_string(), "skip".to_string()),
        ]);
        (results(&enforced.ns) == passing).then_some(())
    });
    // A new report with the CVEs: the scan turns Failed, and so does the running image.
    enforced
        .cluster
        .push_report(&format!("{}/busybox", enforced.ns.name), &vulnerable);
    cluster.eventually("the running busybox to fail", WAIT, || {
        results(&enforced.ns)
            .contains(&("Deployment/app".to_string(), "fail".to_string()))
            .then_some(())
    });
    assert_eq!(phase(&enforced, "busybox"), "Failed");
    cluster.eventually("the stray image in a report", WAIT, || {
        (results(&free).len() == 1).then_some(())
    });

    // A viewer: scangate-view cluster-wide. A ServiceAccount without it is refused.
    let viewer = token(&enforced.ns, "results-viewer");
    let binding = Binding {
        cluster,
        name: format!("e2e-results-viewer-{ns}"),
    };
    cluster.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        &binding.name,
        "--clusterrole=scangate-view",
        &format!("--serviceaccount={ns}:results-viewer"),
    ]);
    let nobody = token(&enforced.ns, "results-nobody");
    let base = base.as_str();
    let _ = std::fs::remove_dir_all(screenshots());

    let refused = browser.new_page();
    refused
        .set_extra_headers(&[("Authorization", &format!("Bearer {nobody}"))])
        .expect("headers");
    refused.navigate(&format!("{base}/")).expect("navigate");
    assert_eq!(
        refused.status().expect("status"),
        403,
        "a token without rights"
    );

    // Logged in through the form: the landing page's figures are kubectl's (retried while the
    // cluster settles: other tests' namespaces may still be going away).
    let session = log_in(&browser, base, &viewer);
    let deadline = std::time::Instant::now() + WAIT;
    let figures = loop {
        let before = expected_figures(cluster);
        session.navigate(&format!("{base}/")).expect("navigate");
        let shown = page_figures(&session);
        // The verdicts (from the PolicyReports) add up to the running images (from the pods).
        let verdicts: u64 = ["pass", "fail", "warn", "unscanned"]
            .iter()
            .map(|v| before[&format!("running-{v}")])
            .sum();
        if shown == before
            && verdicts == before["running-total"]
            && expected_figures(cluster) == before
        {
            break shown;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the landing page's figures never equalled kubectl's within {WAIT:?}:\n page:    {shown:?}\n kubectl: {before:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        [
            "scans-failed",
            "scans-pending",
            "running-fail",
            "running-warn",
            "running-unscanned"
        ]
        .iter()
        .all(|f| figures[*f] >= 1),
        "{figures:?}"
    );
    let registries: Vec<String> = session
        .eval("[...document.querySelectorAll('table#by-registry tr[data-registry]')].map(r => r.dataset.registry)")
        .expect("by registry");
    for registry in ["docker.io", "ghcr.io", "registry.example"] {
        assert!(
            registries.iter().any(|r| r == registry),
            "{registry} not in {registries:?}"
        );
    }
    let namespaces: Vec<(String, String)> = session
        .eval("[...document.querySelectorAll('table#by-namespace tr[data-namespace]')].map(r => [r.dataset.namespace, r.querySelector('a')?.getAttribute('href') ?? ''])")
        .expect("by namespace");
    let link = namespaces
        .iter()
        .find(|(n, _)| *n == ns)
        .unwrap_or_else(|| panic!("{ns} not in {namespaces:?}"));
    assert_eq!(link.1, format!("/running?namespace={ns}"));
    screenshot(&session, "landing");

    // The CSV export, fetched with the session cookie, is the scans table.
    session
        .navigate(&format!("{base}/scans"))
        .expect("navigate");
    // The phase's case is the page's to choose.
    let lower = |mut row: Vec<String>| {
        row[3] = row[3].to_lowercase();
        row
    };
    let table: BTreeSet<Vec<String>> =
        rows(&session, "scans", &["namespace", "name", "image", "phase"])
            .into_iter()
            .map(|(row, _)| lower(row))
            .collect();
    let (status, text) = fetch(&session, "/scans.csv");
    assert_eq!(status, 200, "{text}");
    let (header, records) = parse_csv(&text);
    assert_eq!(header, SCANS_CSV);
    let exported: BTreeSet<Vec<String>> = records.iter().map(|r| lower(r[..4].to_vec())).collect();
    assert_eq!(exported, table, "scans.csv against table#scans");
    assert_eq!(records.len(), table.len(), "one record per row");
    let busybox = records
        .iter()
        .find(|r| r[0] == ns && r[1] == "busybox")
        .unwrap_or_else(|| panic!("{ns}/busybox not in {records:?}"));
    assert!(busybox[3].eq_ignore_ascii_case("Failed"), "{busybox:?}");
    assert!(
        busybox[4..9]
            .iter()
            .any(|n| n.parse::<u64>().is_ok_and(|n| n > 0)),
        "{busybox:?}"
    );

    // The rest with the bearer header.
    let page = browser.new_page();
    page.set_extra_headers(&[("Authorization", &format!("Bearer {viewer}"))])
        .expect("headers");

    // Running: choosing a registry narrows the list to its rows, and the count follows.
    page.navigate(&format!("{base}/running")).expect("navigate");
    screenshot(&page, "running");
    // Long references and digests wrap: the list fits the window, nothing scrolls sideways.
    let (wide, window) = page
        .eval::<(u64, u64)>("[document.documentElement.scrollWidth, window.innerWidth]")
        .expect("widths");
    assert!(
        wide <= window,
        "/running is {wide}px wide in a {window}px window"
    );
    let names = ["namespace", "workload", "image", "registry", "verdict"];
    let all = rows(&page, "running", &names);
    let mine = |namespace: &str| -> BTreeSet<(String, String)> {
        all.iter()
            .filter(|(r, _)| r[0] == namespace)
            .map(|(r, _)| (r[1].clone(), r[2].clone()))
            .collect()
    };
    for namespace in [&ns, &free.name] {
        let pods: BTreeSet<(String, String)> = running_pods(cluster, &["-n", namespace])
            .into_iter()
            .map(|(_, workload, image)| (workload, image))
            .collect();
        assert_eq!(mine(namespace), pods, "table#running in {namespace}");
    }
    let (status, text) = fetch(&page, "/running.csv");
    assert_eq!(status, 200, "{text}");
    let (header, records) = parse_csv(&text);
    assert_eq!(header, RUNNING_CSV);
    let exported: BTreeSet<(String, String, String, String)> = records
        .iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[4].clone(), r[5].clone()))
        .collect();
    let table: BTreeSet<(String, String, String, String)> = all
        .iter()
        .map(|(r, _)| (r[0].clone(), r[1].clone(), r[2].clone(), r[4].clone()))
        .collect();
    assert_eq!(exported, table, "running.csv against table#running");
    assert_eq!(records.len(), all.len(), "one record per row");

    page.select("select#registry", "registry.example")
        .expect("choose a registry");
    let narrowed = rows(&page, "running", &names);
    let visible: Vec<&Vec<String>> = narrowed
        .iter()
        .filter(|(_, v)| *v)
        .map(|(r, _)| r)
        .collect();
    assert!(!visible.is_empty(), "{narrowed:?}");
    assert!(
        visible.iter().all(|r| r[3] == "registry.example"),
        "{visible:?}"
    );
    assert!(
        narrowed.iter().any(|(r, v)| !v && r[3] == "docker.io"),
        "docker.io rows hidden: {narrowed:?}"
    );
    assert_eq!(shown(&page), visible.len());
    // Typed into the search box, the same.
    page.navigate(&format!("{base}/running")).expect("navigate");
    page.type_into("input#search", "registry.example/stray")
        .expect("type");
    let typed = rows(&page, "running", &names);
    let visible: Vec<&Vec<String>> = typed.iter().filter(|(_, v)| *v).map(|(r, _)| r).collect();
    assert_eq!(
        visible
            .iter()
            .map(|r| (r[0].as_str(), r[1].as_str()))
            .collect::<Vec<_>>(),
        [(free.name.as_str(), "Deployment/stray")],
        "{typed:?}"
    );
    assert_eq!(shown(&page), 1);
    // Printed, the list is what the search left (and the print styles drop the navigation).
    let pdf = screenshots().join("running-stray.pdf");
    page.print_pdf(&pdf).expect("print to PDF");
    let text = pdf_text(&pdf);
    assert!(text.contains("Deployment/stray"), "{text}");
    assert!(!text.contains("Deployment/app"), "{text}");
    assert!(!text.contains("Log out"), "{text}");
    // Server-side, from the query alone.
    page.navigate(&format!("{base}/running?registry=docker.io&namespace={ns}"))
        .expect("navigate");
    let filtered: BTreeSet<(String, String)> = rows(&page, "running", &names)
        .into_iter()
        .filter(|(_, v)| *v)
        .map(|(r, _)| (r[1].clone(), r[4].clone()))
        .collect();
    assert_eq!(
        filtered,
        BTreeSet::from([
            ("Deployment/app".to_string(), "fail".to_string()),
            ("Deployment/web".to_string(), "pass".to_string()),
        ])
    );
    page.navigate(&format!("{base}/running?verdict=unscanned&namespace={ns}"))
        .expect("navigate");
    let unscanned: Vec<String> = rows(&page, "running", &names)
        .into_iter()
        .filter(|(_, v)| *v)
        .map(|(r, _)| r[1].clone())
        .collect();
    assert_eq!(unscanned, ["Deployment/queued"]);

    // Scans: by registry.
    page.navigate(&format!("{base}/scans")).expect("navigate");
    screenshot(&page, "scans");
    page.select("select#registry", "ghcr.io")
        .expect("choose a registry");
    let scans = rows(&page, "scans", &["namespace", "name", "registry"]);
    let visible: Vec<&Vec<String>> = scans.iter().filter(|(_, v)| *v).map(|(r, _)| r).collect();
    assert!(visible.iter().all(|r| r[2] == "ghcr.io"), "{visible:?}");
    assert!(
        visible.iter().any(|r| r[0] == ns && r[1] == "queued"),
        "{visible:?}"
    );
    assert!(scans.iter().any(|(_, v)| !v), "some rows hidden: {scans:?}");
    assert_eq!(shown(&page), visible.len());

    // The Failed scan's page, printed by the browser: its CVE ids are in the PDF.
    page.navigate(&format!("{base}/scans/{ns}/busybox"))
        .expect("navigate");
    assert_eq!(page.status().expect("status"), 200);
    screenshot(&page, "scan");
    let status = json_of(
        cluster,
        &["get", "imagescan", "-n", &ns, "busybox", "-o", "json"],
    );
    let cves: BTreeSet<String> = status["status"]["violations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["id"].as_str().map(str::to_string))
        .collect();
    assert!(!cves.is_empty(), "{status}");
    let listed: BTreeSet<String> = page
        .eval::<Vec<String>>("[...document.querySelectorAll('table#violations tr[data-cve]')].map(r => r.dataset.cve)")
        .expect("violations")
        .into_iter()
        .collect();
    assert_eq!(listed, cves, "table#violations against the scan's status");
    let pdf = screenshots().join("scan.pdf");
    page.print_pdf(&pdf).expect("print to PDF");
    let text = pdf_text(&pdf);
    for cve in &cves {
        assert!(text.contains(cve.as_str()), "{cve} not in the PDF:\n{text}");
    }
    assert!(
        !text.contains("Log out"),
        "printed without the navigation:\n{text}"
    );

    // "Scan now", clicked on the unscanned stray image: the viewer's own rights decide. A
    // viewer may not create ImageScans in scangate's namespace: refused, and nothing made.
    let stray = "tr[data-workload=\"Deployment/stray\"] form.action button";
    let scan_now = |expected: u16| {
        session
            .navigate(&format!("{base}/running?namespace={}", free.name))
            .expect("navigate");
        let row: String = session
            .eval("document.querySelector('tr[data-workload=\"Deployment/stray\"]')?.outerHTML ?? 'none'")
            .expect("the row");
        session
            .click_and_wait(stray)
            .unwrap_or_else(|e| panic!("click Scan now in {row}: {e}"));
        assert_eq!(session.status().expect("status"), expected);
        session
            .eval::<String>("document.querySelector('p.message').textContent")
            .expect("the answer")
    };
    let said = scan_now(403);
    assert!(
        said.contains(&format!(
            "system:serviceaccount:{ns}:results-viewer may not scan registry.example/stray:1 now"
        )),
        "{said}"
    );
    let requested = || {
        json_of(
            cluster,
            &[
                "get",
                "imagescans",
                "-n",
                &enforced.system.name,
                "-o",
                "json",
            ],
        )["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["spec"]["registry"]["image"] == "registry.example/stray:1")
            .count()
    };
    assert_eq!(requested(), 0);
    // The admin grants scangate-scan-requester there: the same click creates the scan.
    enforced.system.kubectl_ok(&[
        "create",
        "rolebinding",
        "results-viewer-scans",
        "--clusterrole=scangate-scan-requester",
        &format!("--serviceaccount={ns}:results-viewer"),
    ]);
    let said = scan_now(200);
    assert!(
        said.contains("created for registry.example/stray:1"),
        "{said}"
    );
    assert_eq!(requested(), 1);

    for name in ["login", "landing", "running", "scans", "scan"] {
        assert_png(&screenshots().join(format!("{name}.png")), 4096);
    }
    drop(binding);
}
