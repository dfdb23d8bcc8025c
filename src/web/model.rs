//! What the results page shows: a [`Snapshot`] of the inventory's latest view (running images
//! and their verdicts, the ImageScans summarised), the landing page's [`Figures`], and the
//! filters of the query string. Everything here is pure.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use crate::api::{Condition, ImageScan, Phase, StageProgress, StageState, Violation};
use crate::image::ImageRef;
use crate::runtime::inventory::{Entry, RuntimeVerdict};

/// A running image's verdict as the page spells it: the PolicyReport result, with `skip`
/// (admitted without a decided result) shown as `unscanned`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    Fail,
    Warn,
    Unscanned,
    Pass,
}

impl Verdict {
    pub const ALL: [Verdict; 4] = [
        Verdict::Pass,
        Verdict::Fail,
        Verdict::Warn,
        Verdict::Unscanned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Warn => "warn",
            Verdict::Unscanned => "unscanned",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn of(verdict: RuntimeVerdict) -> Verdict {
        match verdict {
            RuntimeVerdict::pass => Verdict::Pass,
            RuntimeVerdict::fail => Verdict::Fail,
            RuntimeVerdict::warn => Verdict::Warn,
            RuntimeVerdict::skip => Verdict::Unscanned,
        }
    }
}

/// One running image of one workload (a PolicyReport result).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Running {
    pub namespace: String,
    /// `Kind/name`.
    pub workload: String,
    /// A pod of the workload that runs the image.
    pub pod: String,
    pub container: String,
    pub image: String,
    pub registry: String,
    pub verdict: Verdict,
    /// The deciding scan, `namespace/name`.
    pub scan: Option<String>,
    /// Why, in one line (the webhook's reason).
    pub message: String,
    /// When the pod stopped running; `None` while it runs.
    pub ended: Option<Timestamp>,
}

/// The time the runtime view looks back over (`window=`): the images running now, and those
/// of pods that ended within it. The past hour by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Window {
    /// Running now only.
    Now,
    Minutes15,
    #[default]
    Hour,
    Hours6,
    /// The largest: the inventory keeps ended pods this long ([`crate::runtime::inventory::ENDED_KEPT`]).
    Hours24,
}

impl Window {
    pub const ALL: [Window; 5] = [
        Window::Now,
        Window::Minutes15,
        Window::Hour,
        Window::Hours6,
        Window::Hours24,
    ];

    /// The value in the query string.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Window::Now => "now",
            Window::Minutes15 => "15m",
            Window::Hour => "1h",
            Window::Hours6 => "6h",
            Window::Hours24 => "24h",
        }
    }

    /// The choice in words.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Window::Now => "running now",
            Window::Minutes15 => "the past 15 minutes",
            Window::Hour => "the past hour",
            Window::Hours6 => "the past 6 hours",
            Window::Hours24 => "the past 24 hours",
        }
    }

    pub fn parse(value: &str) -> Option<Window> {
        Window::ALL.into_iter().find(|w| w.as_str() == value)
    }

    /// How far back it looks.
    #[must_use]
    pub const fn duration(self) -> SignedDuration {
        match self {
            Window::Now => SignedDuration::ZERO,
            Window::Minutes15 => SignedDuration::from_mins(15),
            Window::Hour => SignedDuration::from_hours(1),
            Window::Hours6 => SignedDuration::from_hours(6),
            Window::Hours24 => SignedDuration::from_hours(24),
        }
    }

    /// Whether an image that runs (`ended` is `None`) or ran until `ended` is in the window
    /// that ends at `now`.
    #[must_use]
    pub fn covers(self, ended: Option<Timestamp>, now: Timestamp) -> bool {
        match ended {
            None => true,
            Some(_) if self == Window::Now => false,
            Some(at) => now
                .checked_sub(self.duration())
                .is_ok_and(|since| at >= since),
        }
    }
}

/// Vulnerability counts of a scan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub critical: i64,
    pub high: i64,
    pub medium: i64,
    pub low: i64,
    pub unknown: i64,
}

