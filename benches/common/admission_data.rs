//! What `make bench` (benches/admission.rs) gives scangate and its OPA peer, shared with the
//! test that both peers decide the bench's reviews alike (tests/admission_fixtures.rs): the
//! ImageScans, the two AdmissionReviews, and the same scans and trust settings as OPA data
//! (benches/opa/admission.rego).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use scangate::admission::config::AdmissionConfig;
use scangate::image::ImageRef;
use serde::Deserialize as _;
use serde_json::{Value, json};

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The Rego of the OPA peer.
pub const OPA_POLICY: &str = "benches/opa/admission.rego";

/// The repository, where the fixtures and the Rego are.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `count` ImageScans of distinct images across tenant namespaces (none of them an image the
/// reviews run), plus the example scans in scangate's namespace that the reviews hit.
pub fn write_scans(dir: &Path, count: u64) -> Result<()> {
    let mut out = std::fs::File::create(dir.join("scans.yaml"))?;
    for i in 0..count {
        let phase = if i % 7 == 0 { "Failed" } else { "Completed" };
        writeln!(
            out,
            "---\napiVersion: scanning.scangate.dev/v1beta1\nkind: ImageScan\nmetadata: {{name: scan-{i}, namespace: ns-{}}}\nspec: {{registry: {{image: \"registry.example/team-{}/app-{i}:1.{}\"}}}}\nstatus:\n  phase: {phase}\n  artifact: {{registry: {{image: \"registry.example/team-{}/app-{i}@sha256:{:064x}\"}}}}\n  scannedAt: \"2026-11-20T10:00:00Z\"",
            i % 50,
            i % 100,
            i % 10,
            i % 100,
            i
        )?;
    }
    for example in ["busybox.yaml", "alpine.yaml"] {
        std::fs::copy(
            repo().join("examples/scans").join(example),
            dir.join(example),
        )?;
    }
    Ok(())
}

/// The real captures, pointed at namespace `shop` and at the example scans' images: a Pod
/// running alpine:3.10 and busybox:1.32.1 (denied: busybox failed its trusted scan), and a
/// Deployment of alpine:3.10 (admitted).
pub fn reviews() -> Result<(Value, Value)> {
    let pod_path =
        repo().join("tests/fixtures/admission/pod-create-privileged.admissionreview.json");
    let mut pod: Value = serde_json::from_slice(&std::fs::read(pod_path)?)?;
    pod["request"]["namespace"] = "shop".into();
    pod["request"]["object"]["metadata"]["namespace"] = "shop".into();
    pod["request"]["object"]["spec"]["containers"][0]["image"] = "alpine:3.10".into();
    pod["request"]["object"]["spec"]["containers"][1]["image"] = "busybox:1.32.1".into();
    let deployment_path =
        repo().join("tests/fixtures/admission/deployment-create.admissionreview.json");
    let mut deployment: Value = serde_json::from_slice(&std::fs::read(deployment_path)?)?;
    deployment["request"]["namespace"] = "shop".into();
    deployment["request"]["object"]["metadata"]["namespace"] = "shop".into();
    deployment["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["image"] =
        "alpine:3.10".into();
    Ok((pod, deployment))
}

/// The ImageScans of `scans_dir` and the trust settings of `config` as OPA data:
/// `scans[namespace][ref]`, each scan under its normalized tag reference (from `spec`) and
/// digest reference (from `status.artifact`); `trusted`, the namespaces whose scans are trusted
/// results everywhere; `trustNamespaceScans`. As benches/opa/admission.rego reads them.
pub fn opa_data(scans_dir: &Path, config: &AdmissionConfig) -> Result<Value> {
    let mut scans: BTreeMap<String, serde_json::Map<String, Value>> = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(scans_dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        for document in serde_yaml::Deserializer::from_str(&text) {
            let scan = Value::deserialize(document)?;
            if scan["kind"] != "ImageScan" {
                continue;
            }
            let text_at = |pointer: &str| scan.pointer(pointer).and_then(Value::as_str);
            let (Some(namespace), Some(name), Some(image), Some(phase)) = (
                text_at("/metadata/namespace"),
                text_at("/metadata/name"),
                text_at("/spec/registry/image"),
                text_at("/status/phase"),
            ) else {
                return Err(format!(
                    "{}: an ImageScan without namespace, name, image or phase",
                    file.display()
                )
                .into());
            };
            let mut entry = json!({
                "namespace": namespace,
                "name": name,
                "phase": phase,
                "image": image,
                "violations": scan.pointer("/status/violations").cloned().unwrap_or(json!([])),
            });
            if let Some(policy) = text_at("/spec/scanPolicy") {
                entry["policy"] = policy.into();
            }
            let mut refs = vec![ImageRef::parse(image)?.by_tag()];
            if let Some(artifact) = text_at("/status/artifact/registry/image") {
                refs.push(ImageRef::parse(artifact)?.by_digest());
            }
            let in_namespace = scans.entry(namespace.to_string()).or_default();
            for reference in refs.into_iter().flatten() {
                in_namespace.insert(reference, entry.clone());
            }
        }
    }
    let trusted: Vec<&str> = std::iter::once(config.scangate_namespace.as_str())
        .chain(config.trusted_scan_namespaces.iter().map(String::as_str))
        .collect();
    Ok(json!({
        "scans": scans,
        "trusted": trusted,
        "trustNamespaceScans": config.trust_namespace_scans,
    }))
}
