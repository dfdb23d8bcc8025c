//! Signed scan results from the registry: vulnerability attestations (DSSE envelopes of
//! in-toto Statements) verified against the public keys the admin configures, turned into a
//! normalized [`Report`]. Pure: the envelopes are fetched by [`crate::registry`]; this module
//! decides what they are worth.
//!
//! What is accepted:
//! - a DSSE envelope (`payloadType`, base64 `payload`, `signatures[].sig`) whose payload type
//!   is `application/vnd.in-toto+json`, signed (ECDSA P-256 over SHA-256 of the DSSE
//!   pre-authentication encoding, DER or fixed-size signature, as cosign signs) by one of the
//!   configured keys;
//! - an in-toto Statement (v0.1 or v1) one of whose `subject[].digest.sha256` is the scanned
//!   digest;
//! - the predicate cosign `https://cosign.sigstore.dev/attestation/vuln/v1` (`scanner.result`
//!   is the scanner's own JSON, read by the report parsers; cosign's spec also shows a
//!   `scanners[]` list, whose results are merged) or in-toto
//!   `https://in-toto.io/attestation/vulns/v0.2` (`scanner.result[]` of ids and severities);
//! - a `metadata.scanFinishedOn` no older than the configured maximum age.
//!
//! Of several attestations the newest valid one wins; when none is valid, the rejection that
//! got furthest (an expired one before an unknown predicate, before a subject mismatch, before
//! an unverified signature, before a malformed envelope) says why.

use std::io::Cursor;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;
use serde::Deserialize;

use crate::report::{
    Artifact, ArtifactType, Limits, Package, Report, Scanner, Severity, Vulnerability,
};

/// The media type of a DSSE envelope layer (cosign's `.att` images, referrers' artifacts).
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The payload type of an in-toto Statement in a DSSE envelope.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// cosign's vulnerability predicate.
pub const COSIGN_VULN_V1: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
/// in-toto's vulnerability predicate.
pub const IN_TOTO_VULNS_V02: &str = "https://in-toto.io/attestation/vulns/v0.2";
/// The in-toto Statement types accepted.
const STATEMENT_TYPES: [&str; 2] = [
    "https://in-toto.io/Statement/v0.1",
    "https://in-toto.io/Statement/v1",
];
/// The most attestations of one image looked at; more are ignored (newest first where the
/// registry says).
pub const MAX_ATTESTATIONS: usize = 16;
/// The largest envelope read: a Grype or Trivy report of a large image is a few MiB, and the
/// payload is base64 in the envelope.
pub const MAX_ENVELOPE_BYTES: usize = 16 << 20;

/// What the admin's configured keys could not be made of.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "attestation key {name:?} is not a PEM public key of ECDSA P-256 ({cause}): give the \
         `cosign.pub` that `cosign generate-key-pair` wrote (-----BEGIN PUBLIC KEY-----)"
    )]
    Key { name: String, cause: String },
    #[error("attestation key names must be unique and non-empty; {name:?} is not")]
    KeyName { name: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A configured public key, by the name the status shows for what it signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedKey {
    pub name: String,
    key: VerifyingKey,
}

impl TrustedKey {
    /// Reads a PEM (SubjectPublicKeyInfo) ECDSA P-256 public key.
    pub fn from_pem(name: &str, pem: &str) -> Result<Self> {
        if name.trim().is_empty() {
            return Err(Error::KeyName {
                name: name.to_string(),
            });
        }
        let key = VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| Error::Key {
            name: name.to_string(),
            cause: e.to_string(),
        })?;
        Ok(TrustedKey {
            name: name.to_string(),
            key,
        })
    }

    /// Whether `signature` (DER, or the fixed 64 bytes) over `message` is this key's.
    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let parsed = Signature::from_der(signature).or_else(|_| Signature::from_slice(signature));
        parsed.is_ok_and(|s| self.key.verify(message, &s).is_ok())
    }
}

/// Which predicate a verified attestation carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Predicate {
    CosignVulnV1,
    InTotoVulnsV02,
}

impl Predicate {
    pub fn as_str(self) -> &'static str {
        match self {
            Predicate::CosignVulnV1 => COSIGN_VULN_V1,
            Predicate::InTotoVulnsV02 => IN_TOTO_VULNS_V02,
        }
    }
}

