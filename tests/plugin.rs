//! The kubectl plugin: the binary started through a `kubectl-scangate` symlink (as `make install`
//! and krew install it) is scangate, with usage saying `kubectl scangate`; the krew manifest in
//! deploy/krew has the shape krew needs, and its sha256 is the release archive's when
//! `make krew-manifest` has built one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use sha2::{Digest, Sha256};

const MANIFEST: &str = include_str!("../deploy/krew/scangate.yaml");
/// What the checked-in manifest carries until `make krew-manifest` writes the archive's sha256.
const SHA256_PLACEHOLDER: &str = "SHA256_OF_THE_RELEASE_ARCHIVE";

/// The scangate binary behind a `kubectl-scangate` symlink in a directory of its own.
fn plugin() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let link = dir.path().join("kubectl-scangate");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_scangate"), &link).expect("symlink");
    (dir, link)
}

fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run the binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn started_as_kubectl_scangate_usage_says_kubectl_scangate() {
    let (_dir, plugin) = plugin();
    let out = run(&plugin, &["--help"]);
    assert!(out.status.success());
    let help = stdout(&out);
    assert!(
        help.contains("Usage: kubectl scangate [OPTIONS] <COMMAND>"),
        "{help}"
    );
    assert!(!help.contains("kubectl-scangate"), "{help}");
    for command in ["check", "report", "policy", "crds", "webhook", "controller"] {
        assert!(
            help.contains(&format!("\n  {command} ")),
            "{command}: {help}"
        );
    }

    let out = run(&plugin, &["check", "--help"]);
    assert!(out.status.success());
    let help = stdout(&out);
    assert!(
        help.contains("Usage: kubectl scangate check [OPTIONS]"),
        "{help}"
    );

    // Mistakes are told in the plugin's words too.
    let out = run(&plugin, &["chek"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Usage: kubectl scangate [OPTIONS] <COMMAND>"),
        "{err}"
    );
    assert!(err.contains("For more information, try '--help'"), "{err}");
}

#[test]
fn started_as_kubectl_scangate_it_runs_scangate() {
    let (_dir, plugin) = plugin();
    let out = run(&plugin, &["--version"]);
    assert_eq!(
        stdout(&out),
        format!("scangate {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = run(
        &plugin,
        &[
            "check",
            "-f",
            "examples/workloads/clean-deployment.yaml",
            "--scans",
            "examples/scans",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with("ADMITTED Deployment shop/storefront"));
}

#[test]
fn under_its_own_name_usage_still_says_scangate() {
    let out = run(
        Path::new(env!("CARGO_BIN_EXE_scangate")),
        &["check", "--help"],
    );
    assert!(out.status.success());
    assert!(stdout(&out).contains("Usage: scangate check [OPTIONS]"));
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Plugin {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: Spec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    version: String,
    homepage: String,
    short_description: String,
    description: String,
    platforms: Vec<Platform>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Platform {
    selector: Selector,
    uri: String,
    sha256: String,
    files: Vec<FileOperation>,
    bin: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Selector {
    match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOperation {
    from: String,
    to: String,
}

/// The names in a tar.gz archive.
fn archive_names(archive: &Path) -> Vec<String> {
    let out = Command::new("tar")
        .arg("-tzf")
        .arg(archive)
        .output()
        .expect("run tar");
    assert!(out.status.success(), "tar -tzf {}", archive.display());
    stdout(&out).lines().map(str::to_string).collect()
}

#[test]
fn the_krew_manifest_has_the_shape_krew_needs() {
    let plugin: Plugin = serde_yaml::from_str(MANIFEST).expect("deploy/krew/scangate.yaml");
    assert_eq!(
        plugin.api_version,
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(plugin.kind, "Plugin");
    // kubectl runs the plugin `scangate` as `kubectl-scangate`, krew's symlink to `bin`.
    assert_eq!(plugin.metadata.name, "scangate");
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(
        plugin.spec.version, version,
        "run `make krew-manifest` after a version change"
    );
    assert!(plugin.spec.homepage.starts_with("https://"));
    assert!(
        !plugin.spec.short_description.is_empty() && plugin.spec.short_description.len() <= 50,
        "krew lists short descriptions on one line: {:?}",
        plugin.spec.short_description
    );
    assert!(plugin.spec.description.contains("kubectl scangate check"));

    let [platform] = &plugin.spec.platforms[..] else {
        panic!("one platform: {:#?}", plugin.spec.platforms);
    };
    assert_eq!(
        platform.selector.match_labels,
        BTreeMap::from([
            ("os".to_string(), "linux".to_string()),
            ("arch".to_string(), "amd64".to_string()),
        ])
    );
    let file_name = format!("scangate-{version}-linux-amd64.tar.gz");
    assert!(
        platform.uri.starts_with("https://")
            && platform.uri.ends_with(&format!("/{version}/{file_name}")),
        "{}",
        platform.uri
    );
    assert!(
        platform.sha256 == SHA256_PLACEHOLDER
            || (platform.sha256.len() == 64
                && platform
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))),
        "sha256 {:?} is neither the placeholder nor a lower-case hex digest",
        platform.sha256
    );
    assert_eq!(platform.bin, "scangate");
    let from: Vec<&str> = platform.files.iter().map(|f| f.from.as_str()).collect();
    assert_eq!(from, ["scangate", "LICENSE"]);
    assert!(platform.files.iter().all(|f| f.to == "."));

    // The archive `make krew-manifest` built: the manifest names its digest and its files.
    let archive = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/krew")
        .join(&file_name);
    if archive.exists() {
        let bytes = std::fs::read(&archive).expect("read the archive");
        assert_eq!(
            platform.sha256,
            format!("{:x}", Sha256::digest(&bytes)),
            "deploy/krew/scangate.yaml's sha256 is not {}'s: run `make krew-manifest`",
            archive.display()
        );
        let mut names = archive_names(&archive);
        names.sort();
        assert_eq!(names, ["LICENSE", "scangate"]);
    }
}
