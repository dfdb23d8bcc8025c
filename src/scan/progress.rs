//! `status.progress`: where each stage of a scan's round stands (resolve, queue, scan, report,
//! evaluate), as one pure function of the round's state, which the status planner
//! ([`super::status::desired_status`]) knows, and of the previous progress (for `since`).
//!
//! What each stage means for each kind of round:
//!
//! | stage | Job from a ScanTemplate | report pushed (`scangate report`) | attestation |
//! |---|---|---|---|
//! | Resolve | the tag resolved to a digest before the Job (done at once for a digest, or with tag resolution off) | done | done (the registry look names the digest) |
//! | Queue | waiting for a slot (`--max-running-jobs`) | done | done |
//! | Scan | the Job runs | done once a report is there | fetch and verify the attestation |
//! | Report | the report is read and stored | the report is read | the predicate is read |
//! | Evaluate | the policy judges the report (done with issues while findings wait for review) | same | same |

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{Stage, StageProgress, StageState};

/// The stages, in the order they run.
pub const STAGES: [Stage; 5] = [
    Stage::Resolve,
    Stage::Queue,
    Stage::Scan,
    Stage::Report,
    Stage::Evaluate,
];

/// What kind of round the scan runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Round {
    /// A scan Job from the scan's ScanTemplate; `resolves`: the image's tag is resolved to a
    /// digest before the Job starts.
    Job { resolves: bool },
    /// No template: the report is pushed with `scangate report`.
    Pushed,
    /// `resultsFrom: Attestation`: signed attestations in the image's registry.
    Attestation,
}

/// How the policy evaluation of a finished round went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evaluated {
    /// A verdict (compliant or not), or no policy judges the report.
    Done,
    /// The verdict decided before stands, but this evaluation gave no answer.
    Kept,
    /// Findings wait for an approver's review (`PolicySucceeded=False/UnderReview`).
    UnderReview,
    /// No verdict: the policy is missing, invalid or could not be evaluated.
    Failed,
}

/// Where the round stands, as the status planner sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// Nothing ran yet.
    NotStarted,
    /// Waiting for a slot.
    Queued,
    /// The tag could not be resolved.
    ResolveFailed,
    /// The scan cannot run (its ScanTemplate is missing or refused).
    Unrunnable,
    /// The scan Job runs.
    Running,
    /// Paused by `spec.suspend`; `job`: its Job had started (else it was queued).
    Paused { job: bool },
    /// Canceled for good.
    Canceled,
    /// The scan Job failed.
    ScanFailed,
    /// The scanner finished, but its report cannot be used.
    ReportFailed,
    /// An attestation scan has no usable attestation.
    NoAttestation,
    /// A report is there and was judged. `scan_errors`: the scanner said it could not read
    /// part of the target; `not_resolved_again`: the tag's scheduled re-resolution failed (the
    /// result stands).
    Finished {
        scan_errors: bool,
        not_resolved_again: bool,
        evaluated: Evaluated,
    },
}

/// The progress of a round: one entry per stage, in order. A stage keeps its `since` while
/// its state does not change. Paused turns every stage not done into `Paused` and Canceled
/// into `Canceled`, keeping those done.
pub fn progress(
    round: Round,
    at: At,
    previous: &[StageProgress],
    now: Timestamp,
) -> Vec<StageProgress> {
    use StageState::*;
    let states = states(round, at, previous);
    STAGES
        .iter()
        .zip(states)
        .map(|(&stage, state)| {
            let kept = previous
                .iter()
                .find(|p| p.stage == stage && p.state == state)
                .and_then(|p| p.since.clone());
            StageProgress {
                stage,
                state,
                since: kept.or(Some(Time(now))),
            }
        })
        .map(|mut p| {
            if p.state == NotStarted {
                p.since = None;
            }
            p
        })
        .collect()
}

