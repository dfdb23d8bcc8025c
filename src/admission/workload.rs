//! The workload decision: may the images of these pods run? One pure function serves the
//! webhook (`/validate/workloads`) and `scangate check`. Every image a pod would pull is
//! decided: its containers of every kind and its image volumes.

use std::fmt::Write as _;

use super::config::{Action, AdmissionConfig, Enforcement, Origin};
use super::pin;
use super::pod::Container;
use crate::api::{Phase, VexStatus, Violation, under_review};
use crate::image::ImageRef;
use jiff::Timestamp;

use crate::index::{Exception, Found, Inactive, IndexedScan, ScanIndex};

/// What scangate knows about an image.
#[derive(Clone, Debug, PartialEq)]
pub enum ImageState {
    /// The newest trusted scan, in its phase.
    Scanned(Box<IndexedScan>),
    /// No trusted scan of this digest or tag.
    Unscanned,
    /// The reference cannot be parsed.
    Invalid(String),
}

/// The verdict for one container.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerVerdict {
    pub container: String,
    /// The normalized reference (or the raw one when it cannot be parsed).
    pub image: String,
    pub state: ImageState,
    /// The exception that admitted the image, if one did.
    pub exception: Option<String>,
    /// The result the verdict comes from: the trusted scan, or the namespace's own scan when
    /// it was stricter; `None` when no scan decided (unscanned, invalid reference).
    pub decided_by: Option<Decider>,
    /// What the rules say, before the namespace's enforcement mode.
    pub action: Action,
    /// One line saying why.
    pub reason: String,
}

/// The scan a verdict comes from, and what it counts for in the workload's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decider {
    pub origin: Origin,
    pub namespace: String,
    pub name: String,
}

impl Decider {
    fn of(scan: &IndexedScan, origin: Origin) -> Self {
        Decider {
            origin,
            namespace: scan.namespace.clone(),
            name: scan.name.clone(),
        }
    }
}

/// The decision for a whole workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    pub enforcement: Enforcement,
    /// The denial message, when not allowed.
    pub message: Option<String>,
    /// Admission warnings (kubectl prints them).
    pub warnings: Vec<String>,
    pub verdicts: Vec<ContainerVerdict>,
}

impl Decision {
    /// The verdict name for metrics and the CLI: `allow`, `warn` or `deny` (what the rules said,
    /// whatever the mode made of it).
    pub fn verdict(&self) -> Action {
        let worst = |a: Action| self.verdicts.iter().any(|v| v.action == a);
        if worst(Action::Deny) {
            Action::Deny
        } else if worst(Action::Warn) {
            Action::Warn
        } else {
            Action::Allow
        }
    }
}

/// Everything the decision reads besides the containers.
pub struct Context<'a> {
    pub config: &'a AdmissionConfig,
    pub index: &'a ScanIndex,
    /// Every exception; the ones expired at `now` do nothing.
    pub exceptions: &'a [Exception],
    /// The workload's namespace.
    pub namespace: &'a str,
    pub enforcement: Enforcement,
    /// The time exceptions are checked against.
    pub now: Timestamp,
    /// Admission pins tags in this namespace (`/mutate/pin`): a tag-only reference is decided
    /// through the digest it is pinned to, so the tag's age does not matter.
    pub pins_tags: bool,
}

/// How many CVEs a denial lists.
const TOP_CVES: usize = 5;

/// Decides whether the containers may run.
pub fn decide(ctx: &Context<'_>, containers: &[Container]) -> Decision {
    let verdicts: Vec<ContainerVerdict> = containers.iter().map(|c| verdict(ctx, c)).collect();
    let denials: Vec<&ContainerVerdict> = verdicts
        .iter()
        .filter(|v| v.action == Action::Deny)
        .collect();
    // An exception's admission is said out loud: who approved it, and until when.
    let mut warnings: Vec<String> = verdicts
        .iter()
        .filter(|v| v.action == Action::Warn || v.exception.is_some())
        .map(|v| v.reason.clone())
        .collect();
    let denial = (!denials.is_empty()).then(|| denial_message(&denials));
    let (allowed, message) = match (ctx.enforcement, denial) {
        (_, None) => (true, None),
        (Enforcement::Enforce, Some(message)) => (false, Some(message)),
        (Enforcement::Warn, Some(message)) => {
            warnings.insert(
                0,
                format!(
                    "namespace {} is in warn mode; this would be denied: {message}",
                    ctx.namespace
                ),
            );
            (true, None)
        }
        (Enforcement::Audit, Some(_)) => (true, None),
    };
    if ctx.enforcement == Enforcement::Audit {
        warnings.clear();
    }
    Decision {
        allowed,
        enforcement: ctx.enforcement,
        message,
        warnings,
        verdicts,
    }
}

/// Where admission pins a tag (`/mutate/pin`): to the digest a node pulls for the content its
/// trusted result judged (an index or a manifest, never an image config), when that reference
/// is admitted here without a warning and without an exception. `None` for a reference that
/// has a digest already, or cannot be parsed.
pub fn pin_target(ctx: &Context<'_>, container: &Container) -> Option<pin::Target> {
    let image = ImageRef::parse(&container.image).ok()?;
    if image.digest().is_some() {
        return None;
    }
    let canonical = ctx.config.registry_aliases.canonicalize(&image);
    let found = ctx
        .index
        .lookup(&canonical, |ns| ctx.config.origin(ctx.namespace, ns));
    let scan = found.trusted.result?;
    let digest = scan.pull_digest()?;
    let pinned = Container {
        image: image.with_digest(digest).ok()?.to_string(),
        ..container.clone()
    };
    let verdict = verdict(ctx, &pinned);
    (verdict.action == Action::Allow && verdict.exception.is_none()).then(|| pin::Target {
        digest: digest.to_string(),
        scan: format!("{}/{}", scan.namespace, scan.name),
    })
}

/// Why an exception that names an image does not count for it in a workload's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// It applies nowhere now.
    Inactive(Inactive),
    /// It is in another namespace than the workload's, and not scangate's.
    OtherNamespace,
}

/// Whether `exception` counts for the (canonical) `image` in the context's namespace: `None`
/// when it does not name the image, else whether it counts and, when not, why. The one
/// place the decision and `scangate check` take this from.
fn standing(
    ctx: &Context<'_>,
    exception: &Exception,
    image: &ImageRef,
    max_duration: std::time::Duration,
) -> Option<Result<(), Ignored>> {
    if !exception.matches(image) {
        return None;
    }
    // Another namespace's exception is told as such: approving or renewing it would not help.
    if !ctx
        .config
        .exception_counts(ctx.namespace, &exception.namespace)
    {
        return Some(Err(Ignored::OtherNamespace));
    }
    Some(match exception.inactive(ctx.now, max_duration) {
        Some(inactive) => Err(Ignored::Inactive(inactive)),
        None => Ok(()),
    })
}

/// The exceptions that name the container's image but do not count for it here, and why
/// (none for a reference that cannot be parsed: no exception can name it).
pub fn ignored_exceptions<'e>(
    ctx: &Context<'e>,
    container: &Container,
) -> Vec<(&'e Exception, Ignored)> {
    let Ok(parsed) = ImageRef::parse(&container.image) else {
        return vec![];
    };
    let image = ctx.config.registry_aliases.canonicalize(&parsed);
    let max_duration = ctx.config.exception_max_duration().unwrap_or_default();
    ctx.exceptions
        .iter()
        .filter_map(|e| match standing(ctx, e, &image, max_duration)? {
            Ok(()) => None,
            Err(why) => Some((e, why)),
        })
        .collect()
}

