//! The examples are valid objects, consistent with what the code ships.

use scangate::admission::status::enrich;
use scangate::api::{ImageScan, ScanPolicy};

fn read(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_example_policy_is_the_default_policy() {
    let policy: ScanPolicy =
        serde_yaml::from_str(&read("examples/cluster/scanpolicy.yaml")).expect("ScanPolicy");
    assert_eq!(policy.spec.rego_file, scangate::policy::DEFAULT_POLICY);
}

#[test]
fn example_scans_parse_and_their_statuses_are_consistent() {
    for path in ["examples/scans/busybox.yaml", "examples/scans/alpine.yaml"] {
        let value: serde_json::Value = serde_yaml::from_str(&read(path)).expect("YAML");
        let scan: ImageScan =
            serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{path}: {e}"));
        let enriched = enrich(None, &value["status"], Some(1), jiff::Timestamp::UNIX_EPOCH)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(enriched.phase, scan.status.and_then(|s| s.phase), "{path}");
    }
    for doc in serde_yaml::Deserializer::from_str(&read("examples/cluster/imagescans.yaml")) {
        let scan: ImageScan = serde::Deserialize::deserialize(doc).expect("ImageScan");
        assert_eq!(
            scan.spec.scan.scan_policy.as_deref(),
            Some("no-critical-or-high")
        );
    }
}

struct NoNames;

impl scangate::admission::scanning::Names for NoNames {
    fn template_exists(&self, _: &str, _: &str) -> bool {
        true
    }
    fn policy_exists(&self, _: &str, _: &str) -> bool {
        true
    }
}

#[test]
fn the_sample_templates_and_policy_pass_admission() {
    use scangate::admission::config::AdmissionConfig;
    use scangate::admission::scanning::{Context, Verdict, review};
    use scangate::sandbox::{Answer, Request, worker};
    let config = AdmissionConfig::default();
    for (path, kind) in [
        ("examples/cluster/scantemplate-grype.yaml", "ScanTemplate"),
        ("examples/cluster/scantemplate-trivy.yaml", "ScanTemplate"),
        ("examples/cluster/scanpolicy.yaml", "ScanPolicy"),
    ] {
        let object: serde_json::Value = serde_yaml::from_str(&read(path)).expect("YAML");
        assert_eq!(object["kind"], kind, "{path}");
        // What the policy worker answers for the policy's Rego.
        let policy_check = object["spec"]["regoFile"].as_str().map(|rego| {
            let request = Request::Check {
                name: "shop/sample.rego".into(),
                rego: rego.into(),
            };
            match worker::answer(request, std::time::Duration::from_secs(2)) {
                Answer::Passed => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
        let ctx = Context {
            config: &config,
            names: &NoNames,
            namespace: "shop",
            now: jiff::Timestamp::now(),
            policy_check,
            job_rights: &scangate::admission::scanning::JobRights::NotChecked,
        };
        let verdict = review(kind, "sample", &object, &ctx);
        assert_eq!(verdict, Verdict::Allowed { warnings: vec![] }, "{path}");
    }
}
