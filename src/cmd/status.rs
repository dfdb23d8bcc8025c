//! `scangate status` (also `kubectl scangate status`): the ImageScans by phase and by origin
//! (trusted results, namespace scans), and the images of the running pods by the verdict the
//! webhook would give them now (admitted, warned, denied), cluster-wide or in one namespace.
//! Read with the caller's credentials through `why`'s [`Reader`]; summarized and formatted by
//! pure functions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use clap::Args;
use serde_json::Value;

use crate::admission::pod::WorkloadKind;
use crate::api::{ImageScan, Phase};
use crate::cmd::why::{self, ClusterArgs, ConfigSource, Outcome, Reader, Seen, Unreadable};

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The name of the controller's verdict mirror (`--mirror-name`), whose parameters are
    /// compared with what the trusted results deny.
    #[arg(
        long,
        env = "SCANGATE_MIRROR_NAME",
        default_value = "scangate-verdicts"
    )]
    pub mirror_name: String,
}

/// Whether the verdict mirror's parameters hold what the trusted results deny.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MirrorState {
    /// It holds exactly the denied digests.
    InSync { digests: usize },
    /// It has no parameters while digests are denied: off (`--mirror`), or not written yet.
    Absent { denied: usize },
    /// It holds other digests than those denied now (a write is late or failing).
    Behind { missing: usize, extra: usize },
    /// Its parameters could not be read.
    Unread(String),
}

/// Compares the digests the trusted results deny with those the mirror's parameters hold
/// (`None`: no parameter object at all).
pub fn mirror_state(denied: &BTreeSet<String>, held: Option<&BTreeSet<String>>) -> MirrorState {
    match held {
        None if denied.is_empty() => MirrorState::InSync { digests: 0 },
        None => MirrorState::Absent {
            denied: denied.len(),
        },
        Some(held) if held == denied => MirrorState::InSync {
            digests: held.len(),
        },
        Some(held) => MirrorState::Behind {
            missing: denied.difference(held).count(),
            extra: held.difference(denied).count(),
        },
    }
}

/// The summary `status` prints.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// The namespace, or `None` for every namespace.
    pub scope: Option<String>,
    pub config_source: ConfigSource,
    /// ImageScans by phase (a scan with no status yet is Pending).
    pub phases: BTreeMap<&'static str, usize>,
    /// ImageScans in trusted namespaces (results for every namespace).
    pub trusted: usize,
    /// ImageScans in other namespaces (they count in their own namespace only).
    pub namespace: usize,
    pub pods: usize,
    /// Distinct images of running pods (per namespace) by verdict.
    pub images: BTreeMap<Outcome, usize>,
    /// The same, per namespace.
    pub by_namespace: BTreeMap<String, BTreeMap<Outcome, usize>>,
    pub unreadable: Unreadable,
    pub mirror: MirrorState,
}

/// Summarizes what was read: the scans of `seen`, and `pods` (running pods, as JSON), each
/// image decided as for a user's create now in its namespace's mode.
pub fn summarize(
    seen: &Seen,
    scope: Option<&str>,
    pods: &[Value],
    mirror: MirrorState,
) -> Result<Summary, why::Error> {
    let config = &seen.world.config;
    let mut phases = BTreeMap::new();
    let (mut trusted, mut namespace) = (0, 0);
    let scans = seen.scans.iter().filter(|s| {
        let ns = s.metadata.namespace.as_deref().unwrap_or_default();
        scope.is_none_or(|scope| scope == ns || config.is_trusted_namespace(ns))
    });
    for scan in scans {
        *phases.entry(phase_of(scan).as_str()).or_insert(0) += 1;
        if config.is_trusted_namespace(scan.metadata.namespace.as_deref().unwrap_or_default()) {
            trusted += 1;
        } else {
            namespace += 1;
        }
    }
    let mut seen_images: BTreeSet<(String, String)> = BTreeSet::new();
    let mut images = BTreeMap::new();
    let mut by_namespace: BTreeMap<String, BTreeMap<Outcome, usize>> = BTreeMap::new();
    for pod in pods {
        let explained = why::explain(seen, WorkloadKind::Pod, pod, &HashMap::new())?;
        for image in explained.images {
            let key = (explained.namespace.clone(), image.verdict.image.clone());
            if !seen_images.insert(key) {
                continue;
            }
            let outcome = image.outcome.in_mode(explained.mode);
            *images.entry(outcome).or_insert(0) += 1;
            *by_namespace
                .entry(explained.namespace.clone())
                .or_default()
                .entry(outcome)
                .or_insert(0) += 1;
        }
    }
    Ok(Summary {
        scope: scope.map(str::to_string),
        config_source: seen.config_source.clone(),
        phases,
        trusted,
        namespace,
        pods: pods.len(),
        images,
        by_namespace,
        unreadable: seen.unreadable.clone(),
        mirror,
    })
}

