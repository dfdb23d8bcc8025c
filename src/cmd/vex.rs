//! `scangate vex import FILE` and `scangate vex export`: OpenVEX documents in and out of a
//! namespace's ScanExceptions with `spec.vex` (docs/vex.md).
//!
//! Import turns each (vulnerability, image) of a document into one ScanException, named from
//! both, so a later statement about the same vulnerability and image replaces the earlier one,
//! as OpenVEX's statements override each other in time. It writes with the caller's
//! credentials: RBAC and the webhook decide, so only an approver's statements are written, and
//! only they count. Every statement is checked, then every write is tried as a dry run, before
//! anything is written: a bad document or a refused write imports nothing.
//!
//! Export prints an OpenVEX v0.2.0 document of the namespace's statements that count now
//! (approved, not expired): one statement per ScanException, its products the images as
//! `pkg:oci` purls.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::api::{
    ScanException, ScanExceptionSpec, VexJustification, VexStatement, VexStatus, parse_duration,
};
use crate::index::{APPROVED_AT, APPROVED_BY, ImagePattern};

/// The OpenVEX context of the documents export writes (OpenVEX v0.2.0).
pub const CONTEXT: &str = "https://openvex.dev/ns/v0.2.0";
/// The annotation that records the `@id` of the document a statement was imported from.
pub const DOCUMENT: &str = "scangate.dev/vex-document";
/// The field manager of import's writes.
const MANAGER: &str = "scangate-vex";

#[derive(Debug, Subcommand)]
pub enum VexCommand {
    /// Record an OpenVEX document's statements as ScanExceptions with spec.vex in a namespace,
    /// as you (only an approver's statements are written, and count). Nothing is written unless
    /// every statement can be.
    Import(ImportArgs),
    /// Print the namespace's statements that count now as an OpenVEX v0.2.0 document.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The OpenVEX document (JSON); `-` for standard input.
    #[arg(env = "SCANGATE_VEX_FILE", value_name = "FILE")]
    pub file: PathBuf,
    /// The namespace the statements count in (the kubeconfig's when unset).
    #[arg(short = 'n', long, env = "SCANGATE_NAMESPACE")]
    pub namespace: Option<String>,
    /// When the statements stop counting: a duration from now (`30d`, `12h`) or an RFC 3339
    /// time; at most the admin's exceptions.maxDuration.
    #[arg(long, env = "SCANGATE_VEX_EXPIRES", value_name = "WHEN")]
    pub expires: String,
    /// The ScanExceptions' spec.reason; by default the document's @id and author.
    #[arg(long, env = "SCANGATE_VEX_REASON")]
    pub reason: Option<String>,
    /// Check everything, and try the writes as a dry run, but write nothing.
    #[arg(long, env = "SCANGATE_VEX_DRY_RUN")]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The namespace whose statements to export (the kubeconfig's when unset).
    #[arg(short = 'n', long, env = "SCANGATE_NAMESPACE")]
    pub namespace: Option<String>,
    /// The document's author; by default the approvers who recorded the statements.
    #[arg(long, env = "SCANGATE_VEX_AUTHOR")]
    pub author: Option<String>,
    /// The document's @id (an IRI); by default a URN made from the namespace and the
    /// statements.
    #[arg(long, env = "SCANGATE_VEX_ID")]
    pub id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Cluster(#[from] super::ClusterError),
    #[error(transparent)]
    Read(#[from] super::Error),
    #[error("{0}")]
    Document(String),
    #[error(
        "--expires {0:?} is neither a duration (e.g. 30d, 12h) nor an RFC 3339 time \
         (e.g. 2030-01-01T00:00:00Z)"
    )]
    Expires(String),
    #[error(
        "nothing was imported: ScanException {namespace}/{name} ({what}) was refused: {message}"
    )]
    Refused {
        namespace: String,
        name: String,
        what: String,
        message: String,
    },
    #[error(
        "ScanException {namespace}/{name} could not be written ({source}); {written} of \
         {total} statements were written before it: run the import again"
    )]
    Write {
        namespace: String,
        name: String,
        written: usize,
        total: usize,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("cannot list the ScanExceptions of {namespace}: {source}")]
    List {
        namespace: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("cannot encode the document: {0}")]
    Encode(#[from] serde_json::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

// --- The OpenVEX document, as read (lenient in shape, so errors name the field) ---

#[derive(Debug, Deserialize)]
struct Document {
    #[serde(rename = "@context")]
    context: Option<String>,
    #[serde(rename = "@id")]
    id: Option<String>,
    author: Option<String>,
    timestamp: Option<String>,
    statements: Option<Vec<Value>>,
}

/// One statement of a document, checked: what import writes for each of its images.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    /// Its index in the document's `statements`.
    pub index: usize,
    /// The vulnerability's name first, then its aliases.
    pub cves: Vec<String>,
    /// Image patterns, one per product.
    pub images: Vec<String>,
    pub vex: VexStatement,
    pub timestamp: Timestamp,
}

