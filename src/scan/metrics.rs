//! Prometheus metrics of the controller. Labels are bounded: kind, result, phase, verb,
//! resource, verdict, and the namespace of running images (bounded by the cluster's namespaces,
//! as kube-state-metrics' are; a namespace that runs nothing has no series). No image label.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::inventory::RuntimeVerdict;
use super::queue::Kind;
use super::writes::StatusWrite;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// ImageScan or SourceScan.
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub kind: String,
    /// `ok` or `error`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub kind: String,
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunningLabels {
    pub namespace: String,
    pub verdict: RuntimeVerdict,
}

/// What became of a first-sight scan.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // label values as Prometheus users write them
pub enum FirstSightOutcome {
    /// The ImageScan was created.
    created,
    /// It existed already (the same image seen again, or a scan an admin made).
    exists,
    /// Over `firstSight.perMinute`; tried again later.
    limited,
    /// The apiserver refused or did not answer; tried again later.
    failed,
    /// Deleted after `firstSight.unusedAfter` without a running pod using it.
    deleted,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FirstSightLabels {
    pub outcome: FirstSightOutcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub result: StatusWrite,
}

/// The verb of an apiserver request a reconcile makes.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // label values as the apiserver's metrics spell them
pub enum Verb {
    get,
    create,
    patch,
    delete,
}

/// The resource of an apiserver request a reconcile makes.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // label values as the apiserver's metrics spell them
pub enum ApiResource {
    /// The status of an ImageScan or SourceScan.
    scans,
    jobs,
    configmaps,
    /// A phase event (the recorder patches a repeated one).
    events,
    /// A scan's imagePullSecret, read to resolve its image's tag.
    secrets,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub verb: Verb,
    pub resource: ApiResource,
}

fn duration_histogram() -> Histogram {
    // 1 ms to about 30 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every metric the controller exports.
pub struct Metrics {
    pub reconciles: Family<ResultLabels, Counter>,
    pub errors: Family<KindLabels, Counter>,
    pub duration: Family<KindLabels, Histogram, fn() -> Histogram>,
    pub scans: Family<PhaseLabels, Gauge>,
    pub jobs_created: Family<KindLabels, Counter>,
    pub status_writes: Family<WriteLabels, Counter>,
    pub api_requests: Family<RequestLabels, Counter>,
    pub leader: Gauge,
    pub running_images: Family<RunningLabels, Gauge>,
    pub oldest_result_age: Gauge<f64, AtomicU64>,
    /// Scans waiting for a slot of the scan queue, by kind.
    pub scans_queued: Family<KindLabels, Gauge>,
    /// Scan Jobs running (no terminal condition in the Job cache).
    pub scan_jobs_running: Gauge,
    /// Digests the verdict mirror denies.
    pub mirror_denied_digests: Gauge,
    /// 1 while the verdict mirror's parameters hold what the trusted results deny.
    pub mirror_in_sync: Gauge,
    /// First-sight scans, by outcome.
    pub first_sight: Family<FirstSightLabels, Counter>,
    /// When the oldest result deciding a running image was recorded (Unix seconds), or
    /// `i64::MIN` when none does.
    oldest_result_at: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Metrics {
            reconciles: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            scans: Family::default(),
            jobs_created: Family::default(),
            status_writes: Family::default(),
            api_requests: Family::default(),
            leader: Gauge::default(),
            running_images: Family::default(),
            oldest_result_age: Gauge::default(),
            scans_queued: Family::default(),
            scan_jobs_running: Gauge::default(),
            mirror_denied_digests: Gauge::default(),
            mirror_in_sync: Gauge::default(),
            first_sight: Family::default(),
            oldest_result_at: AtomicI64::new(i64::MIN),
        }
    }

    pub fn count_first_sight(&self, outcome: FirstSightOutcome) {
        self.first_sight
            .get_or_create(&FirstSightLabels { outcome })
            .inc();
    }

    /// A registry exporting these metrics under the `scangate` prefix.
    pub fn registry(&self) -> Registry {
        let mut registry = Registry::with_prefix("scangate");
        registry.register(
            "controller_reconciles",
            "Scan reconciliations, by kind and result",
            self.reconciles.clone(),
        );
        registry.register(
            "mirror_denied_digests",
            "Digests the verdict mirror (a ValidatingAdmissionPolicy) denies",
            self.mirror_denied_digests.clone(),
        );
        registry.register(
            "mirror_in_sync",
            "1 while the verdict mirror holds what the trusted results deny",
            self.mirror_in_sync.clone(),
        );
        registry.register(
            "first_sight_scans",
            "Scans on first sight of images running pods run with no trusted result, by outcome \
             (created, exists, limited, failed, deleted)",
            self.first_sight.clone(),
        );
        registry.register(
            "controller_reconcile_errors",
            "Scan reconciliations that failed, by kind",
            self.errors.clone(),
        );
        registry.register(
            "controller_reconcile_duration_seconds",
            "Time to reconcile one scan",
            self.duration.clone(),
        );
        registry.register(
            "controller_scans",
            "Scans known to the controller, by kind and phase",
            self.scans.clone(),
        );
        registry.register(
            "controller_jobs_created",
            "Scan Jobs created, by kind",
            self.jobs_created.clone(),
        );
        registry.register(
            "controller_status_writes",
            "Status writes, by result: ok, refused (the apiserver answered 4xx) or error",
            self.status_writes.clone(),
        );
        registry.register(
            "controller_api_requests",
            "Apiserver requests made by reconciles (their reads come from the watches' caches), by verb and resource",
            self.api_requests.clone(),
        );
        registry.register(
            "controller_leader",
            "1 while this replica holds the leader lease",
            self.leader.clone(),
        );
        registry.register(
            "running_images",
            "Images of Running pods, one per workload and image, by namespace and verdict (fail, warn, skip, pass)",
            self.running_images.clone(),
        );
        registry.register(
            "oldest_result_age_seconds",
            "Age of the oldest scan result that decides an image of a Running pod (0 when none does)",
            self.oldest_result_age.clone(),
        );
        registry.register(
            "scans_queued",
            "Scans waiting for a slot to start their scan Job (--max-running-jobs, --max-running-jobs-per-namespace), by kind",
            self.scans_queued.clone(),
        );
        registry.register(
            "scan_jobs_running",
            "Scan Jobs running (without a Complete or Failed condition)",
            self.scan_jobs_running.clone(),
        );
        registry
    }

    /// Sets the queue's gauges: the scans waiting per kind, the scan Jobs running.
    pub fn set_queue(&self, queued: &std::collections::BTreeMap<Kind, usize>, running: usize) {
        for (kind, n) in queued {
            let kind = match kind {
                Kind::ImageScan => "ImageScan",
                Kind::SourceScan => "SourceScan",
            };
            self.scans_queued
                .get_or_create(&KindLabels { kind: kind.into() })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        self.scan_jobs_running
            .set(i64::try_from(running).unwrap_or(i64::MAX));
    }

    /// Sets the running images of a namespace by verdict; a namespace that runs nothing loses
    /// its series.
    pub fn set_running_images(
        &self,
        namespace: &str,
        counts: &std::collections::BTreeMap<RuntimeVerdict, usize>,
        none: bool,
    ) {
        for verdict in RuntimeVerdict::ALL {
            let labels = RunningLabels {
                namespace: namespace.into(),
                verdict,
            };
            if none {
                self.running_images.remove(&labels);
            } else {
                let n = counts.get(&verdict).copied().unwrap_or_default();
                self.running_images
                    .get_or_create(&labels)
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }

    /// Records when the oldest result deciding a running image was recorded.
    pub fn set_oldest_result(&self, at: Option<jiff::Timestamp>) {
        let seconds = at.map_or(i64::MIN, |t| t.as_second());
        self.oldest_result_at.store(seconds, Ordering::Relaxed);
        self.refresh_result_age(jiff::Timestamp::now());
    }

    /// Sets the oldest result's age as of `now` (at every scrape).
    pub fn refresh_result_age(&self, now: jiff::Timestamp) {
        let at = self.oldest_result_at.load(Ordering::Relaxed);
        let age = if at == i64::MIN {
            0.0
        } else {
            (now.as_second().saturating_sub(at)).max(0) as f64
        };
        self.oldest_result_age.set(age);
    }

    /// Counts one reconciliation.
    pub fn reconciled(&self, kind: &str, ok: bool, seconds: f64) {
        self.reconciles
            .get_or_create(&ResultLabels {
                kind: kind.into(),
                result: if ok { "ok" } else { "error" }.into(),
            })
            .inc();
        if !ok {
            self.errors
                .get_or_create(&KindLabels { kind: kind.into() })
                .inc();
        }
        self.duration
            .get_or_create(&KindLabels { kind: kind.into() })
            .observe(seconds);
    }

    /// Counts one status write.
    pub fn status_written(&self, result: StatusWrite) {
        self.status_writes
            .get_or_create(&WriteLabels { result })
            .inc();
    }

    /// Counts one apiserver request of a reconcile.
    pub fn requested(&self, verb: Verb, resource: ApiResource) {
        self.api_requests
            .get_or_create(&RequestLabels { verb, resource })
            .inc();
    }

    /// Sets the scans-by-phase gauge of a kind from a count per phase.
    pub fn set_phases(&self, kind: &str, counts: &[(crate::api::Phase, i64)]) {
        for (phase, n) in counts {
            self.scans
                .get_or_create(&PhaseLabels {
                    kind: kind.into(),
                    phase: phase.as_str().into(),
                })
                .set(*n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_in_prometheus_text_format() {
        let metrics = Metrics::new();
        metrics.reconciled("ImageScan", true, 0.01);
        metrics.reconciled("ImageScan", false, 0.02);
        metrics.set_phases("ImageScan", &[(crate::api::Phase::Failed, 2)]);
        metrics.status_written(StatusWrite::refused);
        metrics.status_written(StatusWrite::ok);
        metrics.requested(Verb::patch, ApiResource::scans);
        let counts = std::collections::BTreeMap::from([(RuntimeVerdict::fail, 2)]);
        metrics.set_running_images("shop", &counts, false);
        metrics.set_running_images("gone", &counts, false);
        metrics.set_running_images("gone", &counts, true);
        let recorded: jiff::Timestamp = "2026-01-01T00:00:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        metrics.set_oldest_result(Some(recorded));
        metrics.set_queue(
            &std::collections::BTreeMap::from([(Kind::ImageScan, 7), (Kind::SourceScan, 0)]),
            3,
        );
        metrics.refresh_result_age(
            "2026-01-01T00:01:40Z"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry())
            .unwrap_or_else(|e| panic!("{e}"));
        for expected in [
            "scangate_controller_reconciles_total{kind=\"ImageScan\",result=\"ok\"} 1",
            "scangate_controller_reconcile_errors_total{kind=\"ImageScan\"} 1",
            "scangate_controller_reconcile_duration_seconds_count{kind=\"ImageScan\"} 2",
            "scangate_controller_scans{kind=\"ImageScan\",phase=\"Failed\"} 2",
            "scangate_controller_status_writes_total{result=\"refused\"} 1",
            "scangate_controller_status_writes_total{result=\"ok\"} 1",
            "scangate_controller_api_requests_total{verb=\"patch\",resource=\"scans\"} 1",
            "scangate_running_images{namespace=\"shop\",verdict=\"fail\"} 2",
            "scangate_running_images{namespace=\"shop\",verdict=\"pass\"} 0",
            "scangate_oldest_result_age_seconds 100.0",
            "scangate_scans_queued{kind=\"ImageScan\"} 7",
            "scangate_scans_queued{kind=\"SourceScan\"} 0",
            "scangate_scan_jobs_running 3",
        ] {
            assert!(text.contains(expected), "{expected} not in {text}");
        }
        assert!(!text.contains("gone"), "{text}");
    }
}
