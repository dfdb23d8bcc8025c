//! Status writes that fail: how they are counted, and when they are tried again. A write the
//! apiserver refuses (scangate's status webhook denied it, a validation failed) or that did not
//! reach it is retried with exponential backoff per scan, so the status a tenant may have
//! touched is corrected as soon as the cause goes away.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelValue;

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
