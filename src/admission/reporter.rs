//! Whether the scanner's ServiceAccount may write a report ConfigMap: only its own scan's
//! report, from a pod of that scan's Job. A bound ServiceAccount token names the pod it was
//! issued for (userInfo extra); the webhook reads that pod and the Job controlling it from the
//! apiserver ([`ScanPod`]) and this module decides from what it found. Pure functions.

use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::report::{SCAN_LABEL, config_map_name, scan_label_value};

/// The userInfo extra key holding the name of the pod a bound token was issued for.
pub const POD_NAME_EXTRA: &str = "authentication.kubernetes.io/pod-name";
/// The userInfo extra key holding that pod's uid.
pub const POD_UID_EXTRA: &str = "authentication.kubernetes.io/pod-uid";

/// The pod a writer's token was bound to, as the apiserver authenticated it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodClaim {
    pub name: String,
    pub uid: String,
}

/// The pod a token names, if it names one (both its name and uid, as bound ServiceAccount
/// tokens do): a plain ServiceAccount token, or a request without them, names none.
pub fn pod_claim(user: &UserInfo) -> Option<PodClaim> {
    let extra = user.extra.as_ref()?;
    let single = |key: &str| match extra.get(key).map(Vec::as_slice) {
        Some([value]) if !value.is_empty() => Some(value.clone()),
        _ => None,
    };
    Some(PodClaim {
        name: single(POD_NAME_EXTRA)?,
        uid: single(POD_UID_EXTRA)?,
    })
}

/// What the apiserver says about a claimed pod.
#[derive(Clone, Debug, PartialEq)]
pub enum ScanPod {
    /// The pod exists: its uid, the Job controlling it (if a Job does), and that Job's
    /// controlling owner (the scan, for a Job scangate's controller created).
    Found {
        uid: String,
        job: Option<String>,
        job_owner: Option<OwnerReference>,
    },
    /// No pod of that name.
    Missing,
    /// The lookup failed; the reason.
    Unreadable(String),
}

/// The API group whose kinds own scan Jobs.
const SCAN_API_GROUP: &str = "scanning.scangate.dev";

