//! The container image. The Containerfile (built here by `make image` with buildah) and the
//! Dockerfile (for machines that can pull) build the same layout, with the user, entrypoint and
//! labels of the package. The OCI archive `make image` exports is read as a runtime reads it
//! (index, manifest, config, layers, every digest checked), and its binary is run as the image's
//! entrypoint and user would run it: that test needs the archive (SCANGATE_IMAGE_ARCHIVE) and
//! root (for chroot); `make image-test` runs it, and `cargo test` skips it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde::Deserialize;
use sha2::{Digest, Sha256};

const ENTRYPOINT: &str = "/usr/local/bin/scangate";
const USER: &str = "65532:65532";
/// Where the Dockerfile's build stage lays out the image's files (scripts/image-rootfs.sh).
const DOCKER_ROOTFS: &str = "--from=build /rootfs/";
/// Every file of the image, and its mode; all owned by root.
const FILES: [(&str, u32); 4] = [
    ("etc/group", 0o644),
    ("etc/passwd", 0o644),
    ("etc/ssl/certs/ca-certificates.crt", 0o644),
    ("usr/local/bin/scangate", 0o755),
];

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel))
        .unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// The instructions of a Dockerfile's last stage (from its FROM on), continuation lines joined
/// and comments dropped.
fn last_stage(text: &str) -> Vec<String> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                instructions.push(current.split_whitespace().collect::<Vec<_>>().join(" "));
                current.clear();
            }
        }
    }
    let start = instructions
        .iter()
        .rposition(|i| i.starts_with("FROM "))
        .expect("a FROM instruction");
    instructions.split_off(start)
}

/// `KEY=VALUE` of one instruction, for the instruction given (`LABEL`, `ENV`…).
fn key_values<'a>(stage: &'a [String], instruction: &str) -> BTreeMap<&'a str, String> {
    let prefix = format!("{instruction} ");
    stage
        .iter()
        .filter_map(|i| i.strip_prefix(&prefix))
        .map(|kv| {
            let (key, value) = kv.split_once('=').expect("KEY=VALUE");
            let value = serde_json::from_str(value)
                .unwrap_or_else(|e| panic!("{instruction} {key}: value not a quoted string: {e}"));
            (key, value)
        })
        .collect()
}

fn one<'a>(stage: &'a [String], instruction: &str) -> &'a str {
    let prefix = format!("{instruction} ");
    let found: Vec<&str> = stage
        .iter()
        .filter_map(|i| i.strip_prefix(&prefix))
        .collect();
    assert_eq!(found.len(), 1, "one {instruction} in {stage:#?}");
    found[0]
}

/// The labels the image must carry: the package's metadata, and the build's version and
/// revision as build arguments.
fn expected_labels(stage: &[String]) -> BTreeMap<&'static str, String> {
    let source = key_values(stage, "LABEL")
        .remove("org.opencontainers.image.source")
        .expect("a source label");
    BTreeMap::from([
        (
            "org.opencontainers.image.title",
            env!("CARGO_PKG_NAME").to_string(),
        ),
        (
            "org.opencontainers.image.description",
            env!("CARGO_PKG_DESCRIPTION").to_string(),
        ),
        (
            "org.opencontainers.image.licenses",
            env!("CARGO_PKG_LICENSE").to_string(),
        ),
        ("org.opencontainers.image.source", source),
        ("org.opencontainers.image.version", "${VERSION}".to_string()),
        (
            "org.opencontainers.image.revision",
            "${REVISION}".to_string(),
        ),
    ])
}

#[test]
fn the_containerfile_builds_the_static_binary_as_user_65532_from_scratch() {
    let stage = last_stage(&read("Containerfile"));
    assert_eq!(stage[0], "FROM scratch", "{stage:#?}");
    assert_eq!(one(&stage, "USER"), USER);
    let entrypoint: Vec<String> =
        serde_json::from_str(one(&stage, "ENTRYPOINT")).expect("ENTRYPOINT in exec form");
    assert_eq!(entrypoint, [ENTRYPOINT]);
    assert_eq!(key_values(&stage, "LABEL"), expected_labels(&stage));
    let source = &key_values(&stage, "LABEL")["org.opencontainers.image.source"];
    assert!(source.starts_with("https://"), "{source}");
    // Everything comes from the build context (no network, no other image).
    let copies: Vec<&String> = stage.iter().filter(|i| i.starts_with("COPY ")).collect();
    assert_eq!(copies, ["COPY etc/ /etc/", "COPY usr/ /usr/"]);
    assert!(
        !stage
            .iter()
            .any(|i| i.starts_with("RUN ") || i.starts_with("ADD ")),
        "{stage:#?}"
    );
}

