//! What differs between ImageScan and SourceScan, as seen by the controller: the target's
//! environment variables, the artifact a report describes, the image exceptions match.

use std::fmt::Debug;

use kube::Resource;
use kube::core::NamespaceResourceScope;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{
    Artifact, BlobArtifact, GitArtifact, GitSpec, ImageScan, RegistryArtifact, Resolution,
    ScanSettings, ScanStatus, SourceScan,
};
use crate::image::ImageRef;
use crate::report::Report;

/// Environment variables naming the scan target, set in every container of a scan Job.
pub mod env {
    pub const IMAGE: &str = "SCAN_IMAGE";
    pub const GIT_URL: &str = "SCAN_GIT_URL";
    pub const GIT_REVISION: &str = "SCAN_GIT_REVISION";
    pub const BLOB_URL: &str = "SCAN_BLOB_URL";
    pub const NAME: &str = "SCAN_NAME";
    pub const NAMESPACE: &str = "SCAN_NAMESPACE";
    /// The path of the git SSH private key, when the GitSpec names an `sshKeySecret`.
    pub const GIT_SSH_KEY: &str = "SCAN_GIT_SSH_KEY";
    /// The `knownHosts` of the GitSpec, when set.
    pub const GIT_KNOWN_HOSTS: &str = "SCAN_GIT_KNOWN_HOSTS";
    /// The `username` of the GitSpec, when set.
    pub const GIT_USERNAME: &str = "SCAN_GIT_USERNAME";
}

/// An ImageScan or a SourceScan.
pub trait ScanKind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    /// The settings shared by both kinds.
    fn settings(&self) -> &ScanSettings;
    /// The current status, if any.
    fn scan_status(&self) -> Option<&ScanStatus>;
    /// `SCAN_IMAGE`, `SCAN_GIT_URL`, `SCAN_GIT_REVISION`, `SCAN_BLOB_URL` (empty when they do
    /// not apply) and the extra git variables.
    fn target_env(&self) -> Vec<(&'static str, String)>;
    /// The Secret to pull the scanned image with.
    fn image_pull_secret(&self) -> Option<&str> {
        None
    }
    /// The image whose signed attestations are the scan's results (`resultsFrom:
    /// Attestation`), as the spec names it.
    fn attested_image(&self) -> Option<&str> {
        None
    }
    /// The image to resolve at its registry before a Job scans it: an ImageScan's image when
    /// it names a tag and no digest (a digest is scanned as it is).
    fn tag_to_resolve(&self) -> Option<ImageRef> {
        None
    }
    /// The git repository, for SourceScans of one.
    fn git(&self) -> Option<&GitSpec> {
        None
    }
    /// What was scanned, as the status reports it.
    fn artifact(&self, report: &Report) -> Artifact;
    /// The image ScanExceptions are matched against (ImageScans only).
    fn exception_image(&self, report: Option<&Report>) -> Option<ImageRef>;
    /// Whether the report is for what this scan scans (see [`super::target`]).
    fn check_report(&self, report: &Report) -> Result<(), super::target::Error>;
}

/// The spec's image, pinned to the report's digest when the report knows it.
pub fn resolved_image(spec_image: &str, report: Option<&Report>) -> Option<ImageRef> {
    let image = ImageRef::parse(spec_image).ok()?;
    let digest = report.and_then(|r| r.artifact.digest.as_deref());
    match digest {
        Some(digest) if image.digest().is_none() => image.with_digest(digest).ok().or(Some(image)),
        _ => Some(image),
    }
}

/// Whether a report is of the content the scan's tag was resolved to before its Job started
/// (`status.resolved`, for the spec's tag `tag`): its digest is the resolved manifest or index,
/// or one of the index's platform manifests. Nothing to check without a resolution of that
/// tag.
pub fn check_resolved(
    tag: &ImageRef,
    resolution: Option<&Resolution>,
    report: &Report,
) -> Result<(), super::target::Error> {
    let Some(resolution) = resolution
        .filter(|r| ImageRef::parse(&r.image).ok().and_then(|i| i.by_tag()) == tag.by_tag())
    else {
        return Ok(());
    };
    if report
        .artifact
        .digest
        .as_deref()
        .is_some_and(|d| resolution.covers(d))
    {
        return Ok(());
    }
    super::target::check_image(&resolution.image, &report.artifact)
}

impl ScanKind for ImageScan {
    fn settings(&self) -> &ScanSettings {
        &self.spec.scan
    }

