//! The controller process: composes the scan lifecycle ([`crate::scan`]), the runtime view
//! ([`crate::runtime`]), the verdict mirror ([`crate::mirror`]) and the results page
//! ([`crate::web`]) under one leader lease, with the admin port (health and metrics).
//!
//! - [`args`]: the flags of `scangate controller`;
//! - [`leader`]: leader election with a Lease.

pub mod args;
pub mod leader;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::admin::AbortOnDrop;
use crate::admission::config::AdmissionConfig;
use crate::api::{ImageScan, Phase, SourceScan};
use crate::mirror::{self, MirrorView};
use crate::rate::Rate;
use crate::runtime::reports;
use crate::scan::kinds::ScanKind;
use crate::scan::publisher::Publisher;
use crate::scan::reconcile::{self, Context, Settings};
use crate::scan::{CONTROLLER_NAME, cache, policy, queue, store, triggers};
use crate::web::{self, model::View};
use args::ControllerArgs;

/// Errors of the controller process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Scan(#[from] crate::scan::Error),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot connect to the Kubernetes API: {0}; run in a cluster or set KUBECONFIG")]
    Connect(#[source] kube::Error),
    #[error("lost the leader lease {0}")]
    LeaseLost(String),
    #[error("cannot serve on {addr}: {cause}")]
    Serve {
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error("cannot read the registry CA file {path}: {cause}")]
    RegistryCaFile {
        path: std::path::PathBuf,
        #[source]
        cause: std::io::Error,
    },
    #[error("cannot build the registry client: {0}")]
    Registry(#[source] Box<crate::registry::Error>),
    #[error(transparent)]
    Config(#[from] crate::admission::config::Error),
    #[error(transparent)]
    PolicySandbox(#[from] crate::sandbox::Error),
    #[error(transparent)]
    Web(#[from] crate::web::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The policy limits of the controller. Its reconciles are bounded already (`--concurrency` per
/// scan kind, two kinds), so its queue holds them all: a reconcile waits for a worker instead of
/// being refused and retried much later.
fn controller_policy_limits(args: &ControllerArgs) -> crate::sandbox::Limits {
    let limits = args.policy.limits();
    crate::sandbox::Limits {
        queue: limits.queue.max(2 * usize::from(args.concurrency)),
        ..limits
    }
}

/// Every metric the controller exports, by concern.
#[derive(Default)]
struct Metrics {
    scan: Arc<crate::scan::metrics::Metrics>,
    runtime: Arc<crate::runtime::metrics::Metrics>,
    mirror: Arc<mirror::Metrics>,
    web: web::ResultsMetrics,
    /// 1 while this replica holds the leader lease.
    leader: Gauge,
}

impl Metrics {
    /// A registry exporting every metric under the `scangate` prefix.
    fn registry(&self) -> Registry {
        let mut registry = Registry::with_prefix("scangate");
        self.scan.register(&mut registry);
        self.runtime.register(&mut registry);
        self.mirror.register(&mut registry);
        self.web.register(&mut registry);
        registry.register(
            "controller_leader",
            "1 while this replica holds the leader lease",
            self.leader.clone(),
        );
        registry
    }
}

/// What the admin port serves from.
struct Admin {
    metrics: Metrics,
    /// A standby replica is ready: it waits for the lease.
    standby: AtomicBool,
    /// The leader is ready once both scan watches have synced.
    synced: AtomicBool,
    stores: std::sync::Mutex<Option<(Store<ImageScan>, Store<SourceScan>)>>,
}

/// Runs the controller until SIGTERM or SIGINT. With leader election, a replica that loses the
/// lease (e.g. while the apiserver is unreachable) stops reconciling and stands by again.
pub async fn run(args: ControllerArgs) -> Result<()> {
    let kube_config = kube::Config::infer()
        .await
        .map_err(|e| Error::Connect(kube::Error::InferConfig(e)))?;
    let client = Client::try_from(kube_config.clone()).map_err(Error::Connect)?;
    let config = Arc::new(AdmissionConfig::load(args.config.as_deref())?);
    let admin = Arc::new(Admin {
        metrics: Metrics::default(),
        standby: AtomicBool::new(args.leader_election),
        synced: AtomicBool::new(false),
        stores: std::sync::Mutex::new(None),
    });
    // The results page reads what the leader's inventory publishes.
    let (view_tx, view_rx) = tokio::sync::watch::channel(View::Starting);
    let view = Arc::new(view_tx);
    let (mirror_tx, mirror_rx) = tokio::sync::watch::channel(if args.mirror.enabled {
        MirrorView::Starting
    } else {
        MirrorView::Off
    });
    if let Some(listener) = args.results.listener()? {
        web::serve(
            listener,
            args.results.results_access_recheck,
            web::Cluster {
                client: client.clone(),
                config: kube_config,
                scangate_namespace: config.scangate_namespace.clone(),
            },
            view_rx,
            mirror_rx,
            admin.metrics.web.clone(),
        )
        .await?;
    }
    let listener = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .map_err(|cause| Error::Serve {
            addr: args.admin_listen,
            cause,
        })?;
    let router = admin_router(admin.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "admin server stopped");
        }
    });

    let store = match &args.metadata_store_url {
        Some(url) => Some(store::MetadataStore::new(
            url,
            args.metadata_store_token_file.clone(),
            args.metadata_store_ca_file.clone(),
        )?),
        None => None,
    };
    let identity = args
        .leader_election_identity
        .clone()
        .unwrap_or_else(leader::default_identity);
    let registry = registry_client(&args)?;

    // SIGTERM or SIGINT: stop taking new reconciles, let those running finish.
    let (stop_tx, stop_rx) = futures::channel::oneshot::channel::<()>();
    let stop = stop_rx.map(|_| ()).shared();
    tokio::spawn(async move {
        crate::admin::shutdown_signal("controller").await;
        tracing::info!("stopping: finishing the reconciles under way");
        let _ = stop_tx.send(());
    });

    let lease = args.leader_election.then(|| {
        let namespace = args
            .leader_election_namespace
            .clone()
            .unwrap_or_else(own_namespace);
        let config = leader::LeaseConfig {
            namespace: namespace.clone(),
            name: args.leader_election_lease.clone(),
            identity: identity.clone(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(2),
        };
        let api: Api<Lease> = Api::namespaced(client.clone(), &namespace);
        (api, config)
    });
    let term = Term {
        args: &args,
        client,
        admin: admin.clone(),
        identity,
        config,
        store,
        registry,
        lease: lease.as_ref(),
        mirror_view: Arc::new(mirror_tx),
    };
    loop {
        if let Some((api, config)) = &lease {
            admin.standby.store(true, Ordering::SeqCst);
            view.send_replace(View::Standby);
            tokio::select! {
                _ = leader::acquire(api, config) => {}
                _ = stop.clone() => return Ok(()),
            }
        }
        admin.metrics.leader.set(1);
        admin.standby.store(false, Ordering::SeqCst);
        view.send_replace(View::Starting);
        let ended = term.lead(stop.clone(), view.clone()).await;
        admin.metrics.leader.set(0);
        // Only the leader's inventory says what runs.
        admin.metrics.runtime.clear();
        admin.synced.store(false, Ordering::SeqCst);
        match ended {
            Ok(TermEnd::Stopped) => {
                if let Some((api, config)) = &lease {
                    leader::release(api, config).await;
                }
                tracing::info!("scangate controller stopped");
                return Ok(());
            }
            Ok(TermEnd::LeaseLost(lost)) => {
                tracing::warn!(error = %lost, "stopped reconciling: another replica may lead now; standing by until the lease can be taken again");
            }
            Err(e) => return Err(e),
        }
    }
}

/// How a term as leader ended.
enum TermEnd {
    /// SIGTERM or SIGINT (the reconciles under way were given --shutdown-grace), or the
    /// watches ended.
    Stopped,
    /// The lease could not be renewed in time: stop reconciling at once.
    LeaseLost(Error),
}

/// What a term as leader starts from; each term starts its watches and caches anew, so a
/// replica that led before starts from what the apiserver holds now.
struct Term<'a> {
    args: &'a ControllerArgs,
    client: Client,
    admin: Arc<Admin>,
    identity: String,
    config: Arc<AdmissionConfig>,
    store: Option<store::MetadataStore>,
    /// The registry client: it resolves tags (with `--resolve-tags`) and fetches attestations.
    registry: crate::registry::Resolver,
    lease: Option<&'a (Api<Lease>, leader::LeaseConfig)>,
    /// What the verdict mirror last did, for the results page.
    mirror_view: Arc<tokio::sync::watch::Sender<MirrorView>>,
}

/// The registry client that resolves scans' tags (`--resolve-tags`) and fetches images'
/// attestations, trusting `--registry-ca-file` when given, else the platform's roots, within
/// the admin's egress rules (`--registry-insecure-hosts`, `--registry-allowed-private`,
/// `--registry-realm-hosts`).
fn registry_client(args: &ControllerArgs) -> Result<crate::registry::Resolver> {
    let ca = match &args.registry_ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|cause| Error::RegistryCaFile {
            path: path.clone(),
            cause,
        })?),
        None => None,
    };
    let egress = crate::registry::Egress::new(
        args.registry_insecure_hosts.0.clone(),
        args.registry_allowed_private.0.clone(),
        args.registry_realm_hosts.0.clone(),
    );
    crate::registry::Resolver::new(ca.as_deref())
        .map(|resolver| resolver.with_egress(egress))
        .map_err(|e| Error::Registry(Box::new(e)))
}

