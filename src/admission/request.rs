//! An admission request as the reviews read it, decoded once from the AdmissionReview body:
//! the request's own fields, and each object with its metadata typed and its other fields kept
//! as the text they came as, built into JSON only when and as far as a review reads it
//! ([`Object`]).
//! (kube's `DynamicObject` decodes an object through two flattened fields, which buffers the
//! whole object before building its metadata and a second JSON tree from that buffer; and a
//! tree built for every request cost the Pod review a fifth of its time, BENCHMARKS.md.)

use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::{LazyLock, OnceLock};

use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::admission::{AdmissionResponse, Operation};
use kube::core::{GroupVersionKind, GroupVersionResource, Status};
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{DeserializeSeed, IgnoredAny, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

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
    ///
    /// Built at decode, unless `review::decode_workload` decoded a create; then `None` too when
    /// the object cannot be read ([`Object::json`] says why).
    pub fn object_json(&self) -> Option<&Value> {
        self.object.as_ref().and_then(|o| o.json().ok())
    }

    /// The object the request replaces, as JSON.
    pub fn old_object_json(&self) -> Option<&Value> {
        self.old_object.as_ref().and_then(|o| o.json().ok())
    }

    /// Builds the objects' JSON ([`Object::json`]), or says why one cannot be read.
    pub fn build_objects(&self) -> Result<(), Unreadable> {
        for object in [&self.object, &self.old_object].into_iter().flatten() {
            object.json()?;
        }
        Ok(())
    }

    /// The namespace, `""` for a cluster-scoped object.
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or_default()
    }
}

/// An object of a request: its metadata, typed (but the `managedFields` no review reads, which
/// are skipped unread), and each of its top-level fields, the metadata too, as the text it came
/// as. The object is built into JSON when a review first reads it whole ([`Object::json`]: at
/// decode, unless `review::decode_workload` decoded a create), or in part
/// ([`Object::project`]: the workload review reads only the names and images of a pod spec).
/// Decodes what kube's `DynamicObject` decodes, and refuses what it refuses but malformed
/// `managedFields`, once built.
#[derive(Clone, Debug)]
pub struct Object {
    pub metadata: ObjectMeta,
    metadata_text: Option<Box<RawValue>>,
    fields: Vec<(String, Box<RawValue>)>,
    json: OnceLock<Result<Value, Unreadable>>,
}

/// An object whose text is JSON but not a JSON value scangate reads (a number out of range,
/// nesting past serde_json's limit, a lone surrogate escape).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the object's {field} cannot be read: {message}")]
pub struct Unreadable {
    field: String,
    message: String,
}

impl PartialEq for Object {
    fn eq(&self, other: &Self) -> bool {
        self.metadata == other.metadata
            && self.metadata_text.as_ref().map(|text| text.get())
                == other.metadata_text.as_ref().map(|text| text.get())
            && self.fields.len() == other.fields.len()
            && (self.fields.iter().zip(&other.fields))
                .all(|((a, a_text), (b, b_text))| a == b && a_text.get() == b_text.get())
    }
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

