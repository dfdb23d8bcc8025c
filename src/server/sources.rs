//! Feeds the webhook's state: watches on the cluster, or files for running without one.

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use super::state::{Named, Readiness, WebhookState};
use crate::api::{ImageScan, ScanException, ScanPolicy, ScanTemplate};
use crate::cmd::check::{Manifest, read_manifests};

/// One change reported by a watch.
#[derive(Debug, PartialEq)]
enum Change<K> {
    /// The full list: the initial list, or a relist after the watch was lost.
    Replace(Vec<K>),
    Apply(K),
    Delete(K),
    /// The watch failed: changes may be missed until the next `Replace`.
    Stale,
}

/// The first wait before a failed watch is started again; it doubles up to [`MAX_RETRY`], and
/// starts over after a watch that synced.
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Follows a watch forever, handing each change to `on`. A watch error means changes may have
/// been missed: the part is reported `Stale` and the watch started again from a full list
/// after a backoff (as client-go's reflector relists), so readiness is regained only from a
/// list known to be complete.
async fn follow<K: Debug, S>(
    what: &'static str,
    mut start: impl FnMut() -> S,
    mut on: impl FnMut(Change<K>),
) where
    S: Stream<Item = Result<Event<K>, watcher::Error>>,
{
    let mut retry = FIRST_RETRY;
    loop {
        let synced = follow_until_error(what, start(), &mut on).await;
        on(Change::Stale);
        if synced {
            retry = FIRST_RETRY;
        }
        tracing::info!(what, retry = ?retry, "watch lost: not ready until it has listed again");
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(MAX_RETRY);
    }
}

/// Follows one watch stream until it fails or ends; says whether it delivered a full list.
async fn follow_until_error<K: Debug>(
    what: &'static str,
    stream: impl Stream<Item = Result<Event<K>, watcher::Error>>,
    on: &mut impl FnMut(Change<K>),
) -> bool {
    let mut initial = vec![];
    let mut synced = false;
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => initial.clear(),
            Ok(Event::InitApply(object)) => initial.push(object),
            Ok(Event::InitDone) => {
                tracing::info!(what, count = initial.len(), "watch synced");
                on(Change::Replace(std::mem::take(&mut initial)));
                synced = true;
            }
            Ok(Event::Apply(object)) => on(Change::Apply(object)),
            Ok(Event::Delete(object)) => on(Change::Delete(object)),
            Err(e) => {
                tracing::warn!(what, error = %e, "watch failed");
                return synced;
            }
        }
    }
    synced
}

fn objects<K>(client: &Client) -> Api<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    Api::all(client.clone())
}

/// Starts the watches that keep `state` current.
pub fn watch_cluster(client: Client, state: Arc<WebhookState>) {
    let config = watcher::Config::default();
    let (s, c, api) = (state.clone(), config.clone(), objects::<ImageScan>(&client));
    tokio::spawn(async move {
        // managedFields are dropped: the index keeps only what admission reads.
        let start = || {
            watcher::watcher(api.clone(), c.clone())
                .modify(|scan| scan.metadata.managed_fields = None)
        };
        follow("imagescans", start, |change| match change {
            Change::Replace(all) => s.replace_scans(&all),
            Change::Apply(scan) => s.apply_scan(&scan),
            Change::Delete(scan) => s.delete_scan(&scan),
            Change::Stale => Readiness::unset(&s.ready.scans),
        })
        .await
    });
    let (s, c, api) = (
        state.clone(),
        config.clone(),
        objects::<ScanException>(&client),
    );
    tokio::spawn(async move {
        let start = || watcher::watcher(api.clone(), c.clone());
        follow("scanexceptions", start, |change| match change {
            Change::Replace(all) => s.replace_exceptions(&all),
            Change::Apply(e) => s.apply_exception(&e),
            Change::Delete(e) => s.delete_exception(&e),
            Change::Stale => Readiness::unset(&s.ready.exceptions),
        })
        .await
    });
    let (s, c, api) = (
        state.clone(),
        config.clone(),
        objects::<PartialObjectMeta<Namespace>>(&client),
    );
    tokio::spawn(async move {
        let start = || watcher::watcher(api.clone(), c.clone());
        follow(
            "namespaces",
            start,
            |change: Change<PartialObjectMeta<Namespace>>| match change {
                Change::Replace(all) => s.replace_namespaces(all.iter().map(|n| &n.metadata)),
                Change::Apply(n) => s.apply_namespace(&n.metadata),
                Change::Delete(n) => s.delete_namespace(&n.metadata),
                Change::Stale => Readiness::unset(&s.ready.namespaces),
            },
        )
        .await
    });
    follow_named::<ScanTemplate>(&client, &state, &config, Named::Templates, "scantemplates");
    follow_named::<ScanPolicy>(&client, &state, &config, Named::Policies, "scanpolicies");
}

