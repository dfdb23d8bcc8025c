//! Verdicts out: scangate's own verdict on an image digest as a signed in-toto attestation that
//! other tools can verify (`cosign verify-attestation --key`). Pure: the key is read from the
//! bytes of an admin's Secret, the Statement is built from a scan's status, and the DSSE
//! envelope is signed here; [`crate::registry`] pushes it and the controller decides when.
//!
//! The Statement (in-toto v1) has the scanned digest as its only subject and the predicate
//! [`SVR_V01`], the in-toto Simple Verification Result:
//!
//! - `verifier.id` is [`VERIFIER_ID`]; `verifier.version` (an extension field) is scangate's
//!   version and `verifier.policy` (an extension field, as the SVR spec's example) names the
//!   ScanPolicy that judged the report, its generation and the SHA-256 of its Rego;
//! - `timeCreated` is when the verdict was signed;
//! - `properties` are the verified properties: `SCANGATE_VULN_SCANNED`, then
//!   `SCANGATE_POLICY_PASSED` (phase Completed) or `SCANGATE_POLICY_FAILED` (phase Failed),
//!   then one `SCANGATE_CVES_<SEVERITY>_<N>` per severity and `SCANGATE_CVES_TOTAL_<N>` (unique
//!   CVE ids);
//! - `inputAttestations` (an extension field) lists the signed vulnerability attestation the
//!   report came from, when it came from one.
//!
//! The signing key is ECDSA P-256, as cosign's: the Secret holds either `cosign.key` (the
//! encrypted key `cosign generate-key-pair` writes, with `cosign.password`, as
//! `cosign generate-key-pair k8s://NAMESPACE/NAME` creates it) or `key.pem` (an unencrypted
//! PKCS#8 or SEC1 PEM private key).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey as _;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::api::{AttestationResult, CveCount, Phase};
use crate::attest::{IN_TOTO_PAYLOAD_TYPE, pae};

/// The in-toto Simple Verification Result predicate.
pub const SVR_V01: &str = "https://in-toto.io/attestation/svr/v0.1";
/// Who verified: scangate's controller, this version of its verdict logic.
pub const VERIFIER_ID: &str = "https://scangate.dev/verifier/v1";
/// The in-toto Statement type the SVR is written as.
const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// The Secret keys the signing key is read from.
pub const COSIGN_KEY: &str = "cosign.key";
pub const COSIGN_PASSWORD: &str = "cosign.password";
pub const PEM_KEY: &str = "key.pem";
/// The scrypt parameters cosign (go-securesystemslib) writes: legacy, standard and OWASP.
/// Others are refused, so a tampered key cannot make the controller spend unbounded memory.
const SCRYPT_PARAMS: [(u32, u32, u32); 3] = [(32_768, 8, 1), (65_536, 8, 1), (131_072, 8, 1)];

/// Why the signing key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the verdict signing Secret has neither {COSIGN_KEY} nor {PEM_KEY}: create it with \
         `cosign generate-key-pair k8s://NAMESPACE/NAME`, or put a PEM ECDSA P-256 private key \
         under {PEM_KEY}"
    )]
    NoKey,
    #[error(
        "the verdict signing key {COSIGN_KEY} cannot be decrypted with {COSIGN_PASSWORD} \
         ({0}): give the password `cosign generate-key-pair` was given"
    )]
    Decrypt(String),
    #[error(
        "the verdict signing key {0} is not an ECDSA P-256 private key ({1}): cosign's keys \
         and `openssl ecparam -name prime256v1` keys are"
    )]
    Key(&'static str, String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The admin's verdict signing key.
#[derive(Clone)]
pub struct VerdictKey {
    key: SigningKey,
}

impl std::fmt::Debug for VerdictKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerdictKey(..)")
    }
}

impl VerdictKey {
    /// Reads the key from a Secret's data: `cosign.key` (with `cosign.password`, empty when
    /// absent) when present, else `key.pem`.
    pub fn from_secret(data: &BTreeMap<String, Vec<u8>>) -> Result<Self> {
        if let Some(encrypted) = data.get(COSIGN_KEY) {
            let password = data.get(COSIGN_PASSWORD).map(Vec::as_slice).unwrap_or(b"");
            return Self::from_cosign(encrypted, password);
        }
        match data.get(PEM_KEY) {
            Some(pem) => Self::from_pem(pem),
            None => Err(Error::NoKey),
        }
    }