/// An ImageScan as the page shows it.
#[derive(Clone, Debug)]
pub struct Scan {
    pub namespace: String,
    pub name: String,
    pub image: String,
    pub registry: String,
    pub phase: Phase,
    pub counts: Counts,
    pub scanned_at: Option<String>,
    /// `lastResult.source`.
    pub source: Option<String>,
    pub artifact: Option<String>,
    /// `status.resolved`: what the tag named at the registry, its platforms, and when.
    pub resolved: Option<String>,
    pub policy: Option<String>,
    pub scanner: Option<String>,
    /// `spec.suspend`: paused.
    pub suspended: bool,
    /// The ImageScan itself, shared with the controller's store rather than copied: the
    /// violations, conditions and progress are read from it (at 10,000 scans, copies of them
    /// held about 2.5 KiB per scan, BENCHMARKS.md).
    object: Arc<ImageScan>,
}

impl Scan {
    /// `status.violations`.
    #[must_use]
    pub fn violations(&self) -> &[Violation] {
        self.object
            .status
            .as_ref()
            .map_or(&[], |s| &s.violations[..])
    }

    /// `status.conditions`.
    #[must_use]
    pub fn conditions(&self) -> &[Condition] {
        self.object
            .status
            .as_ref()
            .map_or(&[], |s| s.conditions.as_slice())
    }

    /// `status.progress`: the current round's stages.
    #[must_use]
    pub fn progress(&self) -> &[StageProgress] {
        self.object
            .status
            .as_ref()
            .map_or(&[], |s| s.progress.as_slice())
    }

    /// The status, to change what a test shows (copied from the store's on first change).
    #[cfg(test)]
    pub fn status_mut(&mut self) -> &mut crate::api::ScanStatus {
        Arc::make_mut(&mut self.object)
            .status
            .get_or_insert_with(Default::default)
    }

    /// How many stages of the round are done (well or not).
    #[must_use]
    pub fn stages_done(&self) -> usize {
        self.progress()
            .iter()
            .filter(|p| matches!(p.state, StageState::Done | StageState::DoneWithIssues))
            .count()
    }

    /// Its PolicySucceeded condition: the policy's verdict, when a policy judges it.
    #[must_use]
    pub fn verdict(&self) -> Option<&Condition> {
        self.conditions()
            .iter()
            .find(|c| c.type_ == crate::api::ConditionType::PolicySucceeded)
    }
}

/// The inventory's view at one recompute.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Sorted by namespace, workload, image: what runs, and what ran in the last
    /// [`crate::runtime::inventory::ENDED_KEPT`] (with when it ended).
    pub running: Vec<Running>,
    /// Sorted by namespace, name.
    pub scans: Vec<Scan>,
}

/// What the page server reads: the latest view, or why there is none.
#[derive(Clone, Debug)]
pub enum View {
    /// This replica waits for the leader lease; only the leader keeps the inventory.
    Standby,
    /// Leading, the inventory's watches have not synced yet.
    Starting,
    Ready(Arc<Snapshot>),
}

/// The registry of an image reference (`docker.io` for `alpine`), or the reference itself
/// when it cannot be parsed.
pub fn registry_of(image: &str) -> String {
    ImageRef::parse(image).map_or_else(|_| image.to_string(), |r| r.registry().to_string())
}

impl Snapshot {
    /// Builds the view from the inventory's entries per namespace (running, and ended) and
    /// the ImageScans (the controller's store's, shared).
    pub fn build<'a>(
        entries: &BTreeMap<String, Vec<Entry>>,
        ended: &BTreeMap<String, Vec<Entry>>,
        scans: impl IntoIterator<Item = &'a Arc<ImageScan>>,
    ) -> Snapshot {
        let mut running: Vec<Running> = entries
            .iter()
            .chain(ended)
            .flat_map(|(ns, list)| list.iter().map(move |e| (ns, e)))
            .map(|(ns, e)| Running {
                namespace: ns.clone(),
                workload: format!("{}/{}", e.workload.kind, e.workload.name),
                pod: e.pod.clone(),
                container: e.container.clone(),
                image: e.image.clone(),
                registry: registry_of(&e.image),
                verdict: Verdict::of(e.verdict),
                scan: e
                    .scan
                    .as_ref()
                    .map(|s| format!("{}/{}", s.namespace, s.name)),
                message: e.message.clone(),
                ended: e.ended,
            })
            .collect();
        running.sort_by(|a, b| {
            (&a.namespace, &a.workload, &a.image, a.ended).cmp(&(
                &b.namespace,
                &b.workload,
                &b.image,
                b.ended,
            ))
        });
        let mut scans: Vec<Scan> = scans.into_iter().map(scan_of).collect();
        scans.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Snapshot { running, scans }
    }

    pub fn scan(&self, namespace: &str, name: &str) -> Option<&Scan> {
        self.scans
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
    }
}