#[test]
fn the_license_the_labels_name_is_in_the_repository() {
    assert_eq!(env!("CARGO_PKG_LICENSE"), "Apache-2.0");
    let license = read("LICENSE");
    let head: Vec<&str> = license.lines().take(2).map(str::trim).collect();
    assert_eq!(head, ["Apache License", "Version 2.0, January 2004"]);
}

#[test]
fn the_dockerfile_builds_the_same_image_as_the_containerfile() {
    let dockerfile = read("Dockerfile");
    let containerfile = last_stage(&read("Containerfile"));
    // The Dockerfile's last stage copies the build stage's rootfs where the Containerfile copies
    // its context: the same instructions once that source is named alike.
    let docker: Vec<String> = last_stage(&dockerfile)
        .iter()
        .map(|i| i.replace(DOCKER_ROOTFS, ""))
        .collect();
    assert_eq!(
        docker, containerfile,
        "the Dockerfile's last stage and the Containerfile differ: keep them in step"
    );
    // …and its build stage lays out that rootfs with the same script, from the same static
    // release build as `make image`.
    for part in [
        "target-feature=+crt-static",
        "cargo build --release --locked --target x86_64-unknown-linux-gnu --bin scangate",
        "scripts/image-rootfs.sh target/x86_64-unknown-linux-gnu/release/scangate /rootfs",
    ] {
        assert!(dockerfile.contains(part), "the Dockerfile lacks {part:?}");
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    media_type: String,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct ImageConfig {
    architecture: String,
    os: String,
    config: RunConfig,
    rootfs: RootFs,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    user: String,
    #[serde(default)]
    env: Vec<String>,
    entrypoint: Vec<String>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct RootFs {
    r#type: String,
    diff_ids: Vec<String>,
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// A blob of the layout, checked against its descriptor's digest and size.
fn blob(layout: &Path, descriptor: &Descriptor) -> Vec<u8> {
    let hex = descriptor
        .digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("digest {} is not sha256", descriptor.digest));
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex))
        .unwrap_or_else(|e| panic!("blob {}: {e}", descriptor.digest));
    assert_eq!(sha256(&bytes), descriptor.digest, "blob content");
    assert_eq!(bytes.len() as u64, descriptor.size, "{}", descriptor.digest);
    bytes
}

fn run(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Extracts a layer's uncompressed tar into `rootfs`, as root so owners are kept.
fn extract(tar: &[u8], rootfs: &Path) {
    let mut child = Command::new("tar")
        .args([
            "-x",
            "--numeric-owner",
            "--same-permissions",
            "-f",
            "-",
            "-C",
        ])
        .arg(rootfs)
        .stdin(Stdio::piped())
        .spawn()
        .expect("run tar");
    child
        .stdin
        .take()
        .expect("tar's stdin")
        .write_all(tar)
        .expect("write the layer to tar");
    assert!(child.wait().expect("wait for tar").success(), "tar failed");
}

/// Whether an ELF executable asks for a program interpreter (a dynamic loader), which a
/// scratch image does not have.
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    assert_eq!(&elf[..5], b"\x7fELF\x02", "a 64-bit ELF executable");
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().expect("e_phoff")) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|n| {
        let at = phoff + n * phentsize;
        u32::from_le_bytes(elf[at..at + 4].try_into().expect("p_type")) == PT_INTERP
    })
}

