//! Whether a report is for the scan it was stored for: the artifact a report names (the image
//! reference and digest, or the repository) compared with the scan's spec. A report for one
//! image never gives another image's scan its digest and CVEs.
//!
//! What each format gives the normalized report (`report::Artifact`): Grype
//! `source.target.userInput` and the first `repoDigests` (else `manifestDigest`); Trivy
//! `ArtifactName` and the first `RepoDigests` (else `ImageID`); CycloneDX
//! `metadata.component` (name, Trivy's `RepoDigest` property); SARIF the run's image name and
//! digests. No format gives a git revision, so SourceScans are compared by repository URL.

use crate::api::GitSpec;
use crate::image::ImageRef;
use crate::report::{Artifact, ArtifactType};

/// Why a report is not for the scan it was stored for.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "the report names no image, this scan is for {scan}: store the report of an image scan of {scan}, or say which image was scanned with `scangate report --image`"
    )]
    NoImage { scan: String },
    #[error("the report is for the {kind} {name:?}, not an image; this scan is for {scan}")]
    NotAnImage {
        kind: &'static str,
        name: String,
        scan: String,
    },
    #[error(
        "the report is for the {kind} {name:?}, which names no image; this scan is for {scan}: when the scanner read {scan} from there, say so with `scangate report --image`"
    )]
    OnDisk {
        kind: &'static str,
        name: String,
        scan: String,
    },
    #[error(
        "the report is for {name:?}, which is not an image reference ({cause}); this scan is for {scan}"
    )]
    Unparseable {
        name: String,
        cause: Box<crate::image::Error>,
        scan: String,
    },
    #[error("report is for {report}, this scan is for {scan}")]
    OtherImage { report: String, scan: String },
    #[error(
        "report is for {report} and names no digest, this scan is for {scan}: scan the image by digest so the report records it"
    )]
    NoDigest { report: String, scan: String },
    #[error("this scan's image {image:?} cannot be parsed: {cause}")]
    Spec {
        image: String,
        cause: Box<crate::image::Error>,
    },
    #[error("report is for the repository {report}, this scan is for {scan}")]
    OtherRepository { report: String, scan: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Prefixes Grype keeps in `userInput` to say where it read the image from.
const SOURCE_SCHEMES: [&str; 4] = ["registry:", "docker:", "podman:", "containerd:"];

/// Prefixes Grype and Syft use for an image or a tree read from disk, and what each reads.
const DISK_SCHEMES: [(&str, &str); 7] = [
    ("docker-archive:", "archive"),
    ("oci-archive:", "archive"),
    ("oci-dir:", "directory"),
    ("dir:", "directory"),
    ("file:", "file"),
    ("sif:", "file"),
    ("singularity:", "file"),
];

/// How file names of image archives end (`docker save`, `podman save`, OCI layouts packed).
const ARCHIVE_SUFFIXES: [&str; 6] = [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.xz", ".tar.bz2"];

/// What a report's artifact names as the scanned target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named<'a> {
    /// Nothing: the report does not say.
    Nothing,
    /// Something the scanner read from disk (an image archive, a directory, a file): the
    /// bytes may be an image's, but the report does not say which image.
    OnDisk { kind: &'static str, name: &'a str },
    /// A source repository.
    Repository(&'a str),
    /// What the report gives as an image's name (it may still not parse as a reference).
    Image(&'a str),
}

/// What a report names: a filesystem or a name with a scanner's disk scheme (`dir:`,
/// `docker-archive:`), a path (`/…`, `./…`, `../…`, `~/…`) or an archive's file name
/// (`alpine.tar.gz`: Trivy names an image it read with `--input` by the file) is on disk;
/// any other name is an image's.
pub fn named(report: &Artifact) -> Named<'_> {
    let name = report.name.trim();
    if name.is_empty() {
        return Named::Nothing;
    }
    match report.artifact_type {
        ArtifactType::Filesystem => Named::OnDisk {
            kind: "filesystem",
            name,
        },
        ArtifactType::Repository => Named::Repository(name),
        ArtifactType::Image | ArtifactType::Sbom | ArtifactType::Unknown => match on_disk(name) {
            Some(kind) => Named::OnDisk { kind, name },
            None => Named::Image(name),
        },
    }
}

/// The kind of thing on disk `name` is, or `None` when it reads as an image's name.
fn on_disk(name: &str) -> Option<&'static str> {
    if let Some((_, kind)) = DISK_SCHEMES.iter().find(|(s, _)| name.starts_with(s)) {
        return Some(kind);
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    // A tag or a digest makes it an image's name, whatever its repository is called.
    let archive = !last.contains([':', '@'])
        && ARCHIVE_SUFFIXES
            .iter()
            .any(|suffix| last.to_ascii_lowercase().ends_with(suffix));
    let path =
        name == "." || name == ".." || ["/", "./", "../", "~/"].iter().any(|p| name.starts_with(p));
    match (archive, path) {
        (true, _) => Some("archive"),
        (false, true) => Some("path"),
        (false, false) => None,
    }
}

/// Checks that a report is for the ImageScan of `spec_image`: the same registry and repository
/// after normalization; the same digest when the spec pins one (the report's name or its
/// recorded digest); the same tag when neither pins a digest and both name one. A report that
/// names no image, something on disk ([`named`]) or a repository is refused.
pub fn check_image(spec_image: &str, report: &Artifact) -> Result<()> {
    let spec = ImageRef::parse(spec_image).map_err(|cause| Error::Spec {
        cause: Box::new(cause),
        image: spec_image.to_string(),
    })?;
    let scan = spec.to_string();
    let name = match named(report) {
        Named::Image(name) => name,
        Named::Nothing => return Err(Error::NoImage { scan }),
        // A name that reads as a path or an archive may still be an image's (a repository
        // may be called `app.tar`): it counts when it is this scan's image, as it always
        // has, and a refusal says what it looks like.
        Named::OnDisk { kind, name } if report.artifact_type != ArtifactType::Filesystem => {
            return compare_named(&spec, name, report.digest.as_deref()).map_err(|_| {
                Error::OnDisk {
                    kind,
                    name: name.to_string(),
                    scan,
                }
            });
        }
        Named::OnDisk { kind, name } => {
            return Err(Error::OnDisk {
                kind,
                name: name.to_string(),
                scan,
            });
        }
        Named::Repository(name) => {
            return Err(Error::NotAnImage {
                kind: "repository",
                name: name.to_string(),
                scan,
            });
        }
    };
    compare_named(&spec, name, report.digest.as_deref())
}

/// Compares the image a report names, with or without a Grype source scheme, with the spec.
fn compare_named(spec: &ImageRef, name: &str, recorded_digest: Option<&str>) -> Result<()> {
    // `registry:busybox` is Grype's spelling of `busybox` read from a registry, but
    // `docker:27` is also an image: both readings are tried, the scheme-less one reported.
    let stripped = SOURCE_SCHEMES
        .iter()
        .find_map(|scheme| name.strip_prefix(scheme))
        .filter(|rest| !rest.is_empty());
    let mut outcome = compare(spec, name, recorded_digest);
    if outcome.is_err()
        && let Some(rest) = stripped
    {
        outcome = compare(spec, rest, recorded_digest);
    }
    outcome
}

fn compare(spec: &ImageRef, name: &str, recorded_digest: Option<&str>) -> Result<()> {
    let scan = spec.to_string();
    let named = ImageRef::parse(name).map_err(|cause| Error::Unparseable {
        cause: Box::new(cause),
        name: name.to_string(),
        scan: scan.clone(),
    })?;
    let digests: Vec<&str> = named.digest().into_iter().chain(recorded_digest).collect();
    let shown = match (named.digest(), recorded_digest) {
        (None, Some(digest)) => named.with_digest(digest).unwrap_or_else(|_| named.clone()),
        _ => named.clone(),
    };
    let other = || Error::OtherImage {
        report: shown.to_string(),
        scan: scan.clone(),
    };
    if named.registry() != spec.registry() || named.repository() != spec.repository() {
        return Err(other());
    }
    match spec.digest() {
        Some(pinned) if digests.contains(&pinned) => Ok(()),
        Some(_) if digests.is_empty() => Err(Error::NoDigest {
            report: shown.to_string(),
            scan,
        }),
        Some(_) => Err(other()),
        None => match (named.digest(), named.tag(), spec.tag()) {
            (None, Some(reported), Some(asked)) if reported != asked => Err(other()),
            _ => Ok(()),
        },
    }
}

/// Checks that a report is for the SourceScan of `git`: when the report names a repository by
/// URL, it is the spec's repository (scheme, user, host case, `.git` and a trailing `/` aside).
/// A report that names a local path, or no repository, is accepted: the scan Job cloned the
/// repository there.
pub fn check_source(git: Option<&GitSpec>, report: &Artifact) -> Result<()> {
    let (Some(git), ArtifactType::Repository) = (git, report.artifact_type) else {
        return Ok(());
    };
    let Some(reported) = repository_of(&report.name) else {
        return Ok(());
    };
    match repository_of(&git.url) {
        Some(asked) if asked != reported => Err(Error::OtherRepository {
            report: report.name.trim().to_string(),
            scan: git.url.clone(),
        }),
        _ => Ok(()),
    }
}

/// `host/path` of a repository URL (`https://`, `ssh://`, `git://`, `git@host:path`), or
/// `None` for a local path.
fn repository_of(url: &str) -> Option<String> {
    let url = url.trim();
    let (host, path) = match url.split_once("://") {
        Some((_, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
            rest.split_once('/')?
        }
        None => {
            // scp-like `user@host:path`.
            let (user_host, path) = url.split_once(':')?;
            let host = user_host.rsplit_once('@').map_or(user_host, |(_, h)| h);
            if host.is_empty() || host.contains('/') {
                return None;
            }
            (host, path)
        }
    };
    let host = host
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h);
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    Some(format!("{}/{path}", host.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Report;

    const BUSYBOX_DIGEST: &str =
        "sha256:ae39a6f5c07297d7ab64dbd4f82c77c874cc6a94cea29fdec309d0992574b4f7";

    fn fixture(path: &str) -> Artifact {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/reports")
            .join(path);
        Report::from_path(&path, crate::report::Limits::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .artifact
    }

    fn busybox() -> Artifact {
        fixture("grype/grype-0.94.0_busybox-1.32.1.json")
    }

    #[test]
    fn a_report_for_another_image_is_refused_naming_both() {
        let error = check_image("registry.example.invalid/team/app:1.0", &busybox())
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some(
                format!(
                    "report is for docker.io/library/busybox:1.32.1@{BUSYBOX_DIGEST}, this scan is for registry.example.invalid/team/app:1.0"
                )
                .as_str()
            )
        );
    }

    #[test]
    fn the_same_image_in_any_spelling_is_accepted() {
        for spec in [
            "busybox:1.32.1",
            "docker.io/library/busybox:1.32.1",
            "index.docker.io/library/busybox:1.32.1",
            &format!("busybox@{BUSYBOX_DIGEST}"),
            &format!("docker.io/library/busybox:1.32.1@{BUSYBOX_DIGEST}"),
        ] {
            assert_eq!(check_image(spec, &busybox()), Ok(()), "{spec}");
        }
        // Trivy and Grype name other images; each matches its own.
        assert_eq!(
            check_image(
                "bkimminich/juice-shop:v10.2.0",
                &fixture("trivy/trivy_juice-shop-v10.2.0_image.json")
            ),
            Ok(())
        );
        assert_eq!(
            check_image(
                "quay.io/cloudservices/xjoin-kafka-connect-strimzi",
                &fixture("grype/grype_ubi8-xjoin-kafka-connect-strimzi_missing-severity.json")
            ),
            Ok(())
        );
        assert!(
            check_image(
                "docker.io/cloudservices/xjoin-kafka-connect-strimzi",
                &fixture("grype/grype_ubi8-xjoin-kafka-connect-strimzi_missing-severity.json")
            )
            .is_err(),
            "the same repository on another registry is another image"
        );
    }

    #[test]
    fn a_pinned_digest_must_be_the_reports() {
        let other = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        let error = check_image(&format!("busybox@{other}"), &busybox());
        assert!(
            matches!(&error, Err(Error::OtherImage { report, scan })
                if report.ends_with(BUSYBOX_DIGEST) && scan.ends_with(other)),
            "{error:?}"
        );
        // Trivy's teamdojo report records no digest: it cannot prove a pinned one.
        let teamdojo = fixture("trivy/trivy_teamdojo-alpine-3.9.4.json");
        assert_eq!(check_image("teamdojo:latest", &teamdojo), Ok(()));
        assert!(matches!(
            check_image(&format!("teamdojo@{other}"), &teamdojo),
            Err(Error::NoDigest { .. })
        ));
    }

    #[test]
    fn another_tag_of_the_same_repository_is_refused() {
        let error = check_image("busybox:1.36", &busybox()).err();
        assert!(matches!(error, Some(Error::OtherImage { .. })), "{error:?}");
    }

    #[test]
    fn reports_that_name_no_image_are_refused_for_image_scans() {
        let spec = "registry.example.invalid/team/app:1.0";
        assert!(matches!(
            check_image(
                spec,
                &fixture("cyclonedx/cyclonedx-spec_valid-vulnerability-1.6.json")
            ),
            Err(Error::NoImage { .. })
        ));
        assert!(matches!(
            check_image(
                spec,
                &fixture("grype/grype-0.24.0_directory-scan_npm-python.json")
            ),
            Err(Error::OnDisk {
                kind: "filesystem",
                ..
            })
        ));
        assert!(matches!(
            check_image(
                spec,
                &fixture("trivy/trivy_repo-gomod_unknown-severity_golden.json")
            ),
            Err(Error::NotAnImage {
                kind: "repository",
                ..
            })
        ));
        // An image read from a tarball is not the registry image: Trivy names the file.
        assert!(matches!(
            check_image(
                "alpine:3.9",
                &fixture("trivy/trivy_alpine-3.9_image_golden.json")
            ),
            Err(Error::OnDisk {
                kind: "archive",
                ..
            })
        ));
        let sarif = check_image(
            "alpine:3.10",
            &fixture("sarif/trivy_alpine-3.10_image_golden.sarif"),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert_eq!(
            sarif,
            "the report is for the archive \"testdata/fixtures/images/alpine-310.tar.gz\", which names no image; this scan is for docker.io/library/alpine:3.10: when the scanner read docker.io/library/alpine:3.10 from there, say so with `scangate report --image`"
        );
        let message = check_image(spec, &Artifact::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            message.contains("names no image") && message.contains(spec),
            "{message}"
        );
    }

    #[test]
    fn names_on_disk_are_told_from_image_names() {
        let artifact = |artifact_type, name: &str| Artifact {
            artifact_type,
            name: name.into(),
            digest: None,
            image_id: None,
        };
        // What `named` says of an image report with this name, compared with `expected`.
        let image_is = |name: &str, expected: Named<'_>| {
            assert_eq!(
                named(&artifact(ArtifactType::Image, name)),
                expected,
                "{name}"
            );
        };
        for (name, kind) in [
            ("testdata/fixtures/images/alpine-310.tar.gz", "archive"),
            ("alpine.TAR", "archive"),
            ("out/app.tgz", "archive"),
            ("docker-archive:app.tar", "archive"),
            ("oci-archive:/tmp/app", "archive"),
            ("oci-dir:layout", "directory"),
            ("dir:.", "directory"),
            ("file:/tmp/app.jar", "file"),
            ("/var/lib/rootfs", "path"),
            ("./rootfs", "path"),
            ("../images/app", "path"),
            ("~/app", "path"),
            (".", "path"),
        ] {
            image_is(name, Named::OnDisk { kind, name });
        }
        for name in [
            "busybox:1.32.1",
            "registry:busybox",
            "docker:27",
            "ghcr.io/org/app.tar:1.0",
            "localhost:5000/app.tar@sha256:1111111111111111111111111111111111111111111111111111111111111111",
            "ghcr.io/org/tarball",
        ] {
            image_is(name, Named::Image(name));
        }
        image_is("  ", Named::Nothing);
        let filesystem = artifact(ArtifactType::Filesystem, "app");
        assert_eq!(
            named(&filesystem),
            Named::OnDisk {
                kind: "filesystem",
                name: "app"
            }
        );
        let repository = artifact(ArtifactType::Repository, "https://x.example/a");
        assert_eq!(named(&repository), Named::Repository("https://x.example/a"));
        let sbom = artifact(ArtifactType::Sbom, "busybox:1");
        assert_eq!(named(&sbom), Named::Image("busybox:1"));
    }

    #[test]
    fn an_image_named_like_an_archive_still_counts_for_its_own_scan() {
        let mut artifact = busybox();
        artifact.name = "ghcr.io/org/app.tar".into();
        assert_eq!(check_image("ghcr.io/org/app.tar", &artifact), Ok(()));
        assert!(matches!(
            check_image("ghcr.io/org/other", &artifact),
            Err(Error::OnDisk {
                kind: "archive",
                ..
            })
        ));
    }

    #[test]
    fn grype_source_schemes_are_read_both_ways() {
        let mut artifact = busybox();
        artifact.name = "registry:busybox:1.32.1".into();
        assert_eq!(check_image("busybox:1.32.1", &artifact), Ok(()));
        artifact.name = "docker:27".into();
        artifact.digest = None;
        assert_eq!(check_image("docker:27", &artifact), Ok(()));
        assert!(check_image("busybox:27", &artifact).is_err());
    }

    #[test]
    fn source_scans_compare_the_repository_when_the_report_names_one() {
        let git = GitSpec {
            url: "git@github.com:org/repo.git".into(),
            revision: Some("v1.2.3".into()),
            ..GitSpec::default()
        };
        let repository = |name: &str| Artifact {
            artifact_type: ArtifactType::Repository,
            name: name.into(),
            digest: None,
            image_id: None,
        };
        for same in [
            "https://github.com/org/repo",
            "https://GitHub.com/org/repo.git/",
            "ssh://git@github.com:22/org/repo.git",
        ] {
            assert_eq!(
                check_source(Some(&git), &repository(same)),
                Ok(()),
                "{same}"
            );
        }
        assert_eq!(
            check_source(
                Some(&git),
                &repository("https://github.com/other/repo")
            )
            .map_err(|e| e.to_string()),
            Err("report is for the repository https://github.com/other/repo, this scan is for git@github.com:org/repo.git".into())
        );
        // A local path (the Job's clone) and other report kinds name no repository.
        let gomod = fixture("trivy/trivy_repo-gomod_unknown-severity_golden.json");
        assert_eq!(check_source(Some(&git), &gomod), Ok(()));
        assert_eq!(check_source(Some(&git), &busybox()), Ok(()));
        assert_eq!(
            check_source(None, &repository("https://x.example/a")),
            Ok(())
        );
    }
}
