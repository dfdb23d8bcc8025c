//! Pushing scangate's signed verdict to an image's registry as cosign attaches attestations
//! without the referrers API: the DSSE envelope is a layer (media type
//! `application/vnd.dsse.envelope.v1+json`, annotations `dev.cosignproject.cosign/signature`
//! empty and `predicateType`) of the image manifest tagged `sha256-<hex>.att` in the image's
//! repository, appended to the layers already there. Within the same egress rules as every
//! other request of the registry client: upload locations are judged as redirects are, and
//! credentials go only to the registry's own origin.

use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};

use super::{Answer, Asking, Authorization, Credentials, Error, Resolution, Resolver, Result};
use crate::attest::DSSE_MEDIA_TYPE;
use crate::image::ImageRef;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The annotation cosign gives an attestation layer (empty: the signature is in the envelope).
const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The most layers an attestation manifest keeps: the oldest go first beyond it.
pub const MAX_LAYERS: usize = 64;

impl Resolver {
    /// Appends `envelope` (a DSSE envelope of `predicate_type`) to the attestations of
    /// `image` (which must name a digest) in its registry, pushing with `credentials`.
    /// Returns the tag it is under, `registry/repository:sha256-<hex>.att`. A failure is
    /// logged with its detail; the error's message is for the scan's status.
    #[tracing::instrument(skip_all, fields(image = %image))]
    pub async fn push_attestation(
        &self,
        image: &ImageRef,
        credentials: Option<&Credentials>,
        envelope: &[u8],
        predicate_type: &str,
    ) -> Result<String> {
        let result = self
            .push(image, credentials, envelope, predicate_type)
            .await;
        if let Err(error) = &result {
            tracing::warn!(
                %error,
                detail = error.detail().unwrap_or_default(),
                "verdict attestation not pushed"
            );
        }
        result
    }

    async fn push(
        &self,
        image: &ImageRef,
        credentials: Option<&Credentials>,
        envelope: &[u8],
        predicate_type: &str,
    ) -> Result<String> {
        let Some(digest) = image.digest().filter(|d| d.starts_with("sha256:")) else {
            return Err(Error::Client(format!(
                "{image} names no sha256 digest: attestations are pushed by digest"
            )));
        };
        let resolution = self.resolution(image)?;
        let mut push = Push {
            resolution: &resolution,
            credentials,
            authorization: None,
            repository: super::repository_url(image, &self.egress),
        };
        let tag = super::cosign_tag(digest);
        let mut layers = push.existing_layers(&tag).await?;
        let envelope_digest = push.blob(envelope).await?;
        layers.push(json!({
            "mediaType": DSSE_MEDIA_TYPE,
            "size": envelope.len(),
            "digest": envelope_digest,
            "annotations": {SIGNATURE_ANNOTATION: "", "predicateType": predicate_type},
        }));
        if layers.len() > MAX_LAYERS {
            layers.drain(..layers.len() - MAX_LAYERS);
        }
        let config = attestation_config(&layers);
        let config_digest = push.blob(&config).await?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "size": config.len(), "digest": config_digest},
            "layers": layers,
        });
        push.put_manifest(&tag, manifest.to_string().into_bytes())
            .await?;
        Ok(format!("{}/{}:{tag}", image.registry(), image.repository()))
    }
}

/// The config of an attestation image, as cosign writes it: empty platform, the layers'
/// digests as its diff ids.
fn attestation_config(layers: &[Value]) -> Vec<u8> {
    let diff_ids: Vec<&Value> = layers.iter().filter_map(|l| l.get("digest")).collect();
    json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {},
    })
    .to_string()
    .into_bytes()
}

/// The layers of an attestation manifest that are kept when one is appended: its DSSE
/// envelope layers.
pub fn kept_layers(manifest: &[u8]) -> Result<Vec<Value>, String> {
    let parsed: Value =
        serde_json::from_slice(manifest).map_err(|e| format!("not an image manifest: {e}"))?;
    let layers = parsed
        .get("layers")
        .and_then(Value::as_array)
        .ok_or("the manifest has no layers")?;
    Ok(layers
        .iter()
        .filter(|l| l.get("mediaType").and_then(Value::as_str) == Some(DSSE_MEDIA_TYPE))
        .filter(|l| l.get("digest").and_then(Value::as_str).is_some())
        .cloned()
        .collect())
}

/// One push: the authorization found by the first request is reused for the others.
struct Push<'a, 'c> {
    resolution: &'a Resolution<'a>,
    credentials: Option<&'c Credentials>,
    authorization: Option<Authorization<'c>>,
    repository: String,
}

impl Push<'_, '_> {
    fn url(&self, path: &str) -> Result<Url> {
        Url::parse(&format!("{}/{path}", self.repository))
            .map_err(|e| Error::Client(format!("no URL for {path}: {e}")))
    }

    /// Whether credentials may go to `url`: only to the registry's own origin.
    fn same_origin(&self, url: &Url) -> bool {
        url.origin() == self.resolution.manifest.origin()
    }