    /// An unencrypted PKCS#8 (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`) PEM key.
    pub fn from_pem(pem: &[u8]) -> Result<Self> {
        let text = std::str::from_utf8(pem).map_err(|e| Error::Key(PEM_KEY, e.to_string()))?;
        let pkcs8 = SigningKey::from_pkcs8_pem(text.trim());
        let key = match pkcs8 {
            Ok(key) => key,
            Err(pkcs8) => {
                use p256::elliptic_curve::SecretKey;
                SecretKey::<p256::NistP256>::from_sec1_pem(text.trim())
                    .map(SigningKey::from)
                    .map_err(|_| Error::Key(PEM_KEY, pkcs8.to_string()))?
            }
        };
        Ok(VerdictKey { key })
    }

    /// cosign's encrypted key: a PEM block (`ENCRYPTED SIGSTORE PRIVATE KEY`, or `ENCRYPTED
    /// COSIGN PRIVATE KEY` of older versions) holding JSON: scrypt parameters and salt, a
    /// NaCl secretbox nonce, and the sealed PKCS#8 DER key.
    pub fn from_cosign(pem: &[u8], password: &[u8]) -> Result<Self> {
        let text = std::str::from_utf8(pem).map_err(|e| Error::Key(COSIGN_KEY, e.to_string()))?;
        let json = pem_body(
            text,
            &[
                "ENCRYPTED SIGSTORE PRIVATE KEY",
                "ENCRYPTED COSIGN PRIVATE KEY",
            ],
        )
        .ok_or_else(|| Error::Key(COSIGN_KEY, "not an encrypted cosign key PEM".into()))?;
        let sealed: Sealed = serde_json::from_slice(&json)
            .map_err(|e| Error::Key(COSIGN_KEY, format!("not cosign's key JSON: {e}")))?;
        if sealed.kdf.name != "scrypt" || sealed.cipher.name != "nacl/secretbox" {
            return Err(Error::Key(
                COSIGN_KEY,
                format!(
                    "kdf {:?} and cipher {:?} are not scrypt and nacl/secretbox",
                    sealed.kdf.name, sealed.cipher.name
                ),
            ));
        }
        let p = &sealed.kdf.params;
        if !SCRYPT_PARAMS.contains(&(p.n, p.r, p.p)) {
            return Err(Error::Key(
                COSIGN_KEY,
                format!(
                    "scrypt parameters N={} r={} p={} are not cosign's",
                    p.n, p.r, p.p
                ),
            ));
        }
        let decode = |what: &str, b64: &str| {
            STANDARD
                .decode(b64)
                .map_err(|e| Error::Key(COSIGN_KEY, format!("{what} is not base64: {e}")))
        };
        let salt = decode("kdf.salt", &sealed.kdf.salt)?;
        let nonce = decode("cipher.nonce", &sealed.cipher.nonce)?;
        let ciphertext = decode("ciphertext", &sealed.ciphertext)?;
        let log_n = p.n.trailing_zeros() as u8;
        let params = scrypt::Params::new(log_n, p.r, p.p, 32)
            .map_err(|e| Error::Key(COSIGN_KEY, format!("scrypt parameters: {e}")))?;
        let mut box_key = [0u8; 32];
        scrypt::scrypt(password, &salt, &params, &mut box_key)
            .map_err(|e| Error::Decrypt(e.to_string()))?;
        use crypto_secretbox::aead::{Aead as _, KeyInit as _};
        let nonce: [u8; 24] = nonce
            .try_into()
            .map_err(|_| Error::Key(COSIGN_KEY, "cipher.nonce is not 24 bytes".into()))?;
        let der = crypto_secretbox::XSalsa20Poly1305::new(&box_key.into())
            .decrypt(&nonce.into(), ciphertext.as_slice())
            .map_err(|_| Error::Decrypt("wrong password, or the key was altered".into()))?;
        let key =
            SigningKey::from_pkcs8_der(&der).map_err(|e| Error::Key(COSIGN_KEY, e.to_string()))?;
        Ok(VerdictKey { key })
    }

