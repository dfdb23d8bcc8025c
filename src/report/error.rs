//! Errors of the report module. Each message says what was wrong, where, and what to do.

use std::fmt;

/// The scanner output formats scangate reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `grype -o json`.
    Grype,
    /// `trivy … -f json` (SchemaVersion 2).
    Trivy,
    /// CycloneDX JSON 1.4+ with a `vulnerabilities` array.
    CycloneDx,
    /// SARIF 2.1.0 from a vulnerability scanner.
    Sarif,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Grype => "Grype JSON",
            Format::Trivy => "Trivy JSON",
            Format::CycloneDx => "CycloneDX JSON",
            Format::Sarif => "SARIF",
        })
    }
}

/// The formats that are understood, for error messages.
pub const UNDERSTOOD_FORMATS: &str = "Grype JSON (`grype -o json`), Trivy JSON (`trivy image -f json`, \
SchemaVersion 2), CycloneDX JSON 1.4+ with a `vulnerabilities` array (`grype -o cyclonedx-json`, \
`trivy --format cyclonedx --scanners vuln`) and SARIF 2.1.0 (`trivy -f sarif`)";

/// An error of the report module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The report could not be read.
    #[error(
        "cannot read report {source_name}: {source}; check that the file exists and is readable"
    )]
    Read {
        /// Where the report came from (file name, `stdin`, …).
        source_name: String,
        /// The I/O error.
        source: std::io::Error,
    },

    /// The report is larger than the configured limit.
    #[error(
        "report {source_name} is larger than the limit of {}; raise the report size limit if \
         this report is genuine",
        human_size(*limit)
    )]
    TooLarge {
        /// Where the report came from.
        source_name: String,
        /// The limit in bytes.
        limit: u64,
    },

    /// The report is empty.
    #[error(
        "report {source_name} is empty; the scanner wrote nothing: check the scan job's logs and run the scan again"
    )]
    Empty {
        /// Where the report came from.
        source_name: String,
    },

    /// The JSON ends before the document is complete.
    #[error(
        "report {source_name} is truncated: the JSON ends unexpectedly at line {line}, column \
         {column}; the scanner's output was cut off (disk full, killed job?): run the scan again"
    )]
    Truncated {
        /// Where the report came from.
        source_name: String,
        /// Line of the end of the data (1-based).
        line: usize,
        /// Column of the end of the data.
        column: usize,
    },

    /// The input is not (valid) JSON.
    #[error(
        "report {source_name} is not valid JSON: {detail} at line {line}, column {column}; give \
         the scanner's JSON output, one of: {UNDERSTOOD_FORMATS}"
    )]
    NotJson {
        /// Where the report came from.
        source_name: String,
        /// Line of the error (1-based).
        line: usize,
        /// Column of the error.
        column: usize,
        /// What the JSON parser found.
        detail: String,
    },

    /// The input is JSON (or XML) but not a format scangate reads.
    #[error(
        "report {source_name} is {found}, which is not a report format scangate reads; the \
         formats understood are {UNDERSTOOD_FORMATS}"
    )]
    UnknownFormat {
        /// Where the report came from.
        source_name: String,
        /// What the input looks like.
        found: String,
    },

    /// A known format without a field scangate needs.
    #[error(
        "{format} report {source_name} is missing the required field `{field}`{}; the file is \
         incomplete or not really {format}: run the scanner again with JSON output",
        at_position(*position)
    )]
    MissingField {
        /// Where the report came from.
        source_name: String,
        /// The detected format.
        format: Format,
        /// The path of the missing field, e.g. `matches[3].vulnerability.id`.
        field: String,
        /// Line and column where the parser noticed, when known.
        position: Option<(usize, usize)>,
    },

    /// A known format with a field of the wrong type or value.
    #[error(
        "{format} report {source_name} has an invalid field `{field}`: {detail}{}; the file does \
         not match the {format} schema scangate knows: check the scanner version",
        at_position(*position)
    )]
    InvalidField {
        /// Where the report came from.
        source_name: String,
        /// The detected format.
        format: Format,
        /// The path of the field, e.g. `Results[0].Vulnerabilities`.
        field: String,
        /// What is wrong with it.
        detail: String,
        /// Line and column of the error, when known.
        position: Option<(usize, usize)>,
    },

    /// A known format in a version scangate does not read.
    #[error(
        "{format} report {source_name} has version {found}, but scangate reads {supported}; use a supported output version"
    )]
    UnsupportedVersion {
        /// Where the report came from.
        source_name: String,
        /// The detected format.
        format: Format,
        /// The version found.
        found: String,
        /// The versions understood.
        supported: &'static str,
    },

    /// The report ConfigMap has no report data.
    #[error(
        "ConfigMap {config_map} has no binaryData key `{key}`; it was not written by \
         `scangate report`: run the scan again"
    )]
    ConfigMapMissingKey {
        /// `namespace/name` of the ConfigMap.
        config_map: String,
        /// The expected key.
        key: &'static str,
    },

    /// The gzip data in the report ConfigMap is corrupt.
    #[error(
        "ConfigMap {config_map}: `{key}` is not valid gzip data ({source}); the ConfigMap was altered: run the scan again"
    )]
    ConfigMapCorrupt {
        /// `namespace/name` of the ConfigMap.
        config_map: String,
        /// The key holding the data.
        key: &'static str,
        /// The decompression error.
        source: std::io::Error,
    },

    /// The gzip data in the report ConfigMap ends too early.
    #[error(
        "ConfigMap {config_map}: `{key}` is truncated gzip data; the ConfigMap was cut or altered: run the scan again"
    )]
    ConfigMapTruncated {
        /// `namespace/name` of the ConfigMap.
        config_map: String,
        /// The key holding the data.
        key: &'static str,
    },

    /// The decompressed report is larger than the limit.
    #[error(
        "ConfigMap {config_map}: `{key}` decompresses to more than {limit} bytes; refusing to read it"
    )]
    ConfigMapTooLargeDecompressed {
        /// `namespace/name` of the ConfigMap.
        config_map: String,
        /// The key holding the data.
        key: &'static str,
        /// The limit in bytes.
        limit: u64,
    },

    /// The report ConfigMap holds something that is not a normalized report.
    #[error(
        "ConfigMap {config_map}: `{key}` does not hold a normalized scangate report ({source}); it was written by an incompatible version or altered: run the scan again"
    )]
    ConfigMapBadReport {
        /// `namespace/name` of the ConfigMap.
        config_map: String,
        /// The key holding the data.
        key: &'static str,
        /// The JSON error.
        source: serde_json::Error,
    },

    /// The compressed report does not fit in a ConfigMap.
    #[error(
        "the report of scan {scan} is {size} bytes compressed, over the {limit} bytes that fit in \
         a ConfigMap (1 MiB minus room for metadata); reduce the report (e.g. only fixed \
         vulnerabilities, or scan a smaller target)"
    )]
    ConfigMapTooLarge {
        /// `namespace/name` of the scan.
        scan: String,
        /// Compressed size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },

    /// Encoding the normalized report failed.
    #[error("cannot encode the normalized report: {0}")]
    Encode(#[source] std::io::Error),
}

/// The result type of the report module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `100 bytes`, or `256 MiB (268435456 bytes)` from one MiB on.
fn human_size(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes < MIB {
        format!("{bytes} bytes")
    } else {
        format!("{} MiB ({bytes} bytes)", bytes / MIB)
    }
}

fn at_position(position: Option<(usize, usize)>) -> String {
    match position {
        Some((line, column)) => format!(" (line {line}, column {column})"),
        None => String::new(),
    }
}

/// What is wrong with a document of a known format (the caller adds format and source name).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Problem {
    /// A required field is absent.
    Missing { field: String },
    /// The format's version is not one scangate reads.
    UnsupportedVersion {
        found: String,
        supported: &'static str,
    },
}

impl Problem {
    pub(crate) fn missing(field: impl Into<String>) -> Problem {
        Problem::Missing {
            field: field.into(),
        }
    }

    /// The error that names the source and format the problem was found in.
    pub(crate) fn into_error(self, source_name: &str, format: Format) -> Error {
        let source_name = source_name.to_string();
        match self {
            Problem::Missing { field } => Error::MissingField {
                source_name,
                format,
                field,
                position: None,
            },
            Problem::UnsupportedVersion { found, supported } => Error::UnsupportedVersion {
                source_name,
                format,
                found,
                supported,
            },
        }
    }
}
