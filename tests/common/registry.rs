//! A real OCI registry for tests: the CNCF distribution registry (`make registry-build` puts it
//! in target/tools/registry), on a free loopback port with TLS (a CA from
//! `scangate::cmd::certs::generate`) and htpasswd basic auth, its own storage, stopped on drop.
//! Images are pushed over the registry's HTTP API (blob uploads, manifest PUTs): small random
//! layers, so each push is new content.
//!
//! Registry tests run when `SCANGATE_E2E=1` (they need no apiserver); then a missing binary or
//! a registry that does not start fails the test loudly.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use scangate::registry::manifest::sha256_digest;
use serde_json::json;

use super::webhook::{client, free_port};

/// The user and password the fixture's htpasswd file accepts.
pub const USER: &str = "scangate";
pub const PASSWORD: &str = "test-password";

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`, the registry part of image references.
    pub host: String,
    /// The CA (PEM) that signed the registry's certificate.
    pub ca: Vec<u8>,
    pub log: PathBuf,
    http: reqwest::Client,
}

/// A pushed image: its reference by tag and the digest the tag now names.
#[derive(Clone, Debug)]
pub struct Pushed {
    pub reference: String,
    pub digest: String,
}

/// A platform manifest pushed as part of an index.
#[derive(Clone, Debug)]
pub struct PlatformManifest {
    pub os: String,
    pub architecture: String,
    pub digest: String,
}

/// The registry, when e2e tests are enabled; `None` (after saying why) otherwise.
pub fn registry() -> Option<Registry> {
    if std::env::var("SCANGATE_E2E").as_deref() != Ok("1") {
        eprintln!("skipping: set SCANGATE_E2E=1 (and `make registry-build`) for registry tests");
        return None;
    }
    Some(Registry::start())
}

impl Registry {
    /// Starts the registry and waits until `/v2/` asks for credentials.
    pub fn start() -> Registry {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let binary = repo.join("target/tools/registry");
        assert!(
            binary.exists(),
            "{} is missing: run `make registry-build`",
            binary.display()
        );
        let dir = tempfile::tempdir().expect("registry dir");
        super::webhook::certs(dir.path());
        let htpasswd = dir.path().join("htpasswd");
        let out = Command::new("htpasswd")
            .args(["-Bbc", &htpasswd.display().to_string(), USER, PASSWORD])
            .output()
            .expect("htpasswd (apache2-utils; `make registry-build` installs it)");
        assert!(out.status.success(), "htpasswd: {out:?}");
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        let path = |name: &str| dir.path().join(name).display().to_string();
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: info}}\n\
                 storage: {{filesystem: {{rootdirectory: {storage}}}, delete: {{enabled: true}}}}\n\
                 http: {{addr: '{host}', secret: scangate-test-secret, \
                 tls: {{certificate: {cert}, key: {key}}}}}\n\
                 auth: {{htpasswd: {{realm: scangate-test, path: {htpasswd}}}}}\n",
                storage = path("storage"),
                cert = path("tls.crt"),
                key = path("tls.key"),
                htpasswd = htpasswd.display(),
            ),
        )
        .expect("registry config");
        let log = dir.path().join("registry.log");
        let child = Command::new(&binary)
            .args(["serve", &config.display().to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start the registry");
        let ca = std::fs::read(dir.path().join("ca.crt")).expect("CA");
        let http = client(&[&dir.path().join("ca.crt")]);
        let registry = Registry {
            child,
            dir,
            host,
            ca,
            log,
            http,
        };
        registry.wait_ready();
        registry
    }

    /// Waits on a thread of its own, so that tests may start the registry from async code.
    fn wait_ready(&self) {
        std::thread::scope(|s| {
            s.spawn(|| self.poll_ready())
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    fn poll_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("https://{}/v2/", self.host);
        // A client of its own: pooled connections belong to the runtime that made them.
        let http = client(&[&self.dir.path().join("ca.crt")]);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        loop {
            let status = runtime
                .block_on(async { http.get(&url).send().await })
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string());
            if status == Ok(401) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the registry did not answer on {url} within 30s ({status:?}); log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The storage and config directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Uploads a blob (monolithic: POST, then PUT with its digest); returns its digest.
    async fn blob(&self, repository: &str, content: &[u8]) -> String {
        let digest = sha256_digest(content);
        let start = self
            .http
            .post(format!(
                "https://{}/v2/{repository}/blobs/uploads/",
                self.host
            ))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .expect("start a blob upload");
        assert_eq!(start.status().as_u16(), 202, "blob upload start: {start:?}");
        let location = start
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .expect("upload Location")
            .to_string();
        let mut url = if location.starts_with("http") {
            reqwest::Url::parse(&location).expect("Location URL")
        } else {
            reqwest::Url::parse(&format!("https://{}{location}", self.host)).expect("URL")
        };
        url.query_pairs_mut().append_pair("digest", &digest);
        let put = self
            .http
            .put(url)
            .basic_auth(USER, Some(PASSWORD))
            .header("content-type", "application/octet-stream")
            .body(content.to_vec())
            .send()
            .await
            .expect("upload a blob");
        assert_eq!(put.status().as_u16(), 201, "blob upload: {put:?}");
        digest
    }

    /// PUTs a manifest under `reference` (a tag or its digest); returns its digest.
    async fn manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let put = self
            .http
            .put(format!(
                "https://{}/v2/{repository}/manifests/{reference}",
                self.host
            ))
            .basic_auth(USER, Some(PASSWORD))
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .expect("put a manifest");
        let status = put.status().as_u16();
        let text = put.text().await.unwrap_or_default();
        assert_eq!(status, 201, "manifest put: {text}");
        sha256_digest(body)
    }

    /// Pushes a single-platform image of one random layer; returns the manifest's body.
    async fn image_manifest(&self, repository: &str, os: &str, architecture: &str) -> Vec<u8> {
        let layer = random_bytes(256);
        let layer_digest = self.blob(repository, &layer).await;
        let config = serde_json::to_vec(&json!({
            "architecture": architecture,
            "os": os,
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }))
        .expect("config JSON");
        let config_digest = self.blob(repository, &config).await;
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": layer.len()}],
        }))
        .expect("manifest JSON")
    }

    /// Pushes a new single-platform (linux/amd64) image to `repository:tag`.
    pub async fn push(&self, repository: &str, tag: &str) -> Pushed {
        let manifest = self.image_manifest(repository, "linux", "amd64").await;
        let digest = self
            .manifest(repository, tag, OCI_MANIFEST, &manifest)
            .await;
        Pushed {
            reference: format!("{}/{repository}:{tag}", self.host),
            digest,
        }
    }

    /// Pushes a new multi-platform image (linux/amd64 and linux/arm64) to `repository:tag`:
    /// each platform's manifest by digest, then the index by tag.
    pub async fn push_index(&self, repository: &str, tag: &str) -> (Pushed, Vec<PlatformManifest>) {
        let mut platforms = Vec::new();
        for architecture in ["amd64", "arm64"] {
            let manifest = self.image_manifest(repository, "linux", architecture).await;
            let digest = sha256_digest(&manifest);
            self.manifest(repository, &digest, OCI_MANIFEST, &manifest)
                .await;
            platforms.push((architecture, digest, manifest.len()));
        }
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": platforms.iter().map(|(architecture, digest, size)| json!({
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": size,
                "platform": {"os": "linux", "architecture": architecture},
            })).collect::<Vec<_>>(),
        }))
        .expect("index JSON");
        let digest = self.manifest(repository, tag, OCI_INDEX, &index).await;
        (
            Pushed {
                reference: format!("{}/{repository}:{tag}", self.host),
                digest,
            },
            platforms
                .into_iter()
                .map(|(architecture, digest, _)| PlatformManifest {
                    os: "linux".into(),
                    architecture: architecture.into(),
                    digest,
                })
                .collect(),
        )
    }
}

impl Registry {
    /// Attaches `envelopes` (DSSE envelopes, JSON) to `digest` in `repository` as cosign
    /// does without the referrers API: an image manifest under the tag `sha256-<hex>.att`
    /// whose layers are the envelopes, each with cosign's signature annotation.
    pub async fn attach_cosign_attestations(
        &self,
        repository: &str,
        digest: &str,
        envelopes: &[Vec<u8>],
    ) {
        let mut layers = Vec::new();
        for envelope in envelopes {
            let layer = self.blob(repository, envelope).await;
            layers.push(json!({
                "mediaType": "application/vnd.dsse.envelope.v1+json",
                "digest": layer,
                "size": envelope.len(),
                "annotations": {
                    "dev.cosignproject.cosign/signature": "",
                    "predicateType": "https://cosign.sigstore.dev/attestation/vuln/v1",
                },
            }));
        }
        let config = serde_json::to_vec(&json!({
            "architecture": "", "os": "", "rootfs": {"type": "layers", "diff_ids": []},
        }))
        .expect("config JSON");
        let config_digest = self.blob(repository, &config).await;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": layers,
        }))
        .expect("manifest JSON");
        let tag = format!("{}.att", digest.replacen(':', "-", 1));
        self.manifest(repository, &tag, OCI_MANIFEST, &manifest)
            .await;
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `n` random bytes, so that every pushed layer is new content.
pub fn random_bytes(n: usize) -> Vec<u8> {
    use std::io::Read;
    let mut bytes = vec![0; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes
}