impl Term<'_> {
    /// Starts the caches and the controllers, and reconciles until stopped or until the lease
    /// is lost.
    async fn lead<S>(&self, stop: S, view: Arc<tokio::sync::watch::Sender<View>>) -> Result<TermEnd>
    where
        S: Future<Output = ()> + Clone + Send + Sync + 'static,
    {
        let args = self.args;
        let policies = policy::PolicyCache::new(crate::sandbox::Sandbox::for_this_program(
            controller_policy_limits(args),
        )?);
        let namespace = args.namespace.as_deref();
        let (image_store, image_watch, images_changed) =
            scan_watch::<ImageScan>(&self.client, namespace);
        let (source_store, source_watch, _) = scan_watch::<SourceScan>(&self.client, namespace);
        let (triggers, image_triggers, source_triggers) = triggers::triggers();
        let queue = Arc::new(queue::Queue::new(
            queue::Limits {
                total: usize::try_from(args.max_running_jobs).unwrap_or(usize::MAX),
                per_namespace: usize::try_from(args.max_running_jobs_per_namespace)
                    .unwrap_or(usize::MAX),
                first_sight: usize::try_from(self.config.first_sight.max_running())
                    .unwrap_or(usize::MAX),
            },
            &self.config.scangate_namespace,
            triggers.clone(),
            self.admin.metrics.scan.clone(),
        ));
        let (caches, watches) = cache::start(
            &self.client,
            namespace,
            cache::ScanStores {
                images: image_store.clone(),
                sources: source_store.clone(),
                config: self.config.clone(),
            },
            triggers,
            queue.clone(),
        );
        // The runtime inventory: its own watches, its PolicyReports and metrics, for the term.
        let _inventory = AbortOnDrop(tokio::spawn(
            reports::Inventory {
                client: self.client.clone(),
                namespace: args.namespace.clone(),
                config: self.config.clone(),
                format: args.policy_reports,
                metrics: self.admin.metrics.runtime.clone(),
                shared_scans: reports::SharedScans {
                    namespace: args.namespace.clone(),
                    store: image_store.clone(),
                    changed: images_changed,
                },
                publish: Box::new(move |entries, ended, scans| {
                    let snapshot = web::model::Snapshot::build(entries, ended, scans);
                    view.send_replace(View::Ready(Arc::new(snapshot)));
                }),
            }
            .run(),
        ));
        let _mirror = args.mirror.enabled.then(|| {
            AbortOnDrop(tokio::spawn(
                mirror::Mirror {
                    client: self.client.clone(),
                    config: self.config.clone(),
                    args: args.mirror.clone(),
                    metrics: self.admin.metrics.mirror.clone(),
                    view: self.mirror_view.clone(),
                }
                .run(),
            ))
        });
        let stopped = stop.clone();
        // Stopped on the signal, or when the term ends before it.
        let _watches = AbortOnDrop(tokio::spawn(async move {
            tokio::select! {
                _ = watches => {}
                _ = stopped => {}
            }
        }));
        let kept = async {
            match self.lease {
                Some((api, config)) => leader::keep(api, config).await,
                None => futures::future::pending().await,
            }
        };
        let mut kept = std::pin::pin!(kept);
        tokio::select! {
            ready = caches.wait_until_ready() => {
                if ready.is_err() {
                    return Ok(TermEnd::Stopped);
                }
                tracing::info!("caches synced");
            }
            lost = &mut kept => return Ok(TermEnd::LeaseLost(lost)),
            _ = stop.clone() => return Ok(TermEnd::Stopped),
        }

        let ctx = Arc::new(Context {
            client: self.client.clone(),
            config: self.config.clone(),
            settings: Settings {
                error_retry: args.error_retry,
                job_ttl: args.job_ttl,
                tag_recheck: args.tag_recheck(),
                pause_limit: args.pause_limit,
            },
            resolver: self.args.resolve_tags.then(|| self.registry.clone()),
            registry: self.registry.clone(),
            store: self.store.clone(),
            policies,
            metrics: self.admin.metrics.scan.clone(),
            events: Publisher::spawn(
                self.client.clone(),
                Reporter {
                    controller: CONTROLLER_NAME.into(),
                    instance: Some(self.identity.clone()),
                },
                Rate::per_second(args.event_qps, args.event_burst),
                self.admin.metrics.scan.clone(),
            ),
            caches,
            queue,
            status_failures: std::sync::Mutex::default(),
            written: std::sync::Mutex::default(),
            evaluations: std::sync::Mutex::default(),
            attestations: std::sync::Mutex::default(),
            verdict_attempts: std::sync::Mutex::default(),
        });
        let images = controller_for(
            image_watch,
            image_store.clone(),
            image_triggers,
            stop.clone(),
            args.concurrency,
            ctx.clone(),
        );
        let sources = controller_for(
            source_watch,
            source_store.clone(),
            source_triggers,
            stop.clone(),
            args.concurrency,
            ctx,
        );
        if let Ok(mut stores) = self.admin.stores.lock() {
            *stores = Some((image_store.clone(), source_store.clone()));
        }
        let ready = self.admin.clone();
        let _synced = AbortOnDrop(tokio::spawn(async move {
            // A store wakes only its last waiter (the controller's runner), so poll again now
            // and then rather than wait once.
            loop {
                let both = async {
                    image_store.wait_until_ready().await.is_ok()
                        && source_store.wait_until_ready().await.is_ok()
                };
                if let Ok(true) = tokio::time::timeout(Duration::from_millis(500), both).await {
                    ready.synced.store(true, Ordering::SeqCst);
                    tracing::info!("scan watches synced");
                    return;
                }
            }
        }));
        tracing::info!(admin = %args.admin_listen, namespace = namespace.unwrap_or("(all)"), "scangate controller running");

        let controllers = futures::future::join(images, sources);
        let mut controllers = std::pin::pin!(controllers);
        Ok(tokio::select! {
            _ = &mut controllers => TermEnd::Stopped,
            lost = &mut kept => TermEnd::LeaseLost(lost),
            _ = stop.clone() => {
                // The controllers stop on the same signal: wait for the reconciles under way,
                // still holding the lease, for a bounded time.
                tokio::select! {
                    finished = tokio::time::timeout(args.shutdown_grace, &mut controllers) => {
                        if finished.is_err() {
                            tracing::warn!(grace = ?args.shutdown_grace, "reconciles still running at shutdown are abandoned; the next leader does them again");
                        }
                        TermEnd::Stopped
                    }
                    lost = &mut kept => TermEnd::LeaseLost(lost),
                }
            }
        })
    }
}