/// A verified, fresh attestation: the report it carries and its provenance.
#[derive(Clone, Debug, PartialEq)]
pub struct Attested {
    /// The configured key that verified its signature.
    pub key: String,
    pub predicate: Predicate,
    /// The scanner's report, normalized; its artifact is the scanned image at its digest.
    pub report: Report,
    /// When the scan ran (`metadata.scanFinishedOn`).
    pub scan_finished_on: Timestamp,
    /// The scanner's vulnerability database version, when the predicate says.
    pub db_version: Option<String>,
}

/// Why an attestation was not used, most informative last (see the module's docs).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rejection {
    /// Not a DSSE envelope of an in-toto Statement, or a predicate that cannot be read.
    Malformed(String),
    /// No configured key verifies any of its signatures: signed with another key, or altered
    /// after signing.
    Unverified,
    /// Verified, but it speaks for other content (its subjects' digests).
    SubjectMismatch(Vec<String>),
    /// Verified and for this digest, with a predicate that is not a vulnerability report
    /// scangate reads.
    UnknownPredicate(String),
    /// Verified, for this digest, readable, and older than the maximum age.
    Expired {
        key: String,
        scan_finished_on: Timestamp,
    },
}

impl Rejection {
    /// The reason of the scan's condition.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) => crate::api::reason::ATTESTATION_MALFORMED,
            Rejection::Unverified => crate::api::reason::ATTESTATION_UNVERIFIED,
            Rejection::SubjectMismatch(_) => crate::api::reason::ATTESTATION_SUBJECT_MISMATCH,
            Rejection::UnknownPredicate(_) => crate::api::reason::ATTESTATION_PREDICATE_UNKNOWN,
            Rejection::Expired { .. } => crate::api::reason::ATTESTATION_EXPIRED,
        }
    }

    /// What the condition's message says, for the scanned `digest`.
    pub fn message(&self, digest: &str, max_age: Option<Duration>) -> String {
        match self {
            Rejection::Malformed(problem) => format!(
                "The attestation of {digest} cannot be read ({problem}); no result was taken \
                 from it: attest a vulnerability report with `cosign attest --type vuln`"
            ),
            Rejection::Unverified => format!(
                "No configured key verifies the attestation of {digest} (signed with another \
                 key, or altered after signing); no result was taken from it: sign with a key \
                 listed in the admission config's attestations.keys"
            ),
            Rejection::SubjectMismatch(subjects) => format!(
                "The signed attestation found for {digest} is for other content ({}); no \
                 result was taken from it: attest the image by this digest",
                subjects.join(", ")
            ),
            Rejection::UnknownPredicate(found) => format!(
                "The signed attestation of {digest} has predicate type {found}, not a \
                 vulnerability report ({COSIGN_VULN_V1} or {IN_TOTO_VULNS_V02}); no result \
                 was taken from it"
            ),
            Rejection::Expired {
                key,
                scan_finished_on,
            } => format!(
                "The newest attestation of {digest} (key {key}) is of a scan that finished at \
                 {scan_finished_on}, older than the maximum age{}: it counts as no result; \
                 scan the image again and attest the new report",
                max_age
                    .map(|m| format!(" of {}", short_duration(m)))
                    .unwrap_or_default()
            ),
        }
    }
}

/// What an image's attestations give.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Verified(Box<Attested>),
    /// None was usable; the most informative rejection.
    Rejected(Rejection),
    /// The image has no attestation at all.
    None,
}

