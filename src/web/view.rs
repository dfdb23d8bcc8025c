//! The pages, rendered from a [`Snapshot`]: plain HTML, every text from the cluster escaped, no
//! inline script or style (charts are SVG shapes sized by attributes, coloured by
//! `/static/app.css`). Everything here is pure.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::model::{
    Figures, Order, Running, RunningFilter, Scan, ScanColumn, ScanFilter, Snapshot, Verdict, Window,
};
use super::pdf::Line;
use super::searches::{MAX_NAME, Saved, SearchPage};
use crate::api::{Phase, Stage, StageProgress, StageState};
use crate::mirror::MirrorView;

/// HTML-escapes text for element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A path segment or query value, percent-encoded (then escaped for the attribute).
fn enc(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The pages with a place in the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Running,
    Scans,
    None,
}

/// A whole page.
pub fn page(title: &str, nav: Nav, body: &str) -> String {
    let link = |href: &str, label: &str, this: Nav| {
        let current = if nav == this {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!("<a href=\"{href}\"{current}>{label}</a>")
    };
    let menu = if nav == Nav::None {
        String::new()
    } else {
        format!(
            "<nav>{}{}{}<form method=\"post\" action=\"/logout\"><button type=\"submit\">Log out</button></form></nav>",
            link("/", "Overview", Nav::Overview),
            link("/running", "Running", Nav::Running),
            link("/scans", "Scans", Nav::Scans),
        )
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · scangate</title><link rel=\"stylesheet\" href=\"/static/app.css\">\
<script src=\"/static/app.js\" defer></script></head>\
<body><header><span class=\"brand\">scangate</span>{menu}</header><main><h1>{title}</h1>\n{body}</main></body></html>\n",
        title = esc(title),
    )
}

/// The login form, with a message (already escaped by the caller's choice of text).
pub fn login(message: &str) -> String {
    let note = if message.is_empty() {
        String::new()
    } else {
        format!("<p class=\"message\">{}</p>", esc(message))
    };
    page(
        "Log in",
        Nav::None,
        &format!(
            "{note}<p>Paste a Kubernetes token (for example from <code>kubectl create token NAME</code>) \
whose user may list ImageScans in every namespace.</p>\
<form method=\"post\" action=\"/login\" class=\"login\"><label for=\"token\">Token</label>\
<input type=\"password\" id=\"token\" name=\"token\" autocomplete=\"off\" required>\
<button type=\"submit\">Log in</button></form>"
        ),
    )
}

/// A page that only says something (403, 404, 503).
pub fn message(title: &str, text: &str) -> String {
    page(
        title,
        Nav::None,
        &format!("<p class=\"message\">{}</p>", esc(text)),
    )
}

fn figure(name: &str, label: &str, value: usize) -> String {
    format!(
        "<div class=\"figure\"><span class=\"value\" data-figure=\"{name}\">{value}</span><span class=\"label\">{label}</span></div>"
    )
}

/// A horizontal bar of verdict shares, as SVG rectangles.
fn share_bar(counts: &BTreeMap<Verdict, usize>) -> String {
    let total: usize = counts.values().sum();
    let mut out = String::from(
        "<svg class=\"bar\" viewBox=\"0 0 100 4\" preserveAspectRatio=\"none\" role=\"img\">",
    );
    let mut x = 0.0;
    for v in Verdict::ALL {
        let n = counts.get(&v).copied().unwrap_or_default();
        if n == 0 || total == 0 {
            continue;
        }
        let width = 100.0 * n as f64 / total as f64;
        let _ = write!(
            out,
            "<rect class=\"{}\" x=\"{x:.2}\" y=\"0\" width=\"{width:.2}\" height=\"4\"><title>{} {n}</title></rect>",
            v.as_str(),
            v.as_str()
        );
        x += width;
    }
    out.push_str("</svg>");
    out
}

fn verdict_cells(counts: &BTreeMap<Verdict, usize>) -> String {
    Verdict::ALL
        .iter()
        .map(|v| {
            format!(
                "<td class=\"num\">{}</td>",
                counts.get(v).copied().unwrap_or_default()
            )
        })
        .collect()
}

fn verdict_headers() -> String {
    Verdict::ALL
        .iter()
        .map(|v| format!("<th class=\"num\">{}</th>", v.as_str()))
        .collect()
}

/// The landing page's line on the verdict mirror.
fn mirror_line(mirror: &MirrorView) -> String {
    let (state, text) = match mirror {
        MirrorView::Off => (
            "off",
            "off (the controller runs without --mirror)".to_string(),
        ),
        MirrorView::Starting => ("starting", "not written yet".to_string()),
        MirrorView::InSync {
            digests,
            shards,
            at,
        } => (
            "in-sync",
            format!(
                "in sync: {digests} denied digests in {shards} DeniedDigests objects, written {}",
                at.strftime("%Y-%m-%dT%H:%M:%SZ")
            ),
        ),
        MirrorView::Behind {
            digests,
            error,
            since,
        } => (
            "behind",
            format!(
                "behind since {}: {digests} denied digests not all written ({}); retrying",
                since.strftime("%Y-%m-%dT%H:%M:%SZ"),
                esc(error)
            ),
        ),
    };
    format!("<p id=\"mirror\" class=\"mirror {state}\">Verdict mirror: {text}</p>")
}

/// `/`: the figures, the verdict mirror's state and the charts.
pub fn landing(snapshot: &Snapshot, mirror: &MirrorView) -> String {
    let f = Figures::of(snapshot);
    let mut body = mirror_line(mirror);
    body += "<section class=\"figures\" aria-label=\"ImageScans\">";
    body += &figure("images-scanned", "images scanned", f.images_scanned);
    body += &figure("scans-total", "ImageScans", f.scans_total);
    body += &figure("scans-completed", "completed", f.scans_completed);
    body += &figure("scans-failed", "failed", f.scans_failed);
    body += &figure("scans-error", "in error", f.scans_error);
    body += &figure("scans-pending", "pending or scanning", f.scans_pending);
    body += "</section><section class=\"figures\" aria-label=\"Running images\">";
    body += &figure("running-total", "running images", f.running_total);
    for v in Verdict::ALL {
        body += &figure(&format!("running-{}", v.as_str()), v.as_str(), f.running(v));
    }
    body += "</section>";
    let _ = write!(
        body,
        "<h2>Running images by verdict</h2>{}<p class=\"legend\">{}</p>",
        share_bar(&f.running),
        Verdict::ALL
            .iter()
            .map(|v| format!("<span class=\"key {0}\">{0}</span>", v.as_str()))
            .collect::<String>()
    );
    for (id, title, by, param) in [
        ("by-registry", "By registry", &f.by_registry, "registry"),
        ("by-namespace", "By namespace", &f.by_namespace, "namespace"),
    ] {
        let _ = write!(
            body,
            "<h2>{title}</h2><table id=\"{id}\"><thead><tr><th>{param}</th>{}<th>share</th></tr></thead><tbody>",
            verdict_headers()
        );
        for (key, counts) in by {
            let _ = write!(
                body,
                "<tr data-{param}=\"{k}\"><td><a href=\"/running?{param}={e}\">{k}</a></td>{}<td class=\"chart\">{}</td></tr>",
                verdict_cells(counts),
                share_bar(counts),
                k = esc(key),
                e = esc(&enc(key)),
            );
        }
        body += "</tbody></table>";
    }
    body += &exports("running", "");
    body += &exports("scans", "");
    page("Overview", Nav::Overview, &body)
}

fn exports(what: &str, query: &str) -> String {
    let q = esc(query);
    format!(
        "<p class=\"exports\">Export {what}: <a href=\"/{what}.csv{q}\">CSV</a> · <a href=\"/{what}.json{q}\">JSON</a> · print this page for a PDF</p>"
    )
}

fn select(id: &str, label: &str, options: &[String], selected: Option<&str>) -> String {
    let mut out = format!(
        "<label for=\"{id}\">{label}</label><select id=\"{id}\" name=\"{id}\"><option value=\"\">all</option>"
    );
    for o in options {
        let sel = if selected == Some(o.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(out, "<option value=\"{0}\"{sel}>{0}</option>", esc(o));
    }
    out.push_str("</select>");
    out
}

fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    let set: std::collections::BTreeSet<&str> = values.collect();
    set.into_iter().map(str::to_string).collect()
}

fn filter_form(
    action: &str,
    q: Option<&str>,
    selects: &[String],
    shown: usize,
    of: usize,
) -> String {
    format!(
        "<form method=\"get\" action=\"{action}\" class=\"filters\" id=\"filters\">\
<label for=\"search\">Search</label><input type=\"search\" id=\"search\" name=\"q\" value=\"{}\" placeholder=\"image, namespace, name\">\
{}<button type=\"submit\">Filter</button></form>\
<p class=\"count\">Showing <span data-figure=\"shown\">{shown}</span> of {of}</p>",
        esc(q.unwrap_or_default()),
        selects.concat()
    )
}

fn scan_link(scan: &str) -> String {
    match scan.split_once('/') {
        Some((ns, name)) => format!(
            "<a href=\"/scans/{}/{}\">{}</a>",
            esc(&enc(ns)),
            esc(&enc(name)),
            esc(scan)
        ),
        None => esc(scan),
    }
}

/// A form that posts to `action` with the session's CSRF token (none for a bearer request),
/// the hidden `fields`, and one button.
fn action_form(action: &str, csrf: Option<&str>, fields: &[(&str, &str)], button: &str) -> String {
    let mut hidden = String::new();
    for (name, value) in csrf
        .map(|c| ("csrf", c))
        .into_iter()
        .chain(fields.iter().copied())
    {
        let _ = write!(
            hidden,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            esc(name),
            esc(value)
        );
    }
    format!(
        "<form method=\"post\" action=\"{}\" class=\"action\">{hidden}<button type=\"submit\">{}</button></form>",
        esc(action),
        esc(button)
    )
}

/// A viewer's saved searches of a page, or why they cannot be shown.
#[derive(Clone, Debug, PartialEq)]
pub enum SavedView {
    Listed(Vec<Saved>),
    Unavailable(String),
}

/// The saved searches of a list page: each applied by its link and deleted by its button; the
/// search shown saved under a name; a reset to the page's default search.
fn saved_searches(page: SearchPage, query: &str, csrf: Option<&str>, saved: &SavedView) -> String {
    let here = format!("/{}", page.as_str());
    let mut out =
        String::from("<section id=\"saved-searches\" class=\"searches\"><h2>Saved searches</h2>");
    match saved {
        SavedView::Unavailable(why) => {
            let _ = write!(
                out,
                "<p class=\"message\">Saved searches are not available now: {}</p>",
                esc(why)
            );
        }
        SavedView::Listed(list) if list.is_empty() => {
            out += "<p class=\"none\">None yet: filter or sort the list, then save it under a name.</p>";
        }
        SavedView::Listed(list) => {
            out += "<ul>";
            for s in list {
                let _ = write!(
                    out,
                    "<li data-search=\"{name}\"><a href=\"{href}\">{name}</a> {}</li>",
                    action_form(
                        "/searches/delete",
                        csrf,
                        &[("page", page.as_str()), ("name", &s.name)],
                        "Delete"
                    ),
                    name = esc(&s.name),
                    href = esc(&s.href()),
                );
            }
            out += "</ul>";
        }
    }
    let mut hidden = String::new();
    for (name, value) in csrf.map(|c| ("csrf", c)).into_iter().chain([
        ("page", page.as_str()),
        ("query", query.trim_start_matches('?')),
    ]) {
        let _ = write!(
            hidden,
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            esc(value)
        );
    }
    let _ = write!(
        out,
        "<form method=\"post\" action=\"/searches\" class=\"save-search\">{hidden}\
<label for=\"search-name\">Save this search as</label><input type=\"text\" id=\"search-name\" name=\"name\" maxlength=\"{MAX_NAME}\" required>\
<button type=\"submit\">Save</button></form> <a class=\"reset\" href=\"{here}\">Reset to the default search</a></section>"
    );
    out
}

/// A stage's name on the page.
fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Resolve => "resolve",
        Stage::Queue => "queue",
        Stage::Scan => "scan",
        Stage::Report => "report",
        Stage::Evaluate => "evaluate",
    }
}

