//! The checked-in CRDs are what the Rust types generate, and they are valid structural schemas
//! with the printer columns, short names and category of the design.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use scangate::api::{all_crds, crds_yaml};

const CHECKED_IN: &str = include_str!("../deploy/crds/scanning.scangate.dev.yaml");
const CHART: &str = include_str!("../charts/scangate/crds/scanning.scangate.dev.yaml");

#[test]
fn checked_in_crds_match_the_types() {
    let generated = crds_yaml().expect("render CRDs");
    assert!(
        generated == CHECKED_IN,
        "deploy/crds/scanning.scangate.dev.yaml is out of date: run `make crds` and commit the result"
    );
}

#[test]
fn the_charts_crds_match_the_types() {
    let generated = crds_yaml().expect("render CRDs");
    assert!(
        generated == CHART,
        "charts/scangate/crds/scanning.scangate.dev.yaml is out of date: run `make crds` and commit the result"
    );
}

fn crd(kind: &str) -> CustomResourceDefinition {
    all_crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"))
}

/// The columns `kubectl get` shows by default, as it prints them (upper case, NAME first).
fn default_columns(kind: &str) -> Vec<String> {
    let crd = crd(kind);
    let columns = crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap_or_default();
    std::iter::once("NAME".to_string())
        .chain(
            columns
                .iter()
                .filter(|c| c.priority.unwrap_or(0) == 0)
                .map(|c| c.name.to_uppercase()),
        )
        .collect()
}

fn wide_columns(kind: &str) -> Vec<String> {
    let crd = crd(kind);
    crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap_or_default()
        .iter()
        .filter(|c| c.priority.unwrap_or(0) > 0)
        .map(|c| c.name.to_uppercase())
        .collect()
}

#[test]
fn imagescan_printer_columns_are_the_design() {
    assert_eq!(
        default_columns("ImageScan"),
        "NAME PHASE SCANNEDIMAGE AGE CRITICAL HIGH MEDIUM LOW UNKNOWN CVETOTAL"
            .split(' ')
            .collect::<Vec<_>>()
    );
    assert_eq!(wide_columns("ImageScan"), ["SCANNER", "SCANNERVERSION"]);
}

#[test]
fn sourcescan_printer_columns_are_the_design() {
    assert_eq!(
        default_columns("SourceScan"),
        "NAME PHASE SCANNEDREVISION SCANNEDREPOSITORY AGE CRITICAL HIGH MEDIUM LOW UNKNOWN CVETOTAL"
            .split(' ')
            .collect::<Vec<_>>()
    );
    assert_eq!(wide_columns("SourceScan"), ["SCANNER", "SCANNERVERSION"]);
}

#[test]
fn every_kind_is_namespaced_in_the_scangate_category_with_a_short_name() {
    let expected = [
        ("ImageScan", "imagescans", "imgscan"),
        ("SourceScan", "sourcescans", "srcscan"),
        ("ScanTemplate", "scantemplates", "scantpl"),
        ("ScanPolicy", "scanpolicies", "scanpol"),
        ("ScanException", "scanexceptions", "scanex"),
        ("DeniedDigests", "denieddigests", "denied"),
    ];
    let crds = all_crds();
    assert_eq!(crds.len(), expected.len());
    for (crd, (kind, plural, short)) in crds.iter().zip(expected) {
        assert_eq!(crd.spec.names.kind, kind);
        assert_eq!(crd.spec.names.plural, plural);
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some(&*format!("{plural}.scanning.scangate.dev"))
        );
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.short_names, Some(vec![short.to_string()]));
        assert_eq!(
            crd.spec.names.categories,
            Some(vec!["scangate".to_string()])
        );
        let versions: Vec<_> = crd.spec.versions.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(versions, ["v1beta1"]);
    }
}

#[test]
fn scans_have_a_status_subresource_and_the_others_do_not() {
    for crd in all_crds() {
        let has_status = crd.spec.versions[0]
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some();
        let is_scan = matches!(crd.spec.names.kind.as_str(), "ImageScan" | "SourceScan");
        assert_eq!(has_status, is_scan, "{}", crd.spec.names.kind);
    }
}