/// The newest usable attestation of the `digest` (`sha256:…`) among `envelopes`, verified
/// with `keys`; `image` names the scanned image in the report's artifact; one whose scan
/// finished more than `max_age` before `now` counts as no result.
pub fn choose(
    envelopes: &[Vec<u8>],
    keys: &[TrustedKey],
    image: &str,
    digest: &str,
    max_age: Option<Duration>,
    now: Timestamp,
) -> Outcome {
    let mut best: Option<Attested> = None;
    let mut rejection: Option<Rejection> = None;
    for envelope in envelopes.iter().take(MAX_ATTESTATIONS) {
        match verify(envelope, keys, image, digest) {
            Ok(attested) if is_expired(attested.scan_finished_on, max_age, now) => {
                let expired = Rejection::Expired {
                    key: attested.key,
                    scan_finished_on: attested.scan_finished_on,
                };
                rejection = rejection.max(Some(expired));
            }
            Ok(attested) => {
                if best
                    .as_ref()
                    .is_none_or(|b| attested.scan_finished_on > b.scan_finished_on)
                {
                    best = Some(attested);
                }
            }
            Err(r) => rejection = rejection.max(Some(r)),
        }
    }
    match (best, rejection) {
        (Some(attested), _) => Outcome::Verified(Box::new(attested)),
        (None, Some(r)) => Outcome::Rejected(r),
        (None, None) => Outcome::None,
    }
}

/// `7d`, `36h`, `90m` or `45s`: the largest unit that divides the duration.
fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        _ if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        _ if s.is_multiple_of(3_600) => format!("{}h", s / 3_600),
        _ if s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

fn is_expired(finished: Timestamp, max_age: Option<Duration>, now: Timestamp) -> bool {
    let Some(max_age) = max_age else {
        return false;
    };
    let Ok(max_age) = jiff::SignedDuration::try_from(max_age) else {
        return false;
    };
    finished
        .checked_add(max_age)
        .is_ok_and(|expires| expires < now)
}

/// When a verified attestation stops counting.
pub fn expires_at(attested: &Attested, max_age: Option<Duration>) -> Option<Timestamp> {
    let max_age = jiff::SignedDuration::try_from(max_age?).ok()?;
    attested.scan_finished_on.checked_add(max_age).ok()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload_type: String,
    payload: String,
    #[serde(default)]
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
struct EnvelopeSignature {
    #[serde(default)]
    sig: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(rename = "_type")]
    type_: String,
    #[serde(default)]
    subject: Vec<Subject>,
    predicate_type: String,
    #[serde(default)]
    predicate: serde_json::Value,
}

#[derive(Deserialize)]
struct Subject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// The DSSE pre-authentication encoding: what is signed.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// One envelope checked: signature, then subject, then predicate.
fn verify(
    envelope: &[u8],
    keys: &[TrustedKey],
    image: &str,
    digest: &str,
) -> Result<Attested, Rejection> {
    let malformed = |p: String| Rejection::Malformed(p);
    if envelope.len() > MAX_ENVELOPE_BYTES {
        return Err(malformed(format!(
            "the envelope is over {MAX_ENVELOPE_BYTES} bytes"
        )));
    }
    let envelope: Envelope = serde_json::from_slice(envelope)
        .map_err(|e| malformed(format!("not a DSSE envelope: {e}")))?;
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(malformed(format!(
            "payloadType {:?} is not {IN_TOTO_PAYLOAD_TYPE}",
            envelope.payload_type
        )));
    }
    let payload = STANDARD
        .decode(envelope.payload.as_bytes())
        .map_err(|e| malformed(format!("the payload is not base64: {e}")))?;
    let signed = pae(&envelope.payload_type, &payload);
    let key = envelope
        .signatures
        .iter()
        .filter_map(|s| STANDARD.decode(s.sig.as_bytes()).ok())
        .find_map(|sig| keys.iter().find(|k| k.verifies(&signed, &sig)))
        .ok_or(Rejection::Unverified)?;
    let statement: Statement = serde_json::from_slice(&payload)
        .map_err(|e| malformed(format!("the payload is not an in-toto Statement: {e}")))?;
    if !STATEMENT_TYPES.contains(&statement.type_.as_str()) {
        return Err(malformed(format!(
            "the Statement's _type {:?} is none of {}",
            statement.type_,
            STATEMENT_TYPES.join(", ")
        )));
    }
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let subjects: Vec<String> = statement
        .subject
        .iter()
        .filter_map(|s| s.digest.get("sha256"))
        .map(|d| format!("sha256:{d}"))
        .collect();
    if !statement
        .subject
        .iter()
        .any(|s| s.digest.get("sha256").is_some_and(|d| d == hex))
    {
        return Err(Rejection::SubjectMismatch(subjects));
    }
    let predicate = match statement.predicate_type.as_str() {
        COSIGN_VULN_V1 => Predicate::CosignVulnV1,
        IN_TOTO_VULNS_V02 => Predicate::InTotoVulnsV02,
        other => return Err(Rejection::UnknownPredicate(other.to_string())),
    };
    let read: VulnPredicate = serde_json::from_value(statement.predicate)
        .map_err(|e| malformed(format!("the {} predicate: {e}", predicate.as_str())))?;
    let finished = read
        .metadata
        .as_ref()
        .and_then(|m| m.scan_finished_on.as_deref())
        .ok_or_else(|| malformed("the predicate has no metadata.scanFinishedOn".into()))?;
    let scan_finished_on: Timestamp = finished.parse().map_err(|e| {
        malformed(format!(
            "metadata.scanFinishedOn {finished:?} is not an RFC 3339 time: {e}"
        ))
    })?;
    let scanners: Vec<&PredicateScanner> = read.scanner.iter().chain(&read.scanners).collect();
    let Some(first) = scanners.first() else {
        return Err(malformed("the predicate names no scanner".into()));
    };
    let db_version = first.db.as_ref().and_then(|d| d.version.clone());
    let mut report = Report::default();
    for (n, scanner) in scanners.iter().enumerate() {
        let read = match predicate {
            Predicate::CosignVulnV1 => cosign_result(scanner).map_err(malformed)?,
            Predicate::InTotoVulnsV02 => in_toto_result(scanner).map_err(malformed)?,
        };
        if n == 0 {
            report.scanner = read.scanner;
        }
        report.vulnerabilities.extend(read.vulnerabilities);
    }
    report.artifact = Artifact {
        artifact_type: ArtifactType::Image,
        name: image.to_string(),
        digest: Some(format!("sha256:{hex}")),
        image_id: None,
    };
    Ok(Attested {
        key: key.name.clone(),
        predicate,
        report,
        scan_finished_on,
        db_version,
    })
}

