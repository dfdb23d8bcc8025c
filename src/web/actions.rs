//! What a viewer may do from the page: scan an unscanned image now (an ImageScan in scangate's
//! namespace, as `scangate scan` makes it), rescan a scan, reevaluate its policy, pause it
//! (`spec.suspend: true`), resume it (`spec.suspend: false`), cancel its round for good
//! (annotation [`annotation::CANCEL`]), record an OpenVEX statement about one of its CVEs (a
//! ScanException with `spec.vex`, named as `scangate vex import` names it; only an approver's
//! is written, and counts). Each write is
//! made **with the viewer's own token**, so the viewer's RBAC decides and the apiserver's audit
//! log names the viewer; the controller's own rights are never lent. A form from a session must
//! carry the session's CSRF token (a request with a bearer token cannot be forged by another
//! site). Each write also records who asked, from where and when, in the object it changes
//! (annotation [`REQUESTED_BY`]). The decisions are pure; [`perform`] is the only I/O.

use jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Config};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::api::annotation::{self, REQUESTED_BY};
use crate::api::{
    ImageScan, ScanException, ScanExceptionSpec, VexJustification, VexStatement, VexStatus,
};
use crate::cmd::scan::{ScanArgs, image_scan};
use crate::image::ImageRef;
use crate::report::{Report, SCAN_LABEL, config_map_name, from_config_map, scan_label_value};
use crate::scan::naming::scan_name;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The field manager of the page's writes.
const MANAGER: &str = "scangate-results-page";

/// Who acts: the viewer, with the token the page was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub user: String,
    pub token: String,
    /// The session's CSRF token; `None` for a request with a bearer token.
    pub csrf: Option<String>,
}

/// What a viewer asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// An ImageScan of this image in scangate's namespace.
    ScanNow { image: ImageRef },
    /// A new scan of an ImageScan.
    Rescan { namespace: String, name: String },
    /// Its policy evaluated again on its report.
    Reevaluate { namespace: String, name: String },
    /// `spec.suspend: true`: the scan keeps its place and stops where it is.
    Pause { namespace: String, name: String },
    /// `spec.suspend: false`.
    Resume { namespace: String, name: String },
    /// Its current round canceled for good (a rescan starts a new one).
    Cancel { namespace: String, name: String },
    /// An OpenVEX statement, ScanException `namespace/name` (built by [`vex_statement`]).
    RecordVex {
        namespace: String,
        name: String,
        spec: Box<ScanExceptionSpec>,
    },
}

impl Action {
    /// The action in words, for the record and the answer.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::ScanNow { image } => format!("scan {image} now"),
            Self::Rescan { namespace, name } => format!("rescan imagescan {namespace}/{name}"),
            Self::Reevaluate { namespace, name } => {
                format!("reevaluate imagescan {namespace}/{name}")
            }
            Self::Pause { namespace, name } => format!("pause imagescan {namespace}/{name}"),
            Self::Resume { namespace, name } => format!("resume imagescan {namespace}/{name}"),
            Self::Cancel { namespace, name } => format!("cancel imagescan {namespace}/{name}"),
            Self::RecordVex {
                namespace, spec, ..
            } => format!(
                "record the VEX statement {} for {} in {} in namespace {namespace}",
                spec.vex.as_ref().map_or("", |v| v.status.as_str()),
                spec.cves.join(", "),
                spec.images.join(", "),
            ),
        }
    }

    /// The action on a scan named in a page's path (`/scans/NS/NAME/ACTION`).
    #[must_use]
    pub fn on_scan(action: &str, namespace: String, name: String) -> Option<Action> {
        Some(match action {
            "rescan" => Self::Rescan { namespace, name },
            "reevaluate" => Self::Reevaluate { namespace, name },
            "pause" => Self::Pause { namespace, name },
            "resume" => Self::Resume { namespace, name },
            "cancel" => Self::Cancel { namespace, name },
            _ => return None,
        })
    }
}

