//! An admission request as the reviews read it, decoded once from the AdmissionReview body:
//! the request's own fields, and each object as the JSON it came as (but the `managedFields`
//! no review reads), with its metadata typed beside it. (kube's `DynamicObject` decodes an object through two flattened fields, which
//! buffers the whole object before building its metadata and a second JSON tree from that
//! buffer; reviews then encoded it back to JSON to read it.)

use std::sync::LazyLock;

use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::admission::{AdmissionResponse, Operation};
use kube::core::{GroupVersionKind, GroupVersionResource, Status};
use serde::de::value::MapDeserializer;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// The API version of the AdmissionReviews scangate answers.
pub const REVIEW_API_VERSION: &str = "admission.k8s.io/v1";

/// The kind of an AdmissionReview.
pub const REVIEW_KIND: &str = "AdmissionReview";

/// An AdmissionReview body: the fields of kube's `AdmissionReview`, with a [`Request`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Review {
    pub api_version: String,
    pub kind: String,
    pub request: Option<Request>,
    /// Never sent to a webhook, and read by no review; decoded as kube's `AdmissionReview`
    /// decodes it, so that a body is refused for the same reasons.
    #[serde(default, rename = "response")]
    _response: Option<AdmissionResponse>,
}

/// An admission request: the fields of kube's `AdmissionRequest`, with its objects as
/// [`Object`]s, but `options` (any JSON, as kube's `RawExtension` takes it), which no review
/// reads and which is skipped unread.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub uid: String,
    pub kind: GroupVersionKind,
    pub resource: GroupVersionResource,
    #[serde(default)]
    pub sub_resource: Option<String>,
    #[serde(default)]
    pub request_kind: Option<GroupVersionKind>,
    #[serde(default)]
    pub request_resource: Option<GroupVersionResource>,
    #[serde(default)]
    pub request_sub_resource: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    pub operation: Operation,
    pub user_info: UserInfo,
    pub object: Option<Object>,
    pub old_object: Option<Object>,
    #[serde(default)]
    pub dry_run: bool,
}

/// What every answer starts from: an admission.k8s.io/v1 AdmissionResponse that admits.
static ADMITTED: LazyLock<AdmissionResponse> = LazyLock::new(|| {
    let mut response = AdmissionResponse::invalid("");
    response.allowed = true;
    response.result = Status::default();
    response
});

impl Request {
    /// The answer admitting this request, to which a review adds warnings, a patch or a
    /// denial.
    pub fn admit(&self) -> AdmissionResponse {
        let mut response = ADMITTED.clone();
        response.uid.clone_from(&self.uid);
        response
    }

    /// Denies the request with a message.
    pub fn deny(&self, message: impl ToString) -> AdmissionResponse {
        self.admit().deny(message)
    }

    /// The request's object as JSON.
    pub fn object_json(&self) -> Option<&Value> {
        self.object.as_ref().map(|o| &o.json)
    }

    /// The object the request replaces, as JSON.
    pub fn old_object_json(&self) -> Option<&Value> {
        self.old_object.as_ref().map(|o| &o.json)
    }

    /// The namespace, `""` for a cluster-scoped object.
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or_default()
    }
}

/// An object of a request: a JSON object as it came but for the metadata's `managedFields`,
/// which no review reads and which are skipped unread, and its metadata. Decodes what kube's
/// `DynamicObject` decodes, and refuses what it refuses but malformed `managedFields`.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    pub metadata: ObjectMeta,
    pub json: Value,
}

impl Object {
    /// The object's name, or its generateName prefix (a Pod of a ReplicaSet has no name yet).
    pub fn display_name(&self) -> &str {
        self.metadata
            .name
            .as_deref()
            .or(self.metadata.generate_name.as_deref())
            .unwrap_or_default()
    }
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = deserializer.deserialize_map(Fields { top: true })?;
        let metadata = match map.get("metadata") {
            Some(Value::Object(fields)) => {
                let fields = fields.iter().map(|(key, value)| (key.as_str(), value));
                ObjectMeta::deserialize(MapDeserializer::<_, serde_json::Error>::new(fields))
                    .map_err(serde::de::Error::custom)?
            }
            _ => ObjectMeta::default(),
        };
        Ok(Object {
            metadata,
            json: Value::Object(map),
        })
    }
}