/// The common shape of both predicates.
#[derive(Deserialize)]
struct VulnPredicate {
    #[serde(default)]
    scanner: Option<PredicateScanner>,
    #[serde(default)]
    scanners: Vec<PredicateScanner>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    #[serde(default)]
    scan_finished_on: Option<String>,
}

#[derive(Deserialize)]
struct PredicateScanner {
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    db: Option<Db>,
    #[serde(default)]
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct Db {
    #[serde(default)]
    version: Option<String>,
}

impl PredicateScanner {
    /// The scanner the predicate names: `pkg:github/aquasecurity/trivy@v0.50` is trivy by
    /// aquasecurity.
    fn named(&self) -> Scanner {
        let path = self
            .uri
            .as_deref()
            .and_then(|u| u.strip_prefix("pkg:"))
            .map(|p| p.split('@').next().unwrap_or(p))
            .unwrap_or_default();
        let mut parts = path.rsplit('/');
        let name = parts.next().filter(|n| !n.is_empty()).unwrap_or("unknown");
        let vendor = parts.next().unwrap_or("unknown");
        Scanner {
            name: name.to_string(),
            vendor: vendor.to_string(),
            version: self
                .version
                .clone()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "unknown".into()),
        }
    }
}

/// cosign's `scanner.result`: the scanner's own report, read by the report parsers.
fn cosign_result(scanner: &PredicateScanner) -> Result<Report, String> {
    if !scanner.result.is_object() {
        return Err("scanner.result is not the scanner's JSON report".into());
    }
    let bytes = serde_json::to_vec(&scanner.result).map_err(|e| e.to_string())?;
    let mut report = Report::from_reader(
        "the attested scanner.result",
        Cursor::new(bytes),
        Limits::default(),
    )
    .map_err(|e| e.to_string())?;
    if report.scanner.name.is_empty() || report.scanner.name == "unknown" {
        report.scanner = scanner.named();
    }
    Ok(report)
}

#[derive(Deserialize)]
struct InTotoFinding {
    id: String,
    #[serde(default)]
    severity: Vec<InTotoSeverity>,
}

#[derive(Deserialize)]
struct InTotoSeverity {
    #[serde(default)]
    score: serde_json::Value,
}