fn scan_of(object: &Arc<ImageScan>) -> Scan {
    let scan = &**object;
    let status = scan.status.as_ref();
    let image = scan.spec.registry.image.clone();
    let counts = status
        .and_then(|s| s.cve_count.as_ref())
        .map(|c| Counts {
            critical: c.critical,
            high: c.high,
            medium: c.medium,
            low: c.low,
            unknown: c.unknown,
        })
        .unwrap_or_default();
    Scan {
        namespace: scan.metadata.namespace.clone().unwrap_or_default(),
        name: scan.metadata.name.clone().unwrap_or_default(),
        registry: registry_of(&image),
        image,
        phase: status.and_then(|s| s.phase).unwrap_or(Phase::Pending),
        counts,
        scanned_at: status
            .and_then(|s| s.scanned_at.as_ref())
            .map(|t| t.0.to_string()),
        source: status
            .and_then(|s| s.last_result.as_ref())
            .map(|r| r.source.clone())
            .filter(|s| !s.is_empty()),
        artifact: status
            .and_then(|s| s.artifact.as_ref())
            .and_then(|a| a.registry.as_ref())
            .map(|r| r.image.clone()),
        resolved: status.and_then(|s| s.resolved.as_ref()).map(resolution),
        policy: scan.spec.scan.scan_policy.clone(),
        scanner: status.and_then(|s| s.scanned_by.as_ref()).map(|b| {
            format!(
                "{} {} ({})",
                b.scanner.name, b.scanner.version, b.scanner.vendor
            )
        }),
        suspended: scan.spec.scan.suspend,
        object: object.clone(),
    }
}

/// A resolution in one line: `repo:tag@sha256:… (linux/amd64, linux/arm64) at TIME`.
fn resolution(r: &crate::api::Resolution) -> String {
    let platforms: Vec<String> = r
        .platforms
        .iter()
        .map(|p| match &p.variant {
            Some(variant) => format!("{}/{}/{variant}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        })
        .collect();
    let platforms = if platforms.is_empty() {
        String::new()
    } else {
        format!(" ({})", platforms.join(", "))
    };
    format!("{}{platforms} at {}", r.image, r.resolved_at.0)
}

/// The landing page's figures (as `scangate status` counts them: every ImageScan by phase, a
/// scan without status is Pending; the images running now by verdict).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    pub images_scanned: usize,
    pub scans_total: usize,
    pub scans_completed: usize,
    pub scans_failed: usize,
    pub scans_error: usize,
    /// Pending and Scanning.
    pub scans_pending: usize,
    pub running_total: usize,
    pub running: BTreeMap<Verdict, usize>,
    pub by_registry: BTreeMap<String, BTreeMap<Verdict, usize>>,
    pub by_namespace: BTreeMap<String, BTreeMap<Verdict, usize>>,
}

impl Figures {
    pub fn of(snapshot: &Snapshot) -> Figures {
        let phase = |p: &[Phase]| {
            snapshot
                .scans
                .iter()
                .filter(|s| p.contains(&s.phase))
                .count()
        };
        let mut figures = Figures {
            images_scanned: snapshot
                .scans
                .iter()
                .map(|s| s.image.as_str())
                .collect::<BTreeSet<_>>()
                .len(),
            scans_total: snapshot.scans.len(),
            scans_completed: phase(&[Phase::Completed]),
            scans_failed: phase(&[Phase::Failed]),
            scans_error: phase(&[Phase::Error]),
            scans_pending: phase(&[Phase::Pending, Phase::Scanning]),
            running_total: snapshot
                .running
                .iter()
                .filter(|r| r.ended.is_none())
                .count(),
            ..Figures::default()
        };
        for r in snapshot.running.iter().filter(|r| r.ended.is_none()) {
            *figures.running.entry(r.verdict).or_default() += 1;
            *figures
                .by_registry
                .entry(r.registry.clone())
                .or_default()
                .entry(r.verdict)
                .or_default() += 1;
            *figures
                .by_namespace
                .entry(r.namespace.clone())
                .or_default()
                .entry(r.verdict)
                .or_default() += 1;
        }
        figures
    }

    pub fn running(&self, verdict: Verdict) -> usize {
        self.running.get(&verdict).copied().unwrap_or_default()
    }
}

/// The filters of `/running` and its exports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunningFilter {
    pub namespace: Option<String>,
    pub verdict: Option<Verdict>,
    pub registry: Option<String>,
    pub q: Option<String>,
    pub window: Window,
}

/// The filters of `/scans` and its exports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanFilter {
    pub namespace: Option<String>,
    pub phase: Option<Phase>,
    pub registry: Option<String>,
    pub q: Option<String>,
    /// The order of the rows: `sort=COLUMN`, or `sort=-COLUMN` for descending; namespace and
    /// name when unset (or unknown).
    pub sort: Option<(ScanColumn, Order)>,
}

