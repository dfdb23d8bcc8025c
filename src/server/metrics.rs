//! Prometheus metrics of the webhook: admission reviews answered and their latency, the scans
//! in its index, the serving certificate's expiry and reloads, admission config reloads.
//! Labels are bounded: endpoint, kind (a workload or scangate kind, else `other`), verdict,
//! mode and result; never an image or an object name.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::admission::pod::WorkloadKind;

/// The webhook's endpoints.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // label values as Prometheus users write them
pub enum Endpoint {
    validate_workloads,
    validate_scanning,
    mutate_scan_status,
    mutate_exceptions,
    mutate_reports,
    mutate_pin,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub endpoint: Endpoint,
    pub kind: KindLabel,
    /// allow, warn, deny, skip, error, or pass (a pod a built-in controller created for an
    /// admitted template, admitted although its image's verdict has turned); pin or skip for
    /// digest pinning.
    pub verdict: &'static str,
    /// enforce, warn or audit (for workloads), `none` otherwise.
    pub mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: Endpoint,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok` or `error`.
    pub result: String,
}

/// The kinds scangate defines.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ScangateKind {
    ImageScan,
    SourceScan,
    ScanTemplate,
    ScanPolicy,
    ScanException,
}

impl ScangateKind {
    const ALL: [ScangateKind; 5] = [
        ScangateKind::ImageScan,
        ScangateKind::SourceScan,
        ScangateKind::ScanTemplate,
        ScangateKind::ScanPolicy,
        ScangateKind::ScanException,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ScangateKind::ImageScan => "ImageScan",
            ScangateKind::SourceScan => "SourceScan",
            ScangateKind::ScanTemplate => "ScanTemplate",
            ScangateKind::ScanPolicy => "ScanPolicy",
            ScangateKind::ScanException => "ScanException",
        }
    }
}

/// A request's kind as a bounded label value: a workload or scangate kind, or `other`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum KindLabel {
    Workload(WorkloadKind),
    Scangate(ScangateKind),
    Other,
}

impl KindLabel {
    /// The label of a request's `kind`.
    pub fn of(kind: &str) -> Self {
        if let Some(workload) = WorkloadKind::from_kind(kind) {
            return KindLabel::Workload(workload);
        }
        ScangateKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind)
            .map_or(KindLabel::Other, KindLabel::Scangate)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KindLabel::Workload(kind) => kind.as_str(),
            KindLabel::Scangate(kind) => kind.as_str(),
            KindLabel::Other => "other",
        }
    }
}

impl EncodeLabelValue for KindLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        self.as_str().encode(encoder)
    }
}

fn latency_histogram() -> Histogram {
    // 0.1 ms to about 3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Every metric the webhook exports.
pub struct Metrics {
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    pub index_scans: Gauge,
    pub certificate_expiry: Gauge,
    pub certificate_reloads: Family<ResultLabels, Counter>,
    pub config_reloads: Family<ResultLabels, Counter>,
    pub config_valid: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Metrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            index_scans: Gauge::default(),
            certificate_expiry: Gauge::default(),
            certificate_reloads: Family::default(),
            config_reloads: Family::default(),
            config_valid: Gauge::default(),
        }
    }

    /// A registry exporting these metrics under the `scangate` prefix.
    pub fn registry(&self) -> Registry {
        let mut registry = Registry::with_prefix("scangate");
        registry.register(
            "admission_requests",
            "Admission reviews answered, by endpoint, kind, verdict and enforcement mode",
            self.requests.clone(),
        );
        registry.register(
            "admission_duration_seconds",
            "Time to answer an admission review, from decoded body to encoded answer",
            self.duration.clone(),
        );
        registry.register(
            "scan_index_scans",
            "ImageScans in the webhook's index",
            self.index_scans.clone(),
        );
        registry.register(
            "tls_certificate_expiry_timestamp_seconds",
            "When the serving certificate expires (Unix time)",
            self.certificate_expiry.clone(),
        );
        registry.register(
            "tls_certificate_reloads",
            "Reloads of the serving certificate, by result",
            self.certificate_reloads.clone(),
        );
        registry.register(
            "config_reloads",
            "Reloads of the admission config file, by result",
            self.config_reloads.clone(),
        );
        registry.register(
            "config_valid",
            "1 when the last read of the admission config file succeeded, 0 when the last good config is in use",
            self.config_valid.clone(),
        );
        registry
    }

    pub fn count_reload(family: &Family<ResultLabels, Counter>, ok: bool) {
        family
            .get_or_create(&ResultLabels {
                result: if ok { "ok" } else { "error" }.into(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_bounded() {
        assert_eq!(
            KindLabel::of("Deployment"),
            KindLabel::Workload(WorkloadKind::Deployment)
        );
        assert_eq!(KindLabel::of("ScanPolicy").as_str(), "ScanPolicy");
        assert_eq!(KindLabel::of("my-app-prod-7f9c"), KindLabel::Other);
        for kind in ScangateKind::ALL {
            assert_eq!(KindLabel::of(kind.as_str()).as_str(), kind.as_str());
        }
    }

    #[test]
    fn exports_in_prometheus_text_format() {
        let metrics = Metrics::new();
        metrics
            .requests
            .get_or_create(&RequestLabels {
                endpoint: Endpoint::validate_workloads,
                kind: KindLabel::Workload(WorkloadKind::Pod),
                verdict: "deny",
                mode: "enforce",
            })
            .inc();
        metrics
            .duration
            .get_or_create(&EndpointLabels {
                endpoint: Endpoint::validate_workloads,
            })
            .observe(0.002);
        metrics.index_scans.set(3);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(text.contains(
            "scangate_admission_requests_total{endpoint=\"validate_workloads\",kind=\"Pod\",verdict=\"deny\",mode=\"enforce\"} 1"
        ), "{text}");
        assert!(text.contains("scangate_scan_index_scans 3"), "{text}");
        assert!(
            text.contains(
                "scangate_admission_duration_seconds_count{endpoint=\"validate_workloads\"} 1"
            ),
            "{text}"
        );
    }
}