/// Follows the names (metadata only) of a kind whose existence is all the webhook needs.
fn follow_named<K>(
    client: &Client,
    state: &Arc<WebhookState>,
    config: &watcher::Config,
    kind: Named,
    what: &'static str,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (s, c, api) = (
        state.clone(),
        config.clone(),
        objects::<PartialObjectMeta<K>>(client),
    );
    tokio::spawn(async move {
        let start = || watcher::watcher(api.clone(), c.clone());
        follow(
            what,
            start,
            |change: Change<PartialObjectMeta<K>>| match change {
                Change::Replace(all) => s.replace_named(kind, all.iter().map(|o| &o.metadata)),
                Change::Apply(o) => s.apply_named(kind, &o.metadata),
                Change::Delete(o) => s.delete_named(kind, &o.metadata),
                Change::Stale => Readiness::unset(s.ready.named(kind)),
            },
        )
        .await
    });
}

/// Loads the state once from a directory of YAML/JSON objects (no cluster needed).
pub fn load_files(dir: &Path, state: &WebhookState) -> Result<usize, crate::cmd::check::Error> {
    let objects = read_manifests(dir)?;
    fn of_kind<K: DeserializeOwned>(objects: &[Manifest], kind: &str) -> Vec<K> {
        objects
            .iter()
            .filter(|m| m.kind() == kind)
            .filter_map(|m| serde_json::from_value(m.object.clone()).ok())
            .collect()
    }
    let scans: Vec<ImageScan> = of_kind(&objects, "ImageScan");
    let exceptions: Vec<ScanException> = of_kind(&objects, "ScanException");
    let namespaces: Vec<Namespace> = of_kind(&objects, "Namespace");
    let templates: Vec<ScanTemplate> = of_kind(&objects, "ScanTemplate");
    let policies: Vec<ScanPolicy> = of_kind(&objects, "ScanPolicy");
    state.replace_scans(&scans);
    state.replace_exceptions(&exceptions);
    state.replace_namespaces(namespaces.iter().map(|n| &n.metadata));
    state.replace_named(Named::Templates, templates.iter().map(|t| &t.metadata));
    state.replace_named(Named::Policies, policies.iter().map(|p| &p.metadata));
    Ok(objects.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> watcher::Error {
        watcher::Error::NoResourceVersion
    }

    #[tokio::test]
    async fn a_full_list_replaces_and_a_failure_ends_the_stream() {
        let events = vec![
            Ok(Event::Init),
            Ok(Event::InitApply(1)),
            Ok(Event::InitApply(2)),
            Ok(Event::InitDone),
            Ok(Event::Apply(3)),
            Ok(Event::Delete(1)),
            Err(failure()),
            Ok(Event::Apply(4)),
        ];
        let mut changes = vec![];
        let synced = follow_until_error("numbers", futures::stream::iter(events), &mut |c| {
            changes.push(c)
        })
        .await;
        assert!(synced);
        // Nothing after the failure: the caller starts a new watch from a full list.
        assert_eq!(
            changes,
            vec![
                Change::Replace(vec![1, 2]),
                Change::Apply(3),
                Change::Delete(1)
            ]
        );
    }

    #[tokio::test]
    async fn a_list_cut_short_replaces_nothing() {
        let events = vec![Ok(Event::Init), Ok(Event::InitApply(1)), Err(failure())];
        let mut changes: Vec<Change<i32>> = vec![];
        let synced = follow_until_error("numbers", futures::stream::iter(events), &mut |c| {
            changes.push(c)
        })
        .await;
        assert!(!synced);
        assert!(changes.is_empty());
    }

    #[tokio::test]
    async fn a_lost_watch_is_stale_until_a_new_one_has_listed() {
        // The first watch lists, then fails; the second lists again.
        let mut watches = vec![
            vec![
                Ok(Event::Init),
                Ok(Event::InitApply(2)),
                Ok(Event::InitDone),
            ],
            vec![
                Ok(Event::Init),
                Ok(Event::InitApply(1)),
                Ok(Event::InitDone),
                Err(failure()),
            ],
        ];
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let follower = tokio::spawn(async move {
            follow(
                "numbers",
                move || futures::stream::iter(watches.pop().unwrap_or_default()),
                move |change| {
                    let _ = tx.send(change);
                },
            )
            .await
        });
        let mut seen = vec![];
        while seen.len() < 4 {
            match rx.recv().await {
                Some(change) => seen.push(change),
                None => break,
            }
        }
        follower.abort();
        assert_eq!(
            seen,
            vec![
                Change::Replace(vec![1]),
                Change::Stale,
                Change::Replace(vec![2]),
                // The second stream ended (no failure): started again all the same.
                Change::Stale,
            ]
        );
    }
}