/// Ascending or descending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Ascending,
    Descending,
}

/// A column of `/scans` the rows can be sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanColumn {
    Namespace,
    Name,
    Image,
    Phase,
    Critical,
    High,
    Medium,
    Low,
    Unknown,
    ScannedAt,
    /// How many stages of the current round are done.
    Progress,
}

impl ScanColumn {
    pub const ALL: [ScanColumn; 11] = [
        Self::Namespace,
        Self::Name,
        Self::Image,
        Self::Phase,
        Self::Critical,
        Self::High,
        Self::Medium,
        Self::Low,
        Self::Unknown,
        Self::ScannedAt,
        Self::Progress,
    ];

    /// The name in the query string (the CSV's header).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Namespace => "namespace",
            Self::Name => "name",
            Self::Image => "image",
            Self::Phase => "phase",
            Self::Critical => "critical",
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
            Self::Unknown => "unknown",
            Self::ScannedAt => "scanned_at",
            Self::Progress => "progress",
        }
    }

    /// `COLUMN` or `-COLUMN`.
    #[must_use]
    pub fn parse(value: &str) -> Option<(ScanColumn, Order)> {
        let (order, name) = match value.strip_prefix('-') {
            Some(name) => (Order::Descending, name),
            None => (Order::Ascending, value),
        };
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == name)
            .map(|c| (c, order))
    }

    /// How two scans compare on this column (then by namespace and name, so the order is
    /// total). A scan never scanned sorts before every date.
    #[must_use]
    pub fn compare(self, a: &Scan, b: &Scan) -> std::cmp::Ordering {
        let first = match self {
            Self::Namespace => a.namespace.cmp(&b.namespace),
            Self::Name => a.name.cmp(&b.name),
            Self::Image => a.image.cmp(&b.image),
            Self::Phase => a.phase.as_str().cmp(b.phase.as_str()),
            Self::Critical => a.counts.critical.cmp(&b.counts.critical),
            Self::High => a.counts.high.cmp(&b.counts.high),
            Self::Medium => a.counts.medium.cmp(&b.counts.medium),
            Self::Low => a.counts.low.cmp(&b.counts.low),
            Self::Unknown => a.counts.unknown.cmp(&b.counts.unknown),
            // RFC 3339 times in UTC, as the status writes them, sort as text.
            Self::ScannedAt => a.scanned_at.cmp(&b.scanned_at),
            Self::Progress => a.stages_done().cmp(&b.stages_done()),
        };
        first
            .then_with(|| a.namespace.cmp(&b.namespace))
            .then_with(|| a.name.cmp(&b.name))
    }
}

/// Sorts rows of `/scans` as the filter asks.
pub fn sort_scans(rows: &mut [&Scan], sort: Option<(ScanColumn, Order)>) {
    if let Some((column, order)) = sort {
        rows.sort_by(|a, b| match order {
            Order::Ascending => column.compare(a, b),
            Order::Descending => column.compare(b, a),
        });
    }
}

/// The non-empty values of a query string (`a=1&b=&c=x`), the last of each name winning.
pub fn query_pairs(query: &str) -> BTreeMap<String, String> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.trim().to_string()))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

fn keyword_matches(q: &Option<String>, fields: &[&str]) -> bool {
    q.as_ref().is_none_or(|q| {
        let q = q.to_lowercase();
        fields.iter().any(|f| f.to_lowercase().contains(&q))
    })
}

impl RunningFilter {
    /// An unknown verdict or window matches nothing.
    pub fn from_query(query: &str) -> (RunningFilter, bool) {
        let mut pairs = query_pairs(query);
        let verdict = pairs.remove("verdict");
        let parsed = verdict.as_deref().map(Verdict::parse);
        let window = pairs.remove("window").map(|w| Window::parse(&w));
        (
            RunningFilter {
                namespace: pairs.remove("namespace"),
                verdict: parsed.flatten(),
                registry: pairs.remove("registry"),
                q: pairs.remove("q"),
                window: window.flatten().unwrap_or_default(),
            },
            parsed != Some(None) && window != Some(None),
        )
    }