fn verdict(ctx: &Context<'_>, container: &Container) -> ContainerVerdict {
    let who = container.describe();
    let parsed = match ImageRef::parse(&container.image) {
        Ok(image) => image,
        Err(e) => {
            return ContainerVerdict {
                container: container.name.clone(),
                image: container.image.clone(),
                state: ImageState::Invalid(e.to_string()),
                exception: None,
                decided_by: None,
                action: Action::Deny,
                reason: format!("{who}: {e}; scangate cannot tell which scan applies"),
            };
        }
    };
    let config = ctx.config;
    let image = config.registry_aliases.canonicalize(&parsed);
    // An invalid bound cannot be loaded (the config is checked), and zero admits nothing.
    let max_duration = config.exception_max_duration().unwrap_or_default();
    // Every exception and VEX statement that counts here: those that admit, and those that
    // only speak of a review (judge tells them apart).
    let exceptions: Vec<&Exception> = ctx
        .exceptions
        .iter()
        .filter(|e| standing(ctx, e, &image, max_duration) == Some(Ok(())))
        .collect();
    let found = ctx
        .index
        .lookup(&image, |ns| config.origin(ctx.namespace, ns));
    let trusted = found.trusted.result;
    let judged = match (trusted, stale(ctx, &found)) {
        (Some(scan), Some(staleness)) if scan.phase == Phase::Completed => Judged {
            action: config.on_unscanned,
            reason: staleness.reason(&who, &image, scan, config),
            exception: None,
            decided_by: None,
        },
        (None, _) => Judged {
            action: config.on_unscanned,
            reason: format!(
                "{who}: image {image} has no trusted scan (trusted: {})",
                trusted_sources(config, ctx.namespace)
            ),
            exception: None,
            decided_by: None,
        },
        (Some(scan), _) => judge(ctx, &who, scan, Origin::Trusted, &exceptions),
    };
    // The same bytes judged under another name, and an index's platforms, can only make it
    // worse; so can the namespace's own scans.
    // Formatted only for the bytes' other names, which most images do not have.
    let pulled_as = || format!("{who} (pulled as {image})");
    let stricter = found
        .trusted
        .tied_denials
        .iter()
        .map(|scan| judge(ctx, &pulled_as(), scan, Origin::Trusted, &exceptions))
        .chain(
            found
                .namespace
                .result
                .filter(|scan| matches!(scan.phase, Phase::Failed | Phase::Error))
                .map(|scan| judge(ctx, &who, scan, Origin::Namespace, &exceptions)),
        )
        .chain(
            found
                .namespace
                .tied_denials
                .iter()
                .map(|scan| judge(ctx, &pulled_as(), scan, Origin::Namespace, &exceptions)),
        );
    let judged = stricter.fold(judged, |worst, other| {
        if strictness(other.action) > strictness(worst.action) {
            other
        } else {
            worst
        }
    });
    // A whole-image exception also admits images that are unscanned, pending or in error.
    let whole_image = exceptions.iter().find(|e| e.covers_whole_image());
    let judged = match (judged.action, whole_image, &judged.exception) {
        (Action::Deny | Action::Warn, Some(e), None) => Judged {
            action: Action::Allow,
            reason: format!("{}; {}", judged.reason, admitted_by(e, max_duration)),
            exception: Some(format!("{}/{}", e.namespace, e.name)),
            decided_by: judged.decided_by,
        },
        _ => judged,
    };
    let scan = trusted;
    ContainerVerdict {
        container: container.name.clone(),
        image: scan.map_or_else(|| image.to_string(), |s| s.image.to_string()),
        state: scan.map_or(ImageState::Unscanned, |s| {
            ImageState::Scanned(Box::new(s.clone()))
        }),
        exception: judged.exception,
        decided_by: judged.decided_by,
        action: judged.action,
        reason: judged.reason,
    }
}

/// Why a passing trusted result no longer speaks for a reference.
enum Staleness {
    /// Older than `maxResultAge`.
    Result { since: Timestamp },
    /// A tag alone, last known to name the judged content longer ago than `tagMaxAge`.
    Tag { seen: Timestamp, since: Timestamp },
}

impl Staleness {
    fn reason(
        &self,
        who: &str,
        image: &ImageRef,
        scan: &IndexedScan,
        config: &AdmissionConfig,
    ) -> String {
        match self {
            Staleness::Result { since } => format!(
                "{who}: image {image} has no recent trusted scan: the result of ImageScan {}/{} \
                 (scanned {}) is stale since {since}, older than maxResultAge {}; it counts as \
                 unscanned until the controller rescans it",
                scan.namespace,
                scan.name,
                scan.as_of,
                config.max_result_age.as_deref().unwrap_or_default()
            ),
            Staleness::Tag { seen, since } => format!(
                "{who}: image {image} is a tag, and the tag was last seen naming the content \
                 ImageScan {}/{} judged ({}) at {seen}, longer ago than tagMaxAge {} (since \
                 {since}): it may name other bytes now, so it counts as unscanned; use the digest \
                 ({}) or let scangate pin it (docs/admission.md, One identity per content)",
                scan.namespace,
                scan.name,
                scan.pull_digest().unwrap_or("no digest recorded"),
                config.tag_max_age,
                image
                    .with_digest(scan.pull_digest().unwrap_or_default())
                    .map_or_else(|_| image.to_string(), |pinned| pinned.to_string()),
            ),
        }
    }
}

/// Whether the trusted result found for an image is stale at `ctx.now`: the result itself
/// (`maxResultAge`), or, for a tag that admission does not pin here, the tag's last resolution
/// (`tagMaxAge`).
fn stale(ctx: &Context<'_>, found: &Found<'_>) -> Option<Staleness> {
    let scan = found.trusted.result?;
    if let Some(since) = scan
        .stale_since(ctx.config.max_result_age())
        .filter(|since| *since <= ctx.now)
    {
        return Some(Staleness::Result { since });
    }
    let seen = found.tag_seen_at.filter(|_| !ctx.pins_tags)?;
    let bound = jiff::SignedDuration::try_from(ctx.config.tag_max_age()?).ok()?;
    let since = seen.checked_add(bound).unwrap_or(Timestamp::MAX);
    (since <= ctx.now).then_some(Staleness::Tag { seen, since })
}

/// What the rules say about one container, and why.
struct Judged {
    action: Action,
    reason: String,
    exception: Option<String>,
    decided_by: Option<Decider>,
}

/// How strict an action is: a namespace scan replaces the trusted verdict only when stricter.
fn strictness(action: Action) -> u8 {
    match action {
        Action::Allow => 0,
        Action::Warn => 1,
        Action::Deny => 2,
    }
}

