//! Scans on first sight, the I/O: admission hands images with no trusted result to
//! [`FirstSight::request`] (deduplicated and rate-limited in memory, then a bounded queue; it
//! never waits), and a background task creates their ImageScans in scangate's namespace.
//! AlreadyExists is success: concurrent requests (or replicas) meet at one name.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use kube::api::{Api, PostParams};
use tokio::sync::mpsc;

use super::metrics::FirstSightOutcome;
use super::state::WebhookState;
use crate::admission::first_sight::{self, Admit, Gate};
use crate::api::ImageScan;
use crate::image::ImageRef;

/// How many requests wait for the background task; more are dropped and counted.
const QUEUE: usize = 256;
/// How long one create may take.
const CREATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The request side, shared by the handlers.
pub struct FirstSight {
    queue: mpsc::Sender<ImageRef>,
    gate: Arc<Mutex<Gate>>,
    state: Arc<WebhookState>,
}

impl FirstSight {
    /// Starts the background task that creates the scans with `client`.
    pub fn start(client: kube::Client, state: Arc<WebhookState>) -> Arc<Self> {
        let (queue, requests) = mpsc::channel(QUEUE);
        let per_minute = state.config().first_sight.per_minute();
        let gate = Arc::new(Mutex::new(Gate::new(per_minute, Instant::now())));
        tokio::spawn(create_scans(client, state.clone(), gate.clone(), requests));
        Arc::new(FirstSight { queue, gate, state })
    }

    /// Requests a scan of `image`, when scans on first sight are on; never waits.
    pub fn request(&self, image: &ImageRef) {
        let config = self.state.config();
        if config.first_sight.template.is_none() {
            return;
        }
        let name = first_sight::scan_name(image);
        let admit = lock(&self.gate).admit(&name, config.first_sight.per_minute(), Instant::now());
        let outcome = match admit {
            Admit::Seen => FirstSightOutcome::seen,
            Admit::Limited => FirstSightOutcome::limited,
            Admit::New => match self.queue.try_send(image.clone()) {
                Ok(()) => FirstSightOutcome::queued,
                Err(_) => {
                    lock(&self.gate).forget(&name);
                    FirstSightOutcome::dropped
                }
            },
        };
        self.state.metrics.count_first_sight(outcome);
    }
}

/// Locks the gate, recovering it if a holder panicked (each call leaves it whole).
fn lock(gate: &Mutex<Gate>) -> std::sync::MutexGuard<'_, Gate> {
    gate.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Creates the requested scans one at a time, with the config current when each is created; a
/// failed create is forgotten by the gate, so a later request tries again.
async fn create_scans(
    client: kube::Client,
    state: Arc<WebhookState>,
    gate: Arc<Mutex<Gate>>,
    mut requests: mpsc::Receiver<ImageRef>,
) {
    while let Some(image) = requests.recv().await {
        let config = state.config();
        let namespace = &config.scangate_namespace;
        let scan = first_sight::image_scan(&image, &config.first_sight, namespace);
        let api: Api<ImageScan> = Api::namespaced(client.clone(), namespace);
        let created =
            tokio::time::timeout(CREATE_TIMEOUT, api.create(&PostParams::default(), &scan)).await;
        let name = scan.metadata.name.clone().unwrap_or_default();
        let outcome = match created {
            Ok(Ok(_)) => {
                tracing::info!(%image, %namespace, "created a scan on first sight");
                FirstSightOutcome::created
            }
            Ok(Err(kube::Error::Api(status))) if status.is_already_exists() => {
                FirstSightOutcome::exists
            }
            Ok(Err(e)) => {
                tracing::warn!(%image, %namespace, error = %e,
                    "cannot create a scan on first sight; the webhook needs create on imagescans there");
                FirstSightOutcome::failed
            }
            Err(_) => {
                tracing::warn!(%image, %namespace, "the apiserver did not answer a first-sight create in time");
                FirstSightOutcome::failed
            }
        };
        if outcome == FirstSightOutcome::failed {
            lock(&gate).forget(&name);
        }
        state.metrics.count_first_sight(outcome);
    }
}
