//! What admission decides from, in memory: the index of scans, keyed by normalized digest and
//! tag with the admin's registry mirrors folded (kept up to date one scan at a time from the
//! webhook's watch, or built from files by `scangate check` and `--scans-dir`), looked up with
//! no network call; and exceptions with their image patterns parsed.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use jiff::Timestamp;

use crate::admission::config::Origin;
use crate::api::{ImageScan, Phase, ScanException, VexStatus, Violation};
use crate::image::{ImageRef, RegistryAliases};

/// What admission needs to know about one ImageScan.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexedScan {
    pub namespace: String,
    pub name: String,
    /// The phase admission decides from: the scan's phase, or while a rescan runs or after it
    /// failed without a report (Pending, Scanning or Error with an earlier result from a
    /// report) that result's phase.
    pub phase: Phase,
    /// The latest scan has no result yet; `phase` is the previous result's.
    pub rescanning: bool,
    /// The scanned image: the resolved artifact when the scan has one, else the spec's image.
    pub image: ImageRef,
    /// The result speaks for the spec's tag: false once the controller resolved the tag to
    /// content other than the scanned artifact (the tag moved, its rescan has no result yet);
    /// the result then still speaks for its own digest.
    pub speaks_for_tag: bool,
    /// When the scanned content was scanned as a platform manifest of a multi-platform image:
    /// the index that lists it. The index is no better than its scanned platforms.
    pub index: Option<String>,
    /// When the scanned content is an index: its platform manifests. A denial of the index
    /// denies each of them (which one the scanner pulled is not recorded).
    pub platforms: Vec<String>,
    /// When the tag was last known to name the scanned content: the controller's last
    /// resolution of it, else when the report was recorded.
    pub tag_seen_at: Timestamp,
    /// The policy that judged the report (`status.policy`, e.g. `scangate-system/strict` or
    /// scangate's built-in default), else the one the spec names, as `namespace/name`.
    pub policy: Option<String>,
    pub violations: Arc<[Violation]>,
    /// When scangate recorded the deciding report (status is written by scangate only), or
    /// for undecided scans when the scan was created. Ranks results of the same kind.
    pub as_of: Timestamp,
    /// Where the deciding report came from, when scangate recorded it.
    pub source: Option<String>,
    /// The violations as a denial lists them, written at the first denial
    /// (`admission::workload`), not at every one.
    pub violations_text: Derived<String>,
}

/// A value derived from the rest of its struct at its first use. It adds nothing to the
/// struct's identity: any two compare equal.
#[derive(Clone, Default)]
pub struct Derived<T>(OnceLock<T>);

impl<T> Derived<T> {
    pub fn get_or_init(&self, derive: impl FnOnce() -> T) -> &T {
        self.0.get_or_init(derive)
    }
}

impl<T> PartialEq for Derived<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> std::fmt::Debug for Derived<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Derived")
    }
}

impl IndexedScan {
    /// Reads what admission needs from an ImageScan; `None` when its image cannot be parsed
    /// (the webhook refuses such scans, so only hand-edited objects are skipped).
    pub fn from_scan(scan: &ImageScan) -> Option<Self> {
        let status = scan.status.as_ref();
        let spec_image = ImageRef::parse(&scan.spec.registry.image).ok()?;
        let artifact = status
            .and_then(|s| s.artifact.as_ref())
            .and_then(|a| a.registry.as_ref());
        let resolved = artifact.and_then(|r| ImageRef::parse(&r.image).ok());
        // The resolved artifact has the digest; the spec keeps the tag it was asked for.
        let image = match (resolved.as_ref().and_then(|r| r.digest()), &spec_image) {
            (Some(digest), spec) if spec.digest().is_none() || spec.digest() == Some(digest) => {
                spec.with_digest(digest).ok()?
            }
            _ => spec_image.clone(),
        };
        let resolution = status.and_then(|s| s.resolved.as_ref());
        // The tag's resolution, when it names the scanned content (the index or one of its
        // platform manifests).
        let current = match (resolution, image.digest()) {
            (Some(resolution), Some(scanned)) if resolution.covers(scanned) => Some(resolution),
            _ => None,
        };
        let speaks_for_tag = match (resolution, image.digest()) {
            (Some(_), Some(_)) if spec_image.digest().is_none() => current.is_some(),
            _ => true,
        };
        let scanned = image.digest();
        // Recorded with the artifact by the controller, else read from the current resolution.
        let index = artifact
            .and_then(|a| a.index.clone())
            .or_else(|| current.and_then(|r| r.digest()).map(str::to_string))
            .filter(|index| Some(index.as_str()) != scanned);
        let platforms = match current {
            Some(r) if r.digest() == scanned => {
                r.platforms.iter().map(|p| p.digest.clone()).collect()
            }
            _ => vec![],
        };
        let created = scan
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let phase = status.and_then(|s| s.phase).unwrap_or(Phase::Pending);
        let last = status.and_then(|s| s.last_result.as_ref());
        // While a rescan runs, or when it ended in Error without a report (its Job failed),
        // the last result from a report stands.
        let (phase, rescanning) = match (phase, last) {
            (Phase::Pending | Phase::Scanning | Phase::Error, Some(last))
                if last.phase.is_decided() && last.phase != phase =>
            {
                (last.phase, true)
            }
            (phase, _) => (phase, false),
        };
        let as_of = if phase.is_decided() {
            last.map(|l| l.scanned_at.0)
                .or_else(|| status.and_then(|s| s.scanned_at.as_ref()).map(|t| t.0))
                .unwrap_or(created)
        } else {
            created
        };
        Some(IndexedScan {
            namespace: scan.metadata.namespace.clone().unwrap_or_default(),
            name: scan.metadata.name.clone().unwrap_or_default(),
            phase,
            rescanning,
            image,
            speaks_for_tag,
            index,
            platforms,
            tag_seen_at: current.map_or(as_of, |r| r.resolved_at.0),
            policy: status
                .and_then(|s| s.policy.as_ref())
                .map(|p| p.name.clone())
                .or_else(|| {
                    let namespace = scan.metadata.namespace.as_deref().unwrap_or_default();
                    let name = scan.spec.scan.scan_policy.as_deref()?;
                    Some(format!("{namespace}/{name}"))
                }),
            violations: status.map(|s| s.violations.clone()).unwrap_or_default(),
            as_of,
            source: last.map(|l| l.source.clone()).filter(|s| !s.is_empty()),
            violations_text: Derived::default(),
        })
    }

    /// The scan's verdicts on content it held before (`status.earlierResults`): each speaks for
    /// its own digest (and index) only, never for the tag.
    pub fn earlier_of(scan: &ImageScan) -> Vec<Self> {
        let Ok(spec_image) = ImageRef::parse(&scan.spec.registry.image) else {
            return vec![];
        };
        let status = scan.status.as_ref();
        status
            .map(|s| s.earlier_results.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|e| e.phase.is_decided())
            .filter_map(|e| {
                let digest = e.image.rsplit_once('@')?.1;
                Some(IndexedScan {
                    namespace: scan.metadata.namespace.clone().unwrap_or_default(),
                    name: scan.metadata.name.clone().unwrap_or_default(),
                    phase: e.phase,
                    rescanning: false,
                    image: spec_image.with_digest(digest).ok()?,
                    speaks_for_tag: false,
                    index: e.index.clone().filter(|index| index != digest),
                    platforms: vec![],
                    tag_seen_at: e.scanned_at.0,
                    policy: status
                        .and_then(|s| s.policy.as_ref())
                        .map(|p| p.name.clone()),
                    violations: e.violations.clone(),
                    as_of: e.scanned_at.0,
                    source: None,
                    violations_text: Derived::default(),
                })
            })
            .collect()
    }