    /// The object as JSON, but the metadata's `managedFields`; built at the first call.
    pub fn json(&self) -> Result<&Value, Unreadable> {
        self.json
            .get_or_init(|| {
                let mut map = serde_json::Map::new();
                if let Some(text) = &self.metadata_text {
                    map.insert("metadata".to_owned(), read("metadata", text, Metadata)?);
                }
                for (field, text) in &self.fields {
                    map.insert(field.clone(), read(field, text, PhantomData::<Value>)?);
                }
                Ok(Value::Object(map))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The fields of the object that `shape` names, as JSON: nothing else is built, and the
    /// text of a top-level field `shape` does not name is not read again.
    pub fn project(&self, shape: &Shape) -> Result<Value, Unreadable> {
        let Shape::Fields(wanted) = shape else {
            return self.json().cloned();
        };
        let mut map = serde_json::Map::new();
        for (name, shape) in *wanted {
            if *name == "metadata" {
                if let Some(text) = &self.metadata_text {
                    map.insert("metadata".to_owned(), read("metadata", text, Metadata)?);
                }
                continue;
            }
            // The last of repeated fields, as a JSON tree keeps it.
            if let Some((field, text)) = self.fields.iter().rev().find(|(f, _)| f == name) {
                let value = read(field, text, Project(shape))?;
                map.insert(field.clone(), value);
            }
        }
        Ok(Value::Object(map))
    }
}

/// Reads the text of a field of an object with `seed`, which must read all of it.
fn read<T>(
    field: &str,
    text: &RawValue,
    seed: impl for<'de> DeserializeSeed<'de, Value = T>,
) -> Result<T, Unreadable> {
    let mut deserializer = serde_json::Deserializer::from_str(text.get());
    seed.deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value))
        .map_err(|e| Unreadable {
            field: field.to_owned(),
            message: e.to_string(),
        })
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (metadata_text, fields) = deserializer.deserialize_map(TopFields)?;
        let metadata = match &metadata_text {
            Some(text) => {
                let mut text = serde_json::Deserializer::from_str(text.get());
                ObjectMeta::deserialize(WithoutManagedFields(&mut text))
                    .map_err(serde::de::Error::custom)?
            }
            None => ObjectMeta::default(),
        };
        Ok(Object {
            metadata,
            metadata_text,
            fields,
            json: OnceLock::new(),
        })
    }
}

/// The top-level fields of an object, each as its text: the metadata, and every other field.
struct TopFields;

impl<'de> Visitor<'de> for TopFields {
    type Value = (Option<Box<RawValue>>, Vec<(String, Box<RawValue>)>);

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut metadata = None;
        let mut fields = Vec::new();
        while let Some(key) = access.next_key::<String>()? {
            if key == "metadata" {
                metadata = Some(access.next_value::<Box<RawValue>>()?);
            } else {
                fields.push((key, access.next_value::<Box<RawValue>>()?));
            }
        }
        Ok((metadata, fields))
    }
}

/// Which parts of a JSON value [`Object::project`] builds.
#[derive(Debug)]
pub enum Shape {
    /// The whole value.
    All,
    /// Of an object, these fields, each by its shape, and no other; any other value whole.
    Fields(&'static [(&'static str, Shape)]),
    /// Of an array, every item by this shape; any other value whole.
    Items(&'static Shape),
}

/// Builds the parts of a value its [`Shape`] names. What a shape expects but the value is not
/// (an array where it names fields) is built whole, so that a reader finds it as it came.
struct Project<'s>(&'s Shape);

impl<'de> DeserializeSeed<'de> for Project<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        match self.0 {
            Shape::All => Value::deserialize(deserializer),
            Shape::Fields(_) | Shape::Items(_) => deserializer.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for Project<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let Shape::Items(item) = self.0 else {
            return Value::deserialize(SeqAccessDeserializer::new(access));
        };
        let mut items = Vec::new();
        while let Some(value) = access.next_element_seed(Project(item))? {
            items.push(value);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let Shape::Fields(fields) = self.0 else {
            return Value::deserialize(MapAccessDeserializer::new(access));
        };
        let mut map = serde_json::Map::new();
        while let Some(field) = access.next_key_seed(FieldOf(fields))? {
            match field {
                Some((name, shape)) => {
                    let value = access.next_value_seed(Project(shape))?;
                    map.insert((*name).to_owned(), value);
                }
                None => {
                    access.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(map))
    }
}

/// The field of a [`Shape::Fields`] a map key names, if any.
struct FieldOf(&'static [(&'static str, Shape)]);

impl<'de> DeserializeSeed<'de> for FieldOf {
    type Value = Option<&'static (&'static str, Shape)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldOf {
    type Value = Option<&'static (&'static str, Shape)>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().find(|(name, _)| *name == key))
    }
}

/// Reads metadata from a deserializer as it is, but a map's `managedFields`, skipped unread: what
/// no review reads is not typed (a `managedFields` entry holds any JSON).
struct WithoutManagedFields<D>(D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for WithoutManagedFields<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(SkipManagedFields(visitor))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

/// A visitor of a map whose `managedFields` it does not see.
struct SkipManagedFields<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for SkipManagedFields<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        self.0.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(SkippingManagedFields(access))
    }
}

