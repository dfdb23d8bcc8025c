//! The results page's exports as the tests read them.

/// The CSV headers of the results page's exports.
pub const SCANS_CSV: [&str; 11] = [
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
pub const RUNNING_CSV: [&str; 8] = [
    "namespace",
    "workload",
    "pod",
    "container",
    "image",
    "verdict",
    "scan",
    "ended",
];

/// An RFC 4180 export (CRLF line ends, quoted fields): its header and its records.
pub fn parse_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    assert!(
        text.is_empty() || text.ends_with("\r\n"),
        "an RFC 4180 export ends its records with CRLF: {text:?}"
    );
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .expect("a CSV header")
        .iter()
        .map(str::to_string)
        .collect();
    let records = reader
        .records()
        .map(|r| {
            r.expect("a CSV record")
                .iter()
                .map(str::to_string)
                .collect()
        })
        .collect();
    (header, records)
}
