//! Status writes that fail: how they are counted, and when they are tried again. A write the
//! apiserver refuses (scangate's status webhook denied it, a validation failed) or that did not
//! reach it is retried with exponential backoff per scan, so the status a tenant may have
//! touched is corrected as soon as the cause goes away. And status writes that succeed: what
//! was written, until the scan's watch shows it ([`Written`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelValue;

use crate::api::ScanStatus;

/// The statuses this controller wrote that the scans' watch may not have shown yet, by scan
/// (`kind/namespace/name`). It serves twice:
/// - a reconcile that starts before the watch shows its own last write plans over the status it
///   wrote, not the older one in the cache ([`Written::status_over`]);
/// - the reconcile of that write's own watch event (the object at the resourceVersion the
///   apiserver answered the write with) ends at once ([`Written::echo`]) when the reconcile that
///   wrote it planned the round after it and found nothing to do but wake up later. Any other
///   change (another resourceVersion) reconciles as usual.
#[derive(Debug, Default)]
pub struct Written(Mutex<HashMap<String, Write>>);

/// One status write that succeeded.
#[derive(Clone, Debug)]
struct Write {
    /// The resourceVersion of the scan the write was planned from.
    over: Option<String>,
    /// The resourceVersion the apiserver answered the write with, once the reconcile that
    /// wrote it found the next round would have nothing to do.
    echo: Option<String>,
    /// When that round would come back on its own.
    wake: Option<Instant>,
    status: ScanStatus,
}

impl Written {
    /// Notes a write of `status` over the scan at `over`.
    pub fn record(&self, key: String, over: Option<String>, status: ScanStatus) {
        let write = Write {
            over,
            echo: None,
            wake: None,
            status,
        };
        self.lock().insert(key, write);
    }

    /// The write's own watch event, at `echo`, need not be reconciled: the round after it
    /// only comes back at `wake`.
    pub fn expect_echo(&self, key: &str, echo: Option<String>, wake: Option<Instant>) {
        if let Some(write) = self.lock().get_mut(key) {
            write.echo = echo;
            write.wake = wake;
        }
    }

    /// The status to plan over for the scan at `resource_version`: the one written over that
    /// version while the cache still shows it; `None` otherwise (the cache's status is the
    /// latest), and the note goes.
    pub fn status_over(&self, key: &str, resource_version: Option<&str>) -> Option<ScanStatus> {
        let mut writes = self.lock();
        match writes.get(key) {
            Some(write) if write.over.as_deref() == resource_version => Some(write.status.clone()),
            Some(_) => {
                writes.remove(key);
                None
            }
            None => None,
        }
    }

    /// When the scan at `resource_version` is what this controller's last write of its status
    /// made, and that write's round found nothing left to do: `Some` with when to come back.
    /// The note goes (the cache now shows the write).
    pub fn echo(&self, key: &str, resource_version: Option<&str>) -> Option<Option<Instant>> {
        let mut writes = self.lock();
        let write = writes.get(key)?;
        if resource_version.is_none() || write.echo.as_deref() != resource_version {
            return None;
        }
        let wake = write.wake;
        writes.remove(key);
        Some(wake)
    }

    /// Forgets the scan (it is being deleted).
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Write>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The outcome of one status write, the `result` label of
/// `scangate_controller_status_writes_total`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // label values as Prometheus users write them
pub enum StatusWrite {
    ok,
    /// The apiserver answered 4xx (other than 429): it, or an admission webhook, refused it.
    refused,
    /// No answer, a 5xx or 429 (throttled), or a transport error.
    error,
}

/// How a failed status write is counted, from the apiserver's HTTP status if it answered.
pub fn classify(code: Option<u16>) -> StatusWrite {
    match code {
        Some(429) => StatusWrite::error,
        Some(400..=499) => StatusWrite::refused,
        _ => StatusWrite::error,
    }
}

/// The first retry of a failed status write comes after this long.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);

/// How long to wait after the `failures`-th failed write in a row (1 for the first): 1 s,
/// doubled each time, at most `cap` (the controller's `--error-retry`).
pub fn backoff(failures: u32, cap: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(30);
    FIRST_RETRY
        .saturating_mul(1 << doublings)
        .min(cap.max(FIRST_RETRY))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Phase;

    fn failed() -> ScanStatus {
        ScanStatus {
            phase: Some(Phase::Failed),
            ..ScanStatus::default()
        }
    }

    #[test]
    fn a_reconcile_before_the_watch_shows_the_write_plans_over_the_written_status() {
        let written = Written::default();
        let key = "ImageScan/ns/a";
        written.record(key.into(), Some("10".into()), failed());
        written.expect_echo(key, Some("11".into()), None);
        // The cache still shows the scan the write was planned from.
        assert_eq!(written.status_over(key, Some("10")), Some(failed()));
        assert_eq!(written.status_over(key, Some("10")), Some(failed()));
        // It shows a newer one: its status is the latest; the note goes.
        assert_eq!(written.status_over(key, Some("12")), None);
        assert_eq!(written.echo(key, Some("11")), None);
    }

    #[test]
    fn only_the_version_the_write_was_answered_with_is_its_echo() {
        let written = Written::default();
        let key = "ImageScan/ns/a";
        written.record(key.into(), Some("10".into()), failed());
        // Until the reconcile that wrote it says the next round is idle, its event reconciles.
        assert_eq!(written.echo(key, Some("11")), None);
        let wake = Instant::now() + Duration::from_secs(60);
        written.expect_echo(key, Some("11".into()), Some(wake));
        // Another change (someone else's edit, a relisted older version) reconciles.
        assert_eq!(written.echo(key, Some("12")), None);
        assert_eq!(written.echo(key, None), None);
        assert_eq!(written.echo("ImageScan/ns/b", Some("11")), None);
        // The write's own event does not, once, and keeps the wake-up.
        assert_eq!(written.echo(key, Some("11")), Some(Some(wake)));
        assert_eq!(written.echo(key, Some("11")), None);
        // Nothing is left to plan over: the cache shows the write.
        assert_eq!(written.status_over(key, Some("11")), None);
    }

    #[test]
    fn a_write_answered_without_a_version_has_no_echo() {
        let written = Written::default();
        written.record("k".into(), Some("1".into()), failed());
        written.expect_echo("k", None, None);
        assert_eq!(written.echo("k", None), None);
        written.forget("k");
        assert_eq!(written.status_over("k", Some("1")), None);
    }

    #[test]
    fn refusals_are_four_hundreds_other_than_throttling() {
        assert_eq!(classify(Some(403)), StatusWrite::refused);
        assert_eq!(classify(Some(400)), StatusWrite::refused);
        assert_eq!(classify(Some(422)), StatusWrite::refused);
        assert_eq!(classify(Some(429)), StatusWrite::error);
        assert_eq!(classify(Some(500)), StatusWrite::error);
        assert_eq!(classify(None), StatusWrite::error);
    }

    #[test]
    fn backoff_doubles_from_one_second_up_to_the_cap() {
        let cap = Duration::from_secs(30);
        let delays: Vec<u64> = (1..=7).map(|n| backoff(n, cap).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(backoff(u32::MAX, cap), cap);
        // A cap below the first retry does not make it shorter.
        assert_eq!(backoff(1, Duration::from_millis(10)), FIRST_RETRY);
    }
}