    /// When a passing result goes stale under the admin's `maxResultAge`: a Completed result
    /// older than that counts as unscanned at admission. `None` without a bound, and for the
    /// other phases: a stale denial still denies.
    pub fn stale_since(&self, max_age: Option<std::time::Duration>) -> Option<Timestamp> {
        let age = jiff::SignedDuration::try_from(max_age?).ok()?;
        if self.phase != Phase::Completed {
            return None;
        }
        Some(self.as_of.checked_add(age).unwrap_or(Timestamp::MAX))
    }

    /// The digest a node pulls for the judged content: the index when a platform manifest of
    /// it was scanned, else the scanned digest (a manifest or an index, never an image config:
    /// reports' config digests are not taken as the artifact's).
    pub fn pull_digest(&self) -> Option<&str> {
        self.index.as_deref().or(self.image.digest())
    }

    /// Every digest the result speaks for: the scanned one, its index, its platforms.
    pub fn digests(&self) -> impl Iterator<Item = &str> {
        self.image
            .digest()
            .into_iter()
            .chain(self.index.as_deref())
            .chain(self.platforms.iter().map(String::as_str))
    }

    /// How results compete for one image: a decided result beats an undecided one (a Pending
    /// or Scanning scan never replaces a verdict), then the newer one wins.
    fn rank(&self) -> (bool, Timestamp, &str, &str) {
        (
            self.phase.is_decided(),
            self.as_of,
            &self.namespace,
            &self.name,
        )
    }

    /// Whether the result denies by itself, whatever name the content is pulled by.
    fn denies(&self) -> bool {
        matches!(self.phase, Phase::Failed | Phase::Error)
    }
}

/// What the index knows about an image, for a workload in one namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Found<'a> {
    /// The trusted results.
    pub trusted: Results<'a>,
    /// The workload namespace's own scans, when they are not trusted: they can only add a
    /// denial.
    pub namespace: Results<'a>,
    /// For a reference by tag alone: when the tag was last known to name the content the
    /// results are for.
    pub tag_seen_at: Option<Timestamp>,
}

/// The results of one origin for an image's content.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Results<'a> {
    /// The result that decides: the best one for this name and digest (for an index that
    /// nobody scanned as such, the best of its scanned platforms).
    pub result: Option<&'a IndexedScan>,
    /// Failed and Error results for the same bytes otherwise named, and for the platforms of
    /// an index: they can only make the verdict stricter (the bytes are the identity).
    pub tied_denials: Vec<&'a IndexedScan>,
}

/// Scans by the digests of the content they speak for and by `repo:tag`, updated one scan at a
/// time as a watch reports changes. Tag keys name the registry a mirror in `aliases` stands
/// for; digest keys are bare digests, whatever the name.
#[derive(Debug, Default)]
pub struct ScanIndex {
    aliases: RegistryAliases,
    scans: HashMap<ScanKey, IndexedScan>,
    by_digest: HashMap<String, HashSet<ScanKey>>,
    by_tag: HashMap<String, HashSet<ScanKey>>,
    /// The keys of each scan's earlier results (indexed like scans of their own).
    earlier: HashMap<ScanKey, Vec<ScanKey>>,
}

/// A scan's namespace and name.
pub type ScanKey = (String, String);

/// How a result relates to a looked-up name and digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Tie {
    /// This name, this digest: results compete by rank.
    Same,
    /// This name, a platform manifest of this index: stands for the index when nobody scanned
    /// the index itself.
    PlatformOfIndex,
    /// Another name, or another relation to this digest: denials only.
    Other,
}

impl ScanIndex {
    pub fn new<'a>(scans: impl IntoIterator<Item = &'a ImageScan>) -> Self {
        Self::with_aliases(RegistryAliases::default(), scans)
    }

    /// An index that folds the admin's registry mirrors.
    pub fn with_aliases<'a>(
        aliases: RegistryAliases,
        scans: impl IntoIterator<Item = &'a ImageScan>,
    ) -> Self {
        let mut index = ScanIndex {
            aliases,
            ..ScanIndex::default()
        };
        for scan in scans {
            index.upsert(scan);
        }
        index
    }

    pub fn aliases(&self) -> &RegistryAliases {
        &self.aliases
    }

    /// Keys every scan again under new registry aliases.
    pub fn set_aliases(&mut self, aliases: RegistryAliases) {
        let scans = std::mem::take(&mut self.scans);
        let earlier = std::mem::take(&mut self.earlier);
        *self = ScanIndex {
            aliases,
            earlier,
            ..ScanIndex::default()
        };
        for (key, indexed) in scans {
            self.insert(key, indexed);
        }
    }

    /// Adds a scan, or replaces the previous version of it.
    pub fn upsert(&mut self, scan: &ImageScan) {
        let key = key_of(scan);
        self.remove_key(&key);
        let earlier: Vec<(ScanKey, IndexedScan)> = IndexedScan::earlier_of(scan)
            .into_iter()
            .map(|e| {
                let digest = e.image.digest().unwrap_or_default();
                ((key.0.clone(), format!("{}@{digest}", key.1)), e)
            })
            .collect();
        if let Some(indexed) = IndexedScan::from_scan(scan) {
            self.insert(key.clone(), indexed);
        }
        if !earlier.is_empty() {
            self.earlier
                .insert(key, earlier.iter().map(|(k, _)| k.clone()).collect());
        }
        for (k, e) in earlier {
            self.insert(k, e);
        }
    }

    fn insert(&mut self, key: ScanKey, indexed: IndexedScan) {
        for digest in indexed.digests() {
            self.by_digest
                .entry(digest.to_string())
                .or_default()
                .insert(key.clone());
        }
        let tag = self.aliases.canonicalize(&indexed.image).by_tag();
        if let Some(tag) = tag.filter(|_| indexed.speaks_for_tag) {
            self.by_tag.entry(tag).or_default().insert(key.clone());
        }
        self.scans.insert(key, indexed);
    }

    /// Forgets a deleted scan.
    pub fn remove(&mut self, scan: &ImageScan) {
        self.remove_key(&key_of(scan));
    }

    /// Forgets a scan and its earlier results.
    fn remove_key(&mut self, key: &ScanKey) {
        for earlier in self.earlier.remove(key).unwrap_or_default() {
            self.remove_entry(&earlier);
        }
        self.remove_entry(key);
    }

    fn remove_entry(&mut self, key: &ScanKey) {
        let Some(old) = self.scans.remove(key) else {
            return;
        };
        let tag = self.aliases.canonicalize(&old.image).by_tag();
        for digest in old.digests() {
            unlink(&mut self.by_digest, digest, key);
        }
        if let Some(tag) = tag {
            unlink(&mut self.by_tag, &tag, key);
        }
    }

    /// The indexed scans under `keys`.
    fn scans_of<'a>(
        &'a self,
        keys: Option<&'a HashSet<ScanKey>>,
    ) -> impl Iterator<Item = &'a IndexedScan> + 'a {
        keys.into_iter().flatten().filter_map(|k| self.scans.get(k))
    }

    /// The indexed scan `namespace/name`, if it is indexed.
    pub fn get(&self, namespace: &str, name: &str) -> Option<&IndexedScan> {
        self.scans.get(&(namespace.to_string(), name.to_string()))
    }

    /// The number of scans indexed (their earlier results not counted).
    pub fn len(&self) -> usize {
        self.scans.len() - self.earlier.values().map(Vec::len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.scans.is_empty()
    }

    /// What is known about `image` for a workload: `origin` says what a scan in a given
    /// namespace counts for there. The digest decides when the reference has one (a tag beside
    /// it is ignored: the runtime pulls the digest); a tag alone stands for the digest its best
    /// result was scanned at, and that digest's results decide.
    ///
    /// One rule for names (docs/admission.md, *One identity per content*): a passing result speaks for
    /// its own name and digest; a Failed or Error result speaks for its digest under every
    /// name, and for the index and platform manifests tied to it.
    pub fn lookup(&self, image: &ImageRef, origin: impl Fn(&str) -> Option<Origin>) -> Found<'_> {
        let image = self.aliases.canonicalize(image);
        let image: &ImageRef = &image;
        // The tag's key, built once for both origins.
        let tag_key = image.digest().is_none().then(|| image.by_tag()).flatten();
        let of = |wanted: Origin| -> (Results<'_>, Option<Timestamp>) {
            let (digest, tag_seen_at) = match image.digest() {
                Some(digest) => (digest, None),
                None => {
                    let keys = tag_key.as_ref().and_then(|t| self.by_tag.get(t));
                    let Some(by_tag) = self
                        .scans_of(keys)
                        .filter(|s| origin(&s.namespace) == Some(wanted))
                        .max_by(|a, b| a.rank().cmp(&b.rank()))
                    else {
                        return (Results::default(), None);
                    };
                    let Some(digest) = by_tag.image.digest() else {
                        // Scanned by tag with no digest recorded: the tag's result alone.
                        return (
                            Results {
                                result: Some(by_tag),
                                tied_denials: vec![],
                            },
                            Some(by_tag.tag_seen_at),
                        );
                    };
                    (digest, Some(by_tag.tag_seen_at))
                }
            };
            let candidates = self
                .scans_of(self.by_digest.get(digest))
                .filter(|s| origin(&s.namespace) == Some(wanted))
                .map(|s| {
                    let scanned_as = canonical_name(&self.aliases, &s.image);
                    (tie(s, &scanned_as, image, digest), scanned_as, s)
                });
            (results(candidates), tag_seen_at)
        };
        let (trusted, tag_seen_at) = of(Origin::Trusted);
        let (namespace, _) = of(Origin::Namespace);
        Found {
            trusted,
            namespace,
            tag_seen_at,
        }
    }

    /// The digests a trusted result denies under every name (the same rule as [`Self::lookup`]):
    /// results of one name and scanned digest compete by rank, and each standing result that
    /// denies (`denies` says which phases do) denies its digest, its index and, for an index,
    /// its platforms. With the scan that denies each digest (the newest, if several do).
    pub fn denied_digests(
        &self,
        trusted: impl Fn(&str) -> bool,
        denies: impl Fn(Phase) -> bool,
    ) -> BTreeMap<&str, &IndexedScan> {
        let mut standing: HashMap<(String, Option<&str>), &IndexedScan> = HashMap::new();
        for scan in self.scans.values().filter(|s| trusted(&s.namespace)) {
            let group = (
                self.aliases.canonicalize(&scan.image).name(),
                scan.image.digest(),
            );
            match standing.get(&group) {
                Some(best) if best.rank() >= scan.rank() => {}
                _ => {
                    standing.insert(group, scan);
                }
            }
        }
        let mut denied: BTreeMap<&str, &IndexedScan> = BTreeMap::new();
        for scan in standing.into_values().filter(|s| denies(s.phase)) {
            for digest in scan.digests() {
                match denied.get(digest) {
                    Some(other) if other.rank() >= scan.rank() => {}
                    _ => {
                        denied.insert(digest, scan);
                    }
                }
            }
        }
        denied
    }
}

