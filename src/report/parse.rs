//! Reading a scanner report: size limit, format detection from the content, one streaming
//! pass of serde over the input, and errors that say where and what.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use serde_json::error::Category;

use super::cyclonedx::{self, CycloneDxDocument};
use super::error::{Error, Format, Problem, Result};
use super::grype::{self, GrypeDocument};
use super::model::Report;
use super::sarif::{self, SarifDocument};
use super::trivy::{self, TrivyDocument};

/// The default largest report accepted: 256 MiB.
pub const DEFAULT_MAX_REPORT_BYTES: u64 = 256 * 1024 * 1024;

/// Limits applied while reading a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest report accepted, in bytes.
    pub max_report_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_report_bytes: DEFAULT_MAX_REPORT_BYTES,
        }
    }
}

/// The top-level keys of every supported format, read in one pass. The formats' keys do not
/// overlap (Trivy's are PascalCase), except `version`, which is kept as a JSON value. Nested
/// values are typed per format, so nothing but what scangate uses is kept in memory.
#[derive(Debug, Default, Deserialize)]
struct Document {
    // Grype
    matches: Option<Vec<grype::Match>>,
    source: Option<Value>,
    descriptor: Option<grype::Descriptor>,
    // Trivy
    #[serde(rename = "SchemaVersion")]
    schema_version: Option<Value>,
    #[serde(rename = "ArtifactName")]
    artifact_name: Option<String>,
    #[serde(rename = "ArtifactType")]
    artifact_type: Option<String>,
    #[serde(rename = "Metadata")]
    trivy_metadata: Option<trivy::Metadata>,
    #[serde(rename = "Results")]
    results: Option<Vec<trivy::TrivyResult>>,
    #[serde(rename = "Trivy")]
    trivy: Option<trivy::Info>,
    // CycloneDX
    #[serde(rename = "bomFormat")]
    bom_format: Option<String>,
    #[serde(rename = "specVersion")]
    spec_version: Option<String>,
    metadata: Option<cyclonedx::Metadata>,
    components: Option<Vec<cyclonedx::Component>>,
    vulnerabilities: Option<Vec<cyclonedx::CdxVulnerability>>,
    compositions: Option<Value>,
    // SARIF
    runs: Option<Vec<sarif::Run>>,
    version: Option<Value>,
}

/// The format a top-level key belongs to, to attribute errors inside its value.
fn format_of_key(key: &str) -> Option<Format> {
    match key {
        "matches" | "source" | "descriptor" => Some(Format::Grype),
        "SchemaVersion" | "ArtifactName" | "ArtifactType" | "Metadata" | "Results" | "Trivy" => {
            Some(Format::Trivy)
        }
        "bomFormat" | "specVersion" | "metadata" | "components" | "vulnerabilities"
        | "compositions" => Some(Format::CycloneDx),
        "runs" | "version" => Some(Format::Sarif),
        _ => None,
    }
}

impl Document {
    /// Which format the keys present say this is.
    fn detect(&self) -> Option<Format> {
        if self.runs.is_some() {
            Some(Format::Sarif)
        } else if self.bom_format.is_some()
            || self.spec_version.is_some()
            || self.vulnerabilities.is_some()
        {
            Some(Format::CycloneDx)
        } else if self.schema_version.is_some()
            || self.results.is_some()
            || self.artifact_name.is_some()
            || self.artifact_type.is_some()
        {
            Some(Format::Trivy)
        } else if self.matches.is_some() || self.descriptor.is_some() {
            Some(Format::Grype)
        } else {
            None
        }
    }

    fn into_report(self, format: Format) -> std::result::Result<Report, Problem> {
        match format {
            Format::Grype => grype::convert(GrypeDocument {
                matches: self.matches,
                source: self.source,
                descriptor: self.descriptor,
            }),
            Format::Trivy => trivy::convert(TrivyDocument {
                schema_version: self.schema_version,
                artifact_name: self.artifact_name,
                artifact_type: self.artifact_type,
                metadata: self.trivy_metadata,
                results: self.results,
                trivy: self.trivy,
            }),
            Format::CycloneDx => cyclonedx::convert(CycloneDxDocument {
                bom_format: self.bom_format,
                spec_version: self.spec_version,
                metadata: self.metadata,
                components: self.components,
                vulnerabilities: self.vulnerabilities,
                compositions: self.compositions,
            }),
            Format::Sarif => sarif::convert(SarifDocument {
                version: self.version,
                runs: self.runs,
            }),
        }
    }
}

impl Report {
    /// Reads and normalizes the scanner report in the file at `path`; the format is detected
    /// from the content. Errors name the file.
    pub fn from_path(path: impl AsRef<Path>, limits: Limits) -> Result<Report> {
        let path = path.as_ref();
        let source_name = path.display().to_string();
        let read_error = |source| Error::Read {
            source_name: source_name.clone(),
            source,
        };
        let file = File::open(path).map_err(read_error)?;
        let size = file.metadata().map_err(read_error)?.len();
        if size > limits.max_report_bytes {
            return Err(Error::TooLarge {
                source_name,
                limit: limits.max_report_bytes,
            });
        }
        Report::from_reader(&source_name, file, limits)
    }

