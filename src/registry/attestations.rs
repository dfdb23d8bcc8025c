//! Fetching an image's attestations (DSSE envelopes) from its registry, within the same egress
//! rules and authentication as tag resolution: the OCI 1.1 referrers API first
//! (`GET /v2/<repo>/referrers/<digest>`), or where a registry lacks it (404; the CNCF
//! distribution registry among them) the referrers tag schema's index (`<repo>:sha256-<hex>`,
//! where cosign 3 attaches its Sigstore bundles), then cosign's tag (`<repo>:sha256-<hex>.att`,
//! an image manifest whose layers are the envelopes, as cosign 2 and `--new-bundle-format=false`
//! attach them). A Sigstore bundle layer gives the DSSE envelope it holds (`dsseEnvelope`);
//! its transparency log entries are not looked at: the admin's keys decide.
//!
//! Bounded: at most [`MAX_ATTESTATIONS`] envelopes, each at most [`MAX_ENVELOPE_BYTES`], and
//! [`MAX_TOTAL_BYTES`] in all; manifests and the referrers list at most the manifest bound.
//! Each blob's bytes must have the digest it was asked by. What the envelopes say is judged
//! by [`crate::attest`].

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use super::{Answer, Asking, Authorization, Credentials, Error, Resolution, Resolver, Result};
use crate::attest::{DSSE_MEDIA_TYPE, IN_TOTO_PAYLOAD_TYPE, MAX_ATTESTATIONS, MAX_ENVELOPE_BYTES};

/// The media type (and artifact type) of a Sigstore bundle, as cosign 3 attaches it; earlier
/// bundle versions have the same prefix.
const SIGSTORE_BUNDLE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
use crate::image::ImageRef;

/// The most bytes of envelopes read for one image.
pub const MAX_TOTAL_BYTES: usize = 32 << 20;
/// What a referrers list and an attestation manifest are asked as.
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

impl Resolver {
    /// The DSSE envelopes attached to `image` (which must name a digest) in its registry,
    /// asked with `credentials`. An image without attestations gives none; a registry that
    /// refuses access, is unreachable or answers nonsense gives the error, logged with its
    /// detail.
    #[tracing::instrument(skip_all, fields(image = %image))]
    pub async fn attestations(
        &self,
        image: &ImageRef,
        credentials: Option<&Credentials>,
    ) -> Result<Vec<Vec<u8>>> {
        let result = self.fetch_attestations(image, credentials).await;
        if let Err(error) = &result {
            tracing::warn!(
                %error,
                detail = error.detail().unwrap_or_default(),
                "attestations not fetched"
            );
        }
        result
    }

    async fn fetch_attestations(
        &self,
        image: &ImageRef,
        credentials: Option<&Credentials>,
    ) -> Result<Vec<Vec<u8>>> {
        let Some(digest) = image.digest().filter(|d| d.starts_with("sha256:")) else {
            return Err(Error::Client(format!(
                "{image} names no sha256 digest: attestations are fetched by digest"
            )));
        };
        let resolution = self.resolution(image)?;
        let repository = super::repository_url(image, &self.egress);
        let mut fetch = Fetch {
            resolution: &resolution,
            credentials,
            authorization: None,
            repository,
            envelopes: Vec::new(),
            total: 0,
        };
        let referrers = fetch.url(&format!("referrers/{digest}"))?;
        let listing = match fetch.get(referrers, OCI_INDEX, Answer::Referrers).await? {
            Some(body) => Some(body),
            None => {
                let tag = fetch.url(&format!("manifests/{}", referrers_tag(digest)))?;
                fetch.get(tag, OCI_INDEX, Answer::Referrers).await?
            }
        };
        let manifests = match listing {
            Some(body) => attestation_manifests(&body).map_err(|problem| {
                resolution.bad_response(
                    Answer::Referrers,
                    format!("referrers of {digest}: {problem}"),
                )
            })?,
            None => Vec::new(),
        };
        for manifest in manifests {
            fetch.manifest(&manifest).await?;
        }
        let tag = cosign_tag(digest);
        if fetch.envelopes.len() < MAX_ATTESTATIONS {
            fetch.manifest(&tag).await?;
        }
        Ok(fetch.envelopes)
    }
}

/// One fetch of an image's attestations: the authorization found by the first request is
/// reused for the others.
struct Fetch<'a, 'c> {
    resolution: &'a Resolution<'a>,
    credentials: Option<&'c Credentials>,
    authorization: Option<Authorization<'c>>,
    repository: String,
    envelopes: Vec<Vec<u8>>,
    total: usize,
}