    async fn send(
        &mut self,
        request: impl Fn() -> reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<reqwest::Response> {
        let authorized = |r: reqwest::RequestBuilder, a: &Option<Authorization<'_>>| match a {
            None | Some(Authorization::None) => r,
            Some(Authorization::Basic(c)) => r.basic_auth(&c.username, Some(&c.password)),
            Some(Authorization::Bearer(token)) => r.bearer_auth(token),
        };
        let own = self.same_origin(url);
        let first = if own {
            authorized(request(), &self.authorization)
        } else {
            request()
        };
        let response = first
            .send()
            .await
            .map_err(|e| self.resolution.request_error(&e, Asking::Manifest))?;
        if response.status() != StatusCode::UNAUTHORIZED || self.authorization.is_some() || !own {
            return Ok(response);
        }
        let scope = super::auth::push_scope(self.resolution.image.repository());
        self.authorization = Some(
            self.resolution
                .authorize_for(&response, self.credentials, Some(&scope))
                .await?,
        );
        authorized(request(), &self.authorization)
            .send()
            .await
            .map_err(|e| self.resolution.request_error(&e, Asking::Manifest))
    }

    fn refused(&self, status: StatusCode) -> Error {
        Error::PushRefused {
            registry: self.resolution.image.registry().to_string(),
            image: self.resolution.image.to_string(),
            status: status.as_u16(),
            credentials_sent: self.credentials.is_some(),
        }
    }

    fn unexpected(&self, what: &str, response: &reqwest::Response) -> Error {
        self.resolution.bad_response(
            Answer::Attestation,
            format!(
                "{what}: {} answered status {}",
                response.url(),
                response.status()
            ),
        )
    }

    /// The envelope layers of the attestation manifest under `tag`; none when there is none.
    async fn existing_layers(&mut self, tag: &str) -> Result<Vec<Value>> {
        let url = self.url(&format!("manifests/{tag}"))?;
        let client = self.resolution.client.clone();
        let response = self
            .send(
                || client.get(url.clone()).header(ACCEPT, OCI_MANIFEST),
                &url,
            )
            .await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(Vec::new()),
            s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => return Err(self.refused(s)),
            _ => return Err(self.unexpected("the attestation manifest", &response)),
        }
        let body = self
            .resolution
            .read_at_most(
                response,
                Answer::Attestation,
                Asking::Manifest,
                super::MAX_MANIFEST_BYTES,
            )
            .await?;
        kept_layers(&body).map_err(|problem| {
            self.resolution
                .bad_response(Answer::Attestation, format!("manifest {tag}: {problem}"))
        })
    }

    /// Uploads `content` as a blob (monolithic: POST, then PUT to the upload location with its
    /// digest), unless the repository has it; returns its digest.
    async fn blob(&mut self, content: &[u8]) -> Result<String> {
        let digest = super::manifest::sha256_digest(content);
        let client = self.resolution.client.clone();
        let exists = self.url(&format!("blobs/{digest}"))?;
        let head = self.send(|| client.head(exists.clone()), &exists).await?;
        if head.status() == StatusCode::OK {
            return Ok(digest);
        }
        let start = self.url("blobs/uploads/")?;
        let response = self.send(|| client.post(start.clone()), &start).await?;
        match response.status() {
            StatusCode::ACCEPTED => {}
            s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => return Err(self.refused(s)),
            _ => return Err(self.unexpected("a blob upload", &response)),
        }
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| {
                self.resolution.bad_response(
                    Answer::Attestation,
                    format!("{} started an upload without a Location", response.url()),
                )
            })?;
        let mut upload = response.url().join(location).map_err(|e| {
            self.resolution.bad_response(
                Answer::Attestation,
                format!("upload Location {location:?}: {e}"),
            )
        })?;
        // Where the registry sends the upload is judged as a redirect would be.
        self.resolution
            .egress
            .check_redirect(&self.resolution.manifest, &upload, 1)
            .map_err(|refusal| Error::RefusedRedirect {
                registry: self.resolution.image.registry().to_string(),
                image: self.resolution.image.to_string(),
                detail: refusal.to_string(),
            })?;
        upload.query_pairs_mut().append_pair("digest", &digest);
        let body = content.to_vec();
        let response = self
            .send(
                || {
                    client
                        .put(upload.clone())
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .body(body.clone())
                },
                &upload,
            )
            .await?;
        match response.status() {
            StatusCode::CREATED => Ok(digest),
            s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Err(self.refused(s)),
            _ => Err(self.unexpected("a blob upload", &response)),
        }
    }

    async fn put_manifest(&mut self, tag: &str, body: Vec<u8>) -> Result<()> {
        let url = self.url(&format!("manifests/{tag}"))?;
        let client = self.resolution.client.clone();
        let response = self
            .send(
                || {
                    client
                        .put(url.clone())
                        .header(CONTENT_TYPE, OCI_MANIFEST)
                        .body(body.clone())
                },
                &url,
            )
            .await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::OK => Ok(()),
            s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Err(self.refused(s)),
            _ => Err(self.unexpected("the attestation manifest", &response)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn only_envelope_layers_are_kept_when_one_is_appended() {
        let manifest = json!({"layers": [
            {"mediaType": DSSE_MEDIA_TYPE, "digest": D, "size": 10,
             "annotations": {SIGNATURE_ANNOTATION: "", "predicateType": "x"}},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": D, "size": 10},
            {"mediaType": DSSE_MEDIA_TYPE, "size": 10},
        ]});
        let kept = kept_layers(manifest.to_string().as_bytes()).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0]["annotations"]["predicateType"], "x");
        assert!(kept_layers(b"{}").is_err());
        assert!(kept_layers(b"nope").is_err());
    }

    #[test]
    fn the_config_lists_the_layers_as_cosign_does() {
        let layers = [json!({"digest": D}), json!({"digest": D})];
        let config: Value = serde_json::from_slice(&attestation_config(&layers)).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"], json!([D, D]));
        assert_eq!(config["os"], "");
    }
}