/// The verdict a scan gives, with its provenance in the reason.
fn judge(
    ctx: &Context<'_>,
    who: &str,
    scan: &IndexedScan,
    origin: Origin,
    exceptions: &[&Exception],
) -> Judged {
    let config = ctx.config;
    let which = provenance(scan, origin);
    let (action, reason) = match scan.phase {
        Phase::Completed => (
            Action::Allow,
            format!("{who}: image {} passed {which}", scan.image),
        ),
        Phase::Pending | Phase::Scanning => (
            config.on_pending,
            format!(
                "{who}: image {} is not scanned yet: {which} is {}",
                scan.image, scan.phase
            ),
        ),
        Phase::Error => (
            config.on_error,
            format!(
                "{who}: image {} has {which} in phase Error; see `kubectl describe imagescan -n {} {}`",
                scan.image, scan.namespace, scan.name
            ),
        ),
        Phase::Failed => {
            let max_duration = config.exception_max_duration().unwrap_or_default();
            return match covering(scan, exceptions) {
                Some(by) => Judged {
                    action: Action::Allow,
                    reason: format!(
                        "{who}: image {} failed {which} but is {}",
                        scan.image,
                        by.iter()
                            .map(|e| admitted_by(e, max_duration))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                    exception: Some(
                        by.iter()
                            .map(|e| format!("{}/{}", e.namespace, e.name))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ),
                    decided_by: Some(Decider::of(scan, origin)),
                },
                None => Judged {
                    action: Action::Deny,
                    reason: failed_reason(who, scan, &which) + &review_note(scan, exceptions),
                    exception: None,
                    decided_by: Some(Decider::of(scan, origin)),
                },
            };
        }
    };
    Judged {
        action,
        reason,
        exception: None,
        decided_by: Some(Decider::of(scan, origin)),
    }
}

/// Which scan decided, and what it is worth: `trusted scan ns/name (report: pushed by …)` or
/// `namespace scan ns/name`.
fn provenance(scan: &IndexedScan, origin: Origin) -> String {
    let mut which = match origin {
        Origin::Trusted => format!("trusted scan {}/{}", scan.namespace, scan.name),
        Origin::Namespace => format!("namespace scan {}/{}", scan.namespace, scan.name),
    };
    let mut notes = vec![];
    if let Some(source) = &scan.source {
        notes.push(format!("report: {source}"));
    }
    if scan.rescanning {
        notes.push("a rescan is running".to_string());
    }
    if !notes.is_empty() {
        let _ = write!(which, " ({})", notes.join("; "));
    }
    which
}

fn admitted_by(e: &Exception, max_duration: std::time::Duration) -> String {
    let approver = e
        .approval
        .as_ref()
        .map_or_else(String::new, |a| format!(", approved by {}", a.by));
    let until = e
        .ends(max_duration)
        .map_or_else(String::new, |t| format!(" until {t}"));
    format!(
        "admitted by ScanException {}/{}{approver}{until}",
        e.namespace, e.name
    )
}

/// Where trusted results come from for a workload in `namespace`, for messages.
fn trusted_sources(config: &AdmissionConfig, namespace: &str) -> String {
    let mut sources = vec![config.scangate_namespace.clone()];
    sources.extend(config.trusted_scan_namespaces.iter().cloned());
    if config.trust_namespace_scans {
        sources.push(namespace.to_string());
    }
    format!("scans in {}", sources.join(", "))
}

/// What a denial says of the violations that VEX statements counting here put under review:
/// empty when none are.
fn review_note(scan: &IndexedScan, exceptions: &[&Exception]) -> String {
    let statements: Vec<(VexStatus, &[String])> = exceptions
        .iter()
        .filter_map(|e| Some((e.vex?, e.cves.as_slice())))
        .collect();
    let waiting = under_review(scan.violations.iter().map(|v| v.id.as_str()), &statements);
    if waiting.is_empty() {
        return String::new();
    }
    let by: Vec<String> = exceptions
        .iter()
        .filter(|e| {
            e.vex == Some(VexStatus::UnderInvestigation) && waiting.iter().any(|c| e.names(c))
        })
        .map(|e| format!("ScanException {}/{}", e.namespace, e.name))
        .collect();
    format!(
        "; under review: {} (VEX under_investigation in {}); it stays denied until an approver \
         settles each CVE with a not_affected, affected or fixed statement (docs/vex.md)",
        waiting.join(", "),
        by.join(", ")
    )
}

/// The exceptions (matching the image, counting here) that together admit a failed scan's
/// image, if they do: one that covers every violation (a whole-image one, or one naming them
/// all), else, for each violation, the first that covers it (narrow exceptions and
/// `not_affected` statements add up, as in the policy's `input.exceptions`). The status keeps
/// the first violations only: when the list may be cut, only a whole-image exception covers
/// it. (In phase Error, only a whole-image exception admits.)
pub fn covering<'e>(
    scan: &IndexedScan,
    exceptions: &[&'e Exception],
) -> Option<Vec<&'e Exception>> {
    if let Some(one) = exceptions.iter().find(|e| covers_every_violation(e, scan)) {
        return Some(vec![*one]);
    }
    if scan.violations.is_empty() || scan.violations.len() >= crate::api::MAX_VIOLATIONS {
        return None;
    }
    let mut by: Vec<&Exception> = vec![];
    for v in scan.violations.iter() {
        let e = exceptions.iter().find(|e| e.covers(&v.id))?;
        if !by.iter().any(|b| std::ptr::eq(*b, *e)) {
            by.push(e);
        }
    }
    Some(by)
}

/// Whether one exception (matching the image) admits a failed scan's image alone: it names no
/// CVE, or every violation (see [`covering`]).
pub fn covers_every_violation(e: &Exception, scan: &IndexedScan) -> bool {
    let complete = scan.violations.len() < crate::api::MAX_VIOLATIONS;
    e.covers_whole_image()
        || (complete
            && !scan.violations.is_empty()
            && scan.violations.iter().all(|v| e.covers(&v.id)))
}

/// `who` names the container or volume (`container "app"`).
fn failed_reason(who: &str, scan: &IndexedScan, which: &str) -> String {
    let policy = scan
        .policy
        .as_deref()
        .map_or_else(String::new, |p| format!(" (policy {p})"));
    let mut reason = format!("{who}: image {} failed {which}{policy}", scan.image);
    reason.push_str(
        scan.violations_text
            .get_or_init(|| violations_text(&scan.violations)),
    );
    reason
}

/// `: ` and the first [`TOP_CVES`] violations, `and N more`; empty without violations.
fn violations_text(violations: &[Violation]) -> String {
    let mut text = String::new();
    if !violations.is_empty() {
        let shown: Vec<String> = violations.iter().take(TOP_CVES).map(describe).collect();
        let _ = write!(text, ": {}", shown.join(", "));
        let more = violations.len().saturating_sub(TOP_CVES);
        if more > 0 {
            let _ = write!(text, " and {more} more");
        }
    }
    text
}

fn describe(v: &Violation) -> String {
    let fix = v
        .fixed_version
        .as_deref()
        .map_or_else(|| "no fix yet".to_string(), |f| format!("fixed in {f}"));
    format!(
        "{} ({}) in {} {}, {fix}",
        v.id, v.severity, v.package, v.version
    )
}