/// A state's class (its colour in app.css) and its words.
fn state_of(state: StageState) -> (&'static str, &'static str) {
    match state {
        StageState::NotStarted => ("not-started", "not started"),
        StageState::Running => ("running", "running"),
        StageState::Paused => ("paused", "paused"),
        StageState::Done => ("done", "done"),
        StageState::DoneWithIssues => ("done-with-issues", "done with issues"),
        StageState::Failed => ("failed", "failed"),
        StageState::Canceled => ("canceled", "canceled"),
    }
}

/// Where a round stands in words: the first stage not done and its state, or done.
pub fn progress_summary(progress: &[StageProgress]) -> String {
    let done =
        |p: &&StageProgress| matches!(p.state, StageState::Done | StageState::DoneWithIssues);
    match progress.iter().find(|p| !done(p)) {
        Some(p) => format!("{} {}", stage_name(p.stage), state_of(p.state).1),
        None if progress.is_empty() => "no progress recorded".into(),
        None if progress
            .iter()
            .any(|p| p.state == StageState::DoneWithIssues) =>
        {
            "done with issues".into()
        }
        None => "done".into(),
    }
}

/// A round's stages as coloured bars, each with its name, state and since when.
fn progress_bars(progress: &[StageProgress]) -> String {
    if progress.is_empty() {
        return "<p class=\"progress none\">No progress recorded for this round yet.</p>".into();
    }
    let mut out = String::from("<ol class=\"progress\" aria-label=\"Progress of the round\">");
    for p in progress {
        let (class, words) = state_of(p.state);
        let since = p
            .since
            .as_ref()
            .map(|t| format!(" <time>since {}</time>", t.0))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<li class=\"stage {class}\" data-stage=\"{name}\" data-state=\"{class}\"><span class=\"bar\"></span><span class=\"name\">{name}</span> <span class=\"state\">{words}</span>{since}</li>",
            name = stage_name(p.stage),
        );
    }
    out.push_str("</ol>");
    out
}