/// The fields of an object (`top`) or of its metadata, as JSON, but the metadata's
/// `managedFields`, which are skipped unread.
struct Fields {
    top: bool,
}

impl<'de> Visitor<'de> for Fields {
    type Value = serde_json::Map<String, Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut map = serde_json::Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if self.top && key == "metadata" {
                let metadata = access.next_value_seed(Metadata)?;
                map.insert(key, metadata);
            } else if !self.top && key == "managedFields" {
                access.next_value::<IgnoredAny>()?;
            } else {
                let value = access.next_value::<Value>()?;
                map.insert(key, value);
            }
        }
        Ok(map)
    }
}

/// An object's metadata: a JSON object, whose fields are kept but `managedFields`. (Anything
/// else is refused, as kube's typed metadata refuses it.)
struct Metadata;

impl<'de> DeserializeSeed<'de> for Metadata {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Metadata {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("object metadata")
    }

    fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<Value, A::Error> {
        Fields { top: false }.visit_map(access).map(Value::Object)
    }
}

/// An AdmissionReview answer, encoded as kube's `AdmissionReview` encodes one.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: &'a AdmissionResponse,
}

impl<'a> Answer<'a> {
    pub fn of(response: &'a AdmissionResponse) -> Self {
        Answer {
            api_version: REVIEW_API_VERSION,
            kind: REVIEW_KIND,
            response,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Result<Object, serde_json::Error> {
        serde_json::from_value(value)
    }

    #[test]
    fn an_object_keeps_its_json_but_managed_fields_and_types_its_metadata() {
        let json = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": "web-", "labels": {"app": "web"},
                         "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                              "name": "web-1", "uid": "u", "controller": true}]},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        let decoded = object(json.clone()).unwrap_or_else(|e| panic!("{e}"));
        let mut unmanaged = json.clone();
        if let Some(metadata) = unmanaged["metadata"].as_object_mut() {
            metadata.remove("managedFields");
        }
        assert_eq!(decoded.json, unmanaged);
        assert_eq!(decoded.display_name(), "web-");
        assert_eq!(decoded.metadata.managed_fields, None);
        assert_eq!(
            decoded.metadata.labels.and_then(|l| l.get("app").cloned()),
            Some("web".to_string())
        );
        assert_eq!(
            decoded.metadata.owner_references.map(|o| o[0].name.clone()),
            Some("web-1".to_string())
        );
        let bare = object(json!({"spec": {}})).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bare.metadata, ObjectMeta::default());
    }

    #[test]
    fn an_object_is_refused_where_a_dynamic_object_is() {
        let cases = [
            json!({"metadata": {"name": "a"}, "spec": {}}),
            json!({}),
            json!("a string"),
            json!(5),
            json!([{"metadata": {}}]),
            json!({"metadata": null}),
            json!({"metadata": 5}),
            json!({"metadata": {"name": 5}}),
            json!({"metadata": {"labels": {"a": 1}}}),
            json!({"metadata": {"ownerReferences": [{"kind": "ReplicaSet"}]}}),
            json!({"metadata": {"creationTimestamp": "yesterday"}}),
            json!({"metadata": {"unknown": true}}),
            json!({"apiVersion": 5, "kind": [], "metadata": {}}),
        ];
        for case in cases {
            let dynamic = serde_json::from_value::<kube::core::DynamicObject>(case.clone());
            assert_eq!(
                object(case.clone()).is_ok(),
                dynamic.is_ok(),
                "{case}: {dynamic:?}"
            );
        }
        // The one difference: managedFields, which no review reads, are not decoded.
        let fields = json!({"metadata": {"managedFields": "not a list"}});
        assert!(object(fields.clone()).is_ok());
        assert!(serde_json::from_value::<kube::core::DynamicObject>(fields).is_err());
    }

    /// The captured reviews (tests/fixtures/admission), each as a whole AdmissionReview body.
    fn fixtures() -> Vec<(String, Vec<u8>)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/admission");
        let mut found = vec![];
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{e}")) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            let name = path.display().to_string();
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
            if name.ends_with(".admissionreview.json") {
                found.push((name, text.into_bytes()));
            } else if name.ends_with(".admissionrequest.json") {
                let request: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
                let review = json!({"apiVersion": REVIEW_API_VERSION, "kind": REVIEW_KIND, "request": request});
                found.push((name, serde_json::to_vec(&review).unwrap_or_default()));
            }
        }
        assert!(found.len() >= 10, "{found:?}");
        found
    }

    #[test]
    fn captured_reviews_decode_as_kube_decodes_them() {
        use kube::core::admission::{AdmissionRequest, AdmissionReview};
        for (name, body) in fixtures() {
            let ours: Review =
                serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
            let ours = ours.request.unwrap_or_else(|| panic!("{name}: no request"));
            let theirs: AdmissionReview<kube::core::DynamicObject> =
                serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
            let theirs: AdmissionRequest<kube::core::DynamicObject> = theirs
                .try_into()
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(
                (
                    &ours.uid,
                    &ours.kind,
                    &ours.resource,
                    &ours.sub_resource,
                    &ours.name
                ),
                (
                    &theirs.uid,
                    &theirs.kind,
                    &theirs.resource,
                    &theirs.sub_resource,
                    &theirs.name
                ),
                "{name}"
            );
            assert_eq!(
                (
                    &ours.namespace,
                    &ours.operation,
                    &ours.user_info,
                    ours.dry_run
                ),
                (
                    &theirs.namespace,
                    &theirs.operation,
                    &theirs.user_info,
                    theirs.dry_run
                ),
                "{name}"
            );
            assert_eq!(ours.request_kind, theirs.request_kind, "{name}");
            let pairs = [
                (&ours.object, &theirs.object),
                (&ours.old_object, &theirs.old_object),
            ];
            for (ours, theirs) in pairs {
                assert_eq!(ours.is_some(), theirs.is_some(), "{name}");
                let (Some(ours), Some(theirs)) = (ours, theirs) else {
                    continue;
                };
                let mut metadata = theirs.metadata.clone();
                metadata.managed_fields = None;
                assert_eq!(ours.metadata, metadata, "{name}");
                // What DynamicObject keeps besides its type and metadata, the JSON has as it came.
                for (key, value) in theirs.data.as_object().into_iter().flatten() {
                    assert_eq!(ours.json.get(key), Some(value), "{name}: {key}");
                }
            }
        }
    }

    #[test]
    fn answers_encode_as_kube_encodes_them() {
        for (name, body) in fixtures() {
            let review: Review =
                serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
            let request = review
                .request
                .unwrap_or_else(|| panic!("{name}: no request"));
            let mut warned = request.admit();
            warned.warnings = Some(vec!["a warning".into()]);
            for response in [request.admit(), request.deny("no"), warned] {
                let ours = serde_json::to_vec(&Answer::of(&response)).unwrap_or_default();
                let theirs =
                    serde_json::to_vec(&response.clone().into_review()).unwrap_or_default();
                assert_eq!(
                    String::from_utf8_lossy(&ours),
                    String::from_utf8_lossy(&theirs),
                    "{name}"
                );
                let answer: Value = serde_json::from_slice(&ours).unwrap_or_default();
                assert_eq!(answer["response"]["uid"], json!(request.uid), "{name}");
                assert_eq!(answer["kind"], REVIEW_KIND);
                assert_eq!(answer["apiVersion"], REVIEW_API_VERSION);
            }
        }
    }
}