    /// Whether a row is shown at `now`: it matches and is in the window.
    pub fn shows(&self, r: &Running, now: Timestamp) -> bool {
        self.matches(r) && self.window.covers(r.ended, now)
    }

    pub fn matches(&self, r: &Running) -> bool {
        self.namespace.as_ref().is_none_or(|ns| *ns == r.namespace)
            && self.verdict.is_none_or(|v| v == r.verdict)
            && self.registry.as_ref().is_none_or(|reg| *reg == r.registry)
            && keyword_matches(&self.q, &[&r.image, &r.namespace, &r.workload])
    }

    /// The filter as a query string (`?…`, or empty), to carry over to the exports; the
    /// default window is left out.
    pub fn to_query(&self) -> String {
        let window = (self.window != Window::default()).then(|| self.window.as_str());
        to_query(&[
            ("namespace", self.namespace.as_deref()),
            ("verdict", self.verdict.map(Verdict::as_str)),
            ("registry", self.registry.as_deref()),
            ("q", self.q.as_deref()),
            ("window", window),
        ])
    }
}

impl ScanFilter {
    /// An unknown phase matches nothing.
    pub fn from_query(query: &str) -> (ScanFilter, bool) {
        let mut pairs = query_pairs(query);
        let phase = pairs.remove("phase");
        let parsed = phase
            .as_deref()
            .map(|p| Phase::ALL.into_iter().find(|x| x.as_str() == p));
        (
            ScanFilter {
                namespace: pairs.remove("namespace"),
                phase: parsed.flatten(),
                registry: pairs.remove("registry"),
                q: pairs.remove("q"),
                sort: pairs.remove("sort").as_deref().and_then(ScanColumn::parse),
            },
            parsed != Some(None),
        )
    }

    pub fn matches(&self, s: &Scan) -> bool {
        self.namespace.as_ref().is_none_or(|ns| *ns == s.namespace)
            && self.phase.is_none_or(|p| p == s.phase)
            && self.registry.as_ref().is_none_or(|reg| *reg == s.registry)
            && keyword_matches(&self.q, &[&s.image, &s.namespace, &s.name])
    }

    pub fn to_query(&self) -> String {
        let sort = self.sort.map(|(column, order)| match order {
            Order::Ascending => column.as_str().to_string(),
            Order::Descending => format!("-{}", column.as_str()),
        });
        to_query(&[
            ("namespace", self.namespace.as_deref()),
            ("phase", self.phase.map(Phase::as_str)),
            ("registry", self.registry.as_deref()),
            ("q", self.q.as_deref()),
            ("sort", sort.as_deref()),
        ])
    }
}

