//! Prometheus metrics of what runs. Labels are bounded: verdict, outcome, and the namespace of
//! running images (bounded by the cluster's namespaces, as kube-state-metrics' are; a namespace
//! that runs nothing has no series). No image label.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::inventory::RuntimeVerdict;

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

/// The metrics of the runtime view and of first-sight scans.
pub struct Metrics {
    pub running_images: Family<RunningLabels, Gauge>,
    pub oldest_result_age: Gauge<f64, AtomicU64>,
    /// First-sight scans, by outcome.
    pub first_sight: Family<FirstSightLabels, Counter>,
    /// When the oldest result deciding a running image was recorded (Unix seconds), or
    /// `i64::MIN` when none does.
    oldest_result_at: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            running_images: Family::default(),
            oldest_result_age: Gauge::default(),
            first_sight: Family::default(),
            oldest_result_at: AtomicI64::new(i64::MIN),
        }
    }
}

impl Metrics {
    /// Adds these metrics to the controller's registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "first_sight_scans",
            "Scans on first sight of images running pods run with no trusted result, by outcome \
             (created, exists, limited, failed, deleted)",
            self.first_sight.clone(),
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
    }

    pub fn count_first_sight(&self, outcome: FirstSightOutcome) {
        self.first_sight
            .get_or_create(&FirstSightLabels { outcome })
            .inc();
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

    /// Forgets what ran: only the leader's inventory says what runs.
    pub fn clear(&self) {
        self.running_images.clear();
        self.set_oldest_result(None);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_running_images_by_namespace_and_verdict_and_the_oldest_results_age() {
        let metrics = Metrics::default();
        let counts = std::collections::BTreeMap::from([(RuntimeVerdict::fail, 2)]);
        metrics.set_running_images("shop", &counts, false);
        metrics.set_running_images("gone", &counts, false);
        metrics.set_running_images("gone", &counts, true);
        metrics.count_first_sight(FirstSightOutcome::created);
        let recorded: jiff::Timestamp = "2026-01-01T00:00:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        metrics.set_oldest_result(Some(recorded));
        metrics.refresh_result_age(
            "2026-01-01T00:01:40Z"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let mut registry = Registry::with_prefix("scangate");
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .unwrap_or_else(|e| panic!("{e}"));
        for expected in [
            "scangate_running_images{namespace=\"shop\",verdict=\"fail\"} 2",
            "scangate_running_images{namespace=\"shop\",verdict=\"pass\"} 0",
            "scangate_oldest_result_age_seconds 100.0",
            "scangate_first_sight_scans_total{outcome=\"created\"} 1",
        ] {
            assert!(text.contains(expected), "{expected} not in {text}");
        }
        assert!(!text.contains("gone"), "{text}");
        metrics.clear();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!text.contains("shop"), "{text}");
    }
}