/// A round's stages, compact: small bars (named in their titles) and the summary in words.
fn progress_compact(progress: &[StageProgress]) -> String {
    let mut out = String::from("<span class=\"progress compact\">");
    for p in progress {
        let (class, words) = state_of(p.state);
        let _ = write!(
            out,
            "<span class=\"stage {class}\" title=\"{}: {words}\"></span>",
            stage_name(p.stage)
        );
    }
    let _ = write!(
        out,
        "</span> <span class=\"progress-text\">{}</span>",
        progress_summary(progress)
    );
    out
}

/// `/running`: the running images that match the filter; one with no scan has a "Scan now"
/// button (the viewer's own rights decide, see [`super::actions`]).
pub fn running(
    snapshot: &Snapshot,
    filter: &RunningFilter,
    rows: &[&Running],
    csrf: Option<&str>,
    saved: &SavedView,
) -> String {
    let namespaces = distinct(snapshot.running.iter().map(|r| r.namespace.as_str()));
    let registries = distinct(snapshot.running.iter().map(|r| r.registry.as_str()));
    let verdicts: Vec<String> = Verdict::ALL
        .iter()
        .map(|v| v.as_str().to_string())
        .collect();
    let mut windows =
        String::from("<label for=\"window\">Over</label><select id=\"window\" name=\"window\">");
    for w in Window::ALL {
        let sel = if w == filter.window { " selected" } else { "" };
        let _ = write!(
            windows,
            "<option value=\"{}\"{sel}>{}</option>",
            w.as_str(),
            w.label()
        );
    }
    windows.push_str("</select>");
    let mut body = format!(
        "<p class=\"window\">Images that ran over <strong>{}</strong>: those running now, and those of pods that ended within it.</p>",
        filter.window.label()
    );
    body += &filter_form(
        "/running",
        filter.q.as_deref(),
        &[
            select(
                "verdict",
                "Verdict",
                &verdicts,
                filter.verdict.map(Verdict::as_str),
            ),
            select(
                "registry",
                "Registry",
                &registries,
                filter.registry.as_deref(),
            ),
            select(
                "namespace",
                "Namespace",
                &namespaces,
                filter.namespace.as_deref(),
            ),
            windows,
        ],
        rows.len(),
        snapshot.running.len(),
    );
    body += &saved_searches(SearchPage::Running, &filter.to_query(), csrf, saved);
    body += "<table id=\"running\"><thead><tr><th>Namespace</th><th>Workload</th><th>Image</th><th>Registry</th><th>Verdict</th><th>Scan</th><th>Why</th><th>Ran</th></tr></thead><tbody>";
    for r in rows {
        let (ended, ran) = match r.ended {
            Some(at) => {
                let at = at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
                (
                    format!(" data-ended=\"{at}\""),
                    format!("ended <time>{at}</time>"),
                )
            }
            None => (String::new(), "running".to_string()),
        };
        let _ = write!(
            body,
            "<tr data-namespace=\"{ns}\" data-workload=\"{w}\" data-image=\"{img}\" data-registry=\"{reg}\" data-verdict=\"{v}\"{ended}>\
<td><a href=\"/running?namespace={ens}\">{ns}</a></td><td>{w}</td><td class=\"image\">{img}</td><td>{reg}</td>\
<td><span class=\"verdict {v}\">{v}</span></td><td>{scan}</td><td class=\"why\">{why}</td><td class=\"ran\">{ran}</td></tr>",
            ns = esc(&r.namespace),
            ens = esc(&enc(&r.namespace)),
            w = esc(&r.workload),
            img = esc(&r.image),
            reg = esc(&r.registry),
            v = r.verdict.as_str(),
            scan = match &r.scan {
                Some(scan) => scan_link(scan),
                None => action_form("/scan-now", csrf, &[("image", &r.image)], "Scan now"),
            },
            why = esc(&r.message),
        );
    }
    body += "</tbody></table>";
    body += &exports("running", &filter.to_query());
    page("Running images", Nav::Running, &body)
}

/// A header of `/scans` that sorts by its column: ascending first, descending when the rows
/// are sorted ascending by it already; `aria-sort` says how they are sorted now.
fn sort_header(filter: &ScanFilter, column: ScanColumn) -> String {
    let label = match column {
        ScanColumn::Namespace => "Namespace",
        ScanColumn::Name => "Name",
        ScanColumn::Image => "Image",
        ScanColumn::Phase => "Phase",
        ScanColumn::Critical => "critical",
        ScanColumn::High => "high",
        ScanColumn::Medium => "medium",
        ScanColumn::Low => "low",
        ScanColumn::Unknown => "unknown",
        ScanColumn::ScannedAt => "Scanned at",
        ScanColumn::Progress => "Progress",
    };
    let now = filter.sort.filter(|(c, _)| *c == column).map(|(_, o)| o);
    let next = match now {
        Some(Order::Ascending) => Order::Descending,
        _ => Order::Ascending,
    };
    let link = ScanFilter {
        sort: Some((column, next)),
        ..filter.clone()
    };
    let class = if matches!(
        column,
        ScanColumn::Critical
            | ScanColumn::High
            | ScanColumn::Medium
            | ScanColumn::Low
            | ScanColumn::Unknown
    ) {
        " class=\"num\""
    } else {
        ""
    };
    let aria = match now {
        Some(Order::Ascending) => " aria-sort=\"ascending\"",
        Some(Order::Descending) => " aria-sort=\"descending\"",
        None => "",
    };
    format!(
        "<th{class}{aria}><a href=\"/scans{}\" data-sort=\"{}\">{label}</a></th>",
        esc(&link.to_query()),
        column.as_str()
    )
}

