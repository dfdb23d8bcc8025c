//! Scans on first sight, pure: the ImageScan admission requests for an image with no trusted
//! result (named from the normalized image, so concurrent requests meet at one name), and the
//! gate that deduplicates requests in memory and rate-limits them (a token bucket). The webhook
//! (`server::first_sight`) sends the scans off the request path.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use kube::core::ObjectMeta;
use sha2::{Digest, Sha256};

use super::config::FirstSightRules;
use crate::api::{ImageScan, ImageScanSpec, RegistrySpec, ScanSettings};
use crate::image::ImageRef;

/// The label on first-sight scans.
pub const LABEL: &str = "scangate.dev/first-sight";
/// The name prefix of first-sight scans.
const PREFIX: &str = "first-sight-";
/// How many characters of the repository's last path component a name keeps, for readers.
const READABLE: usize = 24;
/// How many images the gate remembers; past it, it forgets them all (the scan index, which
/// then has their scans, keeps them from being requested again).
const MAX_REMEMBERED: usize = 10_000;

/// `first-sight-<repository's last component>-<16 hex digits of sha256(normalized image)>`: one
/// name per normalized image, a DNS label (at most 53 characters).
pub fn scan_name(image: &ImageRef) -> String {
    let hash = Sha256::digest(image.to_string().as_bytes());
    let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let last = image
        .repository()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(READABLE)
        .collect::<String>();
    let readable = last.trim_matches('-');
    if readable.is_empty() {
        format!("{PREFIX}{hex}")
    } else {
        format!("{PREFIX}{readable}-{hex}")
    }
}

/// The ImageScan of `image` in `namespace` (scangate's), with the configured template and policy.
pub fn image_scan(image: &ImageRef, rules: &FirstSightRules, namespace: &str) -> ImageScan {
    let metadata = ObjectMeta {
        name: Some(scan_name(image)),
        namespace: Some(namespace.to_string()),
        labels: Some(BTreeMap::from([(LABEL.to_string(), "true".to_string())])),
        ..ObjectMeta::default()
    };
    let spec = ImageScanSpec {
        registry: RegistrySpec {
            image: image.to_string(),
            image_pull_secret: None,
        },
        scan: ScanSettings {
            scan_template: rules.template.clone(),
            scan_policy: rules.policy.clone(),
            ..ScanSettings::default()
        },
    };
    ImageScan {
        metadata,
        spec,
        status: None,
    }
}

/// A token bucket: holds up to `per_minute` tokens, refilled evenly over a minute.
#[derive(Debug)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `per_minute` tokens at `now`.
    pub fn new(per_minute: u32, now: Instant) -> Self {
        TokenBucket {
            tokens: f64::from(per_minute),
            last: now,
        }
    }

    /// Takes a token at `now`, if there is one, with `per_minute` as the current rate.
    pub fn take(&mut self, per_minute: u32, now: Instant) -> bool {
        let capacity = f64::from(per_minute);
        let elapsed = now.saturating_duration_since(self.last);
        let refill = elapsed.as_secs_f64() * capacity / Duration::from_secs(60).as_secs_f64();
        self.tokens = (self.tokens + refill).min(capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the gate says about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Send it.
    New,
    /// Requested already.
    Seen,
    /// Over the rate limit.
    Limited,
}

/// In-memory deduplication and rate limit of first-sight requests.
#[derive(Debug)]
pub struct Gate {
    seen: HashSet<String>,
    bucket: TokenBucket,
}

impl Gate {
    pub fn new(per_minute: u32, now: Instant) -> Self {
        Gate {
            seen: HashSet::new(),
            bucket: TokenBucket::new(per_minute, now),
        }
    }

    /// Whether a request for `image` (its scan name) goes out now.
    pub fn admit(&mut self, name: &str, per_minute: u32, now: Instant) -> Admit {
        if self.seen.contains(name) {
            return Admit::Seen;
        }
        if !self.bucket.take(per_minute, now) {
            return Admit::Limited;
        }
        if self.seen.len() >= MAX_REMEMBERED {
            self.seen.clear();
        }
        self.seen.insert(name.to_string());
        Admit::New
    }

    /// Forgets a request that could not be sent, so a later one may go.
    pub fn forget(&mut self, name: &str) {
        self.seen.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(reference: &str) -> ImageRef {
        ImageRef::parse(reference).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn names_are_one_per_normalized_image() {
        let a = scan_name(&image("nginx:1.27"));
        assert_eq!(a, scan_name(&image("docker.io/library/nginx:1.27")));
        assert_ne!(a, scan_name(&image("nginx:1.26")));
        assert!(a.starts_with("first-sight-nginx-"), "{a}");
        let long = scan_name(&image(
            "registry.example/team/a_very_long.repository-name-that-goes-on-and-on:1",
        ));
        assert!(long.len() <= 53, "{long}");
        assert!(
            long.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{long}"
        );
        assert!(
            long.starts_with("first-sight-a-very-long-repository-n"),
            "{long}"
        );
    }

    #[test]
    fn scans_carry_the_template_policy_and_label() {
        let rules = FirstSightRules {
            template: Some("trivy".into()),
            policy: Some("strict".into()),
            per_minute: None,
        };
        let scan = image_scan(&image("busybox:1"), &rules, "scangate-system");
        assert_eq!(scan.metadata.namespace.as_deref(), Some("scangate-system"));
        assert_eq!(
            scan.metadata.labels.as_ref().and_then(|l| l.get(LABEL)),
            Some(&"true".to_string())
        );
        assert_eq!(scan.spec.registry.image, "docker.io/library/busybox:1");
        assert_eq!(scan.spec.scan.scan_template.as_deref(), Some("trivy"));
        assert_eq!(scan.spec.scan.scan_policy.as_deref(), Some("strict"));
    }

    #[test]
    fn the_bucket_refills_evenly() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(3, start);
        assert!((0..3).all(|_| bucket.take(3, start)));
        assert!(!bucket.take(3, start));
        // One token every 20 s at 3 a minute.
        assert!(!bucket.take(3, start + Duration::from_secs(19)));
        assert!(bucket.take(3, start + Duration::from_secs(20)));
        // Never more than a minute's worth.
        let later = start + Duration::from_secs(3600);
        assert!((0..3).all(|_| bucket.take(3, later)));
        assert!(!bucket.take(3, later));
    }

    #[test]
    fn the_gate_deduplicates_then_limits() {
        let now = Instant::now();
        let mut gate = Gate::new(2, now);
        assert_eq!(gate.admit("a", 2, now), Admit::New);
        assert_eq!(gate.admit("a", 2, now), Admit::Seen);
        assert_eq!(gate.admit("b", 2, now), Admit::New);
        assert_eq!(gate.admit("c", 2, now), Admit::Limited);
        // A limited request is not remembered: it may go when a token is back.
        assert_eq!(
            gate.admit("c", 2, now + Duration::from_secs(30)),
            Admit::New
        );
        gate.forget("a");
        assert_eq!(
            gate.admit("a", 2, now + Duration::from_secs(60)),
            Admit::New
        );
    }
}