fn denial_message(denials: &[&ContainerVerdict]) -> String {
    let reasons: Vec<&str> = denials.iter().map(|d| d.reason.as_str()).collect();
    format!(
        "scangate denied this workload: {}. Fix the image (rebuild with the fixed versions and \
         scan it again) or ask an admin for a ScanException (`kubectl explain scanexception`).",
        reasons.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::pod::{Place, WorkloadKind, containers};
    use crate::api::{
        Artifact, ImageScan, ImageScanSpec, RegistryArtifact, RegistrySpec, ScanSettings,
        ScanStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    const DIGEST: &str = "sha256:ae39a6f5c07297d7ab64dbd4f82c77c874cc6a94cea29fdec309d0992574b4f7";

    /// The content an image tag names in these tests: busybox's real digest, else one of its own
    /// per repository (the same digest under two names is the same bytes).
    fn digest_of(image: &str) -> String {
        use sha2::Digest as _;
        let repository = image.split(':').next().unwrap_or_default();
        if repository.ends_with("busybox") {
            return DIGEST.to_string();
        }
        let hash = sha2::Sha256::digest(repository.as_bytes());
        format!(
            "sha256:{}",
            hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    }

    fn scan(ns: &str, name: &str, image: &str, phase: Phase, violations: usize) -> ImageScan {
        let mut s = ImageScan::new(
            name,
            ImageScanSpec {
                results_from: None,
                registry: RegistrySpec {
                    image: image.into(),
                    image_pull_secret: None,
                },
                scan: ScanSettings {
                    scan_policy: Some("no-critical".into()),
                    ..ScanSettings::default()
                },
            },
        );
        s.metadata.namespace = Some(ns.into());
        s.status = Some(ScanStatus {
            phase: Some(phase),
            artifact: Some(Artifact {
                registry: Some(RegistryArtifact {
                    image: format!(
                        "{}@{}",
                        image.split(':').next().unwrap_or_default(),
                        digest_of(image)
                    ),
                    index: None,
                }),
                ..Artifact::default()
            }),
            violations: (0..violations)
                .map(|i| Violation {
                    id: format!("CVE-2024-{i:04}"),
                    severity: crate::api::Severity::Critical,
                    package: "busybox".into(),
                    version: "1.32.1".into(),
                    fixed_version: (i % 2 == 0).then(|| "1.36.0".into()),
                })
                .collect(),
            scanned_at: Some(Time(Timestamp::UNIX_EPOCH)),
            ..ScanStatus::default()
        });
        s
    }

    fn pod(images: &[&str]) -> Vec<Container> {
        images
            .iter()
            .enumerate()
            .map(|(i, image)| Container {
                place: Place::Container,
                name: format!("c{i}"),
                image: image.to_string(),
            })
            .collect()
    }

    struct World {
        config: AdmissionConfig,
        index: ScanIndex,
        exceptions: Vec<Exception>,
    }

    impl World {
        /// A single-team world: a namespace's own scans are trusted there.
        fn new(scans: &[ImageScan]) -> Self {
            World {
                config: AdmissionConfig {
                    trust_namespace_scans: true,
                    ..AdmissionConfig::default()
                },
                index: ScanIndex::new(scans),
                exceptions: vec![],
            }
        }

        /// A multi-tenant world: the default config.
        fn tenants(scans: &[ImageScan]) -> Self {
            World {
                config: AdmissionConfig::default(),
                index: ScanIndex::new(scans),
                exceptions: vec![],
            }
        }

        fn decide(&self, ns: &str, mode: Enforcement, images: &[&str]) -> Decision {
            let ctx = Context {
                config: &self.config,
                index: &self.index,
                exceptions: &self.exceptions,
                namespace: ns,
                enforcement: mode,
                now: Timestamp::UNIX_EPOCH,
                pins_tags: true,
            };
            decide(&ctx, &pod(images))
        }
    }

    fn exception(ns: &str, images: &[&str], cves: &[&str]) -> Exception {
        Exception {
            namespace: ns.into(),
            name: "ex".into(),
            images: images
                .iter()
                .filter_map(|p| crate::index::ImagePattern::parse(p).ok())
                .collect(),
            cves: cves.iter().map(|c| c.to_string()).collect(),
            expires: Timestamp::MAX,
            approval: Some(crate::index::Approval {
                by: "alice".into(),
                at: Timestamp::UNIX_EPOCH,
            }),
            vex: None,
        }
    }

    #[test]
    fn failed_scan_is_denied_with_the_design_message() {
        let world = World::new(&[scan("shop", "busybox", "busybox:1.32.1", Phase::Failed, 7)]);
        let d = world.decide("shop", Enforcement::Enforce, &["busybox:1.32.1"]);
        assert!(!d.allowed);
        assert_eq!(d.verdict(), Action::Deny);
        let message = d.message.unwrap_or_default();
        for part in [
            "scangate denied this workload",
            "container \"c0\"",
            &format!("image docker.io/library/busybox:1.32.1@{DIGEST}"),
            "failed trusted scan shop/busybox (policy shop/no-critical)",
            "CVE-2024-0000 (critical) in busybox 1.32.1, fixed in 1.36.0",
            "CVE-2024-0001 (critical) in busybox 1.32.1, no fix yet",
            "and 2 more",
            "ScanException",
        ] {
            assert!(message.contains(part), "missing {part:?} in {message}");
        }
    }

    #[test]
    fn decision_table_defaults() {
        let world = World::new(&[
            scan("ns", "ok", "ok:1", Phase::Completed, 0),
            scan("ns", "err", "err:1", Phase::Error, 0),
            scan("ns", "pend", "pend:1", Phase::Pending, 0),
            scan("ns", "run", "run:1", Phase::Scanning, 0),
        ]);
        let action =
            |image: &str| world.decide("ns", Enforcement::Enforce, &[image]).verdicts[0].action;
        assert_eq!(action("ok:1"), Action::Allow);
        assert_eq!(action("err:1"), Action::Deny);
        assert_eq!(action("pend:1"), Action::Warn);
        assert_eq!(action("run:1"), Action::Warn);
        assert_eq!(action("never-scanned:1"), Action::Warn);
        let d = world.decide("ns", Enforcement::Enforce, &["pend:1", "ok:1"]);
        assert!(d.allowed);
        assert_eq!(d.warnings.len(), 1);
        assert!(
            d.warnings[0].contains("is not scanned yet: trusted scan ns/pend is Pending"),
            "{:?}",
            d.warnings
        );
    }

    /// Trusted scans of alpine:3.10 (Completed) and busybox:1.32.1 (Failed), and `more`.
    fn trusted_alpine_and_busybox(more: Vec<ImageScan>) -> Vec<ImageScan> {
        let mut scans = vec![
            scan(
                "scangate-system",
                "alpine",
                "alpine:3.10",
                Phase::Completed,
                0,
            ),
            scan(
                "scangate-system",
                "busybox",
                "busybox:1.32.1",
                Phase::Failed,
                1,
            ),
        ];
        scans.extend(more);
        scans
    }

    fn ctx_at<'a>(w: &'a World, now: &str, pins_tags: bool) -> Context<'a> {
        Context {
            config: &w.config,
            index: &w.index,
            exceptions: &w.exceptions,
            namespace: "shop",
            enforcement: Enforcement::Enforce,
            now: now.parse().unwrap_or_else(|e| panic!("{e}")),
            pins_tags,
        }
    }

    #[test]
    fn the_failed_bytes_are_denied_under_another_name_naming_the_trusted_scan() {
        let world = World::tenants(&[
            scan(
                "scangate-system",
                "busybox",
                "busybox:1.32.1",
                Phase::Failed,
                2,
            ),
            scan(
                "scangate-system",
                "alpine",
                "alpine:3.10",
                Phase::Completed,
                0,
            ),
        ]);
        let copy = format!("ghcr.io/anyone/copy@{DIGEST}");
        let d = world.decide("shop", Enforcement::Enforce, &[&copy]);
        assert!(!d.allowed);
        let v = &d.verdicts[0];
        assert_eq!(v.action, Action::Deny);
        assert_eq!(
            v.decided_by.as_ref().map(|d| d.name.as_str()),
            Some("busybox")
        );
        assert!(
            v.reason.starts_with(&format!(
                "container \"c0\" (pulled as ghcr.io/anyone/copy@{DIGEST}): image \
                 docker.io/library/busybox:1.32.1@{DIGEST} failed trusted scan \
                 scangate-system/busybox"
            )),
            "{}",
            v.reason
        );
        // An approver's exception for the name the tenant uses covers it.
        let mut world = world;
        world.exceptions = vec![exception("shop", &["ghcr.io/anyone/copy"], &[])];
        assert!(world.decide("shop", Enforcement::Enforce, &[&copy]).allowed);
        // The clean bytes under another name are unscanned: a pass speaks for its name only.
        let alpine = format!("ghcr.io/anyone/alpine@{}", digest_of("alpine:3.10"));
        let d = world.decide("shop", Enforcement::Enforce, &[&alpine]);
        assert_eq!(d.verdicts[0].action, Action::Warn);
        assert!(d.verdicts[0].reason.contains("has no trusted scan"));
    }

    #[test]
    fn an_unpinned_tag_is_decided_only_while_its_resolution_is_fresh() {
        let mut world = World::tenants(&trusted_alpine_and_busybox(vec![]));
        world.config.on_unscanned = Action::Deny;
        let verdict = |now: &str, pins: bool, image: &str| {
            let ctx = ctx_at(&world, now, pins);
            decide(&ctx, &pod(&[image])).verdicts.remove(0)
        };
        // Seen at the epoch (the report's time, no resolution): fresh for tagMaxAge (1h).
        assert_eq!(
            verdict("1970-01-01T00:59:59Z", false, "alpine:3.10").action,
            Action::Allow
        );
        let stale = verdict("1970-01-01T01:00:00Z", false, "alpine:3.10");
        assert_eq!(stale.action, Action::Deny);
        assert!(
            stale.reason.contains(&format!(
                "is a tag, and the tag was last seen naming the content ImageScan \
                 scangate-system/alpine judged ({}) at 1970-01-01T00:00:00Z, longer ago than \
                 tagMaxAge 1h",
                digest_of("alpine:3.10")
            )),
            "{}",
            stale.reason
        );
        // The digest, and a tag where admission pins it, are decided whatever the tag's age.
        let pinned = format!("alpine:3.10@{}", digest_of("alpine:3.10"));
        assert_eq!(
            verdict("2030-01-01T00:00:00Z", false, &pinned).action,
            Action::Allow
        );
        assert_eq!(
            verdict("2030-01-01T00:00:00Z", true, "alpine:3.10").action,
            Action::Allow
        );
        // A stale denial still denies.
        assert_eq!(
            verdict("2030-01-01T00:00:00Z", false, "busybox:1.32.1").action,
            Action::Deny
        );
        // `0` turns the bound off.
        world.config.tag_max_age = "0".into();
        let ctx = ctx_at(&world, "2030-01-01T00:00:00Z", false);
        assert_eq!(
            decide(&ctx, &pod(&["alpine:3.10"])).verdicts[0].action,
            Action::Allow
        );
    }

    #[test]
    fn tags_are_pinned_only_to_content_admitted_without_a_warning() {
        let mut world = World::tenants(&trusted_alpine_and_busybox(vec![scan(
            "scangate-system",
            "pending",
            "pending:1",
            Phase::Pending,
            0,
        )]));
        let target = |w: &World, image: &str| {
            let ctx = ctx_at(w, "1970-01-01T00:00:00Z", true);
            pin_target(&ctx, &pod(&[image])[0])
        };
        assert_eq!(
            target(&world, "alpine:3.10"),
            Some(pin::Target {
                digest: digest_of("alpine:3.10"),
                scan: "scangate-system/alpine".into(),
            })
        );
        for image in ["busybox:1.32.1", "pending:1", "unscanned:1"] {
            assert_eq!(target(&world, image), None, "{image}");
        }
        let pinned = format!("alpine:3.10@{}", digest_of("alpine:3.10"));
        assert_eq!(target(&world, &pinned), None, "a digest is left as it is");
        // Admitted by an exception is not admitted without a warning: not pinned.
        world.exceptions = vec![exception("shop", &["busybox"], &[])];
        assert_eq!(target(&world, "busybox:1.32.1"), None);
        // Clean under its own name, but the same bytes failed under another: not pinned.
        let world = World::tenants(&[
            scan(
                "scangate-system",
                "busybox",
                "busybox:1.32.1",
                Phase::Completed,
                0,
            ),
            scan(
                "scangate-system",
                "copy",
                "ghcr.io/x/busybox:1",
                Phase::Failed,
                1,
            ),
        ]);
        assert_eq!(target(&world, "busybox:1.32.1"), None);
    }

    #[test]
    fn a_passing_result_older_than_the_max_result_age_counts_as_unscanned() {
        let mut world = World::new(&[
            scan("ns", "ok", "ok:1", Phase::Completed, 0),
            scan("ns", "bad", "bad:1", Phase::Failed, 1),
        ]);
        let at = |now: &str, image: &str, w: &World| {
            let ctx = Context {
                config: &w.config,
                index: &w.index,
                exceptions: &w.exceptions,
                namespace: "ns",
                enforcement: Enforcement::Enforce,
                now: now.parse().unwrap_or_else(|e| panic!("{e}")),
                pins_tags: true,
            };
            decide(&ctx, &pod(&[image])).verdicts.remove(0)
        };
        // No bound: results do not age.
        assert_eq!(
            at("2030-01-01T00:00:00Z", "ok:1", &world).action,
            Action::Allow
        );
        world.config.max_result_age = Some("7d".into());
        world.config.on_unscanned = Action::Deny;
        // Scanned at the epoch: fresh for 7 days, then unscanned.
        assert_eq!(
            at("1970-01-07T23:59:59Z", "ok:1", &world).action,
            Action::Allow
        );
        let stale = at("1970-01-08T00:00:00Z", "ok:1", &world);
        assert_eq!(stale.action, Action::Deny);
        assert!(
            stale.reason.contains(
                "the result of ImageScan ns/ok (scanned 1970-01-01T00:00:00Z) is stale since \
                 1970-01-08T00:00:00Z, older than maxResultAge 7d"
            ),
            "{}",
            stale.reason
        );
        // A stale denial still denies as Failed, whatever onUnscanned says.
        world.config.on_unscanned = Action::Allow;
        let bad = at("2030-01-01T00:00:00Z", "bad:1", &world);
        assert_eq!(bad.action, Action::Deny);
        assert!(!bad.reason.contains("stale"), "{}", bad.reason);
    }

    #[test]
    fn decision_table_is_configurable_except_for_failed() {
        let mut world = World::new(&[
            scan("ns", "err", "err:1", Phase::Error, 0),
            scan("ns", "pend", "pend:1", Phase::Pending, 0),
            scan("ns", "bad", "bad:1", Phase::Failed, 1),
        ]);
        world.config.on_error = Action::Allow;
        world.config.on_pending = Action::Deny;
        world.config.on_unscanned = Action::Deny;
        let action = |w: &World, image: &str| {
            w.decide("ns", Enforcement::Enforce, &[image]).verdicts[0].action
        };
        assert_eq!(action(&world, "err:1"), Action::Allow);
        assert_eq!(action(&world, "pend:1"), Action::Deny);
        assert_eq!(action(&world, "nope:1"), Action::Deny);
        assert_eq!(action(&world, "bad:1"), Action::Deny);
        world.config.on_error = Action::Warn;
        assert_eq!(action(&world, "err:1"), Action::Warn);
    }

    #[test]
    fn tenant_scans_only_deny_more() {
        const SYS: &str = "scangate-system";
        let action = |scans: &[ImageScan]| {
            let d = World::tenants(scans).decide("shop", Enforcement::Enforce, &["app:1"]);
            (d.verdicts[0].action, d.verdicts[0].reason.clone())
        };
        let trusted = |phase| scan(SYS, "app", "app:1", phase, 1);
        let own = |phase| scan("shop", "own", "app:1", phase, 1);
        let foreign = |phase| scan("other-team", "theirs", "app:1", phase, 1);
        // A trusted Failed result stands against the tenant's own scans of every phase.
        for phase in Phase::ALL {
            let (a, reason) = action(&[trusted(Phase::Failed), own(phase)]);
            assert_eq!(a, Action::Deny, "own scan {phase}: {reason}");
            assert!(
                reason.contains("failed trusted scan scangate-system/app"),
                "{reason}"
            );
        }
        // A tenant's own Completed scan never makes an image scanned and clean.
        let (a, reason) = action(&[own(Phase::Completed)]);
        assert_eq!(a, Action::Warn);
        assert!(
            reason.contains("has no trusted scan (trusted: scans in scangate-system)"),
            "{reason}"
        );
        // Its own Failed scan denies there, even over a trusted Completed result.
        let (a, reason) = action(&[trusted(Phase::Completed), own(Phase::Failed)]);
        assert_eq!(a, Action::Deny);
        assert!(
            reason.contains("failed namespace scan shop/own"),
            "{reason}"
        );
        // Another tenant's scans count for nothing here.
        assert_eq!(action(&[foreign(Phase::Failed)]).0, Action::Warn);
        assert_eq!(
            action(&[trusted(Phase::Failed), foreign(Phase::Completed)]).0,
            Action::Deny
        );
        // trustNamespaceScans: the namespace's own scans decide there (single team).
        let mut world = World::tenants(&[own(Phase::Completed)]);
        world.config.trust_namespace_scans = true;
        let d = world.decide("shop", Enforcement::Enforce, &["app:1"]);
        assert_eq!(d.verdicts[0].action, Action::Allow);
    }

    #[test]
    fn exceptions_are_local_approved_and_bounded() {
        let mut world =
            World::tenants(&[scan("scangate-system", "bad", "bad:1", Phase::Failed, 1)]);
        world.exceptions = vec![exception("shop", &["bad"], &[])];
        let allowed = |w: &World, ns: &str| w.decide(ns, Enforcement::Enforce, &["bad:1"]).allowed;
        assert!(allowed(&world, "shop"));
        let d = world.decide("shop", Enforcement::Enforce, &["bad:1"]);
        assert!(
            d.verdicts[0]
                .reason
                .contains("admitted by ScanException shop/ex, approved by alice until"),
            "{}",
            d.verdicts[0].reason
        );
        // Never in another namespace.
        assert!(!allowed(&world, "other"));
        // scangate's own namespace's exceptions count everywhere; another trusted namespace's
        // only in itself.
        world.config.trusted_scan_namespaces = vec!["ci".into()];
        world.exceptions = vec![exception("ci", &["bad"], &[])];
        assert!(!allowed(&world, "shop"));
        world.exceptions = vec![exception("scangate-system", &["bad"], &[])];
        assert!(allowed(&world, "shop") && allowed(&world, "other"));
        // Not approved: nothing.
        let mut unapproved = exception("shop", &["bad"], &[]);
        unapproved.approval = None;
        world.exceptions = vec![unapproved];
        assert!(!allowed(&world, "shop"));
        // Approved longer ago than maxDuration: nothing, although not expired.
        let mut stale = exception("shop", &["bad"], &[]);
        world.config.exceptions.max_duration = "1h".into();
        stale.approval = Some(crate::index::Approval {
            by: "alice".into(),
            at: Timestamp::UNIX_EPOCH - jiff::SignedDuration::from_hours(2),
        });
        world.exceptions = vec![stale];
        assert!(!allowed(&world, "shop"));
    }

    #[test]
    fn vex_not_affected_admits_like_an_exception_and_under_investigation_says_under_review() {
        let mut world =
            World::tenants(&[scan("scangate-system", "bad", "bad:1", Phase::Failed, 1)]);
        let statement = |status: VexStatus| Exception {
            name: status.as_str().replace('_', "-"),
            vex: Some(status),
            ..exception("shop", &["bad"], &["cve-2024-0000"])
        };
        let decide = |w: &World, ns: &str| w.decide(ns, Enforcement::Enforce, &["bad:1"]);
        world.exceptions = vec![statement(VexStatus::UnderInvestigation)];
        let d = decide(&world, "shop");
        assert!(!d.allowed);
        assert!(
            d.verdicts[0].reason.contains(
                "under review: CVE-2024-0000 (VEX under_investigation in ScanException \
                 shop/under-investigation); it stays denied until an approver settles each CVE"
            ),
            "{}",
            d.verdicts[0].reason
        );
        // Settled as affected (or fixed): denied, no longer under review.
        for settled in [VexStatus::Affected, VexStatus::Fixed] {
            world.exceptions = vec![statement(VexStatus::UnderInvestigation), statement(settled)];
            let d = decide(&world, "shop");
            assert!(!d.allowed, "{settled}");
            assert!(!d.verdicts[0].reason.contains("under review"), "{settled}");
        }
        // not_affected: admitted in its namespace, by that statement, and nowhere else.
        world.exceptions = vec![
            statement(VexStatus::UnderInvestigation),
            statement(VexStatus::NotAffected),
        ];
        let d = decide(&world, "shop");
        assert!(d.allowed);
        assert_eq!(
            d.verdicts[0].exception.as_deref(),
            Some("shop/not-affected")
        );
        assert!(!decide(&world, "other").allowed);
        // Expired: back to what the findings say.
        world.exceptions[1].expires = Timestamp::UNIX_EPOCH;
        assert!(!decide(&world, "shop").allowed);
        // Statements add up: two CVEs, each not_affected in its own statement, admit together;
        // one alone does not.
        let mut two = World::tenants(&[scan("scangate-system", "bad", "bad:1", Phase::Failed, 2)]);
        let mut second = statement(VexStatus::NotAffected);
        second.name = "second".into();
        second.cves = vec!["CVE-2024-0001".into()];
        two.exceptions = vec![statement(VexStatus::NotAffected)];
        assert!(!decide(&two, "shop").allowed);
        two.exceptions.push(second);
        let d = decide(&two, "shop");
        assert!(d.allowed);
        assert_eq!(
            d.verdicts[0].exception.as_deref(),
            Some("shop/not-affected, shop/second")
        );
        assert!(!decide(&two, "other").allowed);
        // A statement never covers a whole image, whatever its CVEs say.
        let mut no_cves = statement(VexStatus::Fixed);
        no_cves.cves.clear();
        world.exceptions = vec![no_cves];
        assert!(!decide(&world, "shop").allowed);
    }

    #[test]
    fn the_exceptions_that_name_an_image_but_do_not_count_say_why() {
        let mut world = World::tenants(&[]);
        let mut unapproved = exception("shop", &["bad"], &[]);
        unapproved.name = "unapproved".into();
        unapproved.approval = None;
        let mut expired = exception("shop", &["docker.io/library/bad"], &[]);
        expired.name = "expired".into();
        expired.expires = Timestamp::UNIX_EPOCH;
        let mut elsewhere = exception("other", &["bad:1"], &[]);
        elsewhere.name = "elsewhere".into();
        let mut unrelated = exception("shop", &["good"], &[]);
        unrelated.name = "unrelated".into();
        let counting = exception("scangate-system", &["bad"], &[]);
        world.exceptions = vec![unapproved, expired, elsewhere, unrelated, counting];
        let ctx = Context {
            config: &world.config,
            index: &world.index,
            exceptions: &world.exceptions,
            namespace: "shop",
            enforcement: Enforcement::Enforce,
            now: Timestamp::UNIX_EPOCH,
            pins_tags: true,
        };
        let ignored: Vec<(&str, Ignored)> = ignored_exceptions(&ctx, &pod(&["bad:1"])[0])
            .into_iter()
            .map(|(e, why)| (e.name.as_str(), why))
            .collect();
        assert_eq!(
            ignored,
            [
                ("unapproved", Ignored::Inactive(Inactive::NotApproved)),
                (
                    "expired",
                    Ignored::Inactive(Inactive::Expired {
                        at: Timestamp::UNIX_EPOCH
                    })
                ),
                ("elsewhere", Ignored::OtherNamespace),
            ]
        );
        assert!(ignored_exceptions(&ctx, &pod(&["Not A Reference"])[0]).is_empty());
    }

    #[test]
    fn enforcement_modes() {
        let world = World::new(&[scan("ns", "bad", "bad:1", Phase::Failed, 1)]);
        let warn = world.decide("ns", Enforcement::Warn, &["bad:1"]);
        assert!(warn.allowed);
        assert_eq!(warn.message, None);
        assert!(
            warn.warnings[0]
                .starts_with("namespace ns is in warn mode; this would be denied: scangate denied")
        );
        let audit = world.decide("ns", Enforcement::Audit, &["bad:1", "unscanned:1"]);
        assert!(audit.allowed);
        assert!(audit.warnings.is_empty());
        assert_eq!(
            audit.verdict(),
            Action::Deny,
            "audit still records what the rules said"
        );
    }

    #[test]
    fn scans_in_other_namespaces_do_not_count_unless_trusted() {
        let mut world = World::new(&[scan("central", "bad", "bad:1", Phase::Failed, 1)]);
        let d = world.decide("shop", Enforcement::Enforce, &["bad:1"]);
        assert_eq!(d.verdicts[0].state, ImageState::Unscanned);
        assert!(d.allowed);
        world.config.trusted_scan_namespaces = vec!["central".into()];
        assert!(
            !world
                .decide("shop", Enforcement::Enforce, &["bad:1"])
                .allowed
        );
    }

    #[test]
    fn the_verdict_names_the_scan_it_comes_from() {
        let trusted = scan("scangate-system", "good", "bad:1", Phase::Completed, 0);
        let mut world = World::tenants(&[trusted]);
        let decided = |world: &World| {
            world
                .decide("shop", Enforcement::Enforce, &["bad:1"])
                .verdicts[0]
                .decided_by
                .clone()
        };
        let by = |origin, namespace: &str, name: &str| {
            Some(Decider {
                origin,
                namespace: namespace.into(),
                name: name.into(),
            })
        };
        assert_eq!(
            decided(&world),
            by(Origin::Trusted, "scangate-system", "good")
        );
        // The namespace's own Failed scan is stricter: it decides.
        world
            .index
            .upsert(&scan("shop", "mine", "bad:1", Phase::Failed, 1));
        assert_eq!(decided(&world), by(Origin::Namespace, "shop", "mine"));
        // No scan at all: nothing decided.
        assert_eq!(
            World::tenants(&[])
                .decide("shop", Enforcement::Enforce, &["bad:1"])
                .verdicts[0]
                .decided_by,
            None
        );
    }

    #[test]
    fn exceptions_admit_covered_cves_only() {
        let mut world = World::new(&[scan("ns", "bad", "bad:1", Phase::Failed, 2)]);
        world.exceptions = vec![exception("ns", &["bad"], &["CVE-2024-0000"])];
        assert!(!world.decide("ns", Enforcement::Enforce, &["bad:1"]).allowed);
        world.exceptions = vec![exception(
            "ns",
            &["bad"],
            &["CVE-2024-0000", "CVE-2024-0001"],
        )];
        let d = world.decide("ns", Enforcement::Enforce, &["bad:1"]);
        assert!(d.allowed);
        assert_eq!(d.verdicts[0].exception.as_deref(), Some("ns/ex"));
        // An exception in another, untrusted namespace does nothing.
        world.exceptions = vec![exception("other", &["bad"], &[])];
        assert!(!world.decide("ns", Enforcement::Enforce, &["bad:1"]).allowed);
    }

    #[test]
    fn expired_exceptions_do_nothing() {
        let mut world = World::new(&[scan("ns", "bad", "bad:1", Phase::Failed, 1)]);
        let mut expired = exception("ns", &["bad"], &[]);
        expired.expires = Timestamp::UNIX_EPOCH;
        world.exceptions = vec![expired];
        assert!(!world.decide("ns", Enforcement::Enforce, &["bad:1"]).allowed);
    }

    #[test]
    fn a_cut_violation_list_needs_a_whole_image_exception() {
        let mut world = World::new(&[scan("ns", "bad", "bad:1", Phase::Failed, 20)]);
        let all_ids: Vec<String> = (0..20).map(|i| format!("CVE-2024-{i:04}")).collect();
        let ids: Vec<&str> = all_ids.iter().map(String::as_str).collect();
        world.exceptions = vec![exception("ns", &["bad"], &ids)];
        assert!(!world.decide("ns", Enforcement::Enforce, &["bad:1"]).allowed);
        world.exceptions = vec![exception("ns", &["docker.io/library/bad:*"], &[])];
        assert!(world.decide("ns", Enforcement::Enforce, &["bad:1"]).allowed);
    }

    #[test]
    fn whole_image_exception_also_admits_error_scans() {
        let mut world = World::new(&[scan("ns", "err", "err:1", Phase::Error, 0)]);
        world.exceptions = vec![exception("ns", &["err:1"], &[])];
        let d = world.decide("ns", Enforcement::Enforce, &["err:1"]);
        assert!(d.allowed);
        assert!(
            d.verdicts[0]
                .reason
                .contains("admitted by ScanException ns/ex")
        );
    }

    #[test]
    fn invalid_references_are_denied_clearly() {
        let world = World::new(&[]);
        let d = world.decide("ns", Enforcement::Enforce, &["Not Valid"]);
        assert!(!d.allowed);
        assert!(
            d.message
                .unwrap_or_default()
                .contains("cannot tell which scan applies")
        );
    }

    mod identity {
        //! One identity per image, at the decision: every spelling of the Failed image is the
        //! Failed image; nothing but the clean image gets the clean image's verdict.
        use super::*;
        use crate::image::RegistryAliases;
        use proptest::prelude::*;

        const FAILED: &str =
            "sha256:f000000000000000000000000000000000000000000000000000000000000001";
        const CLEAN: &str =
            "sha256:c000000000000000000000000000000000000000000000000000000000000002";
        const OTHER: &str =
            "sha256:0000000000000000000000000000000000000000000000000000000000000003";

        fn scanned(name: &str, image: &str, digest: &str, phase: Phase) -> ImageScan {
            let mut s = scan(
                "ns",
                name,
                image,
                phase,
                usize::from(phase == Phase::Failed),
            );
            if let Some(artifact) = s.status.as_mut().and_then(|st| st.artifact.as_mut()) {
                artifact.registry = Some(RegistryArtifact {
                    image: format!("{image}@{digest}"),
                    index: None,
                });
            }
            s
        }

        fn world() -> World {
            let config = AdmissionConfig {
                registry_aliases: serde_yaml::from_str::<RegistryAliases>(
                    "{mirror.example:5000: docker.io}",
                )
                .unwrap_or_else(|e| panic!("{e}")),
                // The scans are the namespace's own, trusted there.
                trust_namespace_scans: true,
                ..AdmissionConfig::default()
            };
            let scans = [
                scanned("busybox", "busybox:1.32.1", FAILED, Phase::Failed),
                scanned("alpine", "alpine:3.10", CLEAN, Phase::Completed),
            ];
            World {
                index: ScanIndex::with_aliases(config.registry_aliases.clone(), &scans),
                config,
                exceptions: vec![],
            }
        }

        fn verdict_of(world: &World, place: Place, image: &str) -> ContainerVerdict {
            let ctx = Context {
                config: &world.config,
                index: &world.index,
                exceptions: &world.exceptions,
                namespace: "ns",
                enforcement: Enforcement::Enforce,
                now: Timestamp::UNIX_EPOCH,
                pins_tags: true,
            };
            let image = Container {
                place,
                name: "x".into(),
                image: image.into(),
            };
            decide(&ctx, &[image]).verdicts.remove(0)
        }

        fn scan_of(v: &ContainerVerdict) -> Option<(&str, Phase)> {
            match &v.state {
                ImageState::Scanned(s) => Some((s.name.as_str(), s.phase)),
                _ => None,
            }
        }

        const HUB_NAMES: [&str; 5] = [
            "",
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
            "mirror.example:5000",
        ];

        fn place() -> impl Strategy<Value = Place> {
            prop_oneof![
                Just(Place::InitContainer),
                Just(Place::Container),
                Just(Place::EphemeralContainer),
                Just(Place::ImageVolume),
            ]
        }

        /// `registry` spelled with the case of each letter from `upper`, and `:443` if `port`.
        fn host(registry: &str, upper: &[bool], port: bool) -> String {
            let mut s: String = registry
                .chars()
                .zip(upper.iter().chain(std::iter::repeat(&false)))
                .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
                .collect();
            if port && !s.is_empty() && !s.contains(':') {
                s.push_str(":443");
            }
            if !s.is_empty() {
                s.push('/');
            }
            s
        }

        /// A reference to a repository of any registry, by tag, digest or both.
        #[derive(Clone, Debug)]
        struct Reference {
            registry: &'static str,
            upper: Vec<bool>,
            port: bool,
            repository: &'static str,
            tag: Option<&'static str>,
            digest: Option<&'static str>,
        }

        impl Reference {
            fn spelled(&self) -> String {
                let mut s = host(self.registry, &self.upper, self.port);
                s.push_str(self.repository);
                if let Some(t) = self.tag {
                    s.push(':');
                    s.push_str(t);
                }
                if let Some(d) = self.digest {
                    s.push('@');
                    s.push_str(d);
                }
                s
            }

            /// Whether the runtime would pull the clean image: Docker Hub's `library/alpine`,
            /// by the clean digest, or by tag 3.10 when there is no digest.
            fn is_clean_image(&self) -> bool {
                HUB_NAMES.contains(&self.registry)
                    && matches!(self.repository, "alpine" | "library/alpine")
                    && match self.digest {
                        Some(d) => d == CLEAN,
                        None => self.tag.unwrap_or("latest") == "3.10",
                    }
            }
        }

        fn reference() -> impl Strategy<Value = Reference> {
            (
                prop::sample::select(
                    [
                        &HUB_NAMES[..],
                        &["ghcr.io", "quay.io", "other.example", "mirror.example"],
                    ]
                    .concat(),
                ),
                prop::collection::vec(any::<bool>(), 0..24),
                any::<bool>(),
                prop::sample::select(vec![
                    "alpine",
                    "library/alpine",
                    "alpine-x",
                    "team/alpine",
                    "library/alpine/x",
                    "library/busybox",
                ]),
                prop::option::of(prop::sample::select(vec![
                    "3.10", "3.1", "3.10.1", "latest", "3.10-r1",
                ])),
                prop::option::of(prop::sample::select(vec![CLEAN, OTHER, FAILED])),
            )
                .prop_map(|(registry, upper, port, repository, tag, digest)| {
                    Reference {
                        registry,
                        upper,
                        port,
                        repository,
                        tag,
                        digest,
                    }
                })
        }

        proptest! {
            #[test]
            fn every_spelling_of_the_failed_image_is_failed(
                name in prop::sample::select(HUB_NAMES.to_vec()),
                upper in prop::collection::vec(any::<bool>(), 0..24),
                port in any::<bool>(),
                library in any::<bool>(),
                pin in 0..3u8,
                tag in "[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}",
                place in place(),
            ) {
                let mut image = host(name, &upper, port);
                image.push_str(if library { "library/busybox" } else { "busybox" });
                match pin {
                    0 => image.push_str(":1.32.1"),
                    1 => image.push_str(&format!("@{FAILED}")),
                    _ => image.push_str(&format!(":{tag}@{FAILED}")),
                }
                let v = verdict_of(&world(), place, &image);
                prop_assert_eq!(v.action, Action::Deny, "{}: {}", image, v.reason);
                prop_assert_eq!(scan_of(&v), Some(("busybox", Phase::Failed)), "{}", image);
                let expected = format!("{place} \"x\": image docker.io/library/busybox:1.32.1@{FAILED} failed trusted scan ns/busybox");
                prop_assert!(v.reason.starts_with(&expected), "{}: {}", image, v.reason);
            }

            #[test]
            fn only_the_clean_image_gets_the_clean_verdict(
                r in reference(),
                place in place(),
            ) {
                let image = r.spelled();
                let v = verdict_of(&world(), place, &image);
                let clean = scan_of(&v) == Some(("alpine", Phase::Completed));
                prop_assert_eq!(clean, r.is_clean_image(), "{}: {}", image, v.reason);
                prop_assert_eq!(clean, v.action == Action::Allow, "{}: {}", image, v.reason);
            }
        }

        /// The runtime pulls the digest, so the clean tag beside a digest nobody scanned is an
        /// unscanned image (issue 11).
        #[test]
        fn an_unscanned_digest_beside_the_clean_tag_is_unscanned() {
            let world = world();
            for image in [
                format!("alpine:3.10@{OTHER}"),
                format!("REGISTRY-1.docker.io:443/alpine:3.10@{OTHER}"),
                format!("mirror.example:5000/library/alpine:3.10@{OTHER}"),
            ] {
                let v = verdict_of(&world, Place::Container, &image);
                assert_eq!(v.state, ImageState::Unscanned, "{image}: {}", v.reason);
            }
        }
    }

    #[test]
    fn image_volumes_are_decided_in_every_kind() {
        let spec = json!({"initContainers": [{"name": "i", "image": "init:1"}],
                          "containers": [{"name": "c", "image": "app:1"}],
                          "ephemeralContainers": [{"name": "e", "image": "debug:1"}],
                          "volumes": [{"name": "data", "emptyDir": {}},
                                      {"name": "v", "image": {"reference": "models:1", "pullPolicy": "IfNotPresent"}},
                                      {"name": "later", "image": {"pullPolicy": "Always"}},
                                      {"name": "unset", "image": {"reference": ""}}]});
        for kind in WorkloadKind::ALL {
            let object = crate::admission::pod::template_of(kind, &spec);
            // The image volume is decided like a container, in every kind.
            let world = World::new(&[scan("ns", "models", "models:1", Phase::Failed, 1)]);
            let ctx = Context {
                config: &world.config,
                index: &world.index,
                exceptions: &world.exceptions,
                namespace: "ns",
                enforcement: Enforcement::Enforce,
                now: Timestamp::UNIX_EPOCH,
                pins_tags: true,
            };
            let images = containers(kind, &object).unwrap_or_else(|e| panic!("{kind}: {e}"));
            let d = decide(&ctx, &images);
            assert!(!d.allowed, "{kind}");
            let message = d.message.unwrap_or_default();
            assert!(
                message.contains("image volume \"v\": image docker.io/library/models:1@"),
                "{kind}: {message}"
            );
        }
    }

    #[test]
    fn messages_name_the_place_of_the_image() {
        let world = World::new(&[scan("ns", "bad", "bad:1", Phase::Failed, 1)]);
        let ctx = Context {
            config: &world.config,
            index: &world.index,
            exceptions: &world.exceptions,
            namespace: "ns",
            enforcement: Enforcement::Enforce,
            now: Timestamp::UNIX_EPOCH,
            pins_tags: true,
        };
        for (place, expected) in [
            (Place::InitContainer, "init container \"x\": image"),
            (Place::Container, "container \"x\": image"),
            (
                Place::EphemeralContainer,
                "ephemeral container \"x\": image",
            ),
            (Place::ImageVolume, "image volume \"x\": image"),
        ] {
            let image = Container {
                place,
                name: "x".into(),
                image: "bad:1".into(),
            };
            let d = decide(&ctx, std::slice::from_ref(&image));
            assert!(
                d.message.as_deref().unwrap_or_default().contains(expected),
                "{place}: {:?}",
                d.message
            );
            let unscanned = Container {
                image: "Not Valid".into(),
                ..image
            };
            assert!(
                decide(&ctx, &[unscanned]).verdicts[0]
                    .reason
                    .starts_with(&expected[..expected.len() - ": image".len()])
            );
        }
    }
}
