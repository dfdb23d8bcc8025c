//! The webhook process: HTTPS admission server with certificate reload, plain-HTTP admin port,
//! config reload, the state's sources, and graceful shutdown.

mod args;
pub mod metrics;
pub mod sources;
pub mod state;
pub mod webhook;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum_server::tls_rustls::RustlsConfig;

use crate::tls;

use crate::admission::config::AdmissionConfig;
use crate::sandbox::Sandbox;
pub use args::WebhookArgs;
use metrics::Metrics;
use state::{Readiness, ReadyStatus, WebhookState};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Tls(#[from] tls::Error),
    #[error(transparent)]
    Config(#[from] crate::admission::config::Error),
    #[error("cannot load scans from {0}")]
    Files(#[from] crate::cmd::check::Error),
    #[error(
        "cannot connect to the Kubernetes API: {0}; run in a cluster, set KUBECONFIG, or give --scans-dir"
    )]
    Kube(#[from] kube::Error),
    #[error("cannot serve on {addr}: {cause}")]
    Serve {
        addr: std::net::SocketAddr,
        cause: std::io::Error,
    },
    #[error(transparent)]
    PolicySandbox(#[from] crate::sandbox::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs the webhook until SIGTERM or SIGINT; then reports not ready for `--shutdown-delay`
/// while still serving, and drains in-flight reviews.
pub async fn run_webhook(args: WebhookArgs) -> Result<()> {
    let config = match &args.config {
        Some(path) => AdmissionConfig::load(Some(path))?,
        None => AdmissionConfig::default(),
    };
    let state = Arc::new(WebhookState::new(config));
    state.set_config((*state.config()).clone());
    state.metrics.config_valid.set(1);

    let files = tls::TlsFiles {
        cert: args.tls_cert.clone(),
        key: args.tls_key.clone(),
    };
    let loaded = files.load()?;
    if let Some(expiry) = loaded.expires_at {
        state.metrics.certificate_expiry.set(expiry);
    }
    let rustls = RustlsConfig::from_config(loaded.config);
    tokio::spawn(reload_certificate(
        files,
        loaded.contents,
        rustls.clone(),
        state.clone(),
        args.reload_interval,
    ));
    if let Some(path) = args.config.clone() {
        tokio::spawn(reload_config(path, state.clone(), args.reload_interval));
    }

    let client = match &args.scans_dir {
        Some(dir) => {
            let count = sources::load_files(dir, &state)?;
            tracing::info!(dir = %dir.display(), objects = count, "loaded scans from files");
            tracing::warn!(
                "no cluster (--scans-dir): ScanTemplate writers are not checked for the right to create Jobs"
            );
            None
        }
        None => {
            let client = kube::Client::try_default().await?;
            sources::watch_cluster(client.clone(), state.clone());
            Some(client)
        }
    };

    let admin = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .map_err(|cause| Error::Serve {
            addr: args.admin_listen,
            cause,
        })?;
    let handle = axum_server::Handle::new();
    let shutdown_handle = handle.clone();
    let (delay, grace) = (args.shutdown_delay, args.shutdown_grace);
    let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let stopping = state.clone();
    tokio::spawn(async move {
        crate::admin::shutdown_signal("webhook").await;
        // Not ready first, still serving: kube-proxy (or any front polling /readyz) stops
        // sending new connections here before this replica stops accepting them.
        Readiness::set(&stopping.ready.shutting_down);
        tracing::info!(delay = ?delay, "shutting down: not ready, still serving reviews");
        tokio::time::sleep(delay).await;
        tracing::info!(grace = ?grace, "shutting down: finishing in-flight reviews");
        shutdown_handle.graceful_shutdown(Some(grace));
        let _ = admin_stop.send(());
    });
    let admin_router = admin_router(state.clone());
    let admin_server = tokio::spawn(async move {
        axum::serve(admin, admin_router)
            .with_graceful_shutdown(async {
                let _ = admin_stopped.await;
            })
            .await
    });

    let app = webhook::AppState {
        state: state.clone(),
        max_body_bytes: args.max_body_bytes,
        client,
        policies: Arc::new(Sandbox::for_this_program(args.policy_limits())?),
    };
    tracing::info!(listen = %args.listen, admin = %args.admin_listen, "scangate webhook serving");
    axum_server::bind_rustls(args.listen, rustls)
        .handle(handle)
        .serve(webhook::router(app).into_make_service())
        .await
        .map_err(|cause| Error::Serve {
            addr: args.listen,
            cause,
        })?;
    let _ = admin_server.await;
    tracing::info!("scangate webhook stopped");
    Ok(())
}

/// Polls the certificate files and swaps the server config when they change. Polling (rather
/// than inotify) sees the kubelet's `..data` symlink swap the same way as an in-place write.
async fn reload_certificate(
    files: tls::TlsFiles,
    mut current: tls::Contents,
    rustls: RustlsConfig,
    state: Arc<WebhookState>,
    interval: Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        let contents = match files.read() {
            Ok(c) if c != current => c,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the certificate; keeping the current one");
                continue;
            }
        };
        match files.build(contents.clone()) {
            Ok(loaded) => {
                rustls.reload_from_config(loaded.config);
                if let Some(expiry) = loaded.expires_at {
                    state.metrics.certificate_expiry.set(expiry);
                }
                Metrics::count_reload(&state.metrics.certificate_reloads, true);
                tracing::info!("serving certificate reloaded");
                current = contents;
            }
            Err(e) => {
                // Half-written files right after a rotation: try again next tick.
                Metrics::count_reload(&state.metrics.certificate_reloads, false);
                tracing::warn!(error = %e, "new certificate not usable; keeping the current one");
            }
        }
    }
}

/// Polls the admission config file; an invalid file keeps the last good config.
async fn reload_config(path: PathBuf, state: Arc<WebhookState>, interval: Duration) {
    let mut last = std::fs::read(&path).ok();
    loop {
        tokio::time::sleep(interval).await;
        let bytes = std::fs::read(&path).ok();
        if bytes == last {
            continue;
        }
        last = bytes;
        match AdmissionConfig::load(Some(&path)) {
            Ok(config) => {
                state.set_config(config);
                state.metrics.config_valid.set(1);
                Metrics::count_reload(&state.metrics.config_reloads, true);
                tracing::info!(path = %path.display(), "admission config reloaded");
            }
            Err(e) => {
                state.metrics.config_valid.set(0);
                Metrics::count_reload(&state.metrics.config_reloads, false);
                tracing::error!(error = %e, "admission config not valid; keeping the last good one");
            }
        }
    }
}

fn admin_router(state: Arc<WebhookState>) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<WebhookState>>) -> impl IntoResponse {
    match state.ready.status() {
        ReadyStatus::Ready => (StatusCode::OK, "ok\n".to_string()),
        ReadyStatus::ShuttingDown => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n".to_string(),
        ),
        ReadyStatus::Waiting(missing) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: waiting for {}\n", missing.join(", ")),
        ),
    }
}

async fn metrics_text(State(state): State<Arc<WebhookState>>) -> impl IntoResponse {
    crate::admin::metrics_response(&state.metrics.registry())
}