/// A document's statements, checked, each applying to its images from `timestamp` on; the
/// document's `@id` and author.
#[derive(Debug, PartialEq)]
pub struct Parsed {
    pub id: String,
    pub author: String,
    pub statements: Vec<Statement>,
}

/// Reads an OpenVEX document. An error names the statement and the field.
pub fn parse_document(bytes: &[u8]) -> Result<Parsed> {
    let doc: Document = serde_json::from_slice(bytes)
        .map_err(|e| Error::Document(format!("not an OpenVEX document (JSON): {e}")))?;
    let context = doc.context.unwrap_or_default();
    if !context.starts_with("https://openvex.dev/ns") {
        return Err(Error::Document(format!(
            "@context is {context:?}, not OpenVEX's (https://openvex.dev/ns/v0.2.0): is this an \
             OpenVEX document?"
        )));
    }
    let required = |field: &str, value: Option<String>| {
        value
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| Error::Document(format!("the document has no {field}")))
    };
    let id = required("@id", doc.id)?;
    let author = required("author", doc.author)?;
    let issued = required("timestamp", doc.timestamp)?;
    let issued: Timestamp = issued.parse().map_err(|e| {
        Error::Document(format!("timestamp {issued:?} is not an RFC 3339 time: {e}"))
    })?;
    let statements = doc
        .statements
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::Document("the document has no statements".into()))?;
    let statements = statements
        .iter()
        .enumerate()
        .map(|(index, s)| statement(index, s, issued).map_err(Error::Document))
        .collect::<Result<_>>()?;
    Ok(Parsed {
        id,
        author,
        statements,
    })
}

fn statement(index: usize, s: &Value, issued: Timestamp) -> Result<Statement, String> {
    let at = |field: &str| format!("statements[{index}].{field}");
    let text = |field: &str| -> Result<Option<String>, String> {
        match s.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(v)) if v.trim().is_empty() => Ok(None),
            Some(Value::String(v)) => Ok(Some(v.clone())),
            Some(_) => Err(format!("{} is not a string", at(field))),
        }
    };
    let name = s
        .pointer("/vulnerability/name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| {
            format!(
                "{} is missing: name the vulnerability",
                at("vulnerability.name")
            )
        })?;
    let mut cves = vec![name.trim().to_string()];
    if let Some(aliases) = s.pointer("/vulnerability/aliases") {
        let aliases = aliases
            .as_array()
            .ok_or_else(|| format!("{} is not a list", at("vulnerability.aliases")))?;
        for (i, alias) in aliases.iter().enumerate() {
            let alias = alias
                .as_str()
                .filter(|a| !a.trim().is_empty())
                .ok_or_else(|| {
                    format!(
                        "{} is not a name",
                        at(&format!("vulnerability.aliases[{i}]"))
                    )
                })?;
            if !cves.iter().any(|c| c.eq_ignore_ascii_case(alias.trim())) {
                cves.push(alias.trim().to_string());
            }
        }
    }
    let status_text = text("status")?.ok_or_else(|| format!("{} is missing", at("status")))?;
    let status: VexStatus = serde_json::from_value(json!(status_text)).map_err(|_| {
        format!(
            "{} {status_text:?} is not an OpenVEX status: not_affected, affected, fixed or \
             under_investigation",
            at("status")
        )
    })?;
    let justification = match text("justification")? {
        None => None,
        Some(j) => Some(
            serde_json::from_value::<VexJustification>(json!(j)).map_err(|_| {
                format!(
                    "{} {j:?} is not an OpenVEX justification: component_not_present, \
                     vulnerable_code_not_present, vulnerable_code_not_in_execute_path, \
                     vulnerable_code_cannot_be_controlled_by_adversary or \
                     inline_mitigations_already_exist",
                    at("justification")
                )
            })?,
        ),
    };
    match (status, justification) {
        (VexStatus::NotAffected, None) => {
            return Err(format!(
                "{} is required with status not_affected (scangate admits only on a \
                 machine-readable justification, not on an impact_statement alone)",
                at("justification")
            ));
        }
        (status, Some(_)) if status != VexStatus::NotAffected => {
            return Err(format!(
                "{} is for status not_affected only, not {status}",
                at("justification")
            ));
        }
        _ => {}
    }
    let action_statement = text("action_statement")?;
    if status == VexStatus::Affected && action_statement.is_none() {
        return Err(format!(
            "{} is required with status affected (OpenVEX): say what to do",
            at("action_statement")
        ));
    }
    let timestamp = match text("timestamp")? {
        None => issued,
        Some(t) => t
            .parse()
            .map_err(|e| format!("{} {t:?} is not an RFC 3339 time: {e}", at("timestamp")))?,
    };
    let products = s
        .get("products")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            format!(
                "{} is missing: name the images it is about (pkg:oci purls or image references)",
                at("products")
            )
        })?;
    let images = products
        .iter()
        .enumerate()
        .map(|(i, p)| {
            product_image(p).map_err(|why| format!("{}: {why}", at(&format!("products[{i}]"))))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Statement {
        index,
        cves,
        images,
        vex: VexStatement {
            status,
            justification,
            impact_statement: text("impact_statement")?,
            action_statement,
        },
        timestamp,
    })
}

