//! `scangate report FILE`: a scanner's output normalized, printed or stored for a scan.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{Error, Result, read};
use crate::image::ImageRef;
use crate::report::{ArtifactType, Limits, Report};
use crate::scan::target::{Named, check_image, named};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The scanner's output file; `-` for standard input.
    #[arg(env = "SCANGATE_REPORT_FILE")]
    pub file: PathBuf,
    /// Store the normalized report in the cluster for scan NAMESPACE/SCAN instead of printing it.
    #[arg(
        long,
        env = "SCANGATE_REPORT_TO_CONFIGMAP",
        value_name = "NAMESPACE/SCAN"
    )]
    pub to_configmap: Option<String>,
    /// The image that was scanned, for a report that names none (the scanner read an archive
    /// such as `docker save`'s, or a directory). A report that names an image keeps its name
    /// and is refused when it is not of this one.
    #[arg(long, env = "SCANGATE_REPORT_IMAGE", value_name = "REF")]
    pub image: Option<String>,
}

/// Reads a scanner's output, or a report scangate already normalized; with `image`, as
/// [`with_image`] says.
pub fn read_report(path: &Path, image: Option<&str>) -> Result<Report> {
    let bytes = read(path)?;
    let report = match serde_json::from_slice::<Report>(&bytes) {
        Ok(report) => report,
        Err(_) => {
            let name = path.display().to_string();
            Report::from_reader(&name, &bytes[..], Limits::default())?
        }
    };
    match image {
        Some(image) => with_image(report, image),
        None => Ok(report),
    }
}

/// The report as a report of `image` (`--image`). A report of `image` by the rule the
/// controller applies to a scan's image ([`check_image`]) is kept as it is, so the flag never
/// renames what a scanner named. One that names no image (nothing, an archive, a directory:
/// see [`named`]; a name that reads as an archive's file counts as one) takes it, keeping the
/// digest it records, which must then be the one `image` pins, if any. One that names another image, or a source repository, is refused. Whether a
/// stored report counts is still the report guard's and the controller's decision: this only
/// says what the report is of.
pub fn with_image(mut report: Report, image: &str) -> Result<Report> {
    let parsed = ImageRef::parse(image).map_err(|source| Error::ImageFlag {
        image: image.to_string(),
        source,
    })?;
    let cause = match check_image(image, &report.artifact) {
        Ok(()) => return Ok(report),
        Err(cause) => cause,
    };
    match named(&report.artifact) {
        Named::Image(_) => Err(Error::ImageDisagrees {
            image: image.to_string(),
            cause: Box::new(cause),
        }),
        Named::Repository(name) => Err(Error::ImageOfRepository {
            name: name.to_string(),
            image: image.to_string(),
        }),
        Named::Nothing | Named::OnDisk { .. } => {
            if let (Some(pinned), Some(recorded)) =
                (parsed.digest(), report.artifact.digest.as_deref())
                && pinned != recorded
            {
                return Err(Error::ImageDigest {
                    image: image.to_string(),
                    recorded: recorded.to_string(),
                });
            }
            report.artifact.artifact_type = ArtifactType::Image;
            report.artifact.name = image.to_string();
            Ok(report)
        }
    }
}

/// The normalized report as pretty JSON.
pub fn report_json(report: &Report) -> Result<String> {
    Ok(serde_json::to_string_pretty(report)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALPINE_ID: &str =
        "sha256:961769676411f082461f9ef46626dd7a2d1e2b2a38e6a44364bcbecf51e66dd4";
    const BUSYBOX_DIGEST: &str =
        "sha256:ae39a6f5c07297d7ab64dbd4f82c77c874cc6a94cea29fdec309d0992574b4f7";
    const OTHER_DIGEST: &str =
        "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn fixture(path: &str) -> Report {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/reports")
            .join(path);
        read_report(&path, None).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Trivy's SARIF of alpine 3.10 read from a tarball: it names the file.
    fn tarball() -> Report {
        fixture("sarif/trivy_alpine-3.10_image_golden.sarif")
    }

    fn message(result: Result<Report>) -> String {
        result.err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn a_report_of_an_archive_takes_the_image_and_keeps_its_findings() {
        let before = tarball();
        let after =
            with_image(before.clone(), "docker.io/library/alpine:3.10").unwrap_or_else(|e| {
                panic!("{e}");
            });
        assert_eq!(after.artifact.name, "docker.io/library/alpine:3.10");
        assert_eq!(after.artifact.artifact_type, ArtifactType::Image);
        assert_eq!(after.artifact.image_id.as_deref(), Some(ALPINE_ID));
        assert_eq!(after.vulnerabilities, before.vulnerabilities);
        assert_eq!(check_image("alpine:3.10", &after.artifact), Ok(()));
        // A report that says nothing, and a directory's, take it too; so does a pinned digest.
        let mut nothing = tarball();
        nothing.artifact = crate::report::Artifact::default();
        let pinned = format!("alpine@{OTHER_DIGEST}");
        let named = with_image(nothing, &pinned).map(|r| r.artifact.name);
        assert_eq!(named.ok(), Some(pinned));
        let directory = fixture("grype/grype-0.24.0_directory-scan_npm-python.json");
        assert!(with_image(directory, "ghcr.io/org/app:1").is_ok());
    }

    #[test]
    fn a_report_that_names_its_image_keeps_it_and_must_agree() {
        let busybox = fixture("grype/grype-0.94.0_busybox-1.32.1.json");
        for same in [
            "busybox:1.32.1",
            "index.docker.io/library/busybox:1.32.1",
            &format!("busybox@{BUSYBOX_DIGEST}"),
        ] {
            let kept = with_image(busybox.clone(), same).map(|r| r.artifact);
            assert_eq!(kept.ok().as_ref(), Some(&busybox.artifact), "{same}");
        }
        assert_eq!(
            message(with_image(busybox.clone(), "ghcr.io/evil/app:1")),
            format!(
                "the report is not of --image ghcr.io/evil/app:1: report is for docker.io/library/busybox:1.32.1@{BUSYBOX_DIGEST}, this scan is for ghcr.io/evil/app:1; without --image the report's own name stands, or give the image the scanner read"
            )
        );
        for other in ["busybox:1.36", &format!("busybox@{OTHER_DIGEST}")] {
            assert!(
                message(with_image(busybox.clone(), other)).starts_with(&format!(
                    "the report is not of --image {other}: report is for"
                )),
                "{other}"
            );
        }
    }

    #[test]
    fn a_digest_the_report_records_must_be_the_one_the_flag_pins() {
        let mut archive = tarball();
        archive.artifact.digest = Some(BUSYBOX_DIGEST.into());
        assert_eq!(
            message(with_image(
                archive.clone(),
                &format!("alpine@{OTHER_DIGEST}")
            )),
            format!(
                "--image alpine@{OTHER_DIGEST} pins another digest than the report records ({BUSYBOX_DIGEST}): give the digest the scanner read, or the image without a digest"
            )
        );
        let kept = with_image(archive, "alpine:3.10").map(|r| r.artifact.digest);
        assert_eq!(kept.ok().flatten().as_deref(), Some(BUSYBOX_DIGEST));
    }

    #[test]
    fn a_repository_and_a_bad_reference_are_refused() {
        let repository = fixture("trivy/trivy_repo-gomod_unknown-severity_golden.json");
        assert!(
            message(with_image(repository, "alpine:3.10"))
                .contains(", not an image: --image alpine:3.10 cannot say what it scanned"),
        );
        assert!(
            message(with_image(tarball(), "Alpine:3.10"))
                .starts_with("--image \"Alpine:3.10\" is not an image reference: "),
        );
    }
}