/// in-toto `vulns` v0.2's `scanner.result[]`: ids with severities by method, no packages.
fn in_toto_result(scanner: &PredicateScanner) -> Result<Report, String> {
    let findings: Vec<InTotoFinding> = match &scanner.result {
        serde_json::Value::Null => Vec::new(),
        value => serde_json::from_value(value.clone())
            .map_err(|e| format!("scanner.result is not a list of findings: {e}"))?,
    };
    let vulnerabilities = findings
        .into_iter()
        .map(|f| {
            let severity = f
                .severity
                .iter()
                .find_map(|s| match &s.score {
                    serde_json::Value::String(s) => Severity::from_name(s)
                        .or_else(|| s.parse().ok().and_then(Severity::from_cvss_v3_score)),
                    serde_json::Value::Number(n) => {
                        n.as_f64().and_then(Severity::from_cvss_v3_score)
                    }
                    _ => None,
                })
                .unwrap_or(Severity::Unknown);
            Vulnerability {
                id: f.id,
                severity,
                raw_severity: None,
                package: Package::default(),
                fixed_versions: Vec::new(),
                urls: Vec::new(),
            }
        })
        .collect();
    Ok(Report {
        scanner: scanner.named(),
        vulnerabilities,
        ..Report::default()
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::{EncodePublicKey as _, LineEnding};

    pub const DIGEST: &str =
        "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const IMAGE: &str = "registry.example/busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn signing_key(seed: u8) -> SigningKey {
        let mut bytes = [seed; 32];
        bytes[0] = 1;
        SigningKey::from_slice(&bytes).unwrap()
    }

    fn trusted(name: &str, seed: u8) -> TrustedKey {
        let pem = signing_key(seed)
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        TrustedKey::from_pem(name, &pem).unwrap()
    }

    fn grype_busybox() -> serde_json::Value {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/reports/grype/grype-0.94.0_busybox-1.32.1.json"
        ))
        .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn statement(subject: &str, predicate_type: &str, predicate: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "subject": [{"name": "registry.example/busybox", "digest": {"sha256": subject.trim_start_matches("sha256:")}}],
            "predicateType": predicate_type,
            "predicate": predicate,
        }))
        .unwrap()
    }

    fn cosign_predicate(result: serde_json::Value, finished: &str) -> serde_json::Value {
        serde_json::json!({
            "invocation": {"parameters": null, "uri": "", "event_id": "", "builder.id": ""},
            "scanner": {"uri": "pkg:github/anchore/grype@0.74.0", "version": "0.74.0",
                        "db": {"uri": "", "version": "v5-2024-01-01"}, "result": result},
            "metadata": {"scanStartedOn": finished, "scanFinishedOn": finished},
        })
    }

    fn envelope(payload: &[u8], key: &SigningKey) -> Vec<u8> {
        let signature: Signature = key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, payload));
        serde_json::to_vec(&serde_json::json!({
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "payload": STANDARD.encode(payload),
            "signatures": [{"keyid": "", "sig": STANDARD.encode(signature.to_der().as_bytes())}],
        }))
        .unwrap()
    }

    fn now() -> Timestamp {
        "2026-12-07T00:00:00Z".parse().unwrap()
    }

    fn week() -> Option<Duration> {
        Some(Duration::from_secs(7 * 24 * 3600))
    }

    fn good() -> Vec<u8> {
        let predicate = cosign_predicate(grype_busybox(), "2026-12-06T10:00:00Z");
        envelope(
            &statement(DIGEST, COSIGN_VULN_V1, predicate),
            &signing_key(7),
        )
    }

    fn choose_one(envelope: Vec<u8>) -> Outcome {
        let keys = [trusted("other", 9), trusted("ci", 7)];
        choose(&[envelope], &keys, IMAGE, DIGEST, week(), now())
    }

    #[test]
    fn a_signed_cosign_vuln_attestation_gives_the_grype_report_and_its_key() {
        let Outcome::Verified(attested) = choose_one(good()) else {
            panic!("not verified");
        };
        assert_eq!(attested.key, "ci");
        assert_eq!(attested.predicate, Predicate::CosignVulnV1);
        assert_eq!(attested.report.scanner.name, "grype");
        assert!(!attested.report.vulnerabilities.is_empty());
        assert_eq!(attested.report.artifact.digest.as_deref(), Some(DIGEST));
        assert_eq!(attested.report.artifact.name, IMAGE);
        assert_eq!(attested.db_version.as_deref(), Some("v5-2024-01-01"));
        assert_eq!(
            attested.scan_finished_on,
            "2026-12-06T10:00:00Z".parse::<Timestamp>().unwrap()
        );
    }

    #[test]
    fn the_spec_scanners_list_is_read_too() {
        let predicate = serde_json::json!({
            "scanners": [{"uri": "pkg:github/anchore/grype@0.74.0", "version": "0.74.0",
                          "result": grype_busybox()}],
            "metadata": {"scanFinishedOn": "2026-12-06T10:00:00Z"},
        });
        let signed = envelope(
            &statement(DIGEST, COSIGN_VULN_V1, predicate),
            &signing_key(7),
        );
        assert!(matches!(choose_one(signed), Outcome::Verified(_)));
    }

    #[test]
    fn an_in_toto_vulns_attestation_gives_ids_and_severities() {
        let predicate = serde_json::json!({
            "scanner": {"uri": "pkg:github/aquasecurity/trivy@244fd47", "version": "0.19.2",
                        "db": {"version": "v1-2021080612"},
                        "result": [
                            {"id": "CVE-2021-0001", "severity": [{"method": "nvd", "score": "critical"}]},
                            {"id": "CVE-2021-0002", "severity": [{"method": "cvss_score", "score": "5.3"}]},
                            {"id": "CVE-2021-0003"}
                        ]},
            "metadata": {"scanFinishedOn": "2026-12-06T10:00:00Z"},
        });
        let signed = envelope(
            &statement(DIGEST, IN_TOTO_VULNS_V02, predicate),
            &signing_key(7),
        );
        let Outcome::Verified(attested) = choose_one(signed) else {
            panic!("not verified");
        };
        let severities: Vec<_> = attested
            .report
            .vulnerabilities
            .iter()
            .map(|v| v.severity)
            .collect();
        assert_eq!(
            severities,
            [Severity::Critical, Severity::Medium, Severity::Unknown]
        );
        assert_eq!(attested.report.scanner.name, "trivy");
        assert_eq!(attested.report.scanner.vendor, "aquasecurity");
    }

    #[test]
    fn a_signature_by_another_key_is_unverified() {
        let predicate = cosign_predicate(grype_busybox(), "2026-12-06T10:00:00Z");
        let signed = envelope(
            &statement(DIGEST, COSIGN_VULN_V1, predicate),
            &signing_key(3),
        );
        assert_eq!(choose_one(signed), Outcome::Rejected(Rejection::Unverified));
    }

    #[test]
    fn a_payload_altered_after_signing_is_unverified() {
        let mut value: serde_json::Value = serde_json::from_slice(&good()).unwrap();
        let payload = STANDARD.decode(value["payload"].as_str().unwrap()).unwrap();
        let altered = String::from_utf8(payload)
            .unwrap()
            .replace("\"Critical\"", "\"Negligible\"")
            .replace("\"High\"", "\"Negligible\"");
        value["payload"] = STANDARD.encode(altered).into();
        let tampered = serde_json::to_vec(&value).unwrap();
        assert_eq!(
            choose_one(tampered),
            Outcome::Rejected(Rejection::Unverified)
        );
    }

    #[test]
    fn an_attestation_of_other_content_is_a_subject_mismatch() {
        let other = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
        let predicate = cosign_predicate(grype_busybox(), "2026-12-06T10:00:00Z");
        let signed = envelope(
            &statement(other, COSIGN_VULN_V1, predicate),
            &signing_key(7),
        );
        assert_eq!(
            choose_one(signed),
            Outcome::Rejected(Rejection::SubjectMismatch(vec![other.to_string()]))
        );
    }

    #[test]
    fn an_unknown_predicate_is_refused() {
        let signed = envelope(
            &statement(
                DIGEST,
                "https://slsa.dev/provenance/v1",
                serde_json::json!({}),
            ),
            &signing_key(7),
        );
        assert_eq!(
            choose_one(signed),
            Outcome::Rejected(Rejection::UnknownPredicate(
                "https://slsa.dev/provenance/v1".into()
            ))
        );
    }

    #[test]
    fn an_attestation_older_than_the_maximum_age_counts_as_no_result() {
        let predicate = cosign_predicate(grype_busybox(), "2026-11-01T10:00:00Z");
        let signed = envelope(
            &statement(DIGEST, COSIGN_VULN_V1, predicate),
            &signing_key(7),
        );
        let Outcome::Rejected(rejection) = choose_one(signed.clone()) else {
            panic!("not rejected");
        };
        assert_eq!(rejection.reason(), "AttestationExpired");
        assert!(rejection.message(DIGEST, week()).contains("7d"));
        // Without a maximum age, it stands.
        let keys = [trusted("ci", 7)];
        assert!(matches!(
            choose(&[signed], &keys, IMAGE, DIGEST, None, now()),
            Outcome::Verified(_)
        ));
    }

    #[test]
    fn malformed_envelopes_say_what_is_wrong() {
        for (bytes, says) in [
            (b"not json".to_vec(), "not a DSSE envelope"),
            (
                br#"{"payloadType":"text/plain","payload":"","signatures":[]}"#.to_vec(),
                "payloadType",
            ),
            (
                br#"{"payloadType":"application/vnd.in-toto+json","payload":"%%","signatures":[]}"#
                    .to_vec(),
                "base64",
            ),
        ] {
            match choose_one(bytes) {
                Outcome::Rejected(Rejection::Malformed(problem)) => {
                    assert!(problem.contains(says), "{problem}")
                }
                other => panic!("{other:?}"),
            }
        }
        let no_time = cosign_predicate(grype_busybox(), "yesterday");
        let signed = envelope(&statement(DIGEST, COSIGN_VULN_V1, no_time), &signing_key(7));
        assert!(matches!(
            choose_one(signed),
            Outcome::Rejected(Rejection::Malformed(p)) if p.contains("scanFinishedOn")
        ));
    }

    #[test]
    fn the_newest_valid_attestation_wins_and_the_furthest_rejection_explains() {
        let older = envelope(
            &statement(
                DIGEST,
                COSIGN_VULN_V1,
                cosign_predicate(grype_busybox(), "2026-12-05T10:00:00Z"),
            ),
            &signing_key(7),
        );
        let clean = serde_json::json!({"matches": [], "descriptor": {"name": "grype", "version": "0.74.0"}, "source": {"type": "image", "target": {"userInput": "busybox"}}});
        let newer = envelope(
            &statement(
                DIGEST,
                COSIGN_VULN_V1,
                cosign_predicate(clean, "2026-12-06T10:00:00Z"),
            ),
            &signing_key(7),
        );
        let keys = [trusted("ci", 7)];
        let Outcome::Verified(attested) = choose(
            &[older.clone(), newer, b"junk".to_vec()],
            &keys,
            IMAGE,
            DIGEST,
            week(),
            now(),
        ) else {
            panic!("not verified");
        };
        assert!(attested.report.vulnerabilities.is_empty());
        let wrong_key = envelope(
            &statement(
                DIGEST,
                COSIGN_VULN_V1,
                cosign_predicate(grype_busybox(), "2026-12-05T10:00:00Z"),
            ),
            &signing_key(3),
        );
        assert_eq!(
            choose(
                &[b"junk".to_vec(), wrong_key],
                &keys,
                IMAGE,
                DIGEST,
                week(),
                now()
            ),
            Outcome::Rejected(Rejection::Unverified)
        );
        assert_eq!(
            choose(&[], &keys, IMAGE, DIGEST, week(), now()),
            Outcome::None
        );
    }

    #[test]
    fn keys_must_be_p256_public_keys_with_names() {
        assert!(matches!(
            TrustedKey::from_pem("ci", "not a key"),
            Err(Error::Key { .. })
        ));
        let pem = signing_key(7)
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        assert!(matches!(
            TrustedKey::from_pem(" ", &pem),
            Err(Error::KeyName { .. })
        ));
        let message = TrustedKey::from_pem("ci", "x").unwrap_err().to_string();
        assert!(message.contains("cosign generate-key-pair"), "{message}");
    }
}
