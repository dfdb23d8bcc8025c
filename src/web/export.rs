//! The exports: CSV (RFC 4180, a header row, CRLF line ends) and JSON (an array of objects with
//! the CSV's keys, numbers as numbers) of the running images and of the ImageScans.

use serde_json::{Value, json};

use super::model::{Running, Scan};

/// `ended`: when the pod stopped running (RFC 3339), empty while it runs.
pub const RUNNING_COLUMNS: [&str; 8] = [
    "namespace",
    "workload",
    "pod",
    "container",
    "image",
    "verdict",
    "scan",
    "ended",
];

/// `progress`: where the current round stands, in words (`scan running`, `done`).
pub const SCAN_COLUMNS: [&str; 11] = [
    "namespace",
    "name",
    "image",
    "phase",
    "critical",
    "high",
    "medium",
    "low",
    "unknown",
    "scanned_at",
    "progress",
];

/// A field quoted when it holds a comma, a quote, CR or LF; quotes doubled.
fn field(value: &str) -> String {
    if value.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

fn csv(columns: &[&str], rows: impl Iterator<Item = Value>) -> String {
    let mut out = columns.join(",") + "\r\n";
    for row in rows {
        let fields: Vec<String> = columns
            .iter()
            .map(|c| match &row[*c] {
                Value::String(s) => field(s),
                Value::Null => String::new(),
                other => field(&other.to_string()),
            })
            .collect();
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

pub fn running_object(r: &Running) -> Value {
    json!({
        "namespace": r.namespace,
        "workload": r.workload,
        "pod": r.pod,
        "container": r.container,
        "image": r.image,
        "verdict": r.verdict.as_str(),
        "scan": r.scan.clone().unwrap_or_default(),
        "ended": r.ended.map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_default(),
    })
}

pub fn scan_object(s: &Scan) -> Value {
    json!({
        "namespace": s.namespace,
        "name": s.name,
        "image": s.image,
        "phase": s.phase.as_str(),
        "critical": s.counts.critical,
        "high": s.counts.high,
        "medium": s.counts.medium,
        "low": s.counts.low,
        "unknown": s.counts.unknown,
        "scanned_at": s.scanned_at.clone().unwrap_or_default(),
        "progress": super::view::progress_summary(s.progress()),
    })
}

pub fn running_csv<'a>(rows: impl Iterator<Item = &'a Running>) -> String {
    csv(&RUNNING_COLUMNS, rows.map(running_object))
}

pub fn scans_csv<'a>(rows: impl Iterator<Item = &'a Scan>) -> String {
    csv(&SCAN_COLUMNS, rows.map(scan_object))
}

pub fn running_json<'a>(rows: impl Iterator<Item = &'a Running>) -> Value {
    Value::Array(rows.map(running_object).collect())
}

pub fn scans_json<'a>(rows: impl Iterator<Item = &'a Scan>) -> Value {
    Value::Array(rows.map(scan_object).collect())
}

#[cfg(test)]
mod tests {
    use super::super::model::Verdict;
    use super::super::model::tests::{running, snapshot};
    use super::*;

    #[test]
    fn csv_quotes_commas_quotes_and_newlines() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        let mut r = running("shop", "web", "alpine:3", Verdict::Fail);
        r.pod = "p,\"1\"\r\n".into();
        let text = running_csv([r].iter());
        assert_eq!(
            text,
            "namespace,workload,pod,container,image,verdict,scan,ended\r\n\
             shop,Deployment/web,\"p,\"\"1\"\"\r\n\",app,alpine:3,fail,scangate-system/web,\r\n"
        );
    }

    #[test]
    fn exports_have_the_same_keys_and_numbers_as_numbers() {
        let s = snapshot();
        let json = scans_json(s.scans.iter());
        let first = &json[0];
        assert_eq!(first["critical"], 1);
        assert_eq!(first["phase"], "Failed");
        let keys: Vec<&str> = first
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut columns = SCAN_COLUMNS.to_vec();
        columns.sort_unstable();
        assert_eq!(keys, columns);
        let text = scans_csv(s.scans.iter());
        let mut lines = text.split("\r\n");
        assert_eq!(lines.next(), Some(SCAN_COLUMNS.join(",").as_str()));
        assert_eq!(
            lines.next(),
            Some(
                "scangate-system,bad,quay.io/x/bad:1,Failed,1,2,0,0,0,2026-01-02T00:00:00Z,no progress recorded"
            )
        );
        assert_eq!(running_json(s.running.iter())[2]["verdict"], "unscanned");
    }
}