/// The image pattern a product names: its `@id`, else its `identifiers.purl`, as a `pkg:oci`
/// purl or an image reference.
fn product_image(product: &Value) -> Result<String, String> {
    if product
        .get("subcomponents")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty())
    {
        return Err(
            "has subcomponents: scangate's statements are about every package of an \
                    image, so a statement about some packages only would say more than its \
                    author did; state it for the image, without subcomponents"
                .into(),
        );
    }
    let id = product
        .get("@id")
        .and_then(Value::as_str)
        .or_else(|| product.pointer("/identifiers/purl").and_then(Value::as_str))
        .filter(|id| !id.trim().is_empty())
        .ok_or("has neither @id nor identifiers.purl: name the image")?;
    let image = if id.starts_with("pkg:") {
        oci_purl_image(id)?
    } else {
        id.to_string()
    };
    match ImagePattern::parse(&image) {
        Ok(ImagePattern::Prefix(_)) => Err(format!("{id:?} is a pattern, not an image")),
        Ok(_) => Ok(image),
        Err(e) => Err(format!("{id:?} is not an image reference: {e}")),
    }
}

/// `pkg:oci/NAME@DIGEST?repository_url=REGISTRY/REPO&tag=TAG` as an image reference: the
/// repository with the digest, else the tag, else the repository alone (every tag).
fn oci_purl_image(purl: &str) -> Result<String, String> {
    let Some(rest) = purl.strip_prefix("pkg:oci/") else {
        return Err(format!(
            "{purl:?} is a package, not an image: scangate's statements are about images; name \
             the image (pkg:oci/NAME@sha256:…?repository_url=REGISTRY/REPO, or an image \
             reference)"
        ));
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = path.split('#').next().unwrap_or_default();
    let version = path.split_once('@').map(|(_, v)| decode(v));
    let qualifiers: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.to_lowercase(), v.into_owned()))
        .collect();
    let repository = qualifiers.get("repository_url").ok_or_else(|| {
        format!(
            "{purl:?} has no repository_url qualifier: scangate needs to know which repository \
             (pkg:oci/NAME@DIGEST?repository_url=REGISTRY/REPO)"
        )
    })?;
    let repository = repository
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    Ok(match (version, qualifiers.get("tag")) {
        (Some(digest), _) => format!("{repository}@{digest}"),
        (None, Some(tag)) => format!("{repository}:{tag}"),
        (None, None) => repository.to_string(),
    })
}