impl<'c> Fetch<'_, 'c> {
    fn url(&self, path: &str) -> Result<Url> {
        Url::parse(&format!("{}/{path}", self.repository))
            .map_err(|e| Error::Client(format!("no URL for {path}: {e}")))
    }

    /// `GET url`, authorized as the registry asks: the body (at most `limit` bytes), or `None`
    /// when the registry has nothing there (404; for the referrers API also 400, 405, 406:
    /// the API is missing).
    async fn get_bounded(
        &mut self,
        url: Url,
        accept: &str,
        answer: Answer,
        limit: usize,
    ) -> Result<Option<(Vec<u8>, Option<String>)>> {
        let mut response = self.send(url.clone(), accept).await?;
        if response.status() == StatusCode::UNAUTHORIZED && self.authorization.is_none() {
            self.authorization = Some(
                self.resolution
                    .authorize(&response, self.credentials)
                    .await?,
            );
            response = self.send(url, accept).await?;
        }
        let status = response.status();
        match status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            StatusCode::BAD_REQUEST
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::NOT_ACCEPTABLE
                if answer == Answer::Referrers =>
            {
                return Ok(None);
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(self
                    .resolution
                    .auth_error(status, self.credentials.is_some()));
            }
            _ => {
                return Err(self.resolution.bad_response(
                    answer,
                    format!("{} answered status {status}", response.url()),
                ));
            }
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = self
            .resolution
            .read_at_most(response, answer, Asking::Manifest, limit)
            .await?;
        Ok(Some((body, content_type)))
    }

    async fn get(&mut self, url: Url, accept: &str, answer: Answer) -> Result<Option<Vec<u8>>> {
        Ok(self
            .get_bounded(url, accept, answer, super::MAX_MANIFEST_BYTES)
            .await?
            .map(|(body, _)| body))
    }

    async fn send(&self, url: Url, accept: &str) -> Result<reqwest::Response> {
        let request = self.resolution.client.get(url).header(ACCEPT, accept);
        let request = match &self.authorization {
            None | Some(Authorization::None) => request,
            Some(Authorization::Basic(c)) => request.basic_auth(&c.username, Some(&c.password)),
            Some(Authorization::Bearer(token)) => request.bearer_auth(token),
        };
        request
            .send()
            .await
            .map_err(|e| self.resolution.request_error(&e, Asking::Manifest))
    }

    /// The envelopes among the layers of the manifest `reference` (a digest or cosign's tag),
    /// within the bounds; a missing manifest has none.
    async fn manifest(&mut self, reference: &str) -> Result<()> {
        let url = self.url(&format!("manifests/{reference}"))?;
        let Some(body) = self.get(url, OCI_MANIFEST, Answer::Attestation).await? else {
            return Ok(());
        };
        if reference.starts_with("sha256:") && super::manifest::sha256_digest(&body) != reference {
            return Err(self.resolution.bad_response(
                Answer::Attestation,
                format!("the manifest asked as {reference} has another digest"),
            ));
        }
        let layers = envelope_layers(&body).map_err(|problem| {
            self.resolution.bad_response(
                Answer::Attestation,
                format!("manifest {reference}: {problem}"),
            )
        })?;
        for layer in layers {
            if self.envelopes.len() >= MAX_ATTESTATIONS {
                break;
            }
            if layer.size > MAX_ENVELOPE_BYTES as u64
                || self.total.saturating_add(layer.size as usize) > MAX_TOTAL_BYTES
            {
                tracing::warn!(digest = %layer.digest, size = layer.size, "attestation layer over the size bounds: skipped");
                continue;
            }
            let url = self.url(&format!("blobs/{}", layer.digest))?;
            let Some((blob, _)) = self
                .get_bounded(url, "*/*", Answer::Attestation, MAX_ENVELOPE_BYTES)
                .await?
            else {
                continue;
            };
            if super::manifest::sha256_digest(&blob) != layer.digest {
                return Err(self.resolution.bad_response(
                    Answer::Attestation,
                    format!("the blob {} has another digest", layer.digest),
                ));
            }
            self.total += blob.len();
            let envelope = if layer.media_type.starts_with(SIGSTORE_BUNDLE_PREFIX) {
                match bundle_envelope(&blob) {
                    Some(envelope) => envelope,
                    None => {
                        tracing::warn!(digest = %layer.digest, "a Sigstore bundle without a DSSE envelope: skipped");
                        continue;
                    }
                }
            } else {
                blob
            };
            self.envelopes.push(envelope);
        }
        Ok(())
    }
}

/// The referrers tag schema's tag of a digest (OCI distribution 1.1): `sha256-<hex>`.
pub fn referrers_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

/// The DSSE envelope a Sigstore bundle holds (`dsseEnvelope`, the same JSON shape), if any.
pub fn bundle_envelope(bundle: &[u8]) -> Option<Vec<u8>> {
    let bundle: serde_json::Value = serde_json::from_slice(bundle).ok()?;
    let envelope = bundle.get("dsseEnvelope").filter(|e| e.is_object())?;
    serde_json::to_vec(envelope).ok()
}

/// cosign's attestation tag of a digest: `sha256-<hex>.att`.
pub fn cosign_tag(digest: &str) -> String {
    format!("{}.att", digest.replacen(':', "-", 1))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    artifact_type: Option<String>,
}

