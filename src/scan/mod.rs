//! The scan lifecycle: runs scan Jobs from ScanTemplates (or takes pushed reports and signed
//! attestations), reads their reports, evaluates ScanPolicies with the active ScanExceptions,
//! sends results to a metadata store, and keeps the status of every ImageScan and SourceScan.
//! It looks down only: to the API types, reports, policies, the sandbox and the registry.
//!
//! - [`kinds`]: what differs between ImageScan and SourceScan;
//! - [`naming`]: the names and labels of scans scangate makes for an image;
//! - [`cache`]: the watches a reconcile reads from, and the index from what they hold to the
//!   scans it concerns;
//! - [`job`]: Job names, construction and planning (pure);
//! - [`plan`]: the plan of one reconcile, from what it observed (pure);
//! - [`queue`]: the limits on running scan Jobs, and the scans waiting for a slot;
//! - [`status`]: the desired status (pure);
//! - [`progress`]: `status.progress`, where each stage of a round stands (pure);
//! - [`evaluation`]: one policy evaluation per input, and keeping a verdict through a hiccup;
//! - [`policy`]: compiled policy cache and exception input;
//! - [`store`]: the metadata store client;
//! - [`events`]: Event notes that fit the API's limit (pure);
//! - [`publisher`]: phase Events published off the reconcile, at a limited rate;
//! - [`writes`]: counting and retrying status writes (pure);
//! - [`target`]: whether a report is for the scan it was stored for (pure);
//! - [`triggers`]: what wakes a reconcile besides a change of the scan;
//! - [`reconcile`]: one reconcile: observe, plan, apply;
//! - [`upload`]: `scangate report --to-configmap`;
//! - [`verdicts`]: signing and pushing the verdicts of trusted ImageScans (`attestations.sign`);
//! - [`metrics`]: the lifecycle's Prometheus metrics.

pub mod cache;
pub mod evaluation;
pub mod events;
pub mod job;
pub mod kinds;
pub mod metrics;
pub mod naming;
pub mod plan;
pub mod policy;
pub mod progress;
pub mod publisher;
pub mod queue;
pub mod reconcile;
pub mod status;
pub mod store;
pub mod target;
pub mod triggers;
pub mod upload;
pub mod verdicts;
pub mod writes;

/// The name of the controller in events, status writes' reporter and the default lease.
pub const CONTROLLER_NAME: &str = "scangate-controller";

/// Errors of the scan lifecycle and of `scangate report --to-configmap`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot connect to the Kubernetes API: {0}; run in a cluster or set KUBECONFIG")]
    Connect(#[source] kube::Error),
    #[error(transparent)]
    Report(#[from] crate::report::Error),
    #[error("cannot read the metadata store CA file {path}: {cause}")]
    CaFile {
        path: std::path::PathBuf,
        cause: std::io::Error,
    },
    #[error("the metadata store CA file {path} holds no usable PEM certificate")]
    NoCertificate { path: std::path::PathBuf },
    #[error("cannot build the metadata store client: {0}")]
    Client(String),
    #[error("cannot read the metadata store token file {path}: {cause}")]
    TokenFile {
        path: std::path::PathBuf,
        cause: std::io::Error,
    },
    #[error("POST {url} failed: {cause}")]
    Request { url: String, cause: String },
    #[error("POST {url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("POST {url} answered without a JSON {{\"url\": ...}} body: {cause}")]
    Answer { url: String, cause: String },
    #[error("{0:?} is not NAMESPACE/SCAN")]
    Target(String),
    #[error("not storing the report for scan {scan}")]
    WrongTarget {
        scan: String,
        #[source]
        cause: Box<target::Error>,
    },
    #[error("there is no ImageScan or SourceScan {namespace}/{name}")]
    ScanNotFound { namespace: String, name: String },
    #[error("Job {name} exists but is not owned by this scan")]
    JobNotOurs { name: String },
    #[error(transparent)]
    Config(#[from] crate::admission::config::Error),
    #[error(
        "the imagePullSecret {namespace}/{name} does not exist: create it (type \
         kubernetes.io/dockerconfigjson) or remove it from the scan"
    )]
    PullSecretMissing { namespace: String, name: String },
    #[error(
        "cannot read the imagePullSecret {namespace}/{name} (the controller needs `get` on \
         Secrets): {cause}"
    )]
    PullSecretUnreadable {
        namespace: String,
        name: String,
        #[source]
        cause: kube::Error,
    },
    #[error(
        "the imagePullSecret {namespace}/{name} is of type {type_:?} and has no \
         .dockerconfigjson: make it a kubernetes.io/dockerconfigjson Secret \
         (kubectl create secret docker-registry)"
    )]
    PullSecretType {
        namespace: String,
        name: String,
        type_: String,
    },
    #[error("the imagePullSecret {namespace}/{name}: {cause}")]
    PullSecretFormat {
        namespace: String,
        name: String,
        #[source]
        cause: Box<crate::registry::Error>,
    },
    #[error(transparent)]
    Registry(Box<crate::registry::Error>),
    #[error(transparent)]
    PolicySandbox(#[from] crate::sandbox::Error),
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