/// A map's entries but `managedFields`.
struct SkippingManagedFields<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for SkippingManagedFields<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        while let Some(Key(key)) = self.0.next_key()? {
            if key == "managedFields" {
                self.0.next_value::<IgnoredAny>()?;
                continue;
            }
            return seed.deserialize(key.into_deserializer()).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(seed)
    }
}

/// A map key, borrowed from the text unless it has escapes (serde's `Cow<str>` always copies).
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a field name")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(key)))
    }

    fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(key.to_owned())))
    }
}

/// An object's metadata as JSON: its fields but `managedFields`, skipped as the typed metadata
/// skips them ([`WithoutManagedFields`]).
struct Metadata;

impl<'de> DeserializeSeed<'de> for Metadata {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(WithoutManagedFields(deserializer))
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
        serde_json::from_str(&value.to_string())
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
        assert_eq!(decoded.json().ok(), Some(&unmanaged));
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
        // Keys with escapes, and managedFields anywhere among the keys, read as kube reads them.
        for text in [
            r#"{"metadata": {"na\u006de": "a", "managedFields": [{"manager": "m"}], "uid": "u"}}"#,
            r#"{"metadata": {"managedFields": [], "labels": {"\u0061pp": "web"}}}"#,
        ] {
            let ours: Object = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let theirs: kube::core::DynamicObject =
                serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let mut metadata = theirs.metadata;
            assert!(metadata.managed_fields.take().is_some(), "{text}");
            assert_eq!(ours.metadata, metadata, "{text}");
        }
        // The one difference: managedFields, which no review reads, are not decoded.
        let fields = json!({"metadata": {"managedFields": "not a list"}});
        assert!(object(fields.clone()).is_ok());
        assert!(serde_json::from_value::<kube::core::DynamicObject>(fields).is_err());
    }

    #[test]
    fn an_object_is_built_where_a_json_value_is_and_reads_as_one() {
        // Object::json builds the tree from the text: what a tree refuses, it refuses.
        let deep = format!("{{\"spec\": {}1{}}}", "[".repeat(200), "]".repeat(200));
        let cases = [
            deep.as_str(),
            r#"{"spec": {"replicas": 1e400}}"#,
            r#"{"spec": {"a": "\ud800"}}"#,
            r#"{"spec": {"a": "caf\u00e9\n", "b": [1, -2, 0.5, true, null, {}]}}"#,
            r#"{"metadata": {"name": "x", "managedFields": [1]}, "spec": {"spec": 1}, "spec": 2}"#,
        ];
        for text in cases {
            let as_value = serde_json::from_str::<Value>(text).map(|mut value| {
                if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
                    metadata.remove("managedFields");
                }
                value
            });
            let as_object = serde_json::from_str::<Object>(text)
                .unwrap_or_else(|e| panic!("{text}: the text is JSON: {e}"));
            let built = as_object.json();
            assert_eq!(built.is_ok(), as_value.is_ok(), "{text}: {built:?}");
            if let (Ok(built), Ok(value)) = (built, as_value) {
                assert_eq!(built, &value, "{text}");
            }
        }
    }

    #[test]
    fn a_projection_builds_the_fields_its_shape_names_and_values_of_another_type_whole() {
        const ITEM: Shape = Shape::Fields(&[("a", Shape::All)]);
        const SHAPE: Shape = Shape::Fields(&[
            ("list", Shape::Items(&ITEM)),
            ("odd", Shape::Items(&ITEM)),
            ("whole", Shape::All),
        ]);
        let text = json!({"list": [{"a": {"x": 1}, "b": 2}, 5, [{"b": 1}]],
                          "odd": {"b": [1]}, "whole": {"b": [1]}, "other": [1, 2]});
        let decoded = object(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            decoded.project(&SHAPE).ok(),
            Some(json!({"list": [{"a": {"x": 1}}, 5, [{"b": 1}]],
                   "odd": {"b": [1]}, "whole": {"b": [1]}}))
        );
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
                    assert_eq!(
                        ours.json().ok().and_then(|json| json.get(key)),
                        Some(value),
                        "{name}: {key}"
                    );
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