/// The namespace this pod runs in (service account file, then `POD_NAMESPACE`), else
/// `default`.
fn own_namespace() -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "default".into())
}

/// The watch of one scan kind into its store (stripped of what the controller never reads):
/// the store, the stream of scans that changed, for their controller, and a signal sent at
/// each event the store applied.
fn scan_watch<K: ScanKind>(
    client: &Client,
    namespace: Option<&str>,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    tokio::sync::watch::Receiver<()>,
) {
    let api = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (store, writer) = reflector::store();
    // Others that read the store (the runtime inventory) hear of each event applied to it.
    let (changed, receiver) = tokio::sync::watch::channel(());
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(cache::strip_scan::<K>)
        .reflect(writer)
        .inspect_ok(move |_| {
            changed.send_replace(());
        })
        .applied_objects();
    (store, stream, receiver)
}

/// The controller of one scan kind: reconciles each scan that changed, and each scan the
/// caches' index sends; stops taking new reconciles when `stop` resolves and ends once those
/// under way are done.
fn controller_for<K: ScanKind>(
    scans: impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    store: Store<K>,
    triggers: futures::channel::mpsc::Receiver<ObjectRef<K>>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    concurrency: u16,
    ctx: Arc<Context>,
) -> impl std::future::Future<Output = ()> + Send {
    let kind = K::kind(&()).into_owned();
    Controller::for_stream(scans, store)
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .reconcile_on(triggers)
        .graceful_shutdown_on(stop)
        .run(reconcile::reconcile::<K>, reconcile::error_policy::<K>, ctx)
        .for_each(move |result| {
            if let Err(e) = result {
                tracing::debug!(kind = %kind, error = %e, "controller event");
            }
            futures::future::ready(())
        })
}

