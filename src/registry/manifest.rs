//! Manifests, pure: the media types a tag may resolve to, the digest of what the registry
//! served, and an index's platform manifests.

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// What a tag resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaType {
    OciIndex,
    OciManifest,
    DockerManifestList,
    DockerManifest,
}

impl MediaType {
    pub const ALL: [MediaType; 4] = [
        MediaType::OciIndex,
        MediaType::OciManifest,
        MediaType::DockerManifestList,
        MediaType::DockerManifest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::OciIndex => "application/vnd.oci.image.index.v1+json",
            MediaType::OciManifest => "application/vnd.oci.image.manifest.v1+json",
            MediaType::DockerManifestList => {
                "application/vnd.docker.distribution.manifest.list.v2+json"
            }
            MediaType::DockerManifest => "application/vnd.docker.distribution.manifest.v2+json",
        }
    }

    /// The media type a `Content-Type` (parameters ignored) names, if it is one of ours.
    pub fn parse(value: &str) -> Option<MediaType> {
        let value = value.split(';').next().unwrap_or(value).trim();
        Self::ALL.into_iter().find(|m| m.as_str() == value)
    }

    /// A multi-platform image: its manifests are per platform.
    pub fn is_index(self) -> bool {
        matches!(self, MediaType::OciIndex | MediaType::DockerManifestList)
    }

    /// The `Accept` header of a manifest request: all four.
    pub fn accept() -> String {
        Self::ALL.map(MediaType::as_str).join(", ")
    }
}

/// One platform's manifest in an index.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    pub digest: String,
}

impl Platform {
    /// `os/architecture[/variant]`.
    pub fn name(&self) -> String {
        match &self.variant {
            Some(variant) => format!("{}/{}/{variant}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

/// `sha256:` and the hex digest of `body`: the manifest's digest.
pub fn sha256_digest(body: &[u8]) -> String {
    let hash = Sha256::digest(body);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    platform: Option<RawPlatform>,
}

#[derive(Deserialize)]
struct RawPlatform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

/// The media type a manifest's own `mediaType` field names (a registry may serve it as
/// `application/json`).
pub fn media_type_of_body(body: &[u8]) -> Option<MediaType> {
    let index: Index = serde_json::from_slice(body).ok()?;
    MediaType::parse(index.media_type.as_deref()?)
}

/// The platform manifests of an index, sorted; entries without a platform (attestations,
/// artifacts) are not platforms and are left out.
pub fn platforms(body: &[u8]) -> Result<Vec<Platform>, String> {
    let index: Index =
        serde_json::from_slice(body).map_err(|e| format!("the index is not valid JSON: {e}"))?;
    let mut platforms: Vec<Platform> = index
        .manifests
        .into_iter()
        .filter_map(|d| {
            let p = d.platform?;
            Some(Platform {
                os: p.os,
                architecture: p.architecture,
                variant: p.variant.filter(|v| !v.is_empty()),
                digest: d.digest,
            })
        })
        .collect();
    platforms.sort();
    Ok(platforms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert_eq!(
            MediaType::parse("application/vnd.oci.image.index.v1+json; charset=utf-8"),
            Some(MediaType::OciIndex)
        );
        assert_eq!(MediaType::parse("application/json"), None);
        assert!(MediaType::DockerManifestList.is_index());
        assert!(!MediaType::DockerManifest.is_index());
        let accept = MediaType::accept();
        for m in MediaType::ALL {
            assert!(accept.contains(m.as_str()));
        }
        assert_eq!(
            media_type_of_body(br#"{"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#),
            Some(MediaType::OciManifest)
        );
        assert_eq!(media_type_of_body(b"{}"), None);
    }

    #[test]
    fn digests_are_sha256_of_the_body() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn index_platforms() {
        let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
          "manifests":[
            {"digest":"sha256:b","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
            {"digest":"sha256:a","platform":{"os":"linux","architecture":"amd64"}},
            {"digest":"sha256:c","annotations":{"vnd.docker.reference.type":"attestation-manifest"}}
          ]}"#;
        let platforms = platforms(body).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<String> = platforms.iter().map(Platform::name).collect();
        assert_eq!(names, ["linux/amd64", "linux/arm64/v8"]);
        assert_eq!(platforms[0].digest, "sha256:a");
        assert!(super::platforms(b"[").is_err());
    }
}