/// `/scans`: the ImageScans that match the filter.
pub fn scans(
    snapshot: &Snapshot,
    filter: &ScanFilter,
    rows: &[&Scan],
    csrf: Option<&str>,
    saved: &SavedView,
) -> String {
    let namespaces = distinct(snapshot.scans.iter().map(|s| s.namespace.as_str()));
    let registries = distinct(snapshot.scans.iter().map(|s| s.registry.as_str()));
    let phases: Vec<String> = Phase::ALL.iter().map(|p| p.as_str().to_string()).collect();
    let mut body = filter_form(
        "/scans",
        filter.q.as_deref(),
        &[
            select("phase", "Phase", &phases, filter.phase.map(Phase::as_str)),
            select(
                "registry",
                "Registry",
                &registries,
                filter.registry.as_deref(),
            ),
            select(
                "namespace",
                "Namespace",
                &namespaces,
                filter.namespace.as_deref(),
            ),
        ],
        rows.len(),
        snapshot.scans.len(),
    );
    body += &saved_searches(SearchPage::Scans, &filter.to_query(), csrf, saved);
    body += "<table id=\"scans\"><thead><tr>";
    for column in ScanColumn::ALL {
        body += &sort_header(filter, column);
    }
    body += "</tr></thead><tbody>";
    for s in rows {
        let c = s.counts;
        let _ = write!(
            body,
            "<tr data-namespace=\"{ns}\" data-name=\"{name}\" data-image=\"{img}\" data-registry=\"{reg}\" data-phase=\"{phase}\">\
<td>{ns}</td><td>{link}</td><td class=\"image\">{img}</td><td><span class=\"phase {phase}\">{phase}</span></td>\
<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{at}</td><td>{progress}</td></tr>",
            c.critical,
            c.high,
            c.medium,
            c.low,
            c.unknown,
            progress = progress_compact(s.progress()),
            ns = esc(&s.namespace),
            name = esc(&s.name),
            link = scan_link(&format!("{}/{}", s.namespace, s.name)),
            img = esc(&s.image),
            reg = esc(&s.registry),
            phase = s.phase.as_str(),
            at = esc(s.scanned_at.as_deref().unwrap_or_default()),
        );
    }
    body += "</tbody></table>";
    body += &exports("scans", &filter.to_query());
    page("ImageScans", Nav::Scans, &body)
}

/// `/scans/{namespace}/{name}`: one scan, with its actions.
pub fn scan(s: &Scan, csrf: Option<&str>) -> String {
    let mut body = format!(
        "<dl class=\"facts\"><dt>Image</dt><dd class=\"image\">{}</dd><dt>Phase</dt><dd><span class=\"phase {phase}\">{phase}</span></dd>\
<dt>Policy</dt><dd>{}</dd><dt>Artifact</dt><dd class=\"image\">{}</dd><dt>Resolved</dt><dd class=\"image\">{}</dd>\
<dt>Result source</dt><dd>{}</dd>\
<dt>Scanner</dt><dd>{}</dd><dt>Scanned at</dt><dd>{}</dd></dl>",
        esc(&s.image),
        esc(s.policy.as_deref().unwrap_or("(the namespace's default)")),
        esc(s.artifact.as_deref().unwrap_or("-")),
        esc(s.resolved.as_deref().unwrap_or("-")),
        esc(s.source.as_deref().unwrap_or("-")),
        esc(s.scanner.as_deref().unwrap_or("-")),
        esc(s.scanned_at.as_deref().unwrap_or("-")),
        phase = s.phase.as_str(),
    );
    let here = format!("/scans/{}/{}", enc(&s.namespace), enc(&s.name));
    let pause_or_resume = if s.suspended {
        action_form(&format!("{here}/resume"), csrf, &[], "Resume")
    } else {
        action_form(&format!("{here}/pause"), csrf, &[], "Pause")
    };
    let _ = write!(
        body,
        "<div class=\"actions\">{}{}{pause_or_resume}{}</div>",
        action_form(&format!("{here}/rescan"), csrf, &[], "Rescan"),
        action_form(
            &format!("{here}/reevaluate"),
            csrf,
            &[],
            "Reevaluate policy"
        ),
        action_form(&format!("{here}/cancel"), csrf, &[], "Cancel scan"),
    );
    let paused = if s.suspended {
        "<p class=\"paused\" id=\"paused\">Paused (spec.suspend): it keeps its place; Resume goes on.</p>"
    } else {
        ""
    };
    let _ = write!(
        body,
        "<section id=\"progress\"><h2>Progress</h2>{paused}{}</section>",
        progress_bars(s.progress())
    );
    let c = s.counts;
    let _ = write!(
        body,
        "<section id=\"matching\"><h2>Vulnerability matching</h2><p class=\"date\">Scanned at <time>{}</time> by {}</p>\
<table id=\"counts\"><thead><tr><th class=\"num\">critical</th><th class=\"num\">high</th><th class=\"num\">medium</th><th class=\"num\">low</th><th class=\"num\">unknown</th></tr></thead>\
<tbody><tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr></tbody></table></section>",
        esc(s.scanned_at.as_deref().unwrap_or("-")),
        esc(s.scanner.as_deref().unwrap_or("-")),
        c.critical,
        c.high,
        c.medium,
        c.low,
        c.unknown
    );
    let verdict = s.verdict();
    let decided = verdict.map_or_else(|| "-".to_string(), since);
    let verdict_text = verdict.map_or_else(|| NO_POLICY.to_string(), said);
    let _ = write!(
        body,
        "<section id=\"evaluation\"><h2>Policy evaluation</h2><p class=\"date\">Decided at <time>{}</time> by {}: {}</p>\
<details open><summary>Policy breakdown: {} violations</summary>\
<table id=\"violations\"><thead><tr><th>CVE</th><th>Severity</th><th>Package</th><th>Version</th><th>Fixed in</th></tr></thead><tbody>",
        esc(&decided),
        esc(s.policy.as_deref().unwrap_or("(the namespace's default)")),
        esc(&verdict_text),
        s.violations().len(),
    );
    for v in s.violations() {
        let _ = write!(
            body,
            "<tr data-cve=\"{id}\"><td>{id}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            v.severity.as_str(),
            esc(&v.package),
            esc(&v.version),
            esc(v.fixed_version.as_deref().unwrap_or("-")),
            id = esc(&v.id),
        );
    }
    body += "</tbody></table></details>";
    if !s.violations().is_empty() {
        body += &vex_form(&format!("{here}/vex"), csrf, s);
    }
    body += "</section>";
    body += "<h2>Conditions</h2><table id=\"conditions\"><thead><tr><th>Type</th><th>Status</th><th>Reason</th><th>Message</th><th>Since</th></tr></thead><tbody>";
    for c in s.conditions() {
        let message = said(c);
        let _ = write!(
            body,
            "<tr data-type=\"{t}\"><td>{t}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.status.as_str(),
            esc(&c.reason),
            esc(&message),
            esc(&c
                .last_transition_time
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default()),
            t = c.type_.as_str(),
        );
    }
    body += "</tbody></table>";
    body += &exports("scans", &format!("?namespace={}", enc(&s.namespace)));
    let _ = write!(
        body,
        "<p class=\"exports\"><a href=\"{here}/report.pdf\" download>Download PDF</a>: every vulnerability of the report and the policy's result</p>"
    );
    page(
        &format!("ImageScan {}/{}", s.namespace, s.name),
        Nav::Scans,
        &body,
    )
}