fn is_root() -> bool {
    let out = run(Command::new("id").arg("-u"));
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// Every regular file under `root`, relative, with its mode and owner.
fn files(root: &Path) -> BTreeMap<String, (u32, u32, u32)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u32, u32, u32)>) {
        for entry in std::fs::read_dir(dir).expect("read the rootfs") {
            let path = entry.expect("rootfs entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("stat");
            if meta.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("under the rootfs");
                out.insert(
                    rel.display().to_string(),
                    (meta.mode() & 0o7777, meta.uid(), meta.gid()),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn the_oci_archive_runs_as_its_entrypoint_and_user_would() {
    let Some(archive) = std::env::var_os("SCANGATE_IMAGE_ARCHIVE").map(PathBuf::from) else {
        eprintln!(
            "skipped: set SCANGATE_IMAGE_ARCHIVE to the OCI archive `make image` exports \
             (`make image-test` does)"
        );
        return;
    };
    assert!(
        is_root(),
        "the image test runs the image's binary in a chroot as its user: run it as root"
    );
    let version = env!("CARGO_PKG_VERSION");
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = dir.path().join("layout");
    std::fs::create_dir(&layout).expect("layout dir");
    run(Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&layout));

    // The OCI layout: one manifest, named by the version.
    let oci_layout: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("oci-layout")).expect("oci-layout"))
            .expect("oci-layout is JSON");
    assert_eq!(oci_layout["imageLayoutVersion"], "1.0.0");
    let index: Index =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
            .expect("index.json");
    assert_eq!(index.schema_version, 2);
    let [descriptor] = &index.manifests[..] else {
        panic!("one manifest in the index: {index:#?}");
    };
    assert_eq!(
        descriptor.media_type,
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        descriptor
            .annotations
            .get("org.opencontainers.image.ref.name"),
        Some(&version.to_string())
    );
    let manifest: Manifest =
        serde_json::from_slice(&blob(&layout, descriptor)).expect("the manifest");
    assert_eq!(manifest.schema_version, 2);
    assert_eq!(manifest.media_type, descriptor.media_type);
    assert_eq!(
        manifest.config.media_type,
        "application/vnd.oci.image.config.v1+json"
    );

    // The config: the platform, the user, the entrypoint, the labels.
    let config: ImageConfig =
        serde_json::from_slice(&blob(&layout, &manifest.config)).expect("the image config");
    assert_eq!((&*config.os, &*config.architecture), ("linux", "amd64"));
    assert_eq!(config.config.user, USER);
    assert_eq!(config.config.entrypoint, [ENTRYPOINT]);
    assert_eq!(config.config.cmd, None, "arguments come from the pod spec");
    let stage = last_stage(&read("Containerfile"));
    for (key, expected) in expected_labels(&stage) {
        let expected = match key {
            "org.opencontainers.image.version" => version.to_string(),
            "org.opencontainers.image.revision" => match std::env::var("SCANGATE_IMAGE_REVISION") {
                Ok(revision) => revision,
                Err(_) => {
                    let got = &config.config.labels[key];
                    assert!(
                        got.len() == 40 && got.bytes().all(|b| b.is_ascii_hexdigit()),
                        "{key}: {got}"
                    );
                    got.clone()
                }
            },
            _ => expected,
        };
        assert_eq!(
            config.config.labels.get(key),
            Some(&expected),
            "label {key}"
        );
    }

    // The layers, in order, each matching its diff id, make the root file system.
    assert_eq!(config.rootfs.r#type, "layers");
    assert_eq!(config.rootfs.diff_ids.len(), manifest.layers.len());
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir(&rootfs).expect("rootfs dir");
    for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
        let bytes = blob(&layout, layer);
        let tar = match layer.media_type.as_str() {
            "application/vnd.oci.image.layer.v1.tar" => bytes,
            "application/vnd.oci.image.layer.v1.tar+gzip" => {
                let mut tar = Vec::new();
                flate2::read::GzDecoder::new(&bytes[..])
                    .read_to_end(&mut tar)
                    .expect("gunzip the layer");
                tar
            }
            other => panic!("layer media type {other} is not one this test reads"),
        };
        assert_eq!(&sha256(&tar), diff_id, "layer {} diff id", layer.digest);
        extract(&tar, &rootfs);
    }
    let expected: BTreeMap<String, (u32, u32, u32)> = FILES
        .iter()
        .map(|(path, mode)| (path.to_string(), (*mode, 0, 0)))
        .collect();
    assert_eq!(
        files(&rootfs),
        expected,
        "the image's files (mode, uid, gid)"
    );
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).expect("passwd");
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("nonroot:x:65532:65532:")),
        "{passwd}"
    );
    let group = std::fs::read_to_string(rootfs.join("etc/group")).expect("group");
    assert!(group.lines().any(|l| l == "nonroot:x:65532:"), "{group}");
    let cas = std::fs::read_to_string(rootfs.join("etc/ssl/certs/ca-certificates.crt"))
        .expect("CA bundle");
    assert!(
        cas.matches("-----BEGIN CERTIFICATE-----").count() > 100,
        "a full CA bundle"
    );
    let binary = std::fs::read(rootfs.join(&ENTRYPOINT[1..])).expect("the binary");
    assert!(!has_interpreter(&binary), "the binary is statically linked");

    // The entrypoint, run as the image's user with the image's environment and nothing else.
    let entrypoint = |args: &[&str]| {
        run(Command::new("chroot")
            .arg(format!("--userspec={}", config.config.user))
            .arg("--groups=")
            .arg(&rootfs)
            .args(&config.config.entrypoint)
            .args(args)
            .env_clear()
            .envs(config.config.env.iter().filter_map(|e| e.split_once('='))))
    };
    let out = entrypoint(&["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("scangate {version}\n")
    );
    let out = entrypoint(&["crds"]);
    assert!(
        String::from_utf8_lossy(&out.stdout) == read("deploy/crds/scanning.scangate.dev.yaml"),
        "the image's `crds` differ from deploy/crds/scanning.scangate.dev.yaml"
    );
    eprintln!(
        "image {}: {} layer(s), {} bytes compressed",
        archive.display(),
        manifest.layers.len(),
        manifest.layers.iter().map(|l| l.size).sum::<u64>()
    );
}