/// The merge patch an action on an existing scan writes at `now`, with its `record`
/// ([`REQUESTED_BY`]); `None` for "scan now" and a VEX statement, which write other objects.
#[must_use]
pub fn scan_patch(action: &Action, record: &str, now: Timestamp) -> Option<serde_json::Value> {
    let annotate = |annotation: &str| {
        json!({"metadata": {"annotations": {
            annotation: now.to_string(),
            REQUESTED_BY: record,
        }}})
    };
    let suspend = |suspend: bool| {
        json!({
            "metadata": {"annotations": {REQUESTED_BY: record}},
            "spec": {"suspend": suspend},
        })
    };
    Some(match action {
        Action::ScanNow { .. } | Action::RecordVex { .. } => return None,
        Action::Rescan { .. } => annotate(annotation::RESCAN),
        Action::Reevaluate { .. } => annotate(annotation::REEVALUATE),
        Action::Cancel { .. } => annotate(annotation::CANCEL),
        Action::Pause { .. } => suspend(true),
        Action::Resume { .. } => suspend(false),
    })
}

/// Why an action was not done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the form is not from this session (its CSRF token is missing or wrong): reload the page and try again"
    )]
    Csrf,
    #[error("{user} may not {action}: {reason}")]
    Forbidden {
        user: String,
        action: String,
        reason: String,
    },
    #[error("there is no imagescan {namespace}/{name}")]
    NotFound { namespace: String, name: String },
    #[error("cannot {action}: {source}")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A form's CSRF token is the session's (compared in constant time); a bearer request needs none.
pub fn check_csrf(actor: &Actor, form: Option<&str>) -> Result<()> {
    let Some(expected) = &actor.csrf else {
        return Ok(());
    };
    let given = form.unwrap_or_default();
    // Equal digests of equal length: no early exit on the first differing byte.
    let (a, b) = (Sha256::digest(expected), Sha256::digest(given));
    let same = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0;
    if same && !given.is_empty() {
        Ok(())
    } else {
        Err(Error::Csrf)
    }
}

/// The record of an action in the object it changes.
#[must_use]
pub fn requested_by(user: &str, action: &Action, now: Timestamp) -> String {
    format!(
        "{user} asked to {} on the results page at {now}",
        action.describe()
    )
}

/// The ImageScan "scan now" creates: the one `scangate scan IMAGE` would, with the record.
#[must_use]
pub fn scan_now(image: &ImageRef, namespace: &str, record: String) -> ImageScan {
    let mut scan = image_scan(
        image,
        &ScanArgs {
            image: image.to_string(),
            namespace: namespace.to_string(),
            template: None,
            policy: None,
        },
    );
    scan.metadata.annotations = Some([(REQUESTED_BY.to_string(), record)].into());
    scan
}

/// The statement the scan page's VEX form asks for: about `cve` in the scan's image, in the
/// form's `namespace` (the scan's by default), with `status`, `justification`, `statement`
/// (the action statement when affected, else the impact statement) and `expires` (a duration
/// or a time). The webhook checks the rest (the writer is an approver, OpenVEX's rules, the
/// bound on `expires`). An error says which field is wrong.
pub fn vex_statement(
    fields: &std::collections::HashMap<String, String>,
    scan_namespace: &str,
    image: &str,
    user: &str,
    now: Timestamp,
) -> std::result::Result<ScanException, String> {
    let field = |name: &str| fields.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let cve = field("cve").ok_or("name the CVE (field cve)")?;
    let status = field("status").ok_or("choose a status (field status)")?;
    let status: VexStatus = serde_json::from_value(json!(status)).map_err(|_| {
        format!(
            "status {status:?} is not one of not_affected, affected, fixed, under_investigation"
        )
    })?;
    let justification = match field("justification") {
        None => None,
        Some(j) => Some(
            serde_json::from_value::<VexJustification>(json!(j))
                .map_err(|_| format!("justification {j:?} is not an OpenVEX justification"))?,
        ),
    };
    let statement = field("statement").map(String::from);
    let (impact_statement, action_statement) = match status {
        VexStatus::Affected => (None, statement.clone()),
        _ => (statement.clone(), None),
    };
    let expires = crate::cmd::vex::expiry(field("expires").unwrap_or("30d"), now)
        .map_err(|e| e.to_string())?;
    let namespace = field("namespace").unwrap_or(scan_namespace);
    Ok(ScanException {
        metadata: kube::core::ObjectMeta {
            name: Some(crate::cmd::vex::exception_name(cve, image)),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        },
        spec: ScanExceptionSpec {
            images: vec![image.to_string()],
            cves: vec![cve.to_string()],
            reason: format!(
                "{status} for {cve}, recorded by {user} on the results page{}",
                statement.map_or_else(String::new, |s| format!(": {s}"))
            ),
            expires: Time(expires),
            vex: Some(VexStatement {
                status,
                justification,
                impact_statement,
                action_statement,
            }),
        },
    })
}

