//! The results page's searches, history and scan actions in real headless Chromium
//! (tests/common/browser.rs), against `scangate controller` on the local control plane (as
//! deploy/rbac's ServiceAccount, by impersonation):
//!
//! - a viewer saves a search, logs out, logs in again in another browser context and finds
//!   it (stored in the cluster, in a ConfigMap of the scangate namespace named from a hash of
//!   the username); another viewer does not see it; a form without the session's CSRF token, a
//!   21st search and an oversized query are refused, and nothing else is written;
//! - clicking the "Scanned at" header sorts the scans by date, both ways;
//! - Pause and Resume write `spec.suspend` with the viewer's own token and record who asked;
//!   a viewer without the right to patch the scan is refused and nothing changes;
//! - progress: bars named and coloured (computed in the browser), compact in the list; a scan
//!   whose Job runs is blue while it scans and, paused from the page, grey;
//! - the past hour counts a pod that ran and ended ten minutes ago (its status says so, as a
//!   kubelet writes it), and still does once the pod is deleted; one that ended two hours ago
//!   is counted over six hours only.

mod common;

use std::time::Duration;

use common::browser::{Browser, Page, browser};
use common::cluster::{Cluster, TestNamespace, cluster, stderr};
use common::controller::Controller;
use common::enforced::Enforced;
use common::fixtures::{ALPINE, PASSED};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// The controller, cluster-wide, serving the results page over TLS with the test's serving
/// certificate, allowed to write the saved searches' ConfigMaps in the test's scangate
/// namespace (deploy/rbac binds the same ClusterRole in scangate-system).
fn start_controller(enforced: &Enforced) -> (Controller, String) {
    enforced.system.kubectl_ok(&[
        "create",
        "rolebinding",
        "scangate-controller-saved-searches",
        "--clusterrole=scangate-controller-saved-searches",
        "--serviceaccount=scangate-system:scangate-controller",
    ]);
    enforced.results_page("scangate-e2e-history")
}

/// A ServiceAccount token of `ns/name`, bound to scangate-view cluster-wide (a viewer).
fn viewer(cluster: &'static Cluster, ns: &TestNamespace, name: &str) -> (String, Binding) {
    ns.kubectl_ok(&["create", "serviceaccount", name]);
    let binding = Binding {
        cluster,
        name: format!("e2e-history-{name}-{}", ns.name),
    };
    cluster.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        &binding.name,
        "--clusterrole=scangate-view",
        &format!("--serviceaccount={}:{name}", ns.name),
    ]);
    let token = ns
        .kubectl_ok(&["create", "token", name, "--duration=1h"])
        .trim()
        .to_string();
    (token, binding)
}

/// Removes the ClusterRoleBinding `name` on drop.
struct Binding {
    cluster: &'static Cluster,
    name: String,
}

impl Drop for Binding {
    fn drop(&mut self) {
        let _ = self.cluster.kubectl(&[
            "delete",
            "clusterrolebinding",
            &self.name,
            "--ignore-not-found",
        ]);
    }
}

/// Logs in through the form of a fresh page (a browser context of its own, no cookie yet).
fn log_in<'b>(browser: &'b Browser, base: &str, token: &str) -> Page<'b> {
    let page = browser.new_page();
    page.navigate(&format!("{base}/login")).expect("navigate");
    page.type_into("input[name=token]", token)
        .expect("type the token");
    page.click_and_wait("form.login button[type=submit]")
        .expect("submit the login form");
    page.navigate(&format!("{base}/")).expect("navigate");
    assert_eq!(page.status().expect("status"), 200, "logged in");
    page
}

fn json_of(cluster: &Cluster, args: &[&str]) -> Value {
    serde_json::from_str(&cluster.kubectl_ok(args)).expect("kubectl JSON")
}

/// The saved searches shown: (name, href).
fn saved(page: &Page<'_>) -> Vec<(String, String)> {
    page.eval(
        "[...document.querySelectorAll('#saved-searches li[data-search]')]\
         .map(l => [l.dataset.search, l.querySelector('a').getAttribute('href')])",
    )
    .expect("the saved searches")
}