/// Percent-decodes a purl component.
fn decode(text: &str) -> String {
    form_urlencoded::parse(format!("v={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Percent-encodes a purl component.
fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The `pkg:oci` purl of an image pattern (with its repository as `repository_url`), `None` for
/// a prefix pattern, which names no image.
pub fn pattern_purl(pattern: &str) -> Option<String> {
    let (repository, version, tag) = match ImagePattern::parse(pattern).ok()? {
        ImagePattern::Prefix(_) => return None,
        ImagePattern::Repository(name) => (name, None, None),
        ImagePattern::Tag(reference) => {
            let (repository, tag) = reference.rsplit_once(':')?;
            (repository.to_string(), None, Some(tag.to_string()))
        }
        ImagePattern::Digest(reference) => {
            let (repository, digest) = reference.split_once('@')?;
            (repository.to_string(), Some(digest.to_string()), None)
        }
    };
    let name = repository.rsplit('/').next().unwrap_or(&repository);
    let mut purl = format!("pkg:oci/{name}");
    if let Some(digest) = version {
        let _ = write!(purl, "@{}", encode(&digest));
    }
    let _ = write!(purl, "?repository_url={}", encode(&repository));
    if let Some(tag) = tag {
        let _ = write!(purl, "&tag={}", encode(&tag));
    }
    Some(purl)
}

/// The ScanExceptions import writes for a document: one per (vulnerability, image), the latest
/// statement about each winning (a later one in the document on a tie), sorted by name.
pub fn exceptions(
    parsed: &Parsed,
    namespace: &str,
    expires: Timestamp,
    reason: Option<&str>,
) -> Vec<ScanException> {
    let mut latest: BTreeMap<(String, String), &Statement> = BTreeMap::new();
    for s in &parsed.statements {
        for image in &s.images {
            let key = (s.cves[0].to_lowercase(), image.clone());
            let newer = latest
                .get(&key)
                .is_none_or(|kept| (kept.timestamp, kept.index) <= (s.timestamp, s.index));
            if newer {
                latest.insert(key, s);
            }
        }
    }
    let reason = reason.map_or_else(
        || format!("OpenVEX {} by {}", parsed.id, parsed.author),
        String::from,
    );
    latest
        .into_iter()
        .map(|((_, image), s)| ScanException {
            metadata: kube::core::ObjectMeta {
                name: Some(exception_name(&s.cves[0], &image)),
                namespace: Some(namespace.to_string()),
                annotations: Some([(DOCUMENT.to_string(), parsed.id.clone())].into()),
                ..Default::default()
            },
            spec: ScanExceptionSpec {
                images: vec![image],
                cves: s.cves.clone(),
                reason: reason.clone(),
                expires: Time(expires),
                vex: Some(s.vex.clone()),
            },
        })
        .collect()
}

/// `vex-<vulnerability>-<hash of the image>`: one name per (vulnerability, image), so a later
/// statement replaces the earlier one.
pub fn exception_name(vulnerability: &str, image: &str) -> String {
    let id: String = vulnerability
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(200)
        .collect();
    let hash = Sha256::digest(image.as_bytes());
    let short: String = hash.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("vex-{}-{short}", id.trim_matches('-'))
}

/// When `--expires` ends: a duration from `now`, or a time.
pub fn expiry(text: &str, now: Timestamp) -> Result<Timestamp> {
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    parse_duration(text)
        .ok()
        .and_then(|d| jiff::SignedDuration::try_from(d).ok())
        .and_then(|d| now.checked_add(d).ok())
        .ok_or_else(|| Error::Expires(text.to_string()))
}

/// Imports a document; returns what to print.
pub async fn import(args: &ImportArgs) -> Result<String> {
    let bytes = super::read(&args.file)?;
    let parsed = parse_document(&bytes)?;
    let now = Timestamp::now();
    let expires = expiry(&args.expires, now)?;
    let (client, default_namespace) = super::cluster_client().await?;
    let namespace = args.namespace.clone().unwrap_or(default_namespace);
    let objects = exceptions(&parsed, &namespace, expires, args.reason.as_deref());
    let api: Api<ScanException> = Api::namespaced(client, &namespace);
    let apply = PatchParams::apply(MANAGER).force();
    let what = |e: &ScanException| {
        let status = e.spec.vex.as_ref().map_or("", |v| v.status.as_str());
        format!(
            "{} {status} for {}",
            e.spec.cves[0],
            e.spec.images.join(", ")
        )
    };
    // Every write as a dry run first: RBAC and the webhook refuse before anything is written.
    let dry_run = PatchParams {
        dry_run: true,
        ..apply.clone()
    };
    for e in &objects {
        let name = e.metadata.name.clone().unwrap_or_default();
        if let Err(source) = api.patch(&name, &dry_run, &Patch::Apply(e)).await {
            return Err(match source {
                kube::Error::Api(status) => Error::Refused {
                    namespace: namespace.clone(),
                    name,
                    what: what(e),
                    message: status.message,
                },
                source => Error::Write {
                    namespace: namespace.clone(),
                    name,
                    written: 0,
                    total: objects.len(),
                    source: Box::new(source),
                },
            });
        }
    }
    let mut out = String::new();
    for (written, e) in objects.iter().enumerate() {
        let name = e.metadata.name.clone().unwrap_or_default();
        if !args.dry_run {
            api.patch(&name, &apply, &Patch::Apply(e))
                .await
                .map_err(|source| Error::Write {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    written,
                    total: objects.len(),
                    source: Box::new(source),
                })?;
        }
        let _ = writeln!(out, "scanexception {namespace}/{name}: {}", what(e));
    }
    let _ = writeln!(
        out,
        "{} {} statements from {} until {expires}",
        if args.dry_run {
            "would record"
        } else {
            "recorded"
        },
        objects.len(),
        parsed.id
    );
    Ok(out)
}

/// Why a ScanException with a statement is left out of an export, or `None` when it counts.
fn left_out(e: &ScanException, now: Timestamp) -> Option<String> {
    let annotations = e.metadata.annotations.as_ref();
    if annotations
        .and_then(|a| a.get(APPROVED_BY))
        .is_none_or(String::is_empty)
    {
        return Some("not approved (no approver's write is recorded)".into());
    }
    (e.spec.expires.0 <= now).then(|| format!("expired at {}", e.spec.expires.0))
}

/// The OpenVEX document of a namespace's statements (those with `spec.vex` that count at
/// `now`), and a note per statement left out.
pub fn document(
    all: &[ScanException],
    namespace: &str,
    author: Option<&str>,
    id: Option<&str>,
    now: Timestamp,
) -> (Value, Vec<String>) {
    let mut notes = vec![];
    let mut approvers = BTreeSet::new();
    let mut statements = vec![];
    let mut sorted: Vec<&ScanException> = all.iter().filter(|e| e.spec.vex.is_some()).collect();
    sorted.sort_by_key(|e| e.metadata.name.clone());
    for e in sorted {
        let name = e.metadata.name.clone().unwrap_or_default();
        let Some(vex) = &e.spec.vex else { continue };
        if let Some(why) = left_out(e, now) {
            notes.push(format!("left out ScanException {namespace}/{name}: {why}"));
            continue;
        }
        let Some((vulnerability, aliases)) = e.spec.cves.split_first() else {
            notes.push(format!(
                "left out ScanException {namespace}/{name}: it names no CVE"
            ));
            continue;
        };
        let mut products = vec![];
        for pattern in &e.spec.images {
            match pattern_purl(pattern) {
                Some(purl) => products.push(json!({"@id": purl})),
                None => notes.push(format!(
                    "ScanException {namespace}/{name}: image pattern {pattern:?} names no one \
                     image, left out of its products"
                )),
            }
        }
        if products.is_empty() {
            notes.push(format!(
                "left out ScanException {namespace}/{name}: none of its images is one image"
            ));
            continue;
        }
        let annotations = e.metadata.annotations.as_ref();
        let approver = annotations
            .and_then(|a| a.get(APPROVED_BY))
            .cloned()
            .unwrap_or_default();
        let approved_at = annotations.and_then(|a| a.get(APPROVED_AT)).cloned();
        approvers.insert(approver.clone());
        let mut vulnerability = json!({"name": vulnerability});
        if !aliases.is_empty() {
            vulnerability["aliases"] = json!(aliases);
        }
        let mut statement = json!({
            "vulnerability": vulnerability,
            "products": products,
            "status": vex.status,
            "status_notes": format!(
                "ScanException {namespace}/{name}, recorded by {approver}, until {}: {}",
                e.spec.expires.0, e.spec.reason
            ),
        });
        if let Some(at) = approved_at {
            statement["timestamp"] = json!(at);
        }
        if let Some(j) = vex.justification {
            statement["justification"] = json!(j);
        }
        if let Some(text) = &vex.impact_statement {
            statement["impact_statement"] = json!(text);
        }
        if let Some(text) = &vex.action_statement {
            statement["action_statement"] = json!(text);
        }
        statements.push(statement);
    }
    let author = author.map_or_else(
        || {
            let names: Vec<&str> = approvers.iter().map(String::as_str).collect();
            if names.is_empty() {
                format!("scangate, namespace {namespace}")
            } else {
                names.join(", ")
            }
        },
        String::from,
    );
    let id = id.map_or_else(
        || {
            let hash = Sha256::digest(json!([namespace, statements]).to_string().as_bytes());
            let short: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!("urn:scangate:vex:{namespace}:{short}")
        },
        String::from,
    );
    let document = json!({
        "@context": CONTEXT,
        "@id": id,
        "author": author,
        "timestamp": now.to_string(),
        "version": 1,
        "tooling": format!("scangate {}", env!("CARGO_PKG_VERSION")),
        "statements": statements,
    });
    (document, notes)
}

/// Exports a namespace's statements; returns the document and the notes.
pub async fn export(args: &ExportArgs) -> Result<(String, String)> {
    let (client, default_namespace) = super::cluster_client().await?;
    let namespace = args.namespace.clone().unwrap_or(default_namespace);
    let api: Api<ScanException> = Api::namespaced(client, &namespace);
    let all = api
        .list(&ListParams::default())
        .await
        .map_err(|source| Error::List {
            namespace: namespace.clone(),
            source: Box::new(source),
        })?;
    let (document, notes) = document(
        &all.items,
        &namespace,
        args.author.as_deref(),
        args.id.as_deref(),
        Timestamp::now(),
    );
    let notes: String = notes.into_iter().map(|n| format!("note: {n}\n")).collect();
    Ok((serde_json::to_string_pretty(&document)? + "\n", notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:ae39a6f5c07297d7ab64dbd4f82c77c874cc6a94cea29fdec309d0992574b4f7";

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn doc(statements: Value) -> Vec<u8> {
        json!({
            "@context": "https://openvex.dev/ns/v0.2.0",
            "@id": "https://example.com/vex/1",
            "author": "Security <sec@example.com>",
            "timestamp": "2026-01-01T00:00:00Z",
            "version": 1,
            "statements": statements,
        })
        .to_string()
        .into_bytes()
    }

    fn error(bytes: &[u8]) -> String {
        match parse_document(bytes) {
            Ok(p) => panic!("parsed: {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn products_are_images_as_oci_purls_or_references() {
        let purl = format!(
            "pkg:oci/busybox@{}?repository_url=docker.io%2Flibrary%2Fbusybox&arch=amd64",
            DIGEST.replace(':', "%3A")
        );
        assert_eq!(
            product_image(&json!({"@id": purl})),
            Ok(format!("docker.io/library/busybox@{DIGEST}"))
        );
        assert_eq!(
            product_image(
                &json!({"identifiers": {"purl": "pkg:oci/app?repository_url=ghcr.io/org/app&tag=1.2"}})
            ),
            Ok("ghcr.io/org/app:1.2".into())
        );
        assert_eq!(
            product_image(&json!({"@id": "nginx:1.27"})),
            Ok("nginx:1.27".into())
        );
        for (product, says) in [
            (
                json!({"@id": "pkg:deb/debian/openssl@3.0"}),
                "is a package, not an image",
            ),
            (
                json!({"@id": "pkg:oci/app@sha256%3Aab"}),
                "has no repository_url",
            ),
            (
                json!({"@id": "ghcr.io/org/*"}),
                "is a pattern, not an image",
            ),
            (json!({"@id": "Not Valid"}), "is not an image reference"),
            (json!({}), "has neither @id nor identifiers.purl"),
            (
                json!({"@id": "nginx", "subcomponents": [{"@id": "pkg:deb/x"}]}),
                "has subcomponents",
            ),
        ] {
            let why = product_image(&product).err().unwrap_or_default();
            assert!(why.contains(says), "{product}: {why}");
        }
        // Export writes what import reads back.
        for pattern in [
            format!("docker.io/library/busybox@{DIGEST}"),
            "ghcr.io/org/app:1.2".to_string(),
            "ghcr.io/org/app".to_string(),
        ] {
            let purl = pattern_purl(&pattern).unwrap_or_default();
            assert_eq!(product_image(&json!({"@id": purl})), Ok(pattern), "{purl}");
        }
        assert_eq!(pattern_purl("ghcr.io/org/*"), None);
    }

    #[test]
    fn a_bad_statement_is_named_with_its_field() {
        let ok = json!({"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "nginx"}],
            "status": "not_affected", "justification": "component_not_present"});
        assert!(parse_document(&doc(json!([ok.clone()]))).is_ok());
        let cases = [
            (
                json!({"status": "fixed"}),
                "statements[1].vulnerability.name is missing",
            ),
            (
                json!({"status": "maybe"}),
                "statements[1].status \"maybe\" is not an OpenVEX status",
            ),
            (
                json!({"justification": null}),
                "statements[1].justification is required with status not_affected",
            ),
            (
                json!({"justification": "trust_me"}),
                "statements[1].justification \"trust_me\" is not an OpenVEX justification",
            ),
            (
                json!({"status": "fixed"}),
                "statements[1].justification is for status not_affected only, not fixed",
            ),
            (
                json!({"status": "affected", "justification": null}),
                "statements[1].action_statement is required with status affected",
            ),
            (json!({"products": []}), "statements[1].products is missing"),
            (
                json!({"products": [{"@id": "nginx"}, {"@id": "pkg:npm/x@1"}]}),
                "statements[1].products[1]: \"pkg:npm/x@1\" is a package",
            ),
            (
                json!({"timestamp": "yesterday"}),
                "statements[1].timestamp \"yesterday\"",
            ),
        ];
        for (change, says) in cases {
            let mut bad = ok.clone();
            if change.get("vulnerability").is_none() && says.contains("vulnerability.name") {
                bad["vulnerability"] = json!({});
            }
            for (k, v) in change.as_object().into_iter().flatten() {
                bad[k] = v.clone();
            }
            let message = error(&doc(json!([ok.clone(), bad])));
            assert!(message.contains(says), "{says}: {message}");
        }
        assert!(error(b"{}").contains("@context"));
        assert!(error(b"[").contains("not an OpenVEX document"));
        let mut no_author: Value = serde_json::from_slice(&doc(json!([ok]))).unwrap_or_default();
        no_author["author"] = json!("");
        assert!(error(no_author.to_string().as_bytes()).contains("no author"));
    }

    #[test]
    fn one_exception_per_vulnerability_and_image_the_latest_statement_winning() {
        let parsed = parse_document(&doc(json!([
            {"vulnerability": {"name": "CVE-2022-48174", "aliases": ["GHSA-x", "cve-2022-48174"]},
             "products": [{"@id": "busybox:1.32.1"}, {"@id": "alpine:3.10"}],
             "status": "under_investigation"},
            {"vulnerability": {"name": "CVE-2022-48174"}, "timestamp": "2026-01-02T00:00:00Z",
             "products": [{"@id": "busybox:1.32.1"}],
             "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path",
             "impact_statement": "the shell is not reachable"},
        ])))
        .unwrap_or_else(|e| panic!("{e}"));
        let written = exceptions(&parsed, "shop", ts("2026-02-01T00:00:00Z"), None);
        assert_eq!(written.len(), 2);
        let by_image: BTreeMap<&str, &ScanException> = written
            .iter()
            .map(|e| (e.spec.images[0].as_str(), e))
            .collect();
        let busybox = by_image["busybox:1.32.1"];
        let vex = busybox.spec.vex.clone().unwrap_or_else(|| panic!("no vex"));
        assert_eq!(vex.status, VexStatus::NotAffected);
        assert_eq!(busybox.spec.cves, ["CVE-2022-48174"]);
        assert_eq!(
            busybox.spec.reason,
            "OpenVEX https://example.com/vex/1 by Security <sec@example.com>"
        );
        assert_eq!(busybox.metadata.namespace.as_deref(), Some("shop"));
        let alpine = by_image["alpine:3.10"];
        assert_eq!(alpine.spec.cves, ["CVE-2022-48174", "GHSA-x"]);
        assert_eq!(
            alpine.spec.vex.as_ref().map(|v| v.status),
            Some(VexStatus::UnderInvestigation)
        );
        assert_ne!(alpine.metadata.name, busybox.metadata.name);
        assert_eq!(
            exception_name("CVE-2022-48174", "busybox:1.32.1"),
            busybox.metadata.name.clone().unwrap_or_default()
        );
        assert!(exception_name("GHSA-abcd-efgh", "x").starts_with("vex-ghsa-abcd-efgh-"));
    }

    #[test]
    fn export_gives_the_statements_that_count_as_openvex() {
        let parsed = parse_document(&doc(json!([
            {"vulnerability": {"name": "CVE-1", "aliases": ["GHSA-1"]},
             "products": [{"@id": format!("pkg:oci/busybox@{}?repository_url=docker.io%2Flibrary%2Fbusybox", DIGEST.replace(':', "%3A"))}],
             "status": "not_affected", "justification": "component_not_present"},
            {"vulnerability": {"name": "CVE-2"}, "products": [{"@id": "nginx"}],
             "status": "affected", "action_statement": "upgrade"},
        ])))
        .unwrap_or_else(|e| panic!("{e}"));
        let mut written = exceptions(&parsed, "shop", ts("2026-02-01T00:00:00Z"), Some("SEC-1"));
        for e in &mut written {
            e.metadata.annotations = Some(
                [
                    (APPROVED_BY.to_string(), "alice".to_string()),
                    (APPROVED_AT.to_string(), "2026-01-03T00:00:00Z".to_string()),
                ]
                .into(),
            );
        }
        let mut unapproved = written[0].clone();
        unapproved.metadata.name = Some("unapproved".into());
        unapproved.metadata.annotations = None;
        let mut plain = written[0].clone();
        plain.spec.vex = None;
        let mut all = written.clone();
        all.extend([unapproved, plain]);
        let now = ts("2026-01-10T00:00:00Z");
        let (doc, notes) = document(&all, "shop", None, None, now);
        assert_eq!(doc["@context"], CONTEXT);
        assert_eq!(doc["author"], "alice");
        assert_eq!(doc["version"], 1);
        assert!(
            doc["@id"]
                .as_str()
                .unwrap_or_default()
                .starts_with("urn:scangate:vex:shop:")
        );
        assert_eq!(
            notes,
            [
                "left out ScanException shop/unapproved: not approved (no approver's write is recorded)"
            ]
        );
        let statements = doc["statements"].as_array().cloned().unwrap_or_default();
        assert_eq!(statements.len(), 2);
        // Reading the export back gives the same statements.
        let again = parse_document(doc.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let key = |s: &Statement| (s.cves.clone(), s.images.clone(), s.vex.clone());
        let mut before: Vec<_> = parsed.statements.iter().map(key).collect();
        let mut after: Vec<_> = again.statements.iter().map(key).collect();
        before.sort_by_key(|k| k.0.clone());
        after.sort_by_key(|k| k.0.clone());
        assert_eq!(after[1].1, ["docker.io/library/nginx"]);
        after[1].1 = vec!["nginx".into()];
        assert_eq!(before, after);
        assert_eq!(again.statements[0].timestamp, ts("2026-01-03T00:00:00Z"));
        // Expired: left out.
        let (late, notes) = document(
            &written,
            "shop",
            Some("Sec"),
            Some("urn:x"),
            ts("2026-03-01T00:00:00Z"),
        );
        assert_eq!(late["statements"], json!([]));
        assert_eq!(
            (late["author"].as_str(), late["@id"].as_str()),
            (Some("Sec"), Some("urn:x"))
        );
        assert_eq!(notes.len(), 2);
    }

    #[test]
    fn expires_is_a_duration_or_a_time() {
        let now = ts("2026-01-01T00:00:00Z");
        assert_eq!(expiry("30d", now).ok(), Some(ts("2026-01-31T00:00:00Z")));
        assert_eq!(
            expiry("2026-02-01T00:00:00Z", now).ok(),
            Some(ts("2026-02-01T00:00:00Z"))
        );
        assert!(expiry("soon", now).is_err());
    }
}