#[test]
fn status_schema_has_the_design_fields() {
    let crd = crd("ImageScan");
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.clone())
        .expect("schema");
    let status = property(&schema, "status");
    let mut fields: Vec<_> = status
        .properties
        .clone()
        .unwrap_or_default()
        .into_keys()
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "artifact",
            "attestation",
            "compliantArtifact",
            "conditions",
            "cveCount",
            "earlierResults",
            "handledCancel",
            "handledReevaluate",
            "handledRescan",
            "lastResult",
            "metadataURL",
            "observedGeneration",
            "observedPolicyGeneration",
            "observedTemplateGeneration",
            "pausedAt",
            "phase",
            "policy",
            "progress",
            "reevaluatedAt",
            "resolved",
            "scanErrors",
            "scannedAt",
            "scannedBy",
            "verdictAttestation",
            "violations",
        ]
    );
    let counts = property(status, "cveCount");
    let mut severities: Vec<_> = counts
        .properties
        .clone()
        .unwrap_or_default()
        .into_keys()
        .collect();
    severities.sort();
    assert_eq!(
        severities,
        ["critical", "high", "low", "medium", "total", "unknown"]
    );
    let phase = property(status, "phase");
    let phases: Vec<String> = phase
        .enum_
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| v.0.as_str().map(str::to_string))
        .collect();
    assert_eq!(
        phases,
        ["Pending", "Scanning", "Completed", "Failed", "Error"]
    );
}

fn property<'a>(schema: &'a JSONSchemaProps, name: &str) -> &'a JSONSchemaProps {
    schema
        .properties
        .as_ref()
        .and_then(|p| p.get(name))
        .unwrap_or_else(|| panic!("no property {name}"))
}

/// The rules of a structural schema that the apiserver enforces on CRDs
/// (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema).
fn structural_problems(path: &str, schema: &JSONSchemaProps, problems: &mut Vec<String>) {
    let escapes = schema.x_kubernetes_preserve_unknown_fields == Some(true)
        || schema.x_kubernetes_int_or_string == Some(true);
    if schema.type_.is_none() && !escapes {
        problems.push(format!("{path}: no type"));
    }
    if schema.ref_path.is_some() {
        problems.push(format!("{path}: $ref is not allowed"));
    }
    if schema.properties.is_some() && schema.additional_properties.is_some() {
        problems.push(format!(
            "{path}: properties and additionalProperties together"
        ));
    }
    for (kind, branches) in [
        ("anyOf", &schema.any_of),
        ("oneOf", &schema.one_of),
        ("allOf", &schema.all_of),
    ] {
        for branch in branches.iter().flatten() {
            if branch.type_.is_some() || branch.description.is_some() || branch.default.is_some() {
                problems.push(format!(
                    "{path}: {kind} branch sets type, description or default"
                ));
            }
        }
    }
    if schema.type_.as_deref() == Some("array") && schema.items.is_none() {
        problems.push(format!("{path}: array without items"));
    }
    for (name, child) in schema.properties.iter().flatten() {
        structural_problems(&format!("{path}.{name}"), child, problems);
    }
    if let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(items)) = &schema.items {
        structural_problems(&format!("{path}[]"), items, problems);
    }
}

#[test]
fn schemas_are_structural() {
    for crd in all_crds() {
        let schema = crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.clone())
            .expect("schema");
        let mut problems = vec![];
        structural_problems(&crd.spec.names.kind, &schema, &mut problems);
        assert!(problems.is_empty(), "{problems:#?}");
    }
}

#[test]
fn the_chart_installs_the_same_policy_report_crd() {
    assert_eq!(
        include_str!("../charts/scangate/crds/policyreports.yaml"),
        include_str!("../deploy/crds/policyreports.yaml"),
        "charts/scangate/crds/policyreports.yaml differs from deploy/crds/policyreports.yaml: copy it"
    );
}