/// An image's canonical name: its registry and repository, borrowed from the scan unless a
/// mirror in the aliases renames them (a lookup formats no name).
type Name<'a> = (Cow<'a, str>, Cow<'a, str>);

fn canonical_name<'a>(aliases: &RegistryAliases, image: &'a ImageRef) -> Name<'a> {
    match aliases.canonicalize(image) {
        Cow::Borrowed(image) => (image.registry().into(), image.repository().into()),
        Cow::Owned(image) => (
            image.registry().to_owned().into(),
            image.repository().to_owned().into(),
        ),
    }
}

/// How `scan`, of content named `scanned_as`, relates to content `digest` pulled as `image`
/// (both names canonical).
fn tie(scan: &IndexedScan, scanned_as: &Name<'_>, image: &ImageRef, digest: &str) -> Tie {
    if scanned_as.0 != image.registry() || scanned_as.1 != image.repository() {
        Tie::Other
    } else if scan.image.digest() == Some(digest) {
        Tie::Same
    } else if scan.index.as_deref() == Some(digest) {
        Tie::PlatformOfIndex
    } else {
        Tie::Other
    }
}

/// The deciding result and the tied denials among the results for one content. Results of one
/// name and scanned digest compete by rank, and the best of each such group stands for it; the
/// group of the looked-up name and digest decides (else the best of the index's platforms),
/// and every other group's standing result adds its denial.
fn results<'a>(candidates: impl Iterator<Item = (Tie, Name<'a>, &'a IndexedScan)>) -> Results<'a> {
    // A map, not a list searched in order: a tenant may index many results for one content.
    let mut groups: HashMap<(Tie, Name<'a>, Option<&str>), &IndexedScan> = HashMap::new();
    for (tie, scanned_as, scan) in candidates {
        let group = (tie, scanned_as, scan.image.digest());
        match groups.get(&group) {
            Some(best) if best.rank() >= scan.rank() => {}
            _ => {
                groups.insert(group, scan);
            }
        }
    }
    let standing = |wanted: Tie| {
        groups
            .iter()
            .filter(move |((tie, _, _), _)| *tie == wanted)
            .map(|(_, scan)| *scan)
    };
    let result = standing(Tie::Same)
        .next()
        .or_else(|| standing(Tie::PlatformOfIndex).max_by(|a, b| a.rank().cmp(&b.rank())));
    let mut tied_denials: Vec<&IndexedScan> = groups
        .values()
        .copied()
        .filter(|scan| scan.denies() && result.is_none_or(|r| !std::ptr::eq(*scan, r)))
        .collect();
    tied_denials.sort_by(|a, b| b.rank().cmp(&a.rank()));
    Results {
        result,
        tied_denials,
    }
}

/// Removes `key` from `map[bucket]`, and the bucket when it is left empty.
fn unlink(map: &mut HashMap<String, HashSet<ScanKey>>, bucket: &str, key: &ScanKey) {
    if let Some(keys) = map.get_mut(bucket) {
        keys.remove(key);
        if keys.is_empty() {
            map.remove(bucket);
        }
    }
}

fn key_of(scan: &ImageScan) -> ScanKey {
    (
        scan.metadata.namespace.clone().unwrap_or_default(),
        scan.metadata.name.clone().unwrap_or_default(),
    )
}

/// The annotation in which the webhook records who wrote an exception (an approver).
pub const APPROVED_BY: &str = "scangate.dev/approved-by";
/// The annotation in which the webhook records when an approver wrote it (RFC 3339).
pub const APPROVED_AT: &str = "scangate.dev/approved-at";

/// Who approved an exception, and when: recorded by the webhook on each write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    pub by: String,
    pub at: Timestamp,
}