    fn scan_status(&self) -> Option<&ScanStatus> {
        self.status.as_ref()
    }

    fn target_env(&self) -> Vec<(&'static str, String)> {
        vec![
            (env::IMAGE, self.spec.registry.image.clone()),
            (env::GIT_URL, String::new()),
            (env::GIT_REVISION, String::new()),
            (env::BLOB_URL, String::new()),
        ]
    }

    fn image_pull_secret(&self) -> Option<&str> {
        self.spec.registry.image_pull_secret.as_deref()
    }

    fn attested_image(&self) -> Option<&str> {
        (self.spec.results_from == Some(crate::api::ResultsFrom::Attestation))
            .then_some(self.spec.registry.image.as_str())
    }

    fn tag_to_resolve(&self) -> Option<ImageRef> {
        ImageRef::parse(&self.spec.registry.image)
            .ok()
            .filter(|image| image.digest().is_none())
    }

    fn artifact(&self, report: &Report) -> Artifact {
        let resolved = resolved_image(&self.spec.registry.image, Some(report));
        // A platform manifest of the index the tag was resolved to: the index is recorded, so
        // the verdict keeps speaking for it after the tag moves.
        let index = match (
            &resolved,
            self.status.as_ref().and_then(|s| s.resolved.as_ref()),
        ) {
            (Some(image), Some(resolution)) => image
                .digest()
                .filter(|d| resolution.covers(d) && resolution.digest() != Some(d))
                .and(resolution.digest())
                .map(str::to_string),
            _ => None,
        };
        let image = resolved
            .map(|i| i.to_string())
            .unwrap_or_else(|| self.spec.registry.image.clone());
        Artifact {
            registry: Some(RegistryArtifact { image, index }),
            ..Artifact::default()
        }
    }

    fn exception_image(&self, report: Option<&Report>) -> Option<ImageRef> {
        resolved_image(&self.spec.registry.image, report)
    }

    fn check_report(&self, report: &Report) -> Result<(), super::target::Error> {
        super::target::check_image(&self.spec.registry.image, &report.artifact)
    }
}

impl ScanKind for SourceScan {
    fn settings(&self) -> &ScanSettings {
        &self.spec.scan
    }

    fn scan_status(&self) -> Option<&ScanStatus> {
        self.status.as_ref()
    }

    fn target_env(&self) -> Vec<(&'static str, String)> {
        let git = self.spec.git.as_ref();
        let mut env = vec![
            (env::IMAGE, String::new()),
            (env::GIT_URL, git.map(|g| g.url.clone()).unwrap_or_default()),
            (
                env::GIT_REVISION,
                git.and_then(|g| g.revision.clone()).unwrap_or_default(),
            ),
            (
                env::BLOB_URL,
                self.spec
                    .blob
                    .as_ref()
                    .map(|b| b.url.clone())
                    .unwrap_or_default(),
            ),
        ];
        if let Some(known_hosts) = git.and_then(|g| g.known_hosts.clone()) {
            env.push((env::GIT_KNOWN_HOSTS, known_hosts));
        }
        if let Some(username) = git.and_then(|g| g.username.clone()) {
            env.push((env::GIT_USERNAME, username));
        }
        env
    }

    fn git(&self) -> Option<&GitSpec> {
        self.spec.git.as_ref()
    }

    fn artifact(&self, report: &Report) -> Artifact {
        if let Some(git) = &self.spec.git {
            let revision = git
                .revision
                .clone()
                .or_else(|| report.artifact.digest.clone())
                .unwrap_or_default();
            return Artifact {
                git: Some(GitArtifact {
                    url: git.url.clone(),
                    revision,
                }),
                ..Artifact::default()
            };
        }
        Artifact {
            blob: self.spec.blob.as_ref().map(|b| BlobArtifact {
                url: b.url.clone(),
                revision: report.artifact.digest.clone(),
            }),
            ..Artifact::default()
        }
    }

    fn exception_image(&self, _report: Option<&Report>) -> Option<ImageRef> {
        None
    }

    fn check_report(&self, report: &Report) -> Result<(), super::target::Error> {
        super::target::check_source(self.spec.git.as_ref(), &report.artifact)
    }
}

/// The scan kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    ImageScan,
    SourceScan,
}

