//! Prometheus metrics of the scan lifecycle. Labels are bounded: kind, result, phase, verb,
//! resource. No image or object name label.

use super::kinds::Kind;
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
    /// A phase Event (created by the publisher, off the reconcile).
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

/// The metrics of the scan lifecycle.
pub struct Metrics {
    pub reconciles: Family<ResultLabels, Counter>,
    pub errors: Family<KindLabels, Counter>,
    pub duration: Family<KindLabels, Histogram, fn() -> Histogram>,
    pub scans: Family<PhaseLabels, Gauge>,
    pub jobs_created: Family<KindLabels, Counter>,
    pub status_writes: Family<WriteLabels, Counter>,
    pub api_requests: Family<RequestLabels, Counter>,
    /// Scans waiting for a slot of the scan queue, by kind.
    pub scans_queued: Family<KindLabels, Gauge>,
    /// Scan Jobs running (no terminal condition in the Job cache).
    pub scan_jobs_running: Gauge,
    /// Phase Events dropped because the publisher's queue was full.
    pub events_dropped: Counter,
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
            scans_queued: Family::default(),
            scan_jobs_running: Gauge::default(),
            events_dropped: Counter::default(),
        }
    }

    /// Adds these metrics to the controller's registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "controller_reconciles",
            "Scan reconciliations, by kind and result",
            self.reconciles.clone(),
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
            "scans_queued",
            "Scans waiting for a slot to start their scan Job (--max-running-jobs, --max-running-jobs-per-namespace), by kind",
            self.scans_queued.clone(),
        );
        registry.register(
            "scan_jobs_running",
            "Scan Jobs running (without a Complete or Failed condition)",
            self.scan_jobs_running.clone(),
        );
        registry.register(
            "controller_events_dropped",
            "Phase Events dropped because the queue of their type (Warning, Normal: 1,000 each, published at --event-qps) was full",
            self.events_dropped.clone(),
        );
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
        metrics.events_dropped.inc();
        metrics.set_queue(
            &std::collections::BTreeMap::from([(Kind::ImageScan, 7), (Kind::SourceScan, 0)]),
            3,
        );
        let mut registry = Registry::with_prefix("scangate");
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .unwrap_or_else(|e| panic!("{e}"));
        for expected in [
            "scangate_controller_reconciles_total{kind=\"ImageScan\",result=\"ok\"} 1",
            "scangate_controller_reconcile_errors_total{kind=\"ImageScan\"} 1",
            "scangate_controller_reconcile_duration_seconds_count{kind=\"ImageScan\"} 2",
            "scangate_controller_scans{kind=\"ImageScan\",phase=\"Failed\"} 2",
            "scangate_controller_status_writes_total{result=\"refused\"} 1",
            "scangate_controller_status_writes_total{result=\"ok\"} 1",
            "scangate_controller_api_requests_total{verb=\"patch\",resource=\"scans\"} 1",
            "scangate_scans_queued{kind=\"ImageScan\"} 7",
            "scangate_scans_queued{kind=\"SourceScan\"} 0",
            "scangate_scan_jobs_running 3",
            "scangate_controller_events_dropped_total 1",
        ] {
            assert!(text.contains(expected), "{expected} not in {text}");
        }
    }
}