fn admin_router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(admin)
}

async fn readyz(State(admin): State<Arc<Admin>>) -> impl IntoResponse {
    if admin.standby.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok (standby)\n".to_string())
    } else if admin.synced.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: waiting for the scan watches to sync\n".to_string(),
        )
    }
}

fn count_phases<K: ScanKind>(store: &Store<K>) -> Vec<(Phase, i64)> {
    let scans = store.state();
    Phase::ALL
        .iter()
        .map(|phase| {
            let n = scans
                .iter()
                .filter(|s| {
                    s.scan_status()
                        .and_then(|st| st.phase)
                        .unwrap_or(Phase::Pending)
                        == *phase
                })
                .count();
            (*phase, i64::try_from(n).unwrap_or(i64::MAX))
        })
        .collect()
}

async fn metrics_text(State(admin): State<Arc<Admin>>) -> impl IntoResponse {
    let stores = admin.stores.lock().ok().and_then(|s| s.clone());
    if let Some((images, sources)) = stores {
        admin
            .metrics
            .scan
            .set_phases("ImageScan", &count_phases(&images));
        admin
            .metrics
            .scan
            .set_phases("SourceScan", &count_phases(&sources));
    }
    admin
        .metrics
        .runtime
        .refresh_result_age(jiff::Timestamp::now());
    crate::admin::metrics_response(&admin.metrics.registry())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn limits(args: &[&str]) -> crate::sandbox::Limits {
        let all = ["scangate", "controller"].iter().chain(args);
        match Cli::try_parse_from(all).map(|cli| cli.command) {
            Ok(Command::Controller(args)) => controller_policy_limits(&args),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_controllers_policy_queue_holds_every_reconcile() {
        assert_eq!(limits(&["--concurrency", "8"]).queue, 16);
        assert_eq!(
            limits(&["--concurrency", "1", "--policy-queue", "5"]).queue,
            5
        );
        assert_eq!(limits(&["--policy-concurrency", "3"]).concurrency, 3);
    }
}