/// The digests the mirror should hold, from what was read.
pub fn denied_digests(seen: &Seen) -> BTreeSet<String> {
    let world = &seen.world;
    crate::mirror::desired(&world.index, &world.config, &world.exceptions, world.now)
        .0
        .into_keys()
        .collect()
}

fn phase_of(scan: &ImageScan) -> Phase {
    scan.status
        .as_ref()
        .and_then(|s| s.phase)
        .unwrap_or(Phase::Pending)
}

const OUTCOMES: [Outcome; 4] = [
    Outcome::Admitted,
    Outcome::Warned,
    Outcome::Denied,
    Outcome::Unknown,
];

fn counts(by: &BTreeMap<Outcome, usize>) -> String {
    OUTCOMES
        .iter()
        .map(|o| format!("{} {}", o.as_str(), by.get(o).copied().unwrap_or(0)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `status`'s report.
pub fn format_summary(s: &Summary) -> String {
    let mut out = String::new();
    let scope = s
        .scope
        .as_ref()
        .map_or("every namespace".to_string(), |ns| {
            format!("namespace {ns}")
        });
    let _ = writeln!(out, "scope: {scope}");
    let _ = writeln!(out, "admission rules: {}", s.config_source.describe());
    let _ = writeln!(
        out,
        "imagescans: {} (trusted results {}, namespace scans {})",
        s.trusted + s.namespace,
        s.trusted,
        s.namespace
    );
    let phases: Vec<String> = Phase::ALL
        .iter()
        .map(|p| format!("{p} {}", s.phases.get(p.as_str()).copied().unwrap_or(0)))
        .collect();
    let _ = writeln!(out, "  by phase: {}", phases.join(", "));
    let total: usize = s.images.values().sum();
    let _ = writeln!(
        out,
        "running pods: {}; their images: {total} ({})",
        s.pods,
        counts(&s.images)
    );
    for (ns, by) in &s.by_namespace {
        let _ = writeln!(out, "  {ns}: {}", counts(by));
    }
    let mirror = match &s.mirror {
        MirrorState::InSync { digests } => format!("in sync ({digests} denied digests)"),
        MirrorState::Absent { denied } => format!(
            "no parameters, {denied} digests denied: off (scangate controller --mirror) or not \
             written yet"
        ),
        MirrorState::Behind { missing, extra } => format!(
            "NOT in sync: {missing} denied digests missing, {extra} held that no trusted result \
             denies now (see the controller's log and scangate_mirror_in_sync)"
        ),
        MirrorState::Unread(reason) => format!("unread: {reason}"),
    };
    let _ = writeln!(out, "verdict mirror: {mirror}");
    let unread = s
        .unreadable
        .scans
        .iter()
        .map(|(ns, r)| format!("imagescans in {ns}: {r}"))
        .chain(
            s.unreadable
                .exceptions
                .iter()
                .map(|(ns, r)| format!("scanexceptions in {ns}: {r}")),
        );
    for line in unread {
        let _ = writeln!(
            out,
            "unread: {line} (verdicts that depend on it are unknown)"
        );
    }
    for reason in s.unreadable.modes.values() {
        let _ = writeln!(
            out,
            "unread: {reason} (taken to be in the config's default mode)"
        );
    }
    out
}

/// `scangate status`: reads the cluster, summarizes, formats.
pub async fn run(args: &StatusArgs) -> Result<String, why::Error> {
    let reader = Reader::new().await?;
    let scope = args.cluster.namespace.as_deref();
    let seen = reader.seen(&args.cluster, scope).await?;
    let pods = reader.running_pods(scope).await?;
    let mirror = match reader
        .mirror_digests(&seen.world.config.scangate_namespace, &args.mirror_name)
        .await?
    {
        Ok(held) => mirror_state(&denied_digests(&seen), held.as_ref()),
        Err(reason) => MirrorState::Unread(reason),
    };
    let pods: Vec<Value> = pods
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()
        .map_err(|source| why::Error::Encode {
            what: "a pod".into(),
            source,
        })?;
    Ok(format_summary(&summarize(&seen, scope, &pods, mirror)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::config::AdmissionConfig;
    use crate::cmd::check::{World, parse_manifests};
    use serde_json::json;

    fn scan(ns: &str, name: &str, image: &str, phase: Option<&str>) -> String {
        let status = phase.map_or(String::new(), |phase| {
            let repo = image.split(':').next().unwrap_or_default();
            // Each repository its own content: one digest under two names is the same bytes.
            let digest = format!("sha256:{:0>64}", repo.len());
            format!("status: {{phase: {phase}, artifact: {{registry: {{image: \"{repo}@{digest}\"}}}}}}\n")
        });
        format!(
            "kind: ImageScan\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{registry: {{image: \"{image}\"}}}}\n{status}---\n"
        )
    }

    fn pod(ns: &str, name: &str, images: &[&str]) -> Value {
        let containers: Vec<Value> = images
            .iter()
            .enumerate()
            .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
            .collect();
        json!({"kind": "Pod", "metadata": {"name": name, "namespace": ns},
               "spec": {"containers": containers}, "status": {"phase": "Running"}})
    }

    #[test]
    fn scans_and_running_images_are_counted() {
        let text = scan("scangate-system", "bad", "bad:1", Some("Failed"))
            + &scan("scangate-system", "good", "good:1", Some("Completed"))
            + &scan("shop", "mine", "mine:1", None)
            + &scan("other", "theirs", "theirs:1", Some("Error"))
            + "kind: Namespace\nmetadata: {name: soft, labels: {scangate.dev/enforcement: warn}}\n";
        let objects = parse_manifests(std::path::Path::new("t.yaml"), &text)
            .unwrap_or_else(|e| panic!("{e}"));
        let world = World::from_objects(
            AdmissionConfig::default(),
            &objects,
            jiff::Timestamp::UNIX_EPOCH,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let scans: Vec<ImageScan> = objects
            .iter()
            .filter(|m| m.kind() == "ImageScan")
            .filter_map(|m| serde_json::from_value(m.object.clone()).ok())
            .collect();
        let seen = Seen {
            world,
            scans,
            config_source: ConfigSource::Defaults {
                because: "ConfigMap scangate-system/scangate-config: forbidden".into(),
            },
            unreadable: Unreadable::default(),
        };
        let pods = [
            pod("shop", "a", &["bad:1", "good:1"]),
            // The same images again: counted once per namespace.
            pod("shop", "b", &["bad:1", "good:1"]),
            pod("soft", "c", &["bad:1", "unscanned:1"]),
        ];
        // The Failed scan's digest is denied; the mirror holds it.
        let denied = denied_digests(&seen);
        assert_eq!(denied.len(), 1);
        let mirror = mirror_state(&denied, Some(&denied));
        let all = summarize(&seen, None, &pods, mirror).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((all.trusted, all.namespace, all.pods), (2, 2, 3));
        let report = format_summary(&all);
        assert!(report.contains("scope: every namespace\n"), "{report}");
        assert!(
            report.contains("imagescans: 4 (trusted results 2, namespace scans 2)"),
            "{report}"
        );
        assert!(
            report.contains("by phase: Pending 1, Scanning 0, Completed 1, Failed 1, Error 1"),
            "{report}"
        );
        // shop: bad denied, good admitted; soft (warn mode): bad and unscanned warned.
        assert!(
            report.contains(
                "running pods: 3; their images: 4 (admitted 1, warned 2, denied 1, unknown 0)"
            ),
            "{report}"
        );
        assert!(
            report.contains("  shop: admitted 1, warned 0, denied 1, unknown 0"),
            "{report}"
        );
        assert!(
            report.contains("  soft: admitted 0, warned 2, denied 0, unknown 0"),
            "{report}"
        );
        // One namespace: its own scans and the trusted ones.
        let shop = summarize(
            &seen,
            Some("shop"),
            &pods[..2],
            MirrorState::InSync { digests: 1 },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((shop.trusted, shop.namespace), (2, 1));
        assert!(format_summary(&shop).starts_with("scope: namespace shop\nadmission rules: the defaults (ConfigMap scangate-system/scangate-config: forbidden;"));
    }

    #[test]
    fn the_mirror_is_in_sync_only_when_it_holds_exactly_the_denied_digests() {
        let set = |d: &[&str]| {
            d.iter()
                .map(|s| s.to_string())
                .collect::<BTreeSet<String>>()
        };
        let denied = set(&["sha256:a", "sha256:b"]);
        assert_eq!(
            mirror_state(&denied, Some(&denied)),
            MirrorState::InSync { digests: 2 }
        );
        assert_eq!(
            mirror_state(&denied, Some(&set(&["sha256:a", "sha256:c"]))),
            MirrorState::Behind {
                missing: 1,
                extra: 1
            }
        );
        assert_eq!(
            mirror_state(&denied, None),
            MirrorState::Absent { denied: 2 }
        );
        assert_eq!(
            mirror_state(&BTreeSet::new(), None),
            MirrorState::InSync { digests: 0 }
        );
        let text = format_summary(&Summary {
            scope: None,
            config_source: ConfigSource::Defaults {
                because: "test".into(),
            },
            phases: BTreeMap::new(),
            trusted: 0,
            namespace: 0,
            pods: 0,
            images: BTreeMap::new(),
            by_namespace: BTreeMap::new(),
            unreadable: Unreadable::default(),
            mirror: MirrorState::Behind {
                missing: 1,
                extra: 0,
            },
        });
        assert!(
            text.contains("verdict mirror: NOT in sync: 1 denied digests missing"),
            "{text}"
        );
    }
}