    /// Reads and normalizes a scanner report from `reader` in one streaming pass; the format is
    /// detected from the content. `source_name` (a file name, `stdin`, …) is used in errors.
    pub fn from_reader(source_name: &str, reader: impl Read, limits: Limits) -> Result<Report> {
        let mut limited = LimitedReader::new(reader, limits.max_report_bytes);
        let outcome = read_document(source_name, &mut limited);
        if limited.exceeded {
            return Err(Error::TooLarge {
                source_name: source_name.to_string(),
                limit: limits.max_report_bytes,
            });
        }
        let document = outcome?;
        let format = document.detect().ok_or_else(|| Error::UnknownFormat {
            source_name: source_name.to_string(),
            found: "a JSON object without the keys of any known format (`matches`, \
                    `SchemaVersion`/`Results`, `bomFormat`/`vulnerabilities`, `runs`)"
                .to_string(),
        })?;
        document
            .into_report(format)
            .map_err(|problem| problem.into_error(source_name, format))
    }
}

/// Checks what the input starts with, then deserializes the [`Document`] streaming.
fn read_document(source_name: &str, reader: &mut impl Read) -> Result<Document> {
    let mut buffered = BufReader::with_capacity(64 * 1024, reader);
    check_start(source_name, &mut buffered)?;
    let mut deserializer = serde_json::Deserializer::from_reader(buffered);
    let document: Document =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let path = error.path().clone();
            json_error(source_name, Some(&path), error.into_inner())
        })?;
    deserializer
        .end()
        .map_err(|error| json_error(source_name, None, error))?;
    Ok(document)
}

/// Rejects, before parsing, input that cannot be a JSON report: empty input, XML, UTF-16,
/// a JSON array. Skips a UTF-8 byte order mark.
fn check_start(source_name: &str, reader: &mut impl BufRead) -> Result<()> {
    let unknown = |found: &str| Error::UnknownFormat {
        source_name: source_name.to_string(),
        found: found.to_string(),
    };
    let start = reader.fill_buf().map_err(|source| Error::Read {
        source_name: source_name.to_string(),
        source,
    })?;
    if start.starts_with(&[0xEF, 0xBB, 0xBF]) {
        reader.consume(3);
        return check_start(source_name, reader);
    }
    if start.starts_with(&[0xFF, 0xFE]) || start.starts_with(&[0xFE, 0xFF]) {
        return Err(unknown("UTF-16 text (save the report as UTF-8 JSON)"));
    }
    let first = start.iter().copied().find(|b| !b.is_ascii_whitespace());
    match first {
        None if start.len() < 8 * 1024 => Err(Error::Empty {
            source_name: source_name.to_string(),
        }),
        Some(b'<') => Err(unknown(
            "XML (CycloneDX XML and other XML reports are not supported: ask the scanner for \
             JSON, e.g. `grype -o cyclonedx-json`)",
        )),
        Some(b'[') => Err(unknown(
            "a JSON array, not an object (Trivy's old schema 1 output is an array: use a Trivy \
             that writes SchemaVersion 2)",
        )),
        _ => Ok(()),
    }
}

/// Classifies a JSON error: truncated, not JSON, a missing or invalid field of a format, or
/// a read error.
fn json_error(
    source_name: &str,
    path: Option<&serde_path_to_error::Path>,
    inner: serde_json::Error,
) -> Error {
    let source_name = source_name.to_string();
    let (line, column) = (inner.line(), inner.column());
    match inner.classify() {
        Category::Io => Error::Read {
            source_name,
            source: io::Error::from(inner),
        },
        Category::Eof => Error::Truncated {
            source_name,
            line,
            column,
        },
        Category::Syntax => Error::NotJson {
            source_name,
            line,
            column,
            detail: bare_message(&inner),
        },
        Category::Data => data_error(source_name, path, &inner),
    }
}

fn data_error(
    source_name: String,
    path: Option<&serde_path_to_error::Path>,
    inner: &serde_json::Error,
) -> Error {
    let detail = bare_message(inner);
    let top_key = path
        .and_then(|p| p.iter().next())
        .and_then(|segment| match segment {
            serde_path_to_error::Segment::Map { key } => Some(key.as_str()),
            _ => None,
        });
    let Some(format) = top_key.and_then(format_of_key) else {
        let found = match not_an_object(&detail) {
            Some(value) => format!("JSON that is not an object ({value})"),
            None => format!("a JSON document scangate cannot read ({detail})"),
        };
        return Error::UnknownFormat { source_name, found };
    };
    let path = path.map(ToString::to_string).unwrap_or_default();
    let position = Some((inner.line(), inner.column()));
    match missing_field_name(&detail) {
        Some(field) => Error::MissingField {
            source_name,
            format,
            field: format!("{path}.{field}"),
            position,
        },
        None => Error::InvalidField {
            source_name,
            format,
            field: path,
            detail,
            position,
        },
    }
}

/// What the top-level value was, from serde's "invalid type: integer `42`, expected …".
fn not_an_object(message: &str) -> Option<&str> {
    let (value, _) = message
        .strip_prefix("invalid type: ")?
        .split_once(", expected")?;
    Some(value)
}

/// serde's message for a missing field is "missing field `name`".
fn missing_field_name(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

/// The error message without serde_json's " at line L column C" suffix.
fn bare_message(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    message
        .strip_suffix(&suffix)
        .map(str::to_string)
        .unwrap_or(message)
}

/// Reads at most `limit` bytes; reading past the limit is an error and sets `exceeded`.
struct LimitedReader<R> {
    inner: R,
    remaining: u64,
    exceeded: bool,
}

impl<R: Read> LimitedReader<R> {
    fn new(inner: R, limit: u64) -> Self {
        LimitedReader {
            inner,
            remaining: limit,
            exceeded: false,
        }
    }
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    self.exceeded = true;
                    Err(io::Error::other("the report size limit was exceeded"))
                }
            };
        }
        let allowed = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buf[..allowed])?;
        self.remaining -= read as u64;
        Ok(read)
    }
}
