//! The index of scans that admission decides from: built from ImageScans (a reflector's store
//! in the webhook, files for the CLI), looked up by digest and by tag with no network call.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;

use crate::api::{ImageScan, Phase, ScanException, Violation};
use crate::image::{ImageRef, RegistryAliases};

/// What admission needs to know about one ImageScan.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexedScan {
    pub namespace: String,
    pub name: String,
    pub phase: Phase,
    /// The scanned image: the resolved artifact when the scan has one, else the spec's image.
    pub image: ImageRef,
    pub policy: Option<String>,
    pub violations: Vec<Violation>,
    /// When the scan last finished, or else when it was created: the newest scan wins.
    pub as_of: Timestamp,
}

impl IndexedScan {
    /// Reads what admission needs from an ImageScan; `None` when its image cannot be parsed
    /// (the webhook refuses such scans, so only hand-edited objects are skipped).
    pub fn from_scan(scan: &ImageScan) -> Option<Self> {
        let status = scan.status.as_ref();
        let spec_image = ImageRef::parse(&scan.spec.registry.image).ok()?;
        let resolved = status
            .and_then(|s| s.artifact.as_ref())
            .and_then(|a| a.registry.as_ref())
            .and_then(|r| ImageRef::parse(&r.image).ok());
        // The resolved artifact has the digest; the spec keeps the tag it was asked for.
        let image = match (resolved.as_ref().and_then(|r| r.digest()), &spec_image) {
            (Some(digest), spec) if spec.digest().is_none() || spec.digest() == Some(digest) => {
                spec.with_digest(digest).ok()?
            }
            _ => spec_image,
        };
        let created = scan
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(Timestamp::UNIX_EPOCH);
        Some(IndexedScan {
            namespace: scan.metadata.namespace.clone().unwrap_or_default(),
            name: scan.metadata.name.clone().unwrap_or_default(),
            phase: status.and_then(|s| s.phase).unwrap_or(Phase::Pending),
            image,
            policy: scan.spec.scan.scan_policy.clone(),
            violations: status.map(|s| s.violations.clone()).unwrap_or_default(),
            as_of: status
                .and_then(|s| s.scanned_at.as_ref())
                .map(|t| t.0)
                .unwrap_or(created),
        })
    }
}

/// Scans by normalized `repo@digest` and by `repo:tag`, updated one scan at a time as a
/// watch reports changes. Keys name the registry a mirror in `aliases` stands for.
#[derive(Debug, Default)]
pub struct ScanIndex {
    aliases: RegistryAliases,
    scans: HashMap<ScanKey, IndexedScan>,
    by_digest: HashMap<String, HashSet<ScanKey>>,
    by_tag: HashMap<String, HashSet<ScanKey>>,
}

/// A scan's namespace and name.
pub type ScanKey = (String, String);

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
        *self = ScanIndex {
            aliases,
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
        if let Some(indexed) = IndexedScan::from_scan(scan) {
            self.insert(key, indexed);
        }
    }

    fn insert(&mut self, key: ScanKey, indexed: IndexedScan) {
        let image = self.aliases.canonicalize(&indexed.image);
        let (digest, tag) = (image.by_digest(), image.by_tag());
        if let Some(digest) = digest {
            self.by_digest
                .entry(digest)
                .or_default()
                .insert(key.clone());
        }
        if let Some(tag) = tag {
            self.by_tag.entry(tag).or_default().insert(key.clone());
        }
        self.scans.insert(key, indexed);
    }

    /// Forgets a deleted scan.
    pub fn remove(&mut self, scan: &ImageScan) {
        self.remove_key(&key_of(scan));
    }

    fn remove_key(&mut self, key: &ScanKey) {
        let Some(old) = self.scans.remove(key) else {
            return;
        };
        let image = self.aliases.canonicalize(&old.image);
        for (map, bucket) in [
            (&mut self.by_digest, image.by_digest()),
            (&mut self.by_tag, image.by_tag()),
        ] {
            if let Some(bucket) = bucket
                && let Some(keys) = map.get_mut(&bucket)
            {
                keys.remove(key);
                if keys.is_empty() {
                    map.remove(&bucket);
                }
            }
        }
    }

    /// The number of scans indexed.
    pub fn len(&self) -> usize {
        self.scans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scans.is_empty()
    }

    /// The newest trusted scan of `image`: of its digest when it has one, failing that of its
    /// tag. `trusted` says whether a scan's namespace may vouch for this image.
    pub fn lookup(&self, image: &ImageRef, trusted: impl Fn(&str) -> bool) -> Option<&IndexedScan> {
        let image = self.aliases.canonicalize(image);
        let newest = |keys: Option<&HashSet<ScanKey>>| -> Option<&IndexedScan> {
            keys.into_iter()
                .flatten()
                .filter_map(|k| self.scans.get(k))
                .filter(|s| trusted(&s.namespace))
                .max_by(|a, b| {
                    (a.as_of, &a.namespace, &a.name).cmp(&(b.as_of, &b.namespace, &b.name))
                })
        };
        image
            .by_digest()
            .and_then(|key| newest(self.by_digest.get(&key)))
            .or_else(|| image.by_tag().and_then(|key| newest(self.by_tag.get(&key))))
    }
}

fn key_of(scan: &ImageScan) -> ScanKey {
    (
        scan.metadata.namespace.clone().unwrap_or_default(),
        scan.metadata.name.clone().unwrap_or_default(),
    )
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
}

