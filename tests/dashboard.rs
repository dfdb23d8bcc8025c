//! deploy/grafana/scangate.json: every expression names only metrics the controller or the
//! webhook exports.

use std::collections::BTreeSet;

use serde_json::Value;

/// The sample names the controller and the webhook register (prefixed `scangate_`), read from
/// their `registry.register("name", …)` calls (a family with no sample yet is not encoded, so
/// the encoded text would miss it), with the suffixes of counters and histograms.
fn exported() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for source in [
        include_str!("../src/scan/metrics.rs"),
        include_str!("../src/runtime/metrics.rs"),
        include_str!("../src/mirror.rs"),
        include_str!("../src/controller/mod.rs"),
        include_str!("../src/web/mod.rs"),
        include_str!("../src/server/metrics.rs"),
    ] {
        for call in source.split("registry.register(").skip(1) {
            let name = call
                .split('"')
                .nth(1)
                .unwrap_or_else(|| panic!("no name in registry.register({call}"));
            for suffix in ["", "_total", "_bucket", "_sum", "_count"] {
                names.insert(format!("scangate_{name}{suffix}"));
            }
        }
    }
    names
}

/// The `scangate_…` names an expression mentions.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = vec![];
    let mut rest = expr;
    while let Some(at) = rest.find("scangate_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

fn expressions(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    _ => expressions(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| expressions(v, out)),
        _ => {}
    }
}

#[test]
fn every_dashboard_expression_names_an_exported_metric() {
    let dashboard: Value = serde_json::from_str(include_str!("../deploy/grafana/scangate.json"))
        .unwrap_or_else(|e| panic!("deploy/grafana/scangate.json is not JSON: {e}"));
    let exported = exported();
    let mut exprs = vec![];
    expressions(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "{exprs:?}");
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{expr} names no scangate metric");
        for name in names {
            assert!(
                exported.contains(&name),
                "{expr}: {name} is not exported by the controller or the webhook"
            );
        }
    }
    for needed in [
        "scangate_running_images",
        "scangate_oldest_result_age_seconds",
        "scangate_scans_queued",
        "scangate_scan_jobs_running",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(needed)),
            "{needed} is on no panel"
        );
    }
}

#[test]
fn metric_names_are_read_from_expressions() {
    assert_eq!(
        metric_names("sum(rate(scangate_a_total[5m])) / sum(scangate_b{x=\"y\"})"),
        ["scangate_a_total", "scangate_b"]
    );
}