/// Whether the scanner whose token names `claim` (found as `pod`) may write `report`, a
/// labelled report ConfigMap: the pod must be the one the token was issued for (same uid),
/// controlled by a Job that a scan controls, and the report must be that scan's: its name,
/// its scan label, and every owner reference pointing at that scan. `Err` says why not.
pub fn scanner_may_write(
    report: &ObjectMeta,
    claim: &PodClaim,
    pod: &ScanPod,
) -> Result<(), String> {
    let pod_name = &claim.name;
    let (uid, job, job_owner) = match pod {
        ScanPod::Found {
            uid,
            job,
            job_owner,
        } => (uid, job, job_owner),
        ScanPod::Missing => {
            return Err(format!(
                "its token names pod {pod_name}, which does not exist"
            ));
        }
        ScanPod::Unreadable(reason) => {
            return Err(format!(
                "scangate cannot read pod {pod_name}, which its token names, to check that it \
                 runs that scan's Job: {reason}"
            ));
        }
    };
    if *uid != claim.uid {
        return Err(format!(
            "its token was issued for pod {pod_name} with uid {}, but that pod is now {uid}",
            claim.uid
        ));
    }
    let Some(job) = job else {
        return Err(format!("pod {pod_name} is not run by a Job"));
    };
    let Some(scan) = job_owner.as_ref().filter(|owner| {
        owner.api_version.split('/').next() == Some(SCAN_API_GROUP)
            && matches!(owner.kind.as_str(), "ImageScan" | "SourceScan")
    }) else {
        return Err(format!(
            "pod {pod_name} runs Job {job}, which is not a scan's Job"
        ));
    };
    let name = report.name.as_deref().unwrap_or_default();
    let label = report
        .labels
        .as_ref()
        .and_then(|labels| labels.get(SCAN_LABEL))
        .map(String::as_str)
        .unwrap_or_default();
    let owners = report.owner_references.as_deref().unwrap_or_default();
    let owned_by_scan = !owners.is_empty() && owners.iter().all(|o| o.uid == scan.uid);
    if name != config_map_name(&scan.name)
        || label != scan_label_value(&scan.name)
        || !owned_by_scan
    {
        return Err(format!(
            "pod {pod_name} runs Job {job} of {} {}, whose report is ConfigMap {} labelled \
             {SCAN_LABEL}={} and owned by that scan (uid {}); this is ConfigMap {name} \
             labelled {label:?}",
            scan.kind,
            scan.name,
            config_map_name(&scan.name),
            scan_label_value(&scan.name),
            scan.uid
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn scan_owner(name: &str, uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "scanning.scangate.dev/v1beta1".into(),
            kind: "ImageScan".into(),
            name: name.into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn report(name: &str, label: &str, owners: Vec<OwnerReference>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(
                SCAN_LABEL.to_string(),
                label.to_string(),
            )])),
            owner_references: Some(owners),
            ..ObjectMeta::default()
        }
    }

    fn claim() -> PodClaim {
        PodClaim {
            name: "alpine-0a1b2c3d4e-xyz12".into(),
            uid: "pod-uid".into(),
        }
    }

    fn job_pod(owner: Option<OwnerReference>) -> ScanPod {
        ScanPod::Found {
            uid: "pod-uid".into(),
            job: Some("alpine-0a1b2c3d4e".into()),
            job_owner: owner,
        }
    }

    #[test]
    fn a_bound_token_names_its_pod_and_a_plain_one_none() {
        let user = |extra: &[(&str, &[&str])]| UserInfo {
            username: Some("system:serviceaccount:scangate-system:scangate-scanner".into()),
            extra: Some(
                extra
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                    .collect(),
            ),
            ..UserInfo::default()
        };
        assert_eq!(
            pod_claim(&user(&[(POD_NAME_EXTRA, &["p"]), (POD_UID_EXTRA, &["u"])])),
            Some(PodClaim {
                name: "p".into(),
                uid: "u".into()
            })
        );
        assert_eq!(pod_claim(&user(&[(POD_NAME_EXTRA, &["p"])])), None);
        assert_eq!(
            pod_claim(&user(&[
                (POD_NAME_EXTRA, &["p", "q"]),
                (POD_UID_EXTRA, &["u"])
            ])),
            None
        );
        assert_eq!(
            pod_claim(&user(&[(POD_NAME_EXTRA, &[""]), (POD_UID_EXTRA, &["u"])])),
            None
        );
        assert_eq!(pod_claim(&UserInfo::default()), None);
    }

    #[test]
    fn the_pod_of_a_scans_job_writes_that_scans_report_only() {
        let alpine = scan_owner("alpine", "scan-uid");
        let own = report("alpine-report", "alpine", vec![alpine.clone()]);
        assert_eq!(
            scanner_may_write(&own, &claim(), &job_pod(Some(alpine.clone()))),
            Ok(())
        );
        // Another scan's report, by name, label or owner.
        for other in [
            report("busybox-report", "busybox", vec![alpine.clone()]),
            report("alpine-report", "busybox", vec![alpine.clone()]),
            report(
                "alpine-report",
                "alpine",
                vec![scan_owner("alpine", "other-uid")],
            ),
            report(
                "alpine-report",
                "alpine",
                vec![alpine.clone(), scan_owner("busybox", "b-uid")],
            ),
            report("alpine-report", "alpine", vec![]),
            // The admission config, labelled to pass for a report.
            report("scangate-config", "alpine", vec![alpine.clone()]),
        ] {
            let refused = scanner_may_write(&other, &claim(), &job_pod(Some(alpine.clone())));
            assert!(
                refused
                    .as_ref()
                    .is_err_and(|e| e.contains("whose report is ConfigMap alpine-report")),
                "{other:?}: {refused:?}"
            );
        }
    }

    #[test]
    fn only_a_live_pod_of_a_scan_job_counts() {
        let alpine = scan_owner("alpine", "scan-uid");
        let own = report("alpine-report", "alpine", vec![alpine.clone()]);
        let refusal = |pod: ScanPod| scanner_may_write(&own, &claim(), &pod).err();
        assert!(refusal(ScanPod::Missing).is_some_and(|e| e.contains("does not exist")));
        assert!(
            refusal(ScanPod::Unreadable("forbidden".into()))
                .is_some_and(|e| e.contains("cannot read pod") && e.contains("forbidden"))
        );
        // A pod of the same name, created after the token was issued.
        assert!(
            refusal(ScanPod::Found {
                uid: "new-uid".into(),
                job: Some("alpine-0a1b2c3d4e".into()),
                job_owner: Some(alpine.clone()),
            })
            .is_some_and(|e| e.contains("now new-uid"))
        );
        assert!(
            refusal(ScanPod::Found {
                uid: "pod-uid".into(),
                job: None,
                job_owner: None,
            })
            .is_some_and(|e| e.contains("not run by a Job"))
        );
        assert!(refusal(job_pod(None)).is_some_and(|e| e.contains("not a scan's Job")));
        let mut cron = alpine.clone();
        cron.api_version = "batch/v1".into();
        cron.kind = "CronJob".into();
        assert!(refusal(job_pod(Some(cron))).is_some_and(|e| e.contains("not a scan's Job")));
    }
}