impl Exception {
    /// Parses an exception. Patterns that cannot be parsed are dropped (the webhook refuses
    /// them when the exception is applied).
    pub fn from_exception(exception: &ScanException) -> Self {
        let expires = exception.spec.expires.0;
        Exception {
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
        }
    }

    /// Whether it still applies at `now`: an expired exception does nothing.
    pub fn is_active(&self, now: Timestamp) -> bool {
        now < self.expires
    }

    pub fn matches(&self, image: &ImageRef) -> bool {
        self.images.iter().any(|p| p.matches(image))
    }

    /// Whether it covers this CVE (an exception without CVEs covers all).
    pub fn covers(&self, cve: &str) -> bool {
        self.cves.is_empty() || self.cves.iter().any(|c| c.eq_ignore_ascii_case(cve))
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
    use crate::api::{Artifact, ImageScanSpec, RegistryArtifact, RegistrySpec, ScanStatus};
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
                registry: RegistrySpec {
                    image: image.into(),
                    image_pull_secret: None,
                },
                scan: Default::default(),
            },
        );
        scan.metadata.namespace = Some(ns.into());
        scan.status = Some(ScanStatus {
            phase: Some(phase),
            artifact: resolved.map(|r| Artifact {
                registry: Some(RegistryArtifact { image: r.into() }),
                ..Artifact::default()
            }),
            scanned_at: Some(Time(ts(at))),
            ..ScanStatus::default()
        });
        scan
    }

    fn image(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn looks_up_by_digest_then_by_tag() {
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
        let all = |_: &str| true;
        // A workload pinned to the digest finds the scan through its resolved artifact.
        let found = index.lookup(&image(&format!("docker.io/library/nginx@{D1}")), all);
        assert_eq!(found.map(|s| s.name.as_str()), Some("by-tag"));
        // By tag.
        assert_eq!(
            index
                .lookup(&image("nginx:1.27"), all)
                .map(|s| s.name.as_str()),
            Some("by-tag")
        );
        assert_eq!(
            index
                .lookup(&image("redis:latest"), all)
                .map(|s| s.name.as_str()),
            Some("other")
        );
        // Another digest of the same tag, with the tag: falls back to the tag's scan.
        let found = index.lookup(&image(&format!("nginx:1.27@{D2}")), all);
        assert_eq!(found.map(|s| s.name.as_str()), Some("by-tag"));
        // Another digest and no tag: unscanned.
        assert_eq!(index.lookup(&image(&format!("nginx@{D2}")), all), None);
        assert_eq!(index.lookup(&image("nginx:1.28"), all), None);
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
        let found =
            |index: &ScanIndex, s: &str| index.lookup(&image(s), |_| true).map(|s| s.name.clone());
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
        let found = index.lookup(&image(&format!("nginx@{D1}")), |_| true);
        assert_eq!(found.map(|s| s.phase), Some(Phase::Failed));
        // The image in the spec changes: the old tag no longer finds it.
        s.spec.registry.image = "nginx:2".into();
        s.status = None;
        index.upsert(&s);
        assert_eq!(index.lookup(&image("nginx:1"), |_| true), None);
        assert_eq!(index.lookup(&image(&format!("nginx@{D1}")), |_| true), None);
        assert!(index.lookup(&image("nginx:2"), |_| true).is_some());
        index.remove(&s);
        assert!(index.is_empty());
        assert!(index.by_tag.is_empty() && index.by_digest.is_empty());
    }

    #[test]
    fn newest_scan_wins() {
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
        ];
        let index = ScanIndex::new(&scans);
        assert_eq!(
            index
                .lookup(&image("nginx:1"), |_| true)
                .map(|s| s.name.as_str()),
            Some("new")
        );
    }

    #[test]
    fn untrusted_namespaces_are_ignored() {
        let scans = [
            scan(
                "tenant-b",
                "fake-clean",
                "nginx:1",
                None,
                Phase::Completed,
                "2026-03-01T00:00:00Z",
            ),
            scan(
                "tenant-a",
                "real",
                "nginx:1",
                None,
                Phase::Failed,
                "2026-01-01T00:00:00Z",
            ),
        ];
        let index = ScanIndex::new(&scans);
        let found = index.lookup(&image("nginx:1"), |ns| ns == "tenant-a");
        assert_eq!(found.map(|s| s.name.as_str()), Some("real"));
        assert_eq!(index.lookup(&image("nginx:1"), |ns| ns == "tenant-c"), None);
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
    fn expired_exceptions_are_inactive() {
        use crate::api::ScanExceptionSpec;
        let mut ex = ScanException::new(
            "e",
            ScanExceptionSpec {
                images: vec!["nginx".into()],
                cves: vec!["CVE-2024-1".into()],
                reason: "r".into(),
                expires: Time(ts("2026-06-01T00:00:00Z")),
            },
        );
        ex.metadata.namespace = Some("a".into());
        let parsed = Exception::from_exception(&ex);
        assert!(parsed.is_active(ts("2026-05-01T00:00:00Z")));
        assert!(parsed.matches(&image("nginx:1")));
        assert!(parsed.covers("cve-2024-1"));
        assert!(!parsed.covers("CVE-2024-2"));
        assert!(!parsed.is_active(ts("2026-06-01T00:00:00Z")));
    }
}