/// The state of each stage, in [`STAGES`] order.
fn states(round: Round, at: At, previous: &[StageProgress]) -> [StageState; 5] {
    use StageState::*;
    // Stages a round without a Job of its own has done before anything else happens.
    let (resolve, queue) = match round {
        Round::Job { resolves: true } => (NotStarted, NotStarted),
        Round::Job { resolves: false } => (Done, NotStarted),
        Round::Pushed | Round::Attestation => (Done, Done),
    };
    let was = |stage: Stage| previous.iter().find(|p| p.stage == stage).map(|p| p.state);
    match at {
        At::NotStarted => match round {
            Round::Job { .. } => [resolve, NotStarted, NotStarted, NotStarted, NotStarted],
            _ => [NotStarted; 5],
        },
        At::Queued => [resolve, Running, NotStarted, NotStarted, NotStarted],
        At::ResolveFailed => [Failed, NotStarted, NotStarted, NotStarted, NotStarted],
        At::Unrunnable => [resolve, queue, Failed, NotStarted, NotStarted],
        At::Running => [Done, Done, Running, NotStarted, NotStarted],
        At::Paused { job } => {
            let base = if job {
                [Done, Done, Running, NotStarted, NotStarted]
            } else {
                [resolve, Running, NotStarted, NotStarted, NotStarted]
            };
            base.map(|s| if s == Done { Done } else { Paused })
        }
        At::Canceled => {
            // The stages done before the cancel stay done.
            let mut states = [Canceled; 5];
            for (state, stage) in states.iter_mut().zip(STAGES) {
                if was(stage) == Some(Done) {
                    *state = Done;
                }
            }
            states
        }
        At::ScanFailed => [Done, Done, Failed, NotStarted, NotStarted],
        At::ReportFailed => [Done, Done, Done, Failed, NotStarted],
        At::NoAttestation => [Done, Done, Failed, NotStarted, NotStarted],
        At::Finished {
            scan_errors,
            not_resolved_again,
            evaluated,
        } => {
            let read = if scan_errors { DoneWithIssues } else { Done };
            let resolved = if not_resolved_again {
                DoneWithIssues
            } else {
                Done
            };
            let evaluate = match evaluated {
                Evaluated::Done => Done,
                Evaluated::Kept | Evaluated::UnderReview => DoneWithIssues,
                Evaluated::Failed => Failed,
            };
            [resolved, Done, read, read, evaluate]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StageState::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    const T0: &str = "2026-01-01T00:00:00Z";
    const T1: &str = "2026-01-01T01:00:00Z";

    fn states_of(p: &[StageProgress]) -> Vec<StageState> {
        p.iter().map(|s| s.state).collect()
    }

    const JOB_BY_TAG: Round = Round::Job { resolves: true };
    const JOB_BY_DIGEST: Round = Round::Job { resolves: false };

    fn finished(scan_errors: bool, evaluated: Evaluated) -> At {
        At::Finished {
            scan_errors,
            not_resolved_again: false,
            evaluated,
        }
    }

    #[test]
    fn every_stage_is_listed_in_order() {
        let p = progress(JOB_BY_TAG, At::Running, &[], ts(T0));
        assert_eq!(p.iter().map(|s| s.stage).collect::<Vec<_>>(), STAGES);
    }

    #[test]
    fn a_digest_is_resolved_at_once_a_tag_only_before_its_job() {
        let queued_tag = progress(JOB_BY_TAG, At::Queued, &[], ts(T0));
        assert_eq!(
            states_of(&queued_tag),
            [NotStarted, Running, NotStarted, NotStarted, NotStarted]
        );
        let queued_digest = progress(JOB_BY_DIGEST, At::Queued, &[], ts(T0));
        assert_eq!(
            states_of(&queued_digest),
            [Done, Running, NotStarted, NotStarted, NotStarted]
        );
        let failed = progress(JOB_BY_TAG, At::ResolveFailed, &[], ts(T0));
        assert_eq!(failed[0].state, Failed);
    }

    #[test]
    fn a_job_round_runs_through_the_stages() {
        assert_eq!(
            states_of(&progress(JOB_BY_TAG, At::Running, &[], ts(T0))),
            [Done, Done, Running, NotStarted, NotStarted]
        );
        assert_eq!(
            states_of(&progress(JOB_BY_TAG, At::ScanFailed, &[], ts(T0))),
            [Done, Done, Failed, NotStarted, NotStarted]
        );
        assert_eq!(
            states_of(&progress(JOB_BY_TAG, At::ReportFailed, &[], ts(T0))),
            [Done, Done, Done, Failed, NotStarted]
        );
        assert_eq!(
            states_of(&progress(
                JOB_BY_TAG,
                finished(false, Evaluated::Done),
                &[],
                ts(T0)
            )),
            [Done; 5]
        );
        assert_eq!(
            states_of(&progress(
                JOB_BY_TAG,
                finished(false, Evaluated::Failed),
                &[],
                ts(T0)
            )),
            [Done, Done, Done, Done, Failed]
        );
        assert_eq!(
            states_of(&progress(
                JOB_BY_TAG,
                finished(false, Evaluated::Kept),
                &[],
                ts(T0)
            )),
            [Done, Done, Done, Done, DoneWithIssues]
        );
    }

    #[test]
    fn scan_errors_make_scan_and_report_done_with_issues() {
        let p = progress(JOB_BY_TAG, finished(true, Evaluated::Done), &[], ts(T0));
        assert_eq!(
            states_of(&p),
            [Done, Done, DoneWithIssues, DoneWithIssues, Done]
        );
        let again = progress(
            JOB_BY_TAG,
            At::Finished {
                scan_errors: false,
                not_resolved_again: true,
                evaluated: Evaluated::Done,
            },
            &[],
            ts(T0),
        );
        assert_eq!(again[0].state, DoneWithIssues);
    }

    #[test]
    fn pushed_and_attested_rounds_have_no_resolve_or_queue_of_their_own() {
        for round in [Round::Pushed, Round::Attestation] {
            assert_eq!(
                states_of(&progress(round, At::NotStarted, &[], ts(T0))),
                [NotStarted; 5]
            );
            assert_eq!(
                states_of(&progress(
                    round,
                    finished(false, Evaluated::Done),
                    &[],
                    ts(T0)
                )),
                [Done; 5]
            );
        }
        // An attestation's Scan is fetching and verifying it.
        assert_eq!(
            states_of(&progress(
                Round::Attestation,
                At::NoAttestation,
                &[],
                ts(T0)
            )),
            [Done, Done, Failed, NotStarted, NotStarted]
        );
    }

    #[test]
    fn paused_greys_what_is_not_done_canceled_darkens_it() {
        let running = progress(JOB_BY_TAG, At::Running, &[], ts(T0));
        let paused = progress(JOB_BY_TAG, At::Paused { job: true }, &running, ts(T1));
        assert_eq!(states_of(&paused), [Done, Done, Paused, Paused, Paused]);
        let queued_then_paused = progress(JOB_BY_TAG, At::Paused { job: false }, &[], ts(T1));
        assert_eq!(
            states_of(&queued_then_paused),
            [Paused, Paused, Paused, Paused, Paused]
        );
        let canceled = progress(JOB_BY_TAG, At::Canceled, &paused, ts(T1));
        assert_eq!(
            states_of(&canceled),
            [Done, Done, Canceled, Canceled, Canceled]
        );
    }

    #[test]
    fn a_stage_keeps_its_since_while_its_state_holds() {
        let running = progress(JOB_BY_TAG, At::Running, &[], ts(T0));
        let later = progress(JOB_BY_TAG, At::Running, &running, ts(T1));
        assert_eq!(later, running);
        let done = progress(
            JOB_BY_TAG,
            finished(false, Evaluated::Done),
            &running,
            ts(T1),
        );
        // Resolve and Queue were done already: their times stay; Scan changed at T1.
        assert_eq!(done[0].since, Some(Time(ts(T0))));
        assert_eq!(done[2].since, Some(Time(ts(T1))));
        // A stage not started has no time.
        assert_eq!(running[3].since, None);
    }
}