/// A ScanException with its image patterns parsed, ready to match images.
#[derive(Clone, Debug, PartialEq)]
pub struct Exception {
    pub namespace: String,
    pub name: String,
    pub images: Vec<ImagePattern>,
    /// Empty: every CVE.
    pub cves: Vec<String>,
    pub expires: Timestamp,
    /// `None`: no approver's write was recorded, so the exception does nothing.
    pub approval: Option<Approval>,
    /// The status of an OpenVEX statement (`spec.vex`); `None` for a plain exception.
    pub vex: Option<VexStatus>,
}

impl Exception {
    /// Parses an exception. Patterns that cannot be parsed are dropped (the webhook refuses
    /// them when the exception is applied).
    pub fn from_exception(exception: &ScanException) -> Self {
        let expires = exception.spec.expires.0;
        let annotations = exception.metadata.annotations.as_ref();
        let approval = annotations.and_then(|a| {
            Some(Approval {
                by: a.get(APPROVED_BY).filter(|by| !by.is_empty())?.clone(),
                at: a.get(APPROVED_AT)?.parse().ok()?,
            })
        });
        Exception {
            approval,
            namespace: exception.metadata.namespace.clone().unwrap_or_default(),
            name: exception.metadata.name.clone().unwrap_or_default(),
            images: exception
                .spec
                .images
                .iter()
                .filter_map(|p| ImagePattern::parse(p).ok())
                .collect(),
            cves: exception.spec.cves.clone(),
            expires,
            vex: exception.spec.vex.as_ref().map(|v| v.status),
        }
    }

    /// Whether it admits the CVEs it covers: a plain exception or a `not_affected` statement.
    pub fn admits(&self) -> bool {
        self.vex.is_none_or(VexStatus::admits)
    }

    /// Whether it names this CVE (whatever it says about it).
    pub fn names(&self, cve: &str) -> bool {
        self.cves.iter().any(|c| c.eq_ignore_ascii_case(cve))
    }

    /// Whether it applies at `now`: approved, not expired, and written by its approver no
    /// longer than `max_duration` ago (the admin's bound, checked at use).
    pub fn is_active(&self, now: Timestamp, max_duration: std::time::Duration) -> bool {
        self.inactive(now, max_duration).is_none()
    }

    /// Why it does not apply at `now`, or `None` when it does ([`Exception::is_active`]).
    pub fn inactive(&self, now: Timestamp, max_duration: std::time::Duration) -> Option<Inactive> {
        let Some(approval) = &self.approval else {
            return Some(Inactive::NotApproved);
        };
        let Some(bound) = jiff::SignedDuration::try_from(max_duration)
            .ok()
            .and_then(|d| approval.at.checked_add(d).ok())
        else {
            return Some(Inactive::NoBound);
        };
        if now < self.expires && now < bound {
            None
        } else if self.expires <= bound {
            Some(Inactive::Expired { at: self.expires })
        } else {
            Some(Inactive::PastMaxDuration {
                approved_at: approval.at,
                ended: bound,
            })
        }
    }

    /// When it stops applying: the earlier of `expires` and approval + `max_duration`.
    pub fn ends(&self, max_duration: std::time::Duration) -> Option<Timestamp> {
        let approval = self.approval.as_ref()?;
        let bound = jiff::SignedDuration::try_from(max_duration)
            .ok()
            .and_then(|d| approval.at.checked_add(d).ok())?;
        Some(bound.min(self.expires))
    }

    pub fn matches(&self, image: &ImageRef) -> bool {
        self.images.iter().any(|p| p.matches(image))
    }

    /// Whether it admits this CVE (an exception without CVEs covers all; a VEX statement
    /// only when `not_affected`).
    pub fn covers(&self, cve: &str) -> bool {
        self.admits() && (self.cves.is_empty() || self.names(cve))
    }

    /// Whether it admits the whole image (a plain exception without CVEs).
    pub fn covers_whole_image(&self) -> bool {
        self.admits() && self.cves.is_empty()
    }
}

/// Why an exception does not apply: one of the rules of [`Exception::inactive`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inactive {
    /// No approver's write was recorded.
    NotApproved,
    /// `spec.expires` has passed.
    Expired { at: Timestamp },
    /// Its approver wrote it longer than the admin's `exceptions.maxDuration` ago.
    PastMaxDuration {
        approved_at: Timestamp,
        ended: Timestamp,
    },
    /// Its approval plus `exceptions.maxDuration` is past the last time there is.
    NoBound,
}

impl std::fmt::Display for Inactive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Inactive::NotApproved => write!(
                f,
                "not approved: no approver's write is recorded (the webhook sets \
                 {APPROVED_BY} and {APPROVED_AT} when an approver writes it)"
            ),
            Inactive::Expired { at } => write!(f, "expired at {at} (spec.expires)"),
            Inactive::PastMaxDuration { approved_at, ended } => write!(
                f,
                "approved at {approved_at}, it ended at {ended}, exceptions.maxDuration later"
            ),
            Inactive::NoBound => write!(
                f,
                "its approval plus exceptions.maxDuration is past the last time scangate can \
                 represent: lower exceptions.maxDuration"
            ),
        }
    }
}

/// An image pattern of a ScanException.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImagePattern {
    /// `repo` with no tag or digest: every tag and digest of the repository.
    Repository(String),
    /// `repo:tag`.
    Tag(String),
    /// `repo@digest` (or `repo:tag@digest`): that digest.
    Digest(String),
    /// A prefix of the normalized reference, written with a trailing `*`
    /// (`ghcr.io/org/*`, `docker.io/library/nginx:1.*`).
    Prefix(String),
}

impl ImagePattern {
    pub fn parse(pattern: &str) -> Result<Self, crate::image::Error> {
        if let Some(prefix) = pattern.strip_suffix('*') {
            return Ok(ImagePattern::Prefix(prefix.to_string()));
        }
        let image = ImageRef::parse(pattern)?;
        let names_tag = pattern
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'));
        Ok(match (image.by_digest(), names_tag) {
            (Some(digest), _) => ImagePattern::Digest(digest),
            (None, true) => ImagePattern::Tag(image.by_tag().unwrap_or_default()),
            (None, false) => ImagePattern::Repository(image.name()),
        })
    }

    /// Whether the pattern covers every image, or every image of a registry (`*`, `ghcr*`,
    /// `docker.io/*`): such a pattern needs the admin's `exceptions.allowCatchAll`.
    pub fn is_catch_all(&self) -> bool {
        match self {
            ImagePattern::Prefix(prefix) => prefix
                .split_once('/')
                .is_none_or(|(_, path)| path.is_empty()),
            _ => false,
        }
    }