    /// The public key, PEM, as `cosign.pub` has it.
    pub fn public_pem(&self) -> String {
        use p256::pkcs8::EncodePublicKey as _;
        self.key
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap_or_default()
    }

    /// A DSSE envelope of `statement` (an in-toto Statement, JSON), signed as cosign signs:
    /// ECDSA P-256 over SHA-256 of the pre-authentication encoding, DER, base64.
    pub fn envelope(&self, statement: &[u8]) -> Vec<u8> {
        let signature: Signature = self.key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, statement));
        let envelope = json!({
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "payload": STANDARD.encode(statement),
            "signatures": [{"keyid": "", "sig": STANDARD.encode(signature.to_der().as_bytes())}],
        });
        envelope.to_string().into_bytes()
    }
}

#[derive(Deserialize)]
struct Sealed {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    salt: String,
}

#[derive(Deserialize)]
struct KdfParams {
    #[serde(rename = "N")]
    n: u32,
    r: u32,
    p: u32,
}

#[derive(Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// The decoded body of the first PEM block of one of `labels`.
fn pem_body(text: &str, labels: &[&str]) -> Option<Vec<u8>> {
    labels.iter().find_map(|label| {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        let start = text.find(&begin)? + begin.len();
        let stop = start + text[start..].find(&end)?;
        let b64: String = text[start..stop].split_whitespace().collect();
        STANDARD.decode(b64).ok()
    })
}

/// The verdict of one digest, as the SVR states it.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict<'a> {
    /// The image as scanned, `repository@sha256:…`: the subject's name.
    pub image: &'a str,
    /// `sha256:…`
    pub digest: &'a str,
    /// Completed or Failed.
    pub phase: Phase,
    pub cve_count: &'a CveCount,
    /// The policy that judged the report, when one did.
    pub policy: Option<PolicyRef<'a>>,
    /// The signed attestation the report came from, when it did.
    pub input: Option<&'a AttestationResult>,
    pub time: Timestamp,
}

/// The ScanPolicy behind a verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyRef<'a> {
    /// `namespace/name`, or `scangate/default.rego`.
    pub name: &'a str,
    pub generation: Option<i64>,
    /// The policy's Rego, whose SHA-256 is stated.
    pub rego: Option<&'a str>,
}

/// The properties an SVR states for a verdict (see the module's docs).
pub fn properties(phase: Phase, cve_count: &CveCount) -> Vec<String> {
    let mut properties = vec!["SCANGATE_VULN_SCANNED".to_string()];
    properties.push(match phase {
        Phase::Completed => "SCANGATE_POLICY_PASSED".into(),
        _ => "SCANGATE_POLICY_FAILED".into(),
    });
    for (severity, n) in cve_count.by_severity() {
        properties.push(format!(
            "SCANGATE_CVES_{}_{n}",
            severity.to_ascii_uppercase()
        ));
    }
    properties.push(format!("SCANGATE_CVES_TOTAL_{}", cve_count.total));
    properties
}