/// The scan page's form to record an OpenVEX statement about one of its violations (approvers:
/// the write is the viewer's, so RBAC and the webhook decide; docs/vex.md).
fn vex_form(action: &str, csrf: Option<&str>, s: &Scan) -> String {
    let mut cves: Vec<&str> = s.violations().iter().map(|v| v.id.as_str()).collect();
    cves.dedup();
    let options = |values: &[&str]| -> String {
        values
            .iter()
            .map(|v| format!("<option value=\"{0}\">{0}</option>", esc(v)))
            .collect()
    };
    let statuses: Vec<&str> = crate::api::VexStatus::ALL
        .iter()
        .map(|v| v.as_str())
        .collect();
    let hidden = csrf.map_or_else(String::new, |c| {
        format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(c))
    });
    format!(
        "<details id=\"vex\"><summary>Record a VEX statement (approvers)</summary>\
<form method=\"post\" action=\"{}\" class=\"vex\">{hidden}\
<label>CVE <select name=\"cve\">{}</select></label>\
<label>Status <select name=\"status\">{}</select></label>\
<label>Justification (not_affected) <select name=\"justification\"><option value=\"\">-</option>{}</select></label>\
<label>Statement <input type=\"text\" name=\"statement\" placeholder=\"why not affected, or what to do\"></label>\
<label>Namespace <input type=\"text\" name=\"namespace\" value=\"{}\"></label>\
<label>Expires <input type=\"text\" name=\"expires\" value=\"30d\"></label>\
<button type=\"submit\">Record statement</button></form>\
<p class=\"note\">About {} in that namespace only; under_investigation keeps the image denied and the scan Under Review, not_affected admits like an exception.</p></details>",
        esc(action),
        options(&cves),
        options(&statuses),
        options(&[
            "component_not_present",
            "vulnerable_code_not_present",
            "vulnerable_code_not_in_execute_path",
            "vulnerable_code_cannot_be_controlled_by_adversary",
            "inline_mitigations_already_exist",
        ]),
        esc(&s.namespace),
        esc(&s.image),
    )
}

/// What the scan page and its PDF say of a scan with no policy condition.
const NO_POLICY: &str = "No policy judges this scan.";

/// A condition's message, with its error when it has one.
fn said(c: &crate::api::Condition) -> String {
    match &c.error {
        Some(e) => format!("{}: {e}", c.message),
        None => c.message.clone(),
    }
}

/// When a condition took its status, or `-`.
fn since(c: &crate::api::Condition) -> String {
    c.last_transition_time
        .as_ref()
        .map_or_else(|| "-".to_string(), |t| t.0.to_string())
}