/// A client of the cluster in `base`, authenticated as the viewer.
fn client_as(base: &Config, token: &str) -> kube::Result<Client> {
    let mut config = base.clone();
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.to_string().into()),
        ..kube::config::AuthInfo::default()
    };
    Client::try_from(config)
}

/// The scan's report, read as the viewer (who may not have the right: then why not). Only a
/// ConfigMap labelled as the scan's report counts, as for the controller.
pub async fn read_report(
    base: &Config,
    actor: &Actor,
    namespace: &str,
    scan: &str,
) -> std::result::Result<Report, String> {
    let name = config_map_name(scan);
    let client = client_as(base, &actor.token).map_err(|e| e.to_string())?;
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let config_map = match api.get(&name).await {
        Ok(cm) => cm,
        Err(kube::Error::Api(status)) if status.code == 403 => {
            return Err(format!(
                "{} may not read ConfigMap {namespace}/{name} ({})",
                actor.user, status.message
            ));
        }
        Err(kube::Error::Api(status)) if status.code == 404 => {
            return Err(format!("there is no report ConfigMap {namespace}/{name}"));
        }
        Err(e) => return Err(format!("cannot read ConfigMap {namespace}/{name}: {e}")),
    };
    let labelled = config_map
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SCAN_LABEL))
        .is_some_and(|v| *v == scan_label_value(scan));
    if !labelled {
        return Err(format!(
            "ConfigMap {namespace}/{name} is not labelled as the scan's report"
        ));
    }
    from_config_map(&config_map).map_err(|e| e.to_string())
}