fn to_query(pairs: &[(&str, Option<&str>)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs {
        if let Some(v) = v {
            out.append_pair(k, v);
            any = true;
        }
    }
    if any {
        format!("?{}", out.finish())
    } else {
        String::new()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub fn running(ns: &str, workload: &str, image: &str, verdict: Verdict) -> Running {
        Running {
            namespace: ns.into(),
            workload: format!("Deployment/{workload}"),
            pod: format!("{workload}-1"),
            container: "app".into(),
            image: image.into(),
            registry: registry_of(image),
            verdict,
            scan: Some(format!("scangate-system/{workload}")),
            message: "m".into(),
            ended: None,
        }
    }

    pub fn scan(ns: &str, name: &str, image: &str, phase: Option<&str>) -> ImageScan {
        let mut value = json!({
            "apiVersion": "scanning.scangate.dev/v1beta1",
            "kind": "ImageScan",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"registry": {"image": image}, "scanPolicy": "default"},
        });
        if let Some(phase) = phase {
            value["status"] = json!({"phase": phase, "cveCount": {"critical": 1, "high": 2},
                "scannedAt": "2026-01-02T00:00:00Z",
                "lastResult": {"phase": phase, "scannedAt": "2026-01-02T00:00:00Z", "source": "job"},
                "violations": [{"id": "CVE-1", "severity": "critical", "package": "p", "version": "1", "fixedVersion": "2"}],
                "resolved": {"image": format!("{image}@sha256:{}", "a".repeat(64)),
                    "mediaType": "application/vnd.oci.image.index.v1+json", "resolvedAt": "2026-01-02T00:00:00Z",
                    "platforms": [{"os": "linux", "architecture": "amd64", "digest": format!("sha256:{}", "b".repeat(64))},
                                  {"os": "linux", "architecture": "arm", "variant": "v7", "digest": format!("sha256:{}", "c".repeat(64))}]}});
        }
        serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn snapshot() -> Snapshot {
        let scans = [
            scan("scangate-system", "web", "alpine:3", Some("Completed")),
            scan("scangate-system", "bad", "quay.io/x/bad:1", Some("Failed")),
            scan("shop", "mine", "alpine:3", None),
            scan("shop", "err", "ghcr.io/e:1", Some("Error")),
            scan("shop", "run", "ghcr.io/r:1", Some("Scanning")),
        ];
        let mut s = Snapshot::build(&BTreeMap::new(), &BTreeMap::new(), &scans.map(Arc::new));
        s.running = vec![
            running("shop", "web", "alpine:3", Verdict::Pass),
            running("shop", "bad", "quay.io/x/bad:1", Verdict::Fail),
            running("blog", "cms", "ghcr.io/cms:1", Verdict::Unscanned),
            running("blog", "old", "alpine:2", Verdict::Warn),
        ];
        s
    }

    #[test]
    fn figures_count_scans_by_phase_and_running_images_by_verdict() {
        let f = Figures::of(&snapshot());
        assert_eq!(
            (
                f.images_scanned,
                f.scans_total,
                f.scans_completed,
                f.scans_failed,
                f.scans_error,
                f.scans_pending
            ),
            (4, 5, 1, 1, 1, 2)
        );
        assert_eq!(f.running_total, 4);
        assert_eq!(
            Verdict::ALL.map(|v| f.running(v)),
            [1, 1, 1, 1],
            "pass, fail, warn, unscanned"
        );
        assert_eq!(
            f.by_registry.keys().collect::<Vec<_>>(),
            ["docker.io", "ghcr.io", "quay.io"]
        );
        assert_eq!(f.by_namespace["blog"][&Verdict::Warn], 1);
    }

    #[test]
    fn a_scan_is_summarised() {
        let s = snapshot();
        let web = s
            .scan("scangate-system", "web")
            .unwrap_or_else(|| panic!("no scan"));
        assert_eq!(web.registry, "docker.io");
        assert_eq!(web.counts.high, 2);
        assert_eq!(web.source.as_deref(), Some("job"));
        assert_eq!(web.policy.as_deref(), Some("default"));
        assert_eq!(web.violations()[0].fixed_version.as_deref(), Some("2"));
        assert_eq!(
            web.resolved.as_deref(),
            Some(
                format!(
                    "alpine:3@sha256:{} (linux/amd64, linux/arm/v7) at 2026-01-02T00:00:00Z",
                    "a".repeat(64)
                )
                .as_str()
            )
        );
        assert_eq!(
            s.scan("shop", "mine").map(|m| m.phase),
            Some(Phase::Pending)
        );
        assert_eq!(RuntimeVerdict::ALL.map(Verdict::of)[2], Verdict::Unscanned);
    }

    #[test]
    fn filters_come_from_the_query() {
        let s = snapshot();
        let shown = |query: &str| {
            let (f, valid) = RunningFilter::from_query(query);
            let names: Vec<&str> = s
                .running
                .iter()
                .filter(|r| valid && f.matches(r))
                .map(|r| r.workload.as_str())
                .collect();
            names.join(",")
        };
        assert_eq!(
            shown(""),
            "Deployment/web,Deployment/bad,Deployment/cms,Deployment/old"
        );
        assert_eq!(
            shown("namespace=blog&verdict="),
            "Deployment/cms,Deployment/old"
        );
        assert_eq!(shown("registry=quay.io"), "Deployment/bad");
        assert_eq!(shown("verdict=unscanned"), "Deployment/cms");
        assert_eq!(shown("verdict=nope"), "");
        assert_eq!(shown("q=ALPINE"), "Deployment/web,Deployment/old");
        assert_eq!(shown("q=%20cm"), "Deployment/cms");
        let (f, _) = RunningFilter::from_query("registry=quay.io&q=a+b&x=1");
        assert_eq!(f.to_query(), "?registry=quay.io&q=a+b");
        assert_eq!(RunningFilter::default().to_query(), "");

        let scans = |query: &str| {
            let (f, valid) = ScanFilter::from_query(query);
            s.scans
                .iter()
                .filter(|x| valid && f.matches(x))
                .map(|x| x.name.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(scans("phase=Pending"), "mine");
        assert_eq!(scans("phase=pending"), "");
        assert_eq!(scans("registry=ghcr.io"), "err,run");
        assert_eq!(scans("namespace=shop&q=mi"), "mine");
    }

    #[test]
    fn the_window_counts_what_runs_and_what_ended_within_it() {
        let now: Timestamp = "2026-12-07T08:00:00Z".parse().unwrap_or_default();
        let ago = |mins: i64| Some(now - SignedDuration::from_mins(mins));
        assert_eq!(Window::default(), Window::Hour);
        for w in Window::ALL {
            assert!(w.covers(None, now), "{w:?} shows what runs");
            assert_eq!(Window::parse(w.as_str()), Some(w));
        }
        assert!(!Window::Now.covers(ago(0), now));
        assert!(Window::Minutes15.covers(ago(10), now));
        assert!(!Window::Minutes15.covers(ago(16), now));
        assert!(Window::Hour.covers(ago(10), now));
        assert!(Window::Hour.covers(ago(60), now));
        assert!(!Window::Hour.covers(ago(61), now));
        assert!(Window::Hours6.covers(ago(120), now));
        assert!(Window::Hours24.covers(ago(24 * 60), now));
        assert!(!Window::Hours24.covers(ago(24 * 60 + 1), now));
        assert_eq!(Window::parse("2h"), None);

        let (f, valid) = RunningFilter::from_query("window=6h&q=x");
        assert!(valid);
        assert_eq!(f.window, Window::Hours6);
        assert_eq!(f.to_query(), "?q=x&window=6h");
        // The default is left out; an unknown window matches nothing.
        assert_eq!(RunningFilter::from_query("window=1h").0.to_query(), "");
        assert!(!RunningFilter::from_query("window=forever").1);

        let mut gone = running("shop", "job", "alpine:3", Verdict::Pass);
        gone.ended = ago(10);
        let runs = running("shop", "web", "alpine:3", Verdict::Pass);
        let hour = RunningFilter::default();
        assert!(hour.shows(&gone, now) && hour.shows(&runs, now));
        let (just_now, _) = RunningFilter::from_query("window=now");
        assert!(!just_now.shows(&gone, now) && just_now.shows(&runs, now));
        // The landing page's figures are of what runs now.
        let snapshot = Snapshot {
            running: vec![runs, gone],
            scans: vec![],
        };
        let f = Figures::of(&snapshot);
        assert_eq!((f.running_total, f.running(Verdict::Pass)), (1, 1));
    }

    #[test]
    fn scans_sort_by_progress_and_know_when_they_are_paused() {
        let mut value = serde_json::to_value(scan("shop", "a", "alpine:3", Some("Scanning")))
            .unwrap_or_default();
        value["spec"]["suspend"] = json!(true);
        value["status"]["progress"] = json!([
            {"stage": "Resolve", "state": "Done"},
            {"stage": "Queue", "state": "DoneWithIssues"},
            {"stage": "Scan", "state": "Paused", "since": "2026-12-07T07:00:00Z"},
            {"stage": "Report", "state": "NotStarted"},
            {"stage": "Evaluate", "state": "NotStarted"},
        ]);
        let paused: ImageScan = serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"));
        let fresh = scan("shop", "b", "alpine:3", None);
        let s = Snapshot::build(
            &BTreeMap::new(),
            &BTreeMap::new(),
            [&Arc::new(paused), &Arc::new(fresh)],
        );
        let a = s.scan("shop", "a").unwrap_or_else(|| panic!("a"));
        assert!(a.suspended);
        assert_eq!(a.progress().len(), 5);
        assert_eq!(a.stages_done(), 2);
        let b = s.scan("shop", "b").unwrap_or_else(|| panic!("b"));
        assert!(!b.suspended && b.progress().is_empty());
        let mut rows: Vec<&Scan> = s.scans.iter().collect();
        sort_scans(&mut rows, ScanColumn::parse("-progress"));
        assert_eq!(
            rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        sort_scans(&mut rows, ScanColumn::parse("progress"));
        assert_eq!(
            rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
    }
}
