//! Phase Events, published off the reconcile. A reconcile hands its Event to a bounded queue and
//! goes on; one task publishes the queues at a limited rate (`--event-qps`, after a burst of
//! `--event-burst`), Warnings (Failed, Error) before the others. When a queue is full, as in a
//! burst of thousands of verdicts, an Event is dropped and counted
//! (`scangate_controller_events_dropped_total`): the scan's status is the record and an Event its
//! notice, so the apiserver's writes go to statuses first. client-go's event recorders do the same
//! (a queue of 1,000 that drops, a rate limit); the Warnings' own queue keeps a burst of
//! Pending notices from crowding out the Failed ones.
//!
//! Each Event is created as it comes, without kube's `Recorder`: that keeps every Event it
//! published for 6 minutes (to count repeats into a series) and scans them all at each
//! publish, which at 10,000 verdicts is 10,000 Events held and a write lock per scan.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

use super::metrics::{ApiResource, Metrics, Verb};
use crate::rate::{Rate, TokenBucket};

/// Events of each type waiting to be published at most; more are dropped (client-go's
/// `maxQueuedEvents`).
pub const QUEUE: usize = 1000;

/// An Event for an object, waiting in the queue.
struct Queued {
    event: Event,
    regarding: ObjectReference,
}

/// The sending side, held by the reconciles' context: its task ends with it (a term that ended
/// publishes nothing more, even what was queued).
pub struct Publisher {
    warnings: mpsc::Sender<Queued>,
    notices: mpsc::Sender<Queued>,
    dropped: Counter,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Publisher {
    /// A publisher whose task publishes on `client` at `rate`.
    pub fn spawn(
        client: kube::Client,
        reporter: Reporter,
        rate: Rate,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (mut publisher, queues) = Self::with_queues(QUEUE, metrics.events_dropped.clone());
        publisher.task = Some(tokio::spawn(publish(
            client, reporter, rate, queues, metrics,
        )));
        publisher
    }

    fn with_queues(capacity: usize, dropped: Counter) -> (Self, Queues) {
        let (warnings, warnings_received) = mpsc::channel(capacity);
        let (notices, notices_received) = mpsc::channel(capacity);
        let publisher = Publisher {
            warnings,
            notices,
            dropped,
            task: None,
        };
        let queues = Queues {
            warnings: warnings_received,
            notices: notices_received,
        };
        (publisher, queues)
    }

    /// Queues `event` about `regarding`, or drops it (counted) when its type's queue is full.
    pub fn send(&self, event: Event, regarding: ObjectReference) {
        let queue = match event.type_ {
            EventType::Warning => &self.warnings,
            EventType::Normal => &self.notices,
        };
        if queue.try_send(Queued { event, regarding }).is_err() {
            self.dropped.inc();
            tracing::debug!("event queue full: an event was dropped");
        }
    }
}

/// The receiving side: Warnings, and the others.
struct Queues {
    warnings: mpsc::Receiver<Queued>,
    notices: mpsc::Receiver<Queued>,
}

impl Queues {
    /// The next Event to publish: a Warning while there is one; `None` once both queues are
    /// closed and empty.
    async fn next(&mut self) -> Option<Queued> {
        tokio::select! {
            biased;
            Some(warning) = self.warnings.recv() => Some(warning),
            Some(notice) = self.notices.recv() => Some(notice),
            else => None,
        }
    }
}

async fn publish(
    client: kube::Client,
    reporter: Reporter,
    rate: Rate,
    mut queues: Queues,
    metrics: Arc<Metrics>,
) {
    let mut bucket = TokenBucket::full(rate, Instant::now());
    while let Some(Queued { event, regarding }) = queues.next().await {
        let wait = bucket.take_owed(rate, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let namespace = regarding.namespace.clone().unwrap_or_default();
        let api: Api<K8sEvent> = Api::namespaced(client.clone(), &namespace);
        let event = k8s_event(&event, regarding, &reporter, jiff::Timestamp::now());
        metrics.requested(Verb::create, ApiResource::events);
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            let regarding = event.regarding.as_ref();
            tracing::warn!(
                error = %e,
                namespace = %namespace,
                name = regarding.and_then(|r| r.name.as_deref()).unwrap_or_default(),
                reason = event.reason.as_deref().unwrap_or_default(),
                "cannot publish an event"
            );
        }
    }
}

/// The `events.k8s.io/v1` Event, named as kube's recorder names them (the object's name and the
/// time in hex nanoseconds).
fn k8s_event(
    event: &Event,
    regarding: ObjectReference,
    reporter: &Reporter,
    now: jiff::Timestamp,
) -> K8sEvent {
    let name = format!(
        "{}.{:x}",
        regarding.name.as_deref().unwrap_or(&reporter.controller),
        now.as_nanosecond()
    );
    K8sEvent {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: regarding.namespace.clone(),
            ..ObjectMeta::default()
        },
        action: Some(event.action.clone()),
        reason: Some(event.reason.clone()),
        note: event.note.clone(),
        type_: Some(
            match event.type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            }
            .into(),
        ),
        event_time: Some(MicroTime(now)),
        regarding: Some(regarding),
        related: event.secondary.clone(),
        reporting_controller: Some(reporter.controller.clone()),
        reporting_instance: Some(
            reporter
                .instance
                .clone()
                .unwrap_or_else(|| reporter.controller.clone()),
        ),
        ..K8sEvent::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(type_: EventType, reason: &str) -> Event {
        Event {
            type_,
            reason: reason.into(),
            note: Some(format!("The scan is {reason}")),
            action: "Reconcile".into(),
            secondary: None,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let dropped = Counter::default();
        let (publisher, mut queues) = Publisher::with_queues(2, dropped.clone());
        for _ in 0..5 {
            publisher.send(
                event(EventType::Warning, "Failed"),
                ObjectReference::default(),
            );
        }
        assert_eq!(dropped.get(), 3);
        assert!(queues.warnings.try_recv().is_ok());
        assert!(queues.warnings.try_recv().is_ok());
        assert!(queues.warnings.try_recv().is_err());
        // Room again: queued, not dropped.
        publisher.send(
            event(EventType::Warning, "Failed"),
            ObjectReference::default(),
        );
        assert_eq!(dropped.get(), 3);
        // The other type's queue has its own room.
        publisher.send(
            event(EventType::Normal, "Pending"),
            ObjectReference::default(),
        );
        publisher.send(
            event(EventType::Normal, "Pending"),
            ObjectReference::default(),
        );
        assert_eq!(dropped.get(), 3);
    }

    #[tokio::test]
    async fn warnings_go_first_then_the_rest_in_order() {
        let (publisher, mut queues) = Publisher::with_queues(10, Counter::default());
        for reason in ["Pending", "Scanning", "Failed", "Completed", "Error"] {
            let type_ = match reason {
                "Failed" | "Error" => EventType::Warning,
                _ => EventType::Normal,
            };
            publisher.send(event(type_, reason), ObjectReference::default());
        }
        drop(publisher);
        let mut order = vec![];
        while let Some(queued) = queues.next().await {
            order.push(queued.event.reason);
        }
        assert_eq!(
            order,
            ["Failed", "Error", "Pending", "Scanning", "Completed"]
        );
    }

    #[test]
    fn events_are_named_and_attributed_as_kube_names_them() {
        let regarding = ObjectReference {
            api_version: Some("scanning.scangate.dev/v1beta1".into()),
            kind: Some("ImageScan".into()),
            name: Some("busybox".into()),
            namespace: Some("team-a".into()),
            ..ObjectReference::default()
        };
        let reporter = Reporter {
            controller: "scangate-controller".into(),
            instance: Some("pod-1".into()),
        };
        let now = jiff::Timestamp::from_nanosecond(0x1234).unwrap_or_else(|e| panic!("{e}"));
        let event = Event {
            type_: EventType::Warning,
            reason: "Failed".into(),
            note: Some("The scan is Failed".into()),
            action: "Reconcile".into(),
            secondary: None,
        };
        let k8s = k8s_event(&event, regarding.clone(), &reporter, now);
        assert_eq!(k8s.metadata.name.as_deref(), Some("busybox.1234"));
        assert_eq!(k8s.metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(k8s.type_.as_deref(), Some("Warning"));
        assert_eq!(k8s.reason.as_deref(), Some("Failed"));
        assert_eq!(k8s.note.as_deref(), Some("The scan is Failed"));
        assert_eq!(k8s.regarding, Some(regarding));
        assert_eq!(
            k8s.reporting_controller.as_deref(),
            Some("scangate-controller")
        );
        assert_eq!(k8s.reporting_instance.as_deref(), Some("pod-1"));
        assert_eq!(k8s.series, None);
    }
}