/// Does the action as the viewer; what to tell them.
pub async fn perform(
    base: &Config,
    actor: &Actor,
    action: &Action,
    scangate_namespace: &str,
    now: Timestamp,
) -> Result<String> {
    let described = action.describe();
    let api_error = |source: kube::Error| match source {
        kube::Error::Api(status) if status.code == 403 => Error::Forbidden {
            user: actor.user.clone(),
            action: described.clone(),
            reason: status.message,
        },
        source => Error::Api {
            action: described.clone(),
            source,
        },
    };
    let client = client_as(base, &actor.token).map_err(api_error)?;
    let record = requested_by(&actor.user, action, now);
    match action {
        Action::ScanNow { image } => {
            let api: Api<ImageScan> = Api::namespaced(client, scangate_namespace);
            let name = scan_name(image);
            let scan = scan_now(image, scangate_namespace, record);
            let params = PostParams {
                field_manager: Some(MANAGER.into()),
                ..PostParams::default()
            };
            match api.create(&params, &scan).await {
                Ok(_) => Ok(format!(
                    "ImageScan {scangate_namespace}/{name} created for {image}; the controller starts it when a scan slot is free."
                )),
                Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(format!(
                    "ImageScan {scangate_namespace}/{name} exists already for {image}: rescan it from its page."
                )),
                Err(e) => Err(api_error(e)),
            }
        }
        Action::RecordVex {
            namespace,
            name,
            spec,
        } => {
            let statement = ScanException {
                metadata: kube::core::ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(namespace.clone()),
                    annotations: Some([(REQUESTED_BY.to_string(), record)].into()),
                    ..Default::default()
                },
                spec: (**spec).clone(),
            };
            let api: Api<ScanException> = Api::namespaced(client, namespace);
            let params = PatchParams::apply(MANAGER).force();
            match api.patch(name, &params, &Patch::Apply(&statement)).await {
                Ok(_) => Ok(format!(
                    "Recorded ScanException {namespace}/{name}: {}.",
                    described.trim_start_matches("record ")
                )),
                Err(e) => Err(api_error(e)),
            }
        }
        Action::Rescan { namespace, name }
        | Action::Reevaluate { namespace, name }
        | Action::Pause { namespace, name }
        | Action::Resume { namespace, name }
        | Action::Cancel { namespace, name } => {
            let api: Api<ImageScan> = Api::namespaced(client, namespace);
            let patch = scan_patch(action, &record, now).unwrap_or_default();
            let params = PatchParams {
                field_manager: Some(MANAGER.into()),
                ..PatchParams::default()
            };
            match api.patch(name, &params, &Patch::Merge(&patch)).await {
                Ok(_) => Ok(format!(
                    "Asked to {described}; the controller does it shortly."
                )),
                Err(kube::Error::Api(status)) if status.code == 404 => Err(Error::NotFound {
                    namespace: namespace.clone(),
                    name: name.clone(),
                }),
                Err(e) => Err(api_error(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(csrf: Option<&str>) -> Actor {
        Actor {
            user: "alice".into(),
            token: "t".into(),
            csrf: csrf.map(str::to_string),
        }
    }

    #[test]
    fn a_sessions_form_needs_its_csrf_token_a_bearer_request_none() {
        let session = actor(Some("s3cret"));
        assert!(check_csrf(&session, Some("s3cret")).is_ok());
        assert!(matches!(
            check_csrf(&session, Some("guess")),
            Err(Error::Csrf)
        ));
        assert!(matches!(check_csrf(&session, None), Err(Error::Csrf)));
        assert!(matches!(
            check_csrf(&actor(Some("")), Some("")),
            Err(Error::Csrf)
        ));
        assert!(check_csrf(&actor(None), None).is_ok());
    }

    #[test]
    fn the_vex_form_builds_the_statement_import_would_name()
    -> Result<(), Box<dyn std::error::Error>> {
        let now: Timestamp = "2026-12-07T05:00:00Z".parse()?;
        let fields = |pairs: &[(&str, &str)]| -> std::collections::HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let statement = vex_statement(
            &fields(&[
                ("cve", "CVE-2022-48174"),
                ("status", "not_affected"),
                ("justification", "vulnerable_code_not_in_execute_path"),
                ("statement", "no shell reads input"),
                ("expires", "7d"),
                ("namespace", ""),
            ]),
            "shop",
            "busybox:1.32.1",
            "alice",
            now,
        )?;
        assert_eq!(statement.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(
            statement.metadata.name,
            Some(crate::cmd::vex::exception_name(
                "CVE-2022-48174",
                "busybox:1.32.1"
            ))
        );
        assert_eq!(statement.spec.expires.0, "2026-12-14T05:00:00Z".parse()?);
        let vex = statement.spec.vex.clone().ok_or("no vex")?;
        assert_eq!(vex.status, VexStatus::NotAffected);
        assert_eq!(
            vex.impact_statement.as_deref(),
            Some("no shell reads input")
        );
        assert_eq!(
            statement.spec.reason,
            "not_affected for CVE-2022-48174, recorded by alice on the results page: no shell reads input"
        );
        let affected = vex_statement(
            &fields(&[
                ("cve", "CVE-1"),
                ("status", "affected"),
                ("statement", "upgrade"),
                ("namespace", "team"),
            ]),
            "shop",
            "busybox:1.32.1",
            "alice",
            now,
        )?;
        assert_eq!(affected.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(
            affected
                .spec
                .vex
                .and_then(|v| v.action_statement)
                .as_deref(),
            Some("upgrade")
        );
        for (bad, says) in [
            (fields(&[("status", "fixed")]), "field cve"),
            (
                fields(&[("cve", "CVE-1"), ("status", "maybe")]),
                "\"maybe\" is not one of",
            ),
            (
                fields(&[("cve", "CVE-1"), ("status", "fixed"), ("expires", "soon")]),
                "--expires \"soon\"",
            ),
        ] {
            let error = vex_statement(&bad, "shop", "x:1", "alice", now)
                .err()
                .unwrap_or_default();
            assert!(error.contains(says), "{error}");
        }
        Ok(())
    }

    #[test]
    fn the_record_names_who_what_and_when() -> Result<(), Box<dyn std::error::Error>> {
        let now: Timestamp = "2026-12-07T05:00:00Z".parse()?;
        let image = ImageRef::parse("nginx:1.27")?;
        let action = Action::ScanNow {
            image: image.clone(),
        };
        let record = requested_by("alice", &action, now);
        assert_eq!(
            record,
            "alice asked to scan docker.io/library/nginx:1.27 now on the results page at 2026-12-07T05:00:00Z"
        );
        let scan = scan_now(&image, "scangate-system", record.clone());
        assert_eq!(scan.metadata.namespace.as_deref(), Some("scangate-system"));
        assert_eq!(scan.metadata.name, Some(scan_name(&image)));
        assert_eq!(
            scan.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REQUESTED_BY)),
            Some(&record)
        );
        let rescan = Action::Rescan {
            namespace: "shop".into(),
            name: "web".into(),
        };
        assert!(
            requested_by("bob", &rescan, now).starts_with("bob asked to rescan imagescan shop/web")
        );
        Ok(())
    }

    #[test]
    fn pause_resume_and_cancel_write_the_spec_or_the_annotation_and_the_record()
    -> Result<(), Box<dyn std::error::Error>> {
        let now: Timestamp = "2026-12-07T05:00:00Z".parse()?;
        let on = |action: &str| {
            Action::on_scan(action, "shop".into(), "web".into())
                .unwrap_or_else(|| panic!("{action} is an action"))
        };
        assert_eq!(Action::on_scan("delete", "shop".into(), "web".into()), None);
        let pause = on("pause");
        let record = requested_by("alice", &pause, now);
        assert_eq!(
            record,
            "alice asked to pause imagescan shop/web on the results page at 2026-12-07T05:00:00Z"
        );
        assert_eq!(
            scan_patch(&pause, &record, now),
            Some(json!({
                "metadata": {"annotations": {REQUESTED_BY: record}},
                "spec": {"suspend": true},
            }))
        );
        assert_eq!(
            scan_patch(&on("resume"), "r", now),
            Some(json!({
                "metadata": {"annotations": {REQUESTED_BY: "r"}},
                "spec": {"suspend": false},
            }))
        );
        assert_eq!(
            scan_patch(&on("cancel"), "r", now),
            Some(json!({"metadata": {"annotations": {
                annotation::CANCEL: "2026-12-07T05:00:00Z",
                REQUESTED_BY: "r",
            }}}))
        );
        // Rescan and reevaluate touch no spec.
        for action in ["rescan", "reevaluate"] {
            let patch = scan_patch(&on(action), "r", now).unwrap_or_default();
            assert_eq!(patch.get("spec"), None, "{patch}");
        }
        let image = ImageRef::parse("nginx:1.27")?;
        assert_eq!(scan_patch(&Action::ScanNow { image }, "r", now), None);
        Ok(())
    }
}