/// The in-toto Statement (JSON) of a verdict.
pub fn statement(verdict: &Verdict<'_>) -> Vec<u8> {
    let hex = verdict
        .digest
        .strip_prefix("sha256:")
        .unwrap_or(verdict.digest);
    let name = verdict.image.split('@').next().unwrap_or(verdict.image);
    let mut verifier = json!({"id": VERIFIER_ID, "version": env!("CARGO_PKG_VERSION")});
    if let Some(policy) = &verdict.policy {
        let mut described = json!({"name": policy.name});
        if let Some(generation) = policy.generation {
            described["generation"] = json!(generation);
        }
        if let Some(rego) = policy.rego {
            described["digest"] = json!({"sha256": hex_sha256(rego.as_bytes())});
        }
        verifier["policy"] = described;
    }
    let mut predicate = json!({
        "verifier": verifier,
        "timeCreated": verdict.time.to_string(),
        "properties": properties(verdict.phase, verdict.cve_count),
    });
    if let Some(input) = verdict.input {
        predicate["inputAttestations"] = json!([{
            "predicateType": input.predicate_type,
            "signedBy": input.key,
            "scanFinishedOn": input.scan_finished_on.0.to_string(),
        }]);
    }
    let statement = json!({
        "_type": STATEMENT_V1,
        "subject": [{"name": name, "digest": {"sha256": hex}}],
        "predicateType": SVR_V01,
        "predicate": predicate,
    });
    statement.to_string().into_bytes()
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::TrustedKey;
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier as _;
    use p256::pkcs8::EncodePrivateKey as _;
    use serde_json::Value;

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn key() -> SigningKey {
        SigningKey::from_slice(&[7u8; 32]).unwrap()
    }

    fn counts() -> CveCount {
        CveCount {
            critical: 2,
            high: 1,
            medium: 0,
            low: 3,
            unknown: 0,
            total: 6,
        }
    }

    /// cosign's encrypted key format, sealed here with the parameters cosign writes.
    fn cosign_pem(key: &SigningKey, password: &[u8], n_log: u8) -> Vec<u8> {
        use crypto_secretbox::aead::{Aead as _, KeyInit as _};
        let der = key.to_pkcs8_der().unwrap();
        let salt = [5u8; 32];
        let nonce = [9u8; 24];
        let mut box_key = [0u8; 32];
        let params = scrypt::Params::new(n_log, 8, 1, 32).unwrap();
        scrypt::scrypt(password, &salt, &params, &mut box_key).unwrap();
        let sealed = crypto_secretbox::XSalsa20Poly1305::new(&box_key.into())
            .encrypt(&nonce.into(), der.as_bytes())
            .unwrap();
        let json = json!({
            "kdf": {"name": "scrypt", "params": {"N": 1u32 << n_log, "r": 8, "p": 1},
                    "salt": STANDARD.encode(salt)},
            "cipher": {"name": "nacl/secretbox", "nonce": STANDARD.encode(nonce)},
            "ciphertext": STANDARD.encode(sealed),
        });
        format!(
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n{}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
            STANDARD.encode(json.to_string())
        )
        .into_bytes()
    }

    #[test]
    fn a_cosign_key_is_decrypted_with_its_password_and_refused_with_another() {
        let pem = cosign_pem(&key(), b"s3cret", 15);
        let read = VerdictKey::from_cosign(&pem, b"s3cret").unwrap();
        assert_eq!(read.key, key());
        let wrong = VerdictKey::from_cosign(&pem, b"guess").unwrap_err();
        assert!(matches!(wrong, Error::Decrypt(_)), "{wrong}");
        assert!(wrong.to_string().contains("cosign.password"), "{wrong}");
        // From a Secret as `cosign generate-key-pair k8s://…` writes it.
        let data = BTreeMap::from([
            (COSIGN_KEY.to_string(), pem),
            (COSIGN_PASSWORD.to_string(), b"s3cret".to_vec()),
        ]);
        assert_eq!(VerdictKey::from_secret(&data).unwrap().key, key());
    }

    #[test]
    fn scrypt_parameters_other_than_cosigns_are_refused_before_any_work() {
        // N = 2^20 would make the controller spend a GiB of memory.
        let pem = cosign_pem(&key(), b"", 10);
        let error = VerdictKey::from_cosign(&pem, b"").unwrap_err().to_string();
        assert!(error.contains("are not cosign's"), "{error}");
    }

    #[test]
    fn pem_keys_are_read_and_anything_else_says_what_to_give() {
        let pkcs8 = key().to_pkcs8_pem(p256::pkcs8::LineEnding::LF).unwrap();
        let data = BTreeMap::from([(PEM_KEY.to_string(), pkcs8.as_bytes().to_vec())]);
        assert_eq!(VerdictKey::from_secret(&data).unwrap().key, key());
        let sec1 = p256::SecretKey::from(key().as_nonzero_scalar())
            .to_sec1_pem(p256::pkcs8::LineEnding::LF)
            .unwrap();
        assert_eq!(VerdictKey::from_pem(sec1.as_bytes()).unwrap().key, key());
        let none = VerdictKey::from_secret(&BTreeMap::new()).unwrap_err();
        assert!(
            none.to_string().contains("cosign generate-key-pair"),
            "{none}"
        );
        let bad =
            VerdictKey::from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
                .unwrap_err();
        assert!(
            bad.to_string().contains("not an ECDSA P-256 private key"),
            "{bad}"
        );
        let garbage = VerdictKey::from_cosign(b"hello", b"").unwrap_err();
        assert!(
            garbage.to_string().contains("not an encrypted cosign key"),
            "{garbage}"
        );
    }

    fn verdict(phase: Phase, counts: &CveCount) -> Verdict<'_> {
        Verdict {
            image: "registry.example/team/app@sha256:1111111111111111111111111111111111111111111111111111111111111111",
            digest: DIGEST,
            phase,
            cve_count: counts,
            policy: Some(PolicyRef {
                name: "scangate-system/strict",
                generation: Some(3),
                rego: Some("package main\n"),
            }),
            input: None,
            time: "2026-12-07T08:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn the_statement_is_an_svr_of_the_digest_with_the_verdict_and_counts() {
        let counts = counts();
        let statement: Value =
            serde_json::from_slice(&statement(&verdict(Phase::Failed, &counts))).unwrap();
        assert_eq!(statement["_type"], STATEMENT_V1);
        assert_eq!(statement["predicateType"], SVR_V01);
        assert_eq!(
            statement["subject"],
            json!([{"name": "registry.example/team/app",
                    "digest": {"sha256": DIGEST.trim_start_matches("sha256:")}}])
        );
        let predicate = &statement["predicate"];
        assert_eq!(predicate["verifier"]["id"], VERIFIER_ID);
        assert_eq!(predicate["timeCreated"], "2026-12-07T08:00:00Z");
        assert_eq!(
            predicate["verifier"]["policy"]["name"],
            "scangate-system/strict"
        );
        assert_eq!(predicate["verifier"]["policy"]["generation"], 3);
        assert_eq!(
            predicate["verifier"]["policy"]["digest"]["sha256"],
            hex_sha256(b"package main\n")
        );
        assert_eq!(
            predicate["properties"],
            json!([
                "SCANGATE_VULN_SCANNED",
                "SCANGATE_POLICY_FAILED",
                "SCANGATE_CVES_CRITICAL_2",
                "SCANGATE_CVES_HIGH_1",
                "SCANGATE_CVES_MEDIUM_0",
                "SCANGATE_CVES_LOW_3",
                "SCANGATE_CVES_UNKNOWN_0",
                "SCANGATE_CVES_TOTAL_6",
            ])
        );
        assert!(predicate.get("inputAttestations").is_none());
        let passed = properties(Phase::Completed, &CveCount::default());
        assert_eq!(passed[1], "SCANGATE_POLICY_PASSED");
    }

    #[test]
    fn an_attested_report_is_named_as_the_input() {
        let counts = CveCount::default();
        let input = AttestationResult {
            key: "ci".into(),
            predicate_type: crate::attest::COSIGN_VULN_V1.into(),
            scan_finished_on: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-12-06T10:00:00Z".parse().unwrap(),
            ),
            db_version: None,
        };
        let mut v = verdict(Phase::Completed, &counts);
        v.input = Some(&input);
        v.policy = None;
        let statement: Value = serde_json::from_slice(&statement(&v)).unwrap();
        assert_eq!(
            statement["predicate"]["inputAttestations"],
            json!([{"predicateType": crate::attest::COSIGN_VULN_V1, "signedBy": "ci",
                    "scanFinishedOn": "2026-12-06T10:00:00Z"}])
        );
        assert!(statement["predicate"]["verifier"].get("policy").is_none());
    }

    #[test]
    fn the_envelope_verifies_with_the_public_key_as_attestations_in_are_verified() {
        let signer = VerdictKey { key: key() };
        let counts = counts();
        let payload = statement(&verdict(Phase::Failed, &counts));
        let envelope = signer.envelope(&payload);
        let parsed: Value = serde_json::from_slice(&envelope).unwrap();
        assert_eq!(parsed["payloadType"], IN_TOTO_PAYLOAD_TYPE);
        let sig = STANDARD
            .decode(parsed["signatures"][0]["sig"].as_str().unwrap())
            .unwrap();
        let verifying = VerifyingKey::from(&key());
        let signature = Signature::from_der(&sig).unwrap();
        assert!(
            verifying
                .verify(&pae(IN_TOTO_PAYLOAD_TYPE, &payload), &signature)
                .is_ok()
        );
        // The public key reads as an attestation key.
        assert!(TrustedKey::from_pem("scangate", &signer.public_pem()).is_ok());
    }
}