impl Kind {
    pub fn of<K: ScanKind>() -> Kind {
        if K::kind(&()) == SourceScan::kind(&()) {
            Kind::SourceScan
        } else {
            Kind::ImageScan
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BlobSpec, ImageScanSpec, RegistrySpec, SourceScanSpec};
    use crate::report::Artifact as ReportArtifact;

    const DIGEST: &str = "sha256:ae39a6f5c07297d7ab64dbd4f82c77c874cc6a94cea29fdec309d0992574b4f7";

    fn report(digest: Option<&str>) -> Report {
        Report {
            artifact: ReportArtifact {
                digest: digest.map(Into::into),
                ..ReportArtifact::default()
            },
            ..Report::default()
        }
    }

    fn image_scan(image: &str) -> ImageScan {
        ImageScan::new(
            "s",
            ImageScanSpec {
                results_from: None,
                registry: RegistrySpec {
                    image: image.into(),
                    image_pull_secret: None,
                },
                scan: ScanSettings::default(),
            },
        )
    }

    #[test]
    fn image_artifacts_are_normalized_and_pinned_to_the_report_digest() {
        let scan = image_scan("busybox:1.32.1");
        let artifact = scan.artifact(&report(Some(DIGEST)));
        assert_eq!(
            artifact.registry.map(|r| r.image),
            Some(format!("docker.io/library/busybox:1.32.1@{DIGEST}"))
        );
        let unpinned = scan.artifact(&report(None));
        assert_eq!(
            unpinned.registry.map(|r| r.image),
            Some("docker.io/library/busybox:1.32.1".into())
        );
        // A spec pinned to a digest keeps its own.
        let pinned = image_scan(&format!("busybox@{DIGEST}"));
        let other = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        assert_eq!(
            pinned
                .exception_image(Some(&report(Some(other))))
                .and_then(|i| i.digest().map(String::from)),
            Some(DIGEST.into())
        );
    }

    #[test]
    fn a_report_must_be_of_the_content_the_tag_was_resolved_to() {
        let other = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        let platform = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
        let tag = ImageRef::parse("busybox:1.32.1").unwrap_or_else(|e| panic!("{e}"));
        let resolution = Resolution {
            image: format!("docker.io/library/busybox:1.32.1@{DIGEST}"),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            platforms: vec![crate::api::ResolvedPlatform {
                os: "linux".into(),
                architecture: "amd64".into(),
                variant: None,
                digest: platform.into(),
            }],
            resolved_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::UNIX_EPOCH,
            ),
        };
        let of = |digest: Option<&str>| Report {
            artifact: ReportArtifact {
                name: "busybox:1.32.1".into(),
                digest: digest.map(Into::into),
                ..ReportArtifact::default()
            },
            ..Report::default()
        };
        let check = |r: Option<&Resolution>, digest| check_resolved(&tag, r, &of(digest));
        assert_eq!(check(Some(&resolution), Some(DIGEST)), Ok(()));
        assert_eq!(check(Some(&resolution), Some(platform)), Ok(()));
        let moved = check(Some(&resolution), Some(other))
            .err()
            .map(|e| e.to_string());
        assert!(
            moved.as_deref().is_some_and(|e| e.contains(&format!(
                "this scan is for docker.io/library/busybox:1.32.1@{DIGEST}"
            ))),
            "{moved:?}"
        );
        assert!(check(Some(&resolution), None).is_err());
        // No resolution, or one of another tag: nothing to check.
        assert_eq!(check(None, Some(other)), Ok(()));
        let retagged = ImageRef::parse("busybox:1.33").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            check_resolved(&retagged, Some(&resolution), &of(Some(other))),
            Ok(())
        );
    }

    #[test]
    fn source_artifacts_name_the_repository_and_revision_or_the_blob() {
        let git = SourceScan::new(
            "s",
            SourceScanSpec {
                blob: None,
                git: Some(GitSpec {
                    url: "https://github.com/org/repo".into(),
                    revision: Some("v1.2.3".into()),
                    ..GitSpec::default()
                }),
                scan: ScanSettings::default(),
            },
        );
        assert_eq!(
            git.artifact(&report(None)).git,
            Some(GitArtifact {
                url: "https://github.com/org/repo".into(),
                revision: "v1.2.3".into()
            })
        );
        assert!(git.exception_image(None).is_none());
        let blob = SourceScan::new(
            "s",
            SourceScanSpec {
                blob: Some(BlobSpec {
                    url: "https://example.com/src.tgz".into(),
                }),
                git: None,
                scan: ScanSettings::default(),
            },
        );
        assert_eq!(
            blob.artifact(&report(Some("sha256:ab"))).blob,
            Some(BlobArtifact {
                url: "https://example.com/src.tgz".into(),
                revision: Some("sha256:ab".into())
            })
        );
    }
}