    pub fn matches(&self, image: &ImageRef) -> bool {
        match self {
            ImagePattern::Repository(name) => image.name() == *name,
            ImagePattern::Tag(tag) => image.by_tag().as_deref() == Some(tag),
            ImagePattern::Digest(digest) => image.by_digest().as_deref() == Some(digest),
            ImagePattern::Prefix(prefix) => image.to_string().starts_with(prefix.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        Artifact, ImageScanSpec, LastResult, RegistryArtifact, RegistrySpec, ScanStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn scan(
        ns: &str,
        name: &str,
        image: &str,
        resolved: Option<&str>,
        phase: Phase,
        at: &str,
    ) -> ImageScan {
        let mut scan = ImageScan::new(
            name,
            ImageScanSpec {
                results_from: None,
                registry: RegistrySpec {
                    image: image.into(),
                    image_pull_secret: None,
                },
                scan: Default::default(),
            },
        );
        scan.metadata.namespace = Some(ns.into());
        scan.metadata.creation_timestamp = Some(Time(ts(at)));
        scan.status = Some(ScanStatus {
            phase: Some(phase),
            artifact: resolved.map(|r| Artifact {
                registry: Some(RegistryArtifact {
                    image: r.into(),
                    index: None,
                }),
                ..Artifact::default()
            }),
            scanned_at: phase.is_decided().then(|| Time(ts(at))),
            ..ScanStatus::default()
        });
        scan
    }

    fn image(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every namespace trusted, as in a single-team cluster.
    fn all(_: &str) -> Option<Origin> {
        Some(Origin::Trusted)
    }

    fn trusted_name<'a>(index: &'a ScanIndex, img: &str) -> Option<&'a str> {
        index
            .lookup(&image(img), all)
            .trusted
            .result
            .map(|s| s.name.as_str())
    }

    #[test]
    fn the_digest_decides_and_a_tag_stands_for_its_resolved_digest() {
        let scans = [
            scan(
                "a",
                "by-tag",
                "nginx:1.27",
                Some(&format!("nginx@{D1}")),
                Phase::Failed,
                "2026-01-01T00:00:00Z",
            ),
            scan(
                "a",
                "other",
                "redis",
                None,
                Phase::Completed,
                "2026-01-01T00:00:00Z",
            ),
        ];
        let index = ScanIndex::new(&scans);
        assert_eq!(index.len(), 2);
        // A workload pinned to the digest finds the scan through its resolved artifact.
        let pinned = format!("docker.io/library/nginx@{D1}");
        assert_eq!(trusted_name(&index, &pinned), Some("by-tag"));
        assert_eq!(trusted_name(&index, "nginx:1.27"), Some("by-tag"));
        assert_eq!(trusted_name(&index, "redis:latest"), Some("other"));
        // Another digest next to the scanned tag: the runtime pulls the digest, nobody
        // scanned it, so it is unscanned (the tag is ignored).
        assert_eq!(trusted_name(&index, &format!("nginx:1.27@{D2}")), None);
        assert_eq!(trusted_name(&index, &format!("nginx@{D2}")), None);
        assert_eq!(trusted_name(&index, "nginx:1.28"), None);
    }

    #[test]
    fn a_tag_takes_the_best_result_of_its_digest() {
        // The tag was scanned and passed; a later scan pinned to the same digest failed.
        let scans = [
            scan(
                "sys",
                "tag",
                "nginx:1",
                Some(&format!("nginx@{D1}")),
                Phase::Completed,
                "2026-01-01T00:00:00Z",
            ),
            scan(
                "sys",
                "digest",
                &format!("nginx@{D1}"),
                None,
                Phase::Failed,
                "2026-02-01T00:00:00Z",
            ),
        ];
        let index = ScanIndex::new(&scans);
        assert_eq!(trusted_name(&index, "nginx:1"), Some("digest"));
    }

    #[test]
    fn every_spelling_of_a_scanned_image_finds_its_scan() {
        let mirrors: RegistryAliases = serde_yaml::from_str("{mirror.example:5000: docker.io}")
            .unwrap_or_else(|e| panic!("{e}"));
        let scans = [
            scan(
                "a",
                "busybox",
                "registry-1.docker.io/library/busybox:1.32.1",
                Some(&format!("DOCKER.IO/busybox@{D1}")),
                Phase::Failed,
                "2026-01-01T00:00:00Z",
            ),
            // Scanned through the mirror.
            scan(
                "a",
                "alpine",
                "mirror.example:5000/library/alpine:3.10",
                None,
                Phase::Completed,
                "2026-01-01T00:00:00Z",
            ),
        ];
        let mut index = ScanIndex::with_aliases(mirrors.clone(), &scans);
        let found = |index: &ScanIndex, s: &str| {
            index
                .lookup(&image(s), all)
                .trusted
                .result
                .map(|s| s.name.clone())
        };
        for spelling in [
            "busybox:1.32.1".to_string(),
            "DOCKER.IO/library/busybox:1.32.1".into(),
            "docker.io:443/library/busybox:1.32.1".into(),
            "index.docker.io/library/busybox:1.32.1".into(),
            "mirror.example:5000/busybox:1.32.1".into(),
            format!("registry-1.docker.io/library/busybox@{D1}"),
            format!("Mirror.Example:5000/library/busybox@{D1}"),
        ] {
            assert_eq!(
                found(&index, &spelling).as_deref(),
                Some("busybox"),
                "{spelling}"
            );
        }
        assert_eq!(found(&index, "alpine:3.10").as_deref(), Some("alpine"));
        assert_eq!(found(&index, "busybox:1.32").as_deref(), None);
        assert_eq!(
            found(&index, "ghcr.io/library/busybox:1.32.1").as_deref(),
            None
        );
        // Without the mirror, the mirror's spelling is another registry, in both directions.
        index.set_aliases(RegistryAliases::default());
        assert_eq!(found(&index, "alpine:3.10"), None);
        assert_eq!(
            found(&index, "mirror.example:5000/library/alpine:3.10").as_deref(),
            Some("alpine")
        );
        assert_eq!(found(&index, "mirror.example:5000/busybox:1.32.1"), None);
        assert_eq!(found(&index, "busybox:1.32.1").as_deref(), Some("busybox"));
        index.set_aliases(mirrors.clone());
        assert_eq!(index.aliases(), &mirrors);
        assert_eq!(found(&index, "alpine:3.10").as_deref(), Some("alpine"));
        for s in &scans {
            index.remove(s);
        }
        assert!(index.is_empty() && index.by_tag.is_empty() && index.by_digest.is_empty());
    }

    #[test]
    fn updates_replace_and_deletes_remove() {
        let mut index = ScanIndex::default();
        let mut s = scan(
            "a",
            "s",
            "nginx:1",
            None,
            Phase::Scanning,
            "2026-01-01T00:00:00Z",
        );
        index.upsert(&s);
        // The scan resolves its digest and fails.
        s.status = scan(
            "a",
            "s",
            "nginx:1",
            Some(&format!("nginx@{D1}")),
            Phase::Failed,
            "2026-01-02T00:00:00Z",
        )
        .status;
        index.upsert(&s);
        assert_eq!(index.len(), 1);
        let found = index
            .lookup(&image(&format!("nginx@{D1}")), all)
            .trusted
            .result;
        assert_eq!(found.map(|s| s.phase), Some(Phase::Failed));
        // The image in the spec changes: the old tag no longer finds it.
        s.spec.registry.image = "nginx:2".into();
        s.status = None;
        index.upsert(&s);
        assert_eq!(trusted_name(&index, "nginx:1"), None);
        assert_eq!(trusted_name(&index, &format!("nginx@{D1}")), None);
        assert!(trusted_name(&index, "nginx:2").is_some());
        index.remove(&s);
        assert!(index.is_empty());
        assert!(index.by_tag.is_empty() && index.by_digest.is_empty());
    }

    #[test]
    fn the_newest_decided_result_wins_and_waits_never_replace_it() {
        let scans = [
            scan(
                "a",
                "old",
                "nginx:1",
                None,
                Phase::Completed,
                "2026-01-01T00:00:00Z",
            ),
            scan(
                "a",
                "new",
                "nginx:1",
                None,
                Phase::Failed,
                "2026-02-01T00:00:00Z",
            ),
            // Created later, never decided: it does not replace the verdict.
            scan(
                "a",
                "pending",
                "nginx:1",
                None,
                Phase::Pending,
                "2026-03-01T00:00:00Z",
            ),
            scan(
                "a",
                "scanning",
                "nginx:1",
                None,
                Phase::Scanning,
                "2026-03-02T00:00:00Z",
            ),
        ];
        let index = ScanIndex::new(&scans);
        assert_eq!(trusted_name(&index, "nginx:1"), Some("new"));
        // With no decided result, the newest wait is what is known.
        let waits = ScanIndex::new(&scans[2..]);
        assert_eq!(trusted_name(&waits, "nginx:1"), Some("scanning"));
    }

    #[test]
    fn a_rescan_keeps_the_last_result() {
        let mut s = scan(
            "sys",
            "s",
            "nginx:1",
            None,
            Phase::Scanning,
            "2026-03-01T00:00:00Z",
        );
        if let Some(status) = s.status.as_mut() {
            status.last_result = Some(LastResult {
                phase: Phase::Failed,
                scanned_at: Time(ts("2026-02-01T00:00:00Z")),
                source: "Job sys/s-1".into(),
            });
        }
        let index = ScanIndex::new([&s]);
        let found = index.lookup(&image("nginx:1"), all).trusted.result;
        assert_eq!(found.map(|s| s.phase), Some(Phase::Failed));
        assert_eq!(found.map(|s| s.rescanning), Some(true));
        assert_eq!(found.and_then(|s| s.source.as_deref()), Some("Job sys/s-1"));
        // The rescan's Job failed (Error, no report): the Failed result still stands.
        if let Some(status) = s.status.as_mut() {
            status.phase = Some(Phase::Error);
        }
        let index = ScanIndex::new([&s]);
        let found = index.lookup(&image("nginx:1"), all).trusted.result;
        assert_eq!(found.map(|s| s.phase), Some(Phase::Failed));
        // An Error from a report (its policy errored) is the result.
        if let Some(status) = s.status.as_mut() {
            status.last_result = status.last_result.take().map(|mut l| {
                l.phase = Phase::Error;
                l
            });
        }
        let index = ScanIndex::new([&s]);
        let found = index.lookup(&image("nginx:1"), all).trusted.result;
        assert_eq!(
            found.map(|s| (s.phase, s.rescanning)),
            Some((Phase::Error, false))
        );
    }

    /// `s` after its controller resolved its tag to `digest`.
    fn resolved_to(mut s: ImageScan, digest: &str, platforms: &[&str]) -> ImageScan {
        let spec = image(&s.spec.registry.image);
        if let Some(status) = s.status.as_mut() {
            status.resolved = Some(crate::api::Resolution {
                image: spec
                    .with_digest(digest)
                    .map(|i| i.to_string())
                    .unwrap_or_default(),
                media_type: "application/vnd.oci.image.index.v1+json".into(),
                platforms: platforms
                    .iter()
                    .map(|d| crate::api::ResolvedPlatform {
                        os: "linux".into(),
                        architecture: "amd64".into(),
                        variant: None,
                        digest: d.to_string(),
                    })
                    .collect(),
                resolved_at: Time(ts("2026-03-01T00:00:00Z")),
            });
        }
        s
    }

    #[test]
    fn a_moved_tag_is_unscanned_until_its_new_content_is_scanned_and_the_old_digest_keeps_its_result()
     {
        // Scanned at D1 and Failed; the tag was resolved again to D2 and is being rescanned.
        let mut s = scan(
            "sys",
            "s",
            "r.example/app:1",
            Some(&format!("r.example/app@{D1}")),
            Phase::Scanning,
            "2026-03-01T00:00:00Z",
        );
        if let Some(status) = s.status.as_mut() {
            status.last_result = Some(LastResult {
                phase: Phase::Failed,
                scanned_at: Time(ts("2026-02-01T00:00:00Z")),
                source: String::new(),
            });
        }
        // Resolved to what was scanned: the result speaks for the tag.
        let index = ScanIndex::new([&resolved_to(s.clone(), D1, &[])]);
        assert_eq!(trusted_name(&index, "r.example/app:1"), Some("s"));

        let moved = resolved_to(s.clone(), D2, &[]);
        let index = ScanIndex::new([&moved]);
        assert_eq!(trusted_name(&index, "r.example/app:1"), None);
        assert_eq!(trusted_name(&index, &format!("r.example/app:1@{D2}")), None);
        let old = index
            .lookup(&image(&format!("r.example/app@{D1}")), all)
            .trusted
            .result;
        assert_eq!(old.map(|s| s.phase), Some(Phase::Failed));
        assert_eq!(
            trusted_name(&index, &format!("r.example/app:1@{D1}")),
            Some("s")
        );

        // The new report names D2: the tag is decided by the new result.
        if let Some(status) = s.status.as_mut() {
            status.phase = Some(Phase::Completed);
            status.artifact = Some(Artifact {
                registry: Some(RegistryArtifact {
                    image: format!("r.example/app@{D2}"),
                    index: None,
                }),
                ..Artifact::default()
            });
        }
        let mut index = ScanIndex::new([&resolved_to(s.clone(), D2, &[])]);
        let found = index.lookup(&image("r.example/app:1"), all).trusted.result;
        assert_eq!(found.map(|s| s.phase), Some(Phase::Completed));
        assert_eq!(trusted_name(&index, &format!("r.example/app@{D1}")), None);

        // An update that moves the tag away unindexes the tag, and a delete leaves nothing.
        let moved_again = resolved_to(s.clone(), D1, &[]);
        index.upsert(&moved_again);
        assert_eq!(trusted_name(&index, "r.example/app:1"), None);
        index.remove(&moved_again);
        assert!(index.is_empty());
        assert!(index.by_tag.is_empty() && index.by_digest.is_empty());
    }

    #[test]
    fn a_report_of_one_platform_of_the_resolved_index_speaks_for_the_tag() {
        let s = scan(
            "sys",
            "s",
            "r.example/multi:2",
            Some(&format!("r.example/multi@{D2}")),
            Phase::Completed,
            "2026-03-01T00:00:00Z",
        );
        let index = ScanIndex::new([&resolved_to(s, D1, &[D2])]);
        assert_eq!(trusted_name(&index, "r.example/multi:2"), Some("s"));
    }

    const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    /// The phases of a lookup: the deciding result's, and the tied denials'.
    fn phases(index: &ScanIndex, img: &str) -> (Option<Phase>, Vec<Phase>) {
        let found = index.lookup(&image(img), all);
        (
            found.trusted.result.map(|s| s.phase),
            found.trusted.tied_denials.iter().map(|s| s.phase).collect(),
        )
    }

    #[test]
    fn a_denial_follows_the_digest_under_every_name_and_a_pass_only_its_own() {
        let at = "2026-03-01T00:00:00Z";
        let failed = scan(
            "sys",
            "busybox",
            "busybox:1.32.1",
            Some(&format!("docker.io/library/busybox@{D1}")),
            Phase::Failed,
            at,
        );
        let passed = scan(
            "sys",
            "alpine",
            "alpine:3.10",
            Some(&format!("docker.io/library/alpine@{D2}")),
            Phase::Completed,
            at,
        );
        let index = ScanIndex::new([&failed, &passed]);
        for other in [
            format!("ghcr.io/anyone/copy@{D1}"),
            format!("quay.io/library/busybox:latest@{D1}"),
            format!("registry.example:0443/mirror/busybox@{D1}"),
        ] {
            assert_eq!(
                phases(&index, &other),
                (None, vec![Phase::Failed]),
                "{other}"
            );
        }
        assert_eq!(
            phases(&index, &format!("busybox@{D1}")),
            (Some(Phase::Failed), vec![])
        );
        // A pass speaks for its own name only: the policy may read the name.
        assert_eq!(
            phases(&index, &format!("ghcr.io/anyone/copy@{D2}")),
            (None, vec![])
        );
        assert_eq!(
            phases(&index, &format!("alpine@{D2}")),
            (Some(Phase::Completed), vec![])
        );
        // A newer pass under the same name and digest replaces a denial; one under another
        // name does not.
        let mut fixed = scan(
            "sys",
            "busybox-again",
            "busybox:1.32.1",
            Some(&format!("docker.io/library/busybox@{D1}")),
            Phase::Completed,
            "2026-04-01T00:00:00Z",
        );
        let index = ScanIndex::new([&failed, &fixed]);
        assert_eq!(
            phases(&index, &format!("busybox@{D1}")),
            (Some(Phase::Completed), vec![])
        );
        fixed.spec.registry.image = "ghcr.io/anyone/copy:1".into();
        let index = ScanIndex::new([&failed, &fixed]);
        assert_eq!(
            phases(&index, &format!("ghcr.io/anyone/copy@{D1}")),
            (Some(Phase::Completed), vec![Phase::Failed])
        );
        // Deleting the scan forgets it under every digest.
        let mut index = ScanIndex::new([&failed]);
        index.remove(&failed);
        assert_eq!(
            phases(&index, &format!("ghcr.io/anyone/copy@{D1}")),
            (None, vec![])
        );
        assert!(index.by_digest.is_empty() && index.by_tag.is_empty());
    }

    #[test]
    fn an_index_is_no_better_than_its_scanned_platforms_and_other_platforms_stay_unscanned() {
        let at = "2026-03-01T00:00:00Z";
        // The tag resolved to index D1 of platforms D2 (amd64, scanned) and D3 (arm64).
        let amd64 = |phase| {
            resolved_to(
                scan(
                    "sys",
                    "multi",
                    "r.example/multi:2",
                    Some(&format!("r.example/multi@{D2}")),
                    phase,
                    at,
                ),
                D1,
                &[D2, D3],
            )
        };
        let index = ScanIndex::new([&amd64(Phase::Failed)]);
        assert_eq!(
            phases(&index, &format!("r.example/multi@{D1}")),
            (Some(Phase::Failed), vec![])
        );
        assert_eq!(
            phases(&index, &format!("r.example/multi@{D2}")),
            (Some(Phase::Failed), vec![])
        );
        assert_eq!(
            phases(&index, &format!("r.example/multi@{D3}")),
            (None, vec![])
        );
        assert_eq!(
            phases(&index, "r.example/multi:2"),
            (Some(Phase::Failed), vec![])
        );
        // The index, pulled under another name, is denied as well.
        assert_eq!(
            phases(&index, &format!("mirror.example/multi@{D1}")),
            (None, vec![Phase::Failed])
        );
        // A pass of the platform speaks for the index, which a node pulls: pins go there.
        let clean = amd64(Phase::Completed);
        let index = ScanIndex::new([&clean]);
        assert_eq!(
            phases(&index, &format!("r.example/multi@{D1}")),
            (Some(Phase::Completed), vec![])
        );
        let found = index.lookup(&image("r.example/multi:2"), all);
        assert_eq!(
            found.trusted.result.and_then(IndexedScan::pull_digest),
            Some(D1)
        );
        assert_eq!(found.tag_seen_at, Some(ts("2026-03-01T00:00:00Z")));
        // A scan of the index itself that passed does not outweigh a failed platform.
        let whole = resolved_to(
            scan(
                "sys",
                "whole",
                "r.example/multi:2",
                Some(&format!("r.example/multi@{D1}")),
                Phase::Completed,
                "2026-05-01T00:00:00Z",
            ),
            D1,
            &[D2, D3],
        );
        let index = ScanIndex::new([&whole, &amd64(Phase::Failed)]);
        assert_eq!(
            phases(&index, &format!("r.example/multi@{D1}")),
            (Some(Phase::Completed), vec![Phase::Failed])
        );
        // A denial of the index itself (the report named the index) denies its platforms.
        let mut denied = whole.clone();
        if let Some(status) = denied.status.as_mut() {
            status.phase = Some(Phase::Failed);
        }
        let index = ScanIndex::new([&denied]);
        assert_eq!(
            phases(&index, &format!("r.example/multi@{D3}")),
            (None, vec![Phase::Failed])
        );
    }

    #[test]
    fn the_index_recorded_with_the_artifact_outlives_the_resolution() {
        // Scanned as the amd64 manifest D2 of index D1; the tag has since moved to D3.
        let mut s = resolved_to(
            scan(
                "sys",
                "multi",
                "r.example/multi:2",
                Some(&format!("r.example/multi@{D2}")),
                Phase::Failed,
                "2026-03-01T00:00:00Z",
            ),
            D3,
            &[],
        );
        let index = ScanIndex::new([&s]);
        assert_eq!(
            phases(&index, &format!("r.example/multi@{D1}")),
            (None, vec![])
        );
        if let Some(artifact) = s
            .status
            .as_mut()
            .and_then(|st| st.artifact.as_mut())
            .and_then(|a| a.registry.as_mut())
        {
            artifact.index = Some(D1.into());
        }
        let index = ScanIndex::new([&s]);
        assert_eq!(
            phases(&index, &format!("r.example/multi@{D1}")),
            (Some(Phase::Failed), vec![])
        );
        assert_eq!(phases(&index, "r.example/multi:2"), (None, vec![]));
    }

    #[test]
    fn earlier_results_keep_their_digests_verdicts_but_not_the_tag() {
        let mut s = scan(
            "sys",
            "app",
            "r.example/app:1",
            Some(&format!("r.example/app@{D2}")),
            Phase::Completed,
            "2026-03-01T00:00:00Z",
        );
        if let Some(status) = s.status.as_mut() {
            status.earlier_results = vec![crate::api::EarlierResult {
                image: format!("r.example/app@{D1}"),
                index: None,
                phase: Phase::Failed,
                scanned_at: Time(ts("2026-02-01T00:00:00Z")),
                violations: Default::default(),
            }];
        }
        let mut index = ScanIndex::new([&s]);
        assert_eq!(index.len(), 1);
        assert_eq!(
            phases(&index, &format!("r.example/app@{D1}")),
            (Some(Phase::Failed), vec![])
        );
        assert_eq!(
            phases(&index, &format!("ghcr.io/x/copy@{D1}")),
            (None, vec![Phase::Failed])
        );
        assert_eq!(
            phases(&index, "r.example/app:1"),
            (Some(Phase::Completed), vec![])
        );
        let denied = index.denied_digests(|_| true, |p| p == Phase::Failed);
        assert_eq!(denied.keys().copied().collect::<Vec<_>>(), [D1]);
        index.remove(&s);
        assert!(index.is_empty() && index.by_digest.is_empty());
    }

    #[test]
    fn a_passing_result_goes_stale_after_the_max_result_age_from_when_it_was_recorded() {
        let day = std::time::Duration::from_secs(86_400);
        let at = "2026-03-01T00:00:00Z";
        let of = |phase| {
            let s = scan("sys", "s", "nginx:1", None, phase, at);
            IndexedScan::from_scan(&s).unwrap_or_else(|| panic!("indexed"))
        };
        let ok = of(Phase::Completed);
        assert_eq!(ok.stale_since(None), None);
        assert_eq!(ok.stale_since(Some(day)), Some(ts("2026-03-02T00:00:00Z")));
        // A denial, an error or a wait never goes stale.
        for phase in [Phase::Failed, Phase::Error, Phase::Pending, Phase::Scanning] {
            assert_eq!(of(phase).stale_since(Some(day)), None, "{phase}");
        }
        // While a rescan runs, the last result's time counts.
        let mut rescanning = scan("sys", "s", "nginx:1", None, Phase::Scanning, at);
        if let Some(status) = rescanning.status.as_mut() {
            status.last_result = Some(LastResult {
                phase: Phase::Completed,
                scanned_at: Time(ts("2026-01-01T00:00:00Z")),
                source: String::new(),
            });
        }
        let indexed = IndexedScan::from_scan(&rescanning).unwrap_or_else(|| panic!("indexed"));
        assert_eq!(
            indexed.stale_since(Some(day)),
            Some(ts("2026-01-02T00:00:00Z"))
        );
    }

    #[test]
    fn origins_separate_trusted_results_from_namespace_scans() {
        let scans = [
            scan(
                "scangate-system",
                "trusted",
                "nginx:1",
                None,
                Phase::Failed,
                "2026-01-01T00:00:00Z",
            ),
            // The tenant's own newer, clean-looking scan.
            scan(
                "tenant-a",
                "own",
                "nginx:1",
                None,
                Phase::Completed,
                "2026-03-01T00:00:00Z",
            ),
            scan(
                "tenant-b",
                "foreign",
                "nginx:1",
                None,
                Phase::Completed,
                "2026-04-01T00:00:00Z",
            ),
        ];
        let index = ScanIndex::new(&scans);
        let origin = |ns: &str| match ns {
            "scangate-system" => Some(Origin::Trusted),
            "tenant-a" => Some(Origin::Namespace),
            _ => None,
        };
        let found = index.lookup(&image("nginx:1"), origin);
        assert_eq!(
            found.trusted.result.map(|s| s.name.as_str()),
            Some("trusted")
        );
        assert_eq!(found.namespace.result.map(|s| s.name.as_str()), Some("own"));
        let nothing = index.lookup(&image("nginx:1"), |_| None);
        assert_eq!(nothing, Found::default());
    }

    #[test]
    fn image_patterns() {
        let p = |s: &str| ImagePattern::parse(s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            p("nginx"),
            ImagePattern::Repository("docker.io/library/nginx".into())
        );
        assert!(p("nginx").matches(&image("nginx:1.27")));
        assert!(p("nginx").matches(&image(&format!("nginx@{D1}"))));
        assert!(!p("nginx").matches(&image("nginxinc/nginx")));
        assert!(p("nginx:1.27").matches(&image("docker.io/library/nginx:1.27")));
        assert!(!p("nginx:1.27").matches(&image("nginx:1.28")));
        assert!(p(&format!("nginx@{D1}")).matches(&image(&format!("nginx:1@{D1}"))));
        assert!(!p(&format!("nginx@{D1}")).matches(&image("nginx:1")));
        assert!(p("ghcr.io/org/*").matches(&image("ghcr.io/org/app:2")));
        assert!(!p("ghcr.io/org/*").matches(&image("ghcr.io/other/app:2")));
        assert!(p("localhost:5000/app:1.*").matches(&image("localhost:5000/app:1.2")));
        assert!(ImagePattern::parse("Bad Pattern").is_err());
    }

    #[test]
    fn catch_all_patterns() {
        let p = |s: &str| ImagePattern::parse(s).unwrap_or_else(|e| panic!("{e}"));
        for broad in ["*", "docker.io/*", "ghcr*", "docker.io*"] {
            assert!(p(broad).is_catch_all(), "{broad}");
        }
        for narrow in [
            "ghcr.io/org/*",
            "nginx",
            "nginx:1",
            "docker.io/library/nginx:1.*",
        ] {
            assert!(!p(narrow).is_catch_all(), "{narrow}");
        }
    }

    fn exception(annotations: &[(&str, &str)]) -> Exception {
        use crate::api::ScanExceptionSpec;
        let mut ex = ScanException::new(
            "e",
            ScanExceptionSpec {
                images: vec!["nginx".into()],
                cves: vec!["CVE-2024-1".into()],
                reason: "r".into(),
                expires: Time(ts("2026-06-01T00:00:00Z")),
                vex: None,
            },
        );
        ex.metadata.namespace = Some("a".into());
        ex.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        Exception::from_exception(&ex)
    }

    #[test]
    fn exceptions_count_when_approved_unexpired_and_within_the_bound() {
        let day = std::time::Duration::from_secs(86400);
        let parsed = exception(&[
            (APPROVED_BY, "alice"),
            (APPROVED_AT, "2026-04-01T00:00:00Z"),
        ]);
        assert!(parsed.is_active(ts("2026-05-01T00:00:00Z"), 90 * day));
        assert!(parsed.matches(&image("nginx:1")));
        assert!(parsed.covers("cve-2024-1"));
        assert!(!parsed.covers("CVE-2024-2"));
        // Expired.
        assert!(!parsed.is_active(ts("2026-06-01T00:00:00Z"), 90 * day));
        // Older than maxDuration since the approver wrote it, although not expired.
        assert!(!parsed.is_active(ts("2026-05-01T00:00:00Z"), 10 * day));
        assert_eq!(parsed.ends(10 * day), Some(ts("2026-04-11T00:00:00Z")));
        // Not approved (no record, or a record without a time): never active.
        let unapproved = exception(&[(APPROVED_BY, "alice")]);
        assert!(!unapproved.is_active(ts("2026-05-01T00:00:00Z"), 90 * day));
        assert!(!exception(&[]).is_active(ts("2026-05-01T00:00:00Z"), 90 * day));
    }

    #[test]
    fn an_inactive_exception_says_which_rule_ended_it() {
        let day = std::time::Duration::from_secs(86400);
        let parsed = exception(&[
            (APPROVED_BY, "alice"),
            (APPROVED_AT, "2026-04-01T00:00:00Z"),
        ]);
        let why = |e: &Exception, now: &str, max| e.inactive(ts(now), max);
        assert_eq!(why(&parsed, "2026-05-01T00:00:00Z", 90 * day), None);
        assert_eq!(
            why(&parsed, "2026-06-01T00:00:00Z", 90 * day),
            Some(Inactive::Expired {
                at: ts("2026-06-01T00:00:00Z")
            })
        );
        // Both passed: the one that came first ended it.
        let bounded = Some(Inactive::PastMaxDuration {
            approved_at: ts("2026-04-01T00:00:00Z"),
            ended: ts("2026-04-11T00:00:00Z"),
        });
        assert_eq!(why(&parsed, "2026-05-01T00:00:00Z", 10 * day), bounded);
        assert_eq!(why(&parsed, "2026-07-01T00:00:00Z", 10 * day), bounded);
        assert_eq!(
            why(&parsed, "2026-07-01T00:00:00Z", 90 * day),
            Some(Inactive::Expired {
                at: ts("2026-06-01T00:00:00Z")
            })
        );
        let unapproved = exception(&[(APPROVED_AT, "2026-04-01T00:00:00Z")]);
        assert_eq!(
            why(&unapproved, "2026-05-01T00:00:00Z", 90 * day),
            Some(Inactive::NotApproved)
        );
        let forever = std::time::Duration::from_secs(u64::MAX);
        assert_eq!(
            why(&parsed, "2026-05-01T00:00:00Z", forever),
            Some(Inactive::NoBound)
        );
        assert_eq!(
            Inactive::Expired {
                at: ts("2026-06-01T00:00:00Z")
            }
            .to_string(),
            "expired at 2026-06-01T00:00:00Z (spec.expires)"
        );
        assert!(
            Inactive::NotApproved
                .to_string()
                .starts_with("not approved: no approver's write is recorded")
        );
    }
}