#[derive(Deserialize)]
struct Listing {
    #[serde(default)]
    manifests: Vec<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// The digests of the referrers that may hold vulnerability attestations (DSSE envelopes, or
/// in-toto Statements), at most [`MAX_ATTESTATIONS`].
pub fn attestation_manifests(body: &[u8]) -> Result<Vec<String>, String> {
    let listing: Listing =
        serde_json::from_slice(body).map_err(|e| format!("not an OCI index: {e}"))?;
    Ok(listing
        .manifests
        .into_iter()
        .filter(|m| {
            matches!(
                m.artifact_type.as_deref(),
                Some(DSSE_MEDIA_TYPE | IN_TOTO_PAYLOAD_TYPE)
            ) || m
                .artifact_type
                .as_deref()
                .is_some_and(|t| t.starts_with(SIGSTORE_BUNDLE_PREFIX))
        })
        .filter(|m| is_sha256(&m.digest))
        .map(|m| m.digest)
        .take(MAX_ATTESTATIONS)
        .collect())
}

/// The DSSE envelope layers of a manifest.
fn envelope_layers(body: &[u8]) -> Result<Vec<Descriptor>, String> {
    let listing: Listing =
        serde_json::from_slice(body).map_err(|e| format!("not an image manifest: {e}"))?;
    Ok(listing
        .layers
        .into_iter()
        .filter(|l| {
            (l.media_type == DSSE_MEDIA_TYPE || l.media_type.starts_with(SIGSTORE_BUNDLE_PREFIX))
                && is_sha256(&l.digest)
        })
        .take(MAX_ATTESTATIONS)
        .collect())
}

fn is_sha256(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn cosigns_tag_of_a_digest() {
        assert_eq!(
            cosign_tag(D),
            "sha256-1111111111111111111111111111111111111111111111111111111111111111.att"
        );
    }

    #[test]
    fn referrers_of_attestation_types_are_kept_within_the_bound() {
        let mut manifests = vec![
            serde_json::json!({"mediaType": OCI_MANIFEST, "digest": D, "size": 10, "artifactType": DSSE_MEDIA_TYPE}),
            serde_json::json!({"mediaType": OCI_MANIFEST, "digest": D, "size": 10, "artifactType": "application/vnd.example.sbom"}),
            serde_json::json!({"mediaType": OCI_MANIFEST, "digest": "sha256:../../x", "size": 10, "artifactType": DSSE_MEDIA_TYPE}),
        ];
        let listing = serde_json::json!({"manifests": manifests});
        let kept = attestation_manifests(&serde_json::to_vec(&listing).unwrap()).unwrap();
        assert_eq!(kept, [D]);
        manifests = (0..100)
            .map(|_| serde_json::json!({"digest": D, "artifactType": IN_TOTO_PAYLOAD_TYPE}))
            .collect();
        let listing = serde_json::json!({"manifests": manifests});
        let kept = attestation_manifests(&serde_json::to_vec(&listing).unwrap()).unwrap();
        assert_eq!(kept.len(), MAX_ATTESTATIONS);
        assert!(attestation_manifests(b"[1]").is_err());
    }

    #[test]
    fn only_dsse_layers_of_a_manifest_are_envelopes() {
        let manifest = serde_json::json!({"layers": [
            {"mediaType": DSSE_MEDIA_TYPE, "digest": D, "size": 100,
             "annotations": {"dev.cosignproject.cosign/signature": ""}},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": D, "size": 100},
        ]});
        let layers = envelope_layers(&serde_json::to_vec(&manifest).unwrap()).unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0].size, 100);
    }

    #[test]
    fn cosign_3_bundles_are_listed_and_give_their_envelope() {
        let bundle_type = "application/vnd.dev.sigstore.bundle.v0.3+json";
        let listing = serde_json::json!({"manifests": [
            {"mediaType": OCI_MANIFEST, "digest": D, "size": 10, "artifactType": bundle_type},
        ]});
        let kept = attestation_manifests(&serde_json::to_vec(&listing).unwrap()).unwrap();
        assert_eq!(kept, [D]);
        let manifest = serde_json::json!({"layers": [
            {"mediaType": bundle_type, "digest": D, "size": 100},
        ]});
        assert_eq!(
            envelope_layers(&serde_json::to_vec(&manifest).unwrap())
                .unwrap()
                .len(),
            1
        );
        let envelope = serde_json::json!({"payloadType": IN_TOTO_PAYLOAD_TYPE, "payload": "e30=",
            "signatures": [{"sig": "AA=="}]});
        let bundle = serde_json::json!({"mediaType": bundle_type,
            "verificationMaterial": {"publicKey": {"hint": "x"}}, "dsseEnvelope": envelope});
        let got = bundle_envelope(&serde_json::to_vec(&bundle).unwrap()).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&got).unwrap(),
            envelope
        );
        assert_eq!(bundle_envelope(br#"{"messageSignature": {}}"#), None);
        assert_eq!(bundle_envelope(b"nope"), None);
        assert_eq!(referrers_tag(D), D.replacen(':', "-", 1));
    }
}