/// The lines of a scan's PDF: the facts, vulnerability matching and policy evaluation with
/// their dates, the violations, and every vulnerability of the report (`report`, or why it
/// could not be read: the violations then stand alone).
pub fn scan_pdf_lines(s: &Scan, report: Result<&crate::report::Report, String>) -> Vec<Line> {
    let text = |t: String| Line::Text(t);
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let verdict = s.verdict();
    let c = s.counts;
    let mut lines = vec![
        Line::Heading(format!("ImageScan {}/{}", s.namespace, s.name)),
        text(format!("Image: {}", s.image)),
        text(format!("Phase: {}", s.phase.as_str())),
        text(format!("Artifact: {}", or_dash(&s.artifact))),
        text(format!("Result source: {}", or_dash(&s.source))),
        Line::Heading("Vulnerability matching".into()),
        text(format!(
            "Scanned at {} by {}",
            or_dash(&s.scanned_at),
            or_dash(&s.scanner)
        )),
        text(format!(
            "critical {}, high {}, medium {}, low {}, unknown {}",
            c.critical, c.high, c.medium, c.low, c.unknown
        )),
        Line::Heading("Policy evaluation".into()),
        text(format!(
            "Policy: {}",
            s.policy.as_deref().unwrap_or("(the namespace's default)")
        )),
    ];
    match verdict {
        Some(v) => {
            lines.push(text(format!(
                "Decided at {}: {} {} ({})",
                since(v),
                v.reason,
                v.status.as_str(),
                v.message
            )));
            if let Some(error) = &v.error {
                lines.push(text(format!("Error: {error}")));
            }
        }
        None => lines.push(text(NO_POLICY.into())),
    }
    lines.push(Line::Heading(format!(
        "Violations ({})",
        s.violations().len()
    )));
    for v in s.violations() {
        lines.push(text(format!(
            "{} {} {} {} fixed in {}",
            v.id,
            v.severity.as_str(),
            v.package,
            v.version,
            v.fixed_version.as_deref().unwrap_or("-")
        )));
    }
    match report {
        Ok(report) => {
            lines.push(Line::Heading(format!(
                "Every vulnerability of the report ({})",
                report.vulnerabilities.len()
            )));
            for v in &report.vulnerabilities {
                let fixed = if v.fixed_versions.is_empty() {
                    "-".to_string()
                } else {
                    v.fixed_versions.join(", ")
                };
                lines.push(text(format!(
                    "{} {} {} {} fixed in {fixed}",
                    v.id,
                    v.severity.as_str(),
                    v.package.name,
                    v.package.version
                )));
            }
        }
        Err(why) => lines.push(text(format!(
            "The report's full list is not included: {why}"
        ))),
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::super::model::tests::{running as row, scan as image_scan, snapshot};
    use super::*;
    use std::sync::Arc;

    /// The page's row of one ImageScan.
    fn detail_of(scan: crate::api::ImageScan) -> Scan {
        super::super::model::Snapshot::build(&BTreeMap::new(), &BTreeMap::new(), [&Arc::new(scan)])
            .scans
            .remove(0)
    }

    fn none() -> SavedView {
        SavedView::Listed(vec![])
    }

    #[test]
    fn text_from_the_cluster_is_escaped() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        let mut s = snapshot();
        let mut bad = row(
            "shop",
            "<script>alert(1)</script>",
            "evil.io/<script>:1",
            Verdict::Fail,
        );
        bad.message = "<script>alert(2)</script>".into();
        s.running.push(bad);
        let scan = image_scan("shop", "x", "evil.io/<script>:1", Some("Failed"));
        let mut detail = detail_of(scan);
        let status = detail.status_mut();
        let mut violations = status.violations.to_vec();
        violations[0].id = "CVE-<script>".into();
        violations[0].package = "\"><script>alert(3)</script>".into();
        status.violations = violations.into();
        let rows: Vec<&Running> = s.running.iter().collect();
        for html in [
            running(&s, &RunningFilter::default(), &rows, Some("c"), &none()),
            landing(
                &s,
                &MirrorView::Behind {
                    digests: 1,
                    error: "<script>alert(4)</script>".into(),
                    since: jiff::Timestamp::UNIX_EPOCH,
                },
            ),
            super::scan(&detail, Some("c")),
        ] {
            assert!(!html.contains("<script>a"), "{html}");
            assert!(!html.contains("evil.io/<script>"), "{html}");
            assert_eq!(html.matches("<script").count(), 1, "only app.js: {html}");
            assert!(!html.contains("style="), "no inline style: {html}");
        }
        assert!(super::scan(&detail, None).contains("data-cve=\"CVE-&lt;script&gt;\""));
        // The tag's resolution is shown, escaped like the rest.
        assert!(
            super::scan(&detail, None)
                .contains("<dt>Resolved</dt><dd class=\"image\">evil.io/&lt;script&gt;:1@sha256:"),
            "{}",
            super::scan(&detail, None)
        );
    }

    #[test]
    fn a_scans_pdf_has_both_sections_and_every_vulnerability_or_says_why_not() {
        let scan = image_scan("shop", "web", "nginx:1", Some("Failed"));
        let detail = detail_of(scan);
        let report = crate::report::Report {
            vulnerabilities: vec![crate::report::Vulnerability {
                id: "CVE-2099-1".into(),
                ..crate::report::Vulnerability::default()
            }],
            ..crate::report::Report::default()
        };
        let text = |lines: Vec<Line>| -> Vec<String> {
            lines
                .into_iter()
                .map(|l| match l {
                    Line::Heading(t) | Line::Text(t) => t,
                })
                .collect()
        };
        let with = text(scan_pdf_lines(&detail, Ok(&report)));
        for wanted in [
            "ImageScan shop/web",
            "Vulnerability matching",
            "Policy evaluation",
            "Every vulnerability of the report (1)",
        ] {
            assert!(with.iter().any(|l| l == wanted), "{wanted} in {with:?}");
        }
        assert!(
            with.iter().any(|l| l.starts_with("CVE-2099-1 ")),
            "{with:?}"
        );
        let without = text(scan_pdf_lines(&detail, Err("no rights".into())));
        assert!(
            without
                .iter()
                .any(|l| l == "The report's full list is not included: no rights"),
            "{without:?}"
        );
    }

    #[test]
    fn scans_sort_by_any_column_and_the_headers_say_how() {
        let mut older = image_scan("shop", "a", "nginx:1", Some("Failed"));
        let mut newer = image_scan("blog", "b", "nginx:2", Some("Completed"));
        let never = image_scan("blog", "c", "nginx:3", None);
        if let (Some(o), Some(n)) = (older.status.as_mut(), newer.status.as_mut()) {
            o.scanned_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-01-01T00:00:00Z".parse().unwrap_or_default(),
            ));
            n.scanned_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-06-01T00:00:00Z".parse().unwrap_or_default(),
            ));
        }
        let snapshot = super::super::model::Snapshot::build(
            &BTreeMap::new(),
            &BTreeMap::new(),
            [&Arc::new(older), &Arc::new(newer), &Arc::new(never)],
        );
        let order = |query: &str| {
            let (filter, _) = ScanFilter::from_query(query);
            let mut rows: Vec<&Scan> = snapshot.scans.iter().collect();
            super::super::model::sort_scans(&mut rows, filter.sort);
            rows.iter().map(|s| s.name.clone()).collect::<Vec<_>>()
        };
        assert_eq!(order("sort=-scanned_at"), ["b", "a", "c"]);
        assert_eq!(order("sort=scanned_at"), ["c", "a", "b"]);
        assert_eq!(order("sort=namespace"), ["b", "c", "a"]);
        assert_eq!(order("sort=bogus"), ["b", "c", "a"], "unknown: as listed");
        let (filter, _) = ScanFilter::from_query("phase=Failed&sort=scanned_at");
        let rows: Vec<&Scan> = snapshot.scans.iter().collect();
        let html = scans(&snapshot, &filter, &rows, None, &none());
        assert!(
            html.contains("<th aria-sort=\"ascending\"><a href=\"/scans?phase=Failed&amp;sort=-scanned_at\" data-sort=\"scanned_at\">Scanned at</a></th>"),
            "{html}"
        );
        assert!(
            html.contains(
                "<a href=\"/scans?phase=Failed&amp;sort=name\" data-sort=\"name\">Name</a>"
            ),
            "{html}"
        );
        // The exports keep the order.
        assert!(
            html.contains("/scans.csv?phase=Failed&amp;sort=scanned_at"),
            "{html}"
        );
    }

    #[test]
    fn actions_are_forms_with_the_sessions_csrf_token() {
        let mut s = snapshot();
        let mut new = row(
            "blog",
            "Deployment/new",
            "ghcr.io/new:1",
            Verdict::Unscanned,
        );
        new.scan = None;
        s.running.push(new);
        let rows: Vec<&Running> = s.running.iter().collect();
        let html = running(
            &s,
            &RunningFilter::default(),
            &rows,
            Some("tok\"en"),
            &none(),
        );
        // The image with no scan (and only it) can be scanned now, with the session's token;
        // one with a scan links to it.
        assert_eq!(html.matches("action=\"/scan-now\"").count(), 1, "{html}");
        assert!(
            html.contains("<input type=\"hidden\" name=\"csrf\" value=\"tok&quot;en\"><input type=\"hidden\" name=\"image\" value=\"ghcr.io/new:1\"><button type=\"submit\">Scan now</button>"),
            "{html}"
        );
        let scan = image_scan("shop", "web app", "nginx:1", Some("Failed"));
        let detail = detail_of(scan);
        let html = super::scan(&detail, Some("t"));
        assert!(
            html.contains("<form method=\"post\" action=\"/scans/shop/web+app/rescan\" class=\"action\"><input type=\"hidden\" name=\"csrf\" value=\"t\">"),
            "{html}"
        );
        assert!(
            html.contains("action=\"/scans/shop/web+app/reevaluate\""),
            "{html}"
        );
        // A bearer request's page has no token to carry.
        assert!(!super::scan(&detail, None).contains("name=\"csrf\""));
        // No violation, nothing to state; with one, the VEX form names it, with the token.
        let mut clean = detail.clone();
        clean.status_mut().violations = Default::default();
        assert!(!super::scan(&clean, Some("t")).contains("/vex\""));
        let mut failing = detail.clone();
        failing.status_mut().violations = [crate::api::Violation {
            id: "CVE-2022-48174".into(),
            severity: crate::api::Severity::Critical,
            package: "busybox".into(),
            version: "1.32.1".into(),
            fixed_version: None,
        }]
        .into();
        let html = super::scan(&failing, Some("t"));
        assert!(
            html.contains("<form method=\"post\" action=\"/scans/shop/web+app/vex\" class=\"vex\"><input type=\"hidden\" name=\"csrf\" value=\"t\">"),
            "{html}"
        );
        for part in [
            "<select name=\"cve\"><option value=\"CVE-2022-48174\">CVE-2022-48174</option></select>",
            "<option value=\"under_investigation\">under_investigation</option>",
            "<option value=\"vulnerable_code_not_in_execute_path\">",
            "<input type=\"text\" name=\"namespace\" value=\"shop\">",
        ] {
            assert!(html.contains(part), "{part}: {html}");
        }
    }

    #[test]
    fn the_landing_page_shows_the_figures() {
        let html = landing(&snapshot(), &MirrorView::Off);
        for (name, value) in [
            ("images-scanned", 4),
            ("scans-total", 5),
            ("scans-pending", 2),
            ("running-total", 4),
            ("running-unscanned", 1),
        ] {
            let needle = format!("data-figure=\"{name}\">{value}<");
            assert!(html.contains(&needle), "{needle} in {html}");
        }
        assert!(html.contains("<tr data-registry=\"quay.io\">"), "{html}");
        assert!(
            html.contains("<a href=\"/running?namespace=blog\">blog</a>"),
            "{html}"
        );
        assert!(html.contains("id=\"by-namespace\""));
        assert!(
            html.contains("Verdict mirror: off (the controller runs without --mirror)"),
            "{html}"
        );
    }

    #[test]
    fn the_landing_page_says_whether_the_mirror_is_in_sync() {
        let at: jiff::Timestamp = "2026-12-07T01:02:03Z".parse().unwrap_or_default();
        let in_sync = MirrorView::InSync {
            digests: 1000,
            shards: 2,
            at,
        };
        assert!(landing(&snapshot(), &in_sync).contains(
            "<p id=\"mirror\" class=\"mirror in-sync\">Verdict mirror: in sync: 1000 denied digests in 2 DeniedDigests objects, written 2026-12-07T01:02:03Z</p>"
        ));
        let behind = MirrorView::Behind {
            digests: 3,
            error: "forbidden".into(),
            since: at,
        };
        assert!(landing(&snapshot(), &behind).contains(
            "class=\"mirror behind\">Verdict mirror: behind since 2026-12-07T01:02:03Z: 3 denied digests not all written (forbidden); retrying"
        ));
        assert!(
            landing(&snapshot(), &MirrorView::Starting).contains("Verdict mirror: not written yet")
        );
    }

    #[test]
    fn the_running_page_has_a_row_per_shown_image_and_keeps_the_filter() {
        let s = snapshot();
        let (filter, _) = RunningFilter::from_query("registry=quay.io&q=b");
        let rows: Vec<&Running> = s.running.iter().filter(|r| filter.matches(r)).collect();
        let html = running(&s, &filter, &rows, None, &none());
        assert_eq!(html.matches("<tr data-namespace=").count(), 1, "{html}");
        assert!(html.contains("data-verdict=\"fail\""));
        assert!(html.contains("<option value=\"quay.io\" selected>"));
        assert!(html.contains("data-figure=\"shown\">1<"));
        assert!(
            html.contains("href=\"/running.csv?registry=quay.io&amp;q=b\""),
            "{html}"
        );
        assert!(html.contains("href=\"/scans/scangate-system/bad\""));
        let all: Vec<&Scan> = s.scans.iter().collect();
        let html = scans(&s, &ScanFilter::default(), &all, None, &none());
        assert_eq!(html.matches("<tr data-namespace=").count(), 5);
        assert!(html.contains("data-phase=\"Scanning\""));
    }

    #[test]
    fn progress_is_coloured_bars_with_words() {
        let mut value =
            serde_json::to_value(image_scan("shop", "web", "nginx:1", Some("Scanning")))
                .unwrap_or_default();
        value["status"]["progress"] = serde_json::json!([
            {"stage": "Resolve", "state": "Done"},
            {"stage": "Queue", "state": "Done"},
            {"stage": "Scan", "state": "Running", "since": "2026-12-07T07:00:00Z"},
            {"stage": "Report", "state": "NotStarted"},
            {"stage": "Evaluate", "state": "NotStarted"},
        ]);
        let scan: crate::api::ImageScan =
            serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"));
        let snapshot = super::super::model::Snapshot::build(
            &BTreeMap::new(),
            &BTreeMap::new(),
            [&Arc::new(scan)],
        );
        let detail = &snapshot.scans[0];
        let html = super::scan(detail, None);
        assert!(
            html.contains("<li class=\"stage running\" data-stage=\"scan\" data-state=\"running\"><span class=\"bar\"></span><span class=\"name\">scan</span> <span class=\"state\">running</span> <time>since 2026-12-07T07:00:00Z</time></li>"),
            "{html}"
        );
        assert_eq!(html.matches("class=\"stage done\"").count(), 2, "{html}");
        assert!(!html.contains("style="), "no inline style");
        let rows: Vec<&Scan> = snapshot.scans.iter().collect();
        let list = scans(&snapshot, &ScanFilter::default(), &rows, None, &none());
        assert!(
            list.contains("<span class=\"stage running\" title=\"scan: running\"></span>"),
            "{list}"
        );
        assert!(
            list.contains("<span class=\"progress-text\">scan running</span>"),
            "{list}"
        );
        assert!(
            list.contains("data-sort=\"progress\">Progress</a>"),
            "{list}"
        );
        // Every state has its words and its colour class.
        use crate::api::{Stage, StageProgress, StageState};
        let one = |state| {
            progress_summary(&[StageProgress {
                stage: Stage::Evaluate,
                state,
                since: None,
            }])
        };
        assert_eq!(one(StageState::Paused), "evaluate paused");
        assert_eq!(one(StageState::Failed), "evaluate failed");
        assert_eq!(one(StageState::Canceled), "evaluate canceled");
        assert_eq!(one(StageState::NotStarted), "evaluate not started");
        assert_eq!(one(StageState::DoneWithIssues), "done with issues");
        assert_eq!(one(StageState::Done), "done");
        assert_eq!(progress_summary(&[]), "no progress recorded");
        let css = include_str!("static/app.css");
        for class in [
            "not-started",
            "running",
            "paused",
            "done",
            "done-with-issues",
            "failed",
            "canceled",
        ] {
            assert!(
                css.contains(&format!(".stage.{class} .bar")),
                "{class} in app.css"
            );
        }
    }

    #[test]
    fn a_scan_can_be_paused_resumed_and_canceled() {
        let scan = image_scan("shop", "web", "nginx:1", Some("Scanning"));
        let mut detail = detail_of(scan);
        let html = super::scan(&detail, Some("t"));
        for action in ["pause", "cancel", "rescan"] {
            assert!(
                html.contains(&format!("<form method=\"post\" action=\"/scans/shop/web/{action}\" class=\"action\"><input type=\"hidden\" name=\"csrf\" value=\"t\">")),
                "{action}: {html}"
            );
        }
        assert!(!html.contains("/resume\""), "{html}");
        assert!(!html.contains("id=\"paused\""), "{html}");
        detail.suspended = true;
        let html = super::scan(&detail, Some("t"));
        assert!(html.contains("action=\"/scans/shop/web/resume\""), "{html}");
        assert!(!html.contains("/pause\""), "{html}");
        assert!(html.contains("id=\"paused\">Paused"), "{html}");
    }

    #[test]
    fn saved_searches_are_listed_applied_deleted_and_saved_with_the_sessions_token() {
        let s = snapshot();
        let (filter, _) = ScanFilter::from_query("phase=Failed&sort=-scanned_at");
        let rows: Vec<&Scan> = s.scans.iter().collect();
        let saved = SavedView::Listed(vec![
            Saved::new("<b>failed</b>", SearchPage::Scans, "phase=Failed")
                .unwrap_or_else(|e| panic!("{e}")),
        ]);
        let html = scans(&s, &filter, &rows, Some("tok"), &saved);
        assert!(
            html.contains("<li data-search=\"&lt;b&gt;failed&lt;/b&gt;\"><a href=\"/scans?phase=Failed\">&lt;b&gt;failed&lt;/b&gt;</a>"),
            "{html}"
        );
        assert!(
            html.contains("<form method=\"post\" action=\"/searches/delete\" class=\"action\"><input type=\"hidden\" name=\"csrf\" value=\"tok\"><input type=\"hidden\" name=\"page\" value=\"scans\"><input type=\"hidden\" name=\"name\" value=\"&lt;b&gt;failed&lt;/b&gt;\">"),
            "{html}"
        );
        // The search shown is what Save stores.
        assert!(
            html.contains("<form method=\"post\" action=\"/searches\" class=\"save-search\"><input type=\"hidden\" name=\"csrf\" value=\"tok\"><input type=\"hidden\" name=\"page\" value=\"scans\"><input type=\"hidden\" name=\"query\" value=\"phase=Failed&amp;sort=-scanned_at\">"),
            "{html}"
        );
        assert!(
            html.contains("<a class=\"reset\" href=\"/scans\">Reset to the default search</a>"),
            "{html}"
        );
        let down = scans(
            &s,
            &filter,
            &rows,
            None,
            &SavedView::Unavailable("<x>".into()),
        );
        assert!(
            down.contains("Saved searches are not available now: &lt;x&gt;"),
            "{down}"
        );
        let running_html = running(&s, &RunningFilter::default(), &[], None, &none());
        assert!(
            running_html.contains("name=\"page\" value=\"running\""),
            "{running_html}"
        );
        assert!(running_html.contains("None yet"), "{running_html}");
    }

    #[test]
    fn the_running_page_says_its_window_and_when_each_ended_image_ran_until() {
        let mut s = snapshot();
        let mut gone = row("shop", "job", "alpine:3", Verdict::Pass);
        gone.ended = Some("2026-12-07T07:50:00Z".parse().unwrap_or_default());
        s.running.push(gone);
        let (filter, _) = RunningFilter::from_query("window=6h");
        let rows: Vec<&Running> = s.running.iter().collect();
        let html = running(&s, &filter, &rows, None, &none());
        assert!(
            html.contains("Images that ran over <strong>the past 6 hours</strong>"),
            "{html}"
        );
        assert!(
            html.contains("<option value=\"6h\" selected>the past 6 hours</option>"),
            "{html}"
        );
        assert!(
            html.contains("data-verdict=\"pass\" data-ended=\"2026-12-07T07:50:00Z\">"),
            "{html}"
        );
        assert!(
            html.contains("<td class=\"ran\">ended <time>2026-12-07T07:50:00Z</time></td>"),
            "{html}"
        );
        assert_eq!(
            html.matches("<td class=\"ran\">running</td>").count(),
            4,
            "{html}"
        );
        assert!(html.contains("href=\"/running.csv?window=6h\""), "{html}");
    }
}
