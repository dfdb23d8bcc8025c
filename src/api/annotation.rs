//! The annotations users (the CLI, the results page, `kubectl annotate`) set on a scan to ask
//! the controller for something, and the one the page records its writes with.

/// Any new value of this annotation on a scan rescans it now (`kubectl scangate rescan`).
pub const RESCAN: &str = "scangate.dev/rescan";

/// Any new value of this annotation on a scan re-evaluates its stored report now, without a
/// new scan (`kubectl scangate reevaluate`).
pub const REEVALUATE: &str = "scangate.dev/reevaluate";

/// Any new value of this annotation on a scan cancels its current round for good: it is not
/// restarted by unsuspending; only a rescan starts a new round.
pub const CANCEL: &str = "scangate.dev/cancel";

/// Who asked for a change on the results page, what and when (`USER asked to ACTION on the
/// results page at T`).
pub const REQUESTED_BY: &str = "scangate.dev/requested-by";