/// POSTs a form from the page (its cookie applies): (status, body).
fn post(page: &Page<'_>, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
    page.eval(&format!(
        "fetch({}, {{method: 'POST', body: new URLSearchParams({})}}).then(async r => [r.status, await r.text()])",
        json!(path),
        json!(fields.iter().map(|(k, v)| [*k, *v]).collect::<Vec<_>>()),
    ))
    .expect("fetch")
}

/// The session's CSRF token, from a form of the page.
fn csrf(page: &Page<'_>) -> String {
    page.eval("document.querySelector('input[name=csrf]').value")
        .expect("the CSRF token")
}

/// The names of table#scans' rows, in order.
fn scan_rows(page: &Page<'_>) -> Vec<String> {
    page.eval("[...document.querySelectorAll('table#scans tbody tr')].map(r => r.dataset.name)")
        .expect("the scans")
}

/// The workloads of table#running shown, with their `data-ended`.
fn running_rows(page: &Page<'_>) -> Vec<(String, String)> {
    page.eval(
        "[...document.querySelectorAll('table#running tbody tr')].filter(r => !r.hidden)\
         .map(r => [r.dataset.workload, r.dataset.ended ?? ''])",
    )
    .expect("the running images")
}

fn shown(page: &Page<'_>) -> usize {
    let text: String = page
        .eval(r#"document.querySelector('[data-figure="shown"]').textContent.trim()"#)
        .expect("the shown figure");
    text.parse().expect("a count")
}

/// An RFC 3339 time `minutes` before now, to the second.
fn minutes_ago(minutes: i64) -> String {
    let now = jiff::Timestamp::now().as_second();
    jiff::Timestamp::from_second(now - minutes * 60)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// A bare pod running `image`, once kwok's node runs it.
fn run_pod(cluster: &Cluster, ns: &TestNamespace, name: &str, image: &str) {
    let out = ns.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers: [{{name: app, image: \"{image}\"}}]\n"
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    cluster.eventually(&format!("pod {name} Running"), WAIT, || {
        (ns.kubectl_ok(&["get", "pod", name, "-o", "jsonpath={.status.phase}"]) == "Running")
            .then_some(())
    });
}

/// Ends the pod as its kubelet would: Succeeded, its container terminated at `finished`.
fn end_pod(ns: &TestNamespace, name: &str, image: &str, started: &str, finished: &str) {
    let patch = json!({"status": {"phase": "Succeeded", "containerStatuses": [{
        "name": "app", "image": image, "imageID": "", "ready": false, "restartCount": 0,
        "started": false,
        "state": {"terminated": {"exitCode": 0, "reason": "Completed",
            "startedAt": started, "finishedAt": finished}}}]}});
    ns.kubectl_ok(&[
        "patch",
        "pod",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch.to_string(),
    ]);
}

#[test]
fn searches_history_and_scan_actions_in_a_real_browser() {
    let Some(cluster) = cluster() else { return };
    let Some(browser) = browser() else { return };
    let enforced = Enforced::with_config(cluster, "e2e-results-history", &[], "onPending: allow");
    let ns = enforced.ns.name.clone();
    let (_controller, base) = start_controller(&enforced);
    let base = base.as_str();

    // Two scans with results of different dates (written as the controller writes status),
    // named against their date order, and one never scanned.
    let resolved = ALPINE;
    enforced.scan(
        &ns,
        "z-older",
        "alpine:3.10",
        resolved,
        &format!(
            r#""phase": "Completed", "scannedAt": "{}", {PASSED}"#,
            minutes_ago(120)
        ),
    );
    enforced.scan(
        &ns,
        "a-newer",
        "alpine:3.11",
        resolved,
        &format!(
            r#""phase": "Completed", "scannedAt": "{}", {PASSED}"#,
            minutes_ago(30)
        ),
    );
    // A round's progress, as the controller records it.
    let out = enforced.write_status(
        &ns,
        "a-newer",
        r#""progress": [
          {"stage": "Resolve", "state": "Done"}, {"stage": "Queue", "state": "Done"},
          {"stage": "Scan", "state": "Running"}, {"stage": "Report", "state": "Failed"},
          {"stage": "Evaluate", "state": "Canceled"}]"#,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = enforced.ns.apply(
        "apiVersion: scanning.scangate.dev/v1beta1\nkind: ImageScan\nmetadata: {name: m-never}\nspec:\n  registry: {image: \"ghcr.io/acme/never:1\"}\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // Pods: one ended ten minutes ago, one two hours ago, one still running.
    let image = "registry.example/batch:1";
    for pod in ["recent", "long-ago", "still"] {
        run_pod(cluster, &enforced.ns, pod, image);
    }
    let ten_minutes_ago = minutes_ago(10);
    end_pod(
        &enforced.ns,
        "recent",
        image,
        &minutes_ago(20),
        &ten_minutes_ago,
    );
    end_pod(
        &enforced.ns,
        "long-ago",
        image,
        &minutes_ago(130),
        &minutes_ago(120),
    );

    let (alice, _alice) = viewer(cluster, &enforced.ns, "history-alice");
    let (bob, _bob) = viewer(cluster, &enforced.ns, "history-bob");
    let alice_user = format!("system:serviceaccount:{ns}:history-alice");

    // The past hour (the default window): what runs, and the pod that ended ten minutes ago.
    let page = log_in(&browser, base, &alice);
    let recent = ("Pod/recent".to_string(), ten_minutes_ago);
    // Both ends are seen by the inventory's watch, one after the other: wait for both.
    let past_hour = cluster.eventually("the past hour to show the ended pods", WAIT, || {
        page.navigate(&format!("{base}/running?namespace={ns}"))
            .expect("navigate");
        let rows = running_rows(&page);
        let recent_ended = rows
            .iter()
            .any(|(w, ended)| *w == recent.0 && !ended.is_empty());
        let long_ago_shown = rows.iter().any(|(w, _)| w == "Pod/long-ago");
        (recent_ended && !long_ago_shown).then_some(rows)
    });
    let workloads: Vec<&str> = past_hour.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(workloads, ["Pod/recent", "Pod/still"], "{past_hour:?}");
    assert_eq!(shown(&page), 2);
    let ended = &past_hour[0].1;
    assert_eq!(ended, &recent.1, "it ended when its status says");
    let text: String = page
        .eval("document.querySelector('tr[data-workload=\"Pod/recent\"] td.ran').textContent")
        .expect("the Ran cell");
    assert!(text.starts_with("ended "), "{text}");
    // Over six hours, the one of two hours ago too; running now, neither.
    page.navigate(&format!("{base}/running?namespace={ns}&window=6h"))
        .expect("navigate");
    let six: Vec<String> = running_rows(&page).into_iter().map(|(w, _)| w).collect();
    assert_eq!(six, ["Pod/long-ago", "Pod/recent", "Pod/still"]);
    page.navigate(&format!("{base}/running?namespace={ns}&window=now"))
        .expect("navigate");
    let now: Vec<String> = running_rows(&page).into_iter().map(|(w, _)| w).collect();
    assert_eq!(now, ["Pod/still"]);
    // Deleted, the ended pods are remembered.
    enforced
        .ns
        .kubectl_ok(&["delete", "pod", "recent", "long-ago", "--wait=true"]);
    cluster.eventually("the ended pods gone from the API", WAIT, || {
        enforced
            .ns
            .kubectl_ok(&["get", "pods", "-o", "name"])
            .trim()
            .eq("pod/still")
            .then_some(())
    });
    // A change in the namespace (a new pod) makes sure the inventory recomputed after the
    // deletions.
    run_pod(cluster, &enforced.ns, "later", image);
    let after = cluster.eventually("the inventory to see the new pod", WAIT, || {
        page.navigate(&format!("{base}/running?namespace={ns}&window=6h"))
            .expect("navigate");
        let rows: Vec<String> = running_rows(&page).into_iter().map(|(w, _)| w).collect();
        rows.contains(&"Pod/later".to_string()).then_some(rows)
    });
    assert_eq!(
        after,
        ["Pod/later", "Pod/long-ago", "Pod/recent", "Pod/still"],
        "deleted pods that ended within the window still count"
    );

    // Sorting by scan date: the header sorts ascending, then descending.
    page.navigate(&format!("{base}/scans?namespace={ns}"))
        .expect("navigate");
    assert_eq!(scan_rows(&page), ["a-newer", "m-never", "z-older"]);
    page.click_and_wait("a[data-sort=scanned_at]")
        .expect("sort by date");
    let url: String = page.eval("location.search").expect("the query");
    assert_eq!(url, format!("?namespace={ns}&sort=scanned_at"));
    assert_eq!(scan_rows(&page), ["m-never", "z-older", "a-newer"]);
    page.click_and_wait("a[data-sort=scanned_at]")
        .expect("sort by date, descending");
    assert_eq!(scan_rows(&page), ["a-newer", "z-older", "m-never"]);
    let dates: Vec<String> = page
        .eval("[...document.querySelectorAll('table#scans tbody tr')].map(r => r.cells[9].textContent)")
        .expect("the dates");
    assert!(dates[0] > dates[1], "{dates:?}");

    // Progress: compact in the list, in words too; coloured bars on the scan's page.
    let compact: Vec<String> = page
        .eval("[...document.querySelectorAll('tr[data-name=\"a-newer\"] .progress.compact .stage')].map(s => s.title)")
        .expect("the compact bars");
    assert_eq!(
        compact,
        [
            "resolve: done",
            "queue: done",
            "scan: running",
            "report: failed",
            "evaluate: canceled"
        ]
    );
    let words: String = page
        .eval("document.querySelector('tr[data-name=\"a-newer\"] .progress-text').textContent")
        .expect("the progress in words");
    assert_eq!(words, "scan running");
    let detail = browser.new_page();
    detail
        .set_extra_headers(&[("Authorization", &format!("Bearer {alice}"))])
        .expect("headers");
    detail
        .navigate(&format!("{base}/scans/{ns}/a-newer"))
        .expect("navigate");
    let bars: Vec<(String, String, String)> = detail
        .eval(
            "[...document.querySelectorAll('#progress li.stage')].map(l => [l.dataset.stage, \
             l.querySelector('.state').textContent, getComputedStyle(l.querySelector('.bar')).backgroundColor])",
        )
        .expect("the bars");
    let bar = |stage: &str, state: &str, colour: &str| {
        (stage.to_string(), state.to_string(), colour.to_string())
    };
    assert_eq!(
        bars,
        [
            bar("resolve", "done", "rgb(67, 160, 71)"),
            bar("queue", "done", "rgb(67, 160, 71)"),
            bar("scan", "running", "rgb(30, 136, 229)"),
            bar("report", "failed", "rgb(229, 57, 53)"),
            bar("evaluate", "canceled", "rgb(66, 66, 66)"),
        ],
        "green done, blue running, red failed, dark grey canceled, each named"
    );
    let never: Vec<String> = detail
        .eval("[...document.querySelectorAll('#progress p.none')].map(p => p.textContent)")
        .unwrap_or_default();
    assert!(never.is_empty(), "{never:?}");

    // Saved: the search shown (newest first, in this namespace) under a name.
    page.type_into("#search-name", "newest first")
        .expect("type a name");
    page.click_and_wait("form.save-search button")
        .expect("save the search");
    assert_eq!(page.status().expect("status"), 200);
    let href = format!("/scans?namespace={ns}&sort=-scanned_at");
    assert_eq!(saved(&page), [("newest first".to_string(), href.clone())]);
    let name = scangate::web::searches::config_map_name(&alice_user);
    let cm = json_of(
        cluster,
        &[
            "get",
            "configmap",
            "-n",
            &enforced.system.name,
            &name,
            "-o",
            "json",
        ],
    );
    assert_eq!(
        cm["metadata"]["annotations"]["scangate.dev/user"],
        alice_user
    );
    assert_eq!(
        cm["metadata"]["labels"]["app.kubernetes.io/component"],
        "saved-searches"
    );
    // A form without the session's token (as another site would post) is refused.
    let (code, _) = post(
        &page,
        "/searches",
        &[("page", "scans"), ("name", "forged"), ("query", "")],
    );
    assert_eq!(code, 403);
    let token = csrf(&page);
    // Bounded: a query over 1 KiB, and a 21st search, are refused with the reason.
    let long = format!("q={}", "x".repeat(1100));
    let (code, body) = post(
        &page,
        "/searches",
        &[
            ("csrf", &token),
            ("page", "scans"),
            ("name", "long"),
            ("query", &long),
        ],
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("at most 1024 bytes"), "{body}");
    for i in 1..20 {
        let (code, body) = post(
            &page,
            "/searches",
            &[
                ("csrf", &token),
                ("page", "scans"),
                ("name", &format!("s{i}")),
                ("query", ""),
            ],
        );
        assert_eq!(code, 200, "search {i}: {body}");
    }
    let (code, body) = post(
        &page,
        "/searches",
        &[
            ("csrf", &token),
            ("page", "scans"),
            ("name", "s21"),
            ("query", ""),
        ],
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("delete one before saving another"), "{body}");
    for i in 1..20 {
        let (code, body) = post(
            &page,
            "/searches/delete",
            &[
                ("csrf", &token),
                ("page", "scans"),
                ("name", &format!("s{i}")),
            ],
        );
        assert_eq!(code, 200, "delete {i}: {body}");
    }
    // The viewer cannot write there themselves: only the controller does, and only this.
    let out = cluster.kubectl(&[
        "--as",
        &alice_user,
        "-n",
        &enforced.system.name,
        "create",
        "configmap",
        &name,
        "--from-literal=searches.json=[]",
    ]);
    assert!(!out.status.success(), "a viewer wrote a ConfigMap");
    assert!(stderr(&out).contains("forbidden"), "{}", stderr(&out));
    // One ConfigMap per viewer, nothing else written.
    let written = enforced.system.kubectl_ok(&[
        "get",
        "configmaps",
        "-l",
        "app.kubernetes.io/component=saved-searches",
        "-o",
        "name",
    ]);
    assert_eq!(written.trim(), format!("configmap/{name}"));

    // Logged out, then in again in another browser: the search is there, and applies.
    page.click_and_wait("header form button").expect("log out");
    page.navigate(&format!("{base}/scans")).expect("navigate");
    assert_eq!(page.status().expect("status"), 401, "logged out");
    let again = log_in(&browser, base, &alice);
    again.navigate(&format!("{base}/scans")).expect("navigate");
    assert_eq!(saved(&again), [("newest first".to_string(), href.clone())]);
    again
        .click_and_wait("#saved-searches li[data-search='newest first'] a")
        .expect("apply the search");
    assert_eq!(scan_rows(&again), ["a-newer", "z-older", "m-never"]);
    // Reset: the default search.
    again
        .click_and_wait("#saved-searches a.reset")
        .expect("reset");
    let url: String = again
        .eval("location.pathname + location.search")
        .expect("url");
    assert_eq!(url, "/scans");

    // Another viewer does not see it.
    let other = log_in(&browser, base, &bob);
    other.navigate(&format!("{base}/scans")).expect("navigate");
    assert_eq!(saved(&other), []);

    // Pause: refused to a viewer who may not patch the scan, and nothing changes.
    let suspend = || {
        json_of(
            cluster,
            &["get", "imagescan", "-n", &ns, "m-never", "-o", "json"],
        )
    };
    again
        .navigate(&format!("{base}/scans/{ns}/m-never"))
        .expect("navigate");
    again
        .click_and_wait("form[action$='/pause'] button")
        .expect("click Pause");
    assert_eq!(again.status().expect("status"), 403);
    let said: String = again
        .eval("document.querySelector('p.message').textContent")
        .expect("the answer");
    assert!(
        said.contains(&format!(
            "{alice_user} may not pause imagescan {ns}/m-never"
        )),
        "{said}"
    );
    let scan = suspend();
    assert_eq!(scan["spec"]["suspend"], Value::Null, "{scan}");
    assert_eq!(
        scan["metadata"]["annotations"]["scangate.dev/requested-by"],
        Value::Null
    );
    // Granted `edit` in the namespace, the same click pauses it, and records who asked.
    enforced.ns.kubectl_ok(&[
        "create",
        "rolebinding",
        "history-alice-edit",
        "--clusterrole=edit",
        &format!("--serviceaccount={ns}:history-alice"),
    ]);
    let paused = cluster.eventually("Pause to be allowed", WAIT, || {
        again
            .navigate(&format!("{base}/scans/{ns}/m-never"))
            .expect("navigate");
        again
            .click_and_wait("form[action$='/pause'] button")
            .expect("click Pause");
        (again.status().expect("status") == 200).then(suspend)
    });
    assert_eq!(paused["spec"]["suspend"], true, "{paused}");
    let record = paused["metadata"]["annotations"]["scangate.dev/requested-by"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        record.starts_with(&format!(
            "{alice_user} asked to pause imagescan {ns}/m-never on the results page at "
        )),
        "{record}"
    );
    // The scan's page offers Resume once the inventory saw the change.
    cluster.eventually("the page to offer Resume", WAIT, || {
        again
            .navigate(&format!("{base}/scans/{ns}/m-never"))
            .expect("navigate");
        again
            .eval::<bool>("!!document.querySelector('form[action$=\"/resume\"]')")
            .expect("the forms")
            .then_some(())
    });
    assert!(
        again
            .eval::<bool>("!!document.querySelector('#paused')")
            .expect("the paused note"),
        "the page says the scan is paused"
    );
    again
        .click_and_wait("form[action$='/resume'] button")
        .expect("click Resume");
    assert_eq!(again.status().expect("status"), 200);
    let resumed = suspend();
    assert_eq!(resumed["spec"]["suspend"], false, "{resumed}");
    assert!(
        resumed["metadata"]["annotations"]["scangate.dev/requested-by"]
            .as_str()
            .is_some_and(|r| r.starts_with(&format!("{alice_user} asked to resume imagescan"))),
        "{resumed}"
    );
    // The scan's page offers Pause again, and shows its progress (in words when the
    // controller recorded none).
    cluster.eventually("the page to offer Pause again", WAIT, || {
        again
            .navigate(&format!("{base}/scans/{ns}/m-never"))
            .expect("navigate");
        again
            .eval::<bool>("!!document.querySelector('form[action$=\"/pause\"]')")
            .expect("the forms")
            .then_some(())
    });
    let progress: String = again
        .eval("document.querySelector('#progress').textContent")
        .expect("progress");
    assert!(progress.starts_with("Progress"), "{progress}");

    // A scan whose Job runs (kwok keeps a scan Job's pod running): its progress, as the
    // controller records it, is blue while it scans; paused from the page, grey and saying so.
    for object in [
        common::fixtures::grype_template(&ns),
        json!({
            "apiVersion": "scanning.scangate.dev/v1beta1",
            "kind": "ImageScan",
            "metadata": {"name": "job-scan", "namespace": ns},
            "spec": {"registry": {"image": ALPINE}, "scanTemplate": "grype"},
        }),
    ] {
        let out = enforced.ns.apply(&object.to_string());
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let bars = |state: &str| -> Vec<(String, String)> {
        again
            .navigate(&format!("{base}/scans/{ns}/job-scan"))
            .expect("navigate");
        again
            .eval(&format!(
                "[...document.querySelectorAll('#progress li.stage[data-state=\"{state}\"]')]\
                 .map(l => [l.querySelector('.state').textContent, getComputedStyle(l.querySelector('.bar')).backgroundColor])"
            ))
            .expect("the bars")
    };
    let blue = cluster.eventually("a blue, running scan stage", WAIT, || {
        let b = bars("running");
        (!b.is_empty()).then_some(b)
    });
    assert_eq!(
        blue,
        [("running".to_string(), "rgb(30, 136, 229)".to_string())]
    );
    again
        .click_and_wait("form[action$='/pause'] button")
        .expect("click Pause");
    assert_eq!(again.status().expect("status"), 200);
    let greys = cluster.eventually("grey, paused bars", WAIT, || {
        let b = bars("paused");
        (!b.is_empty()).then_some(b)
    });
    assert!(
        greys
            .iter()
            .all(|(words, colour)| words == "paused" && colour == "rgb(189, 189, 189)"),
        "{greys:?}"
    );
    assert!(bars("running").is_empty(), "nothing runs once paused");
}
