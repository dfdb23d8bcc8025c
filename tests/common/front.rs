//! A tiny TCP round-robin front, as kube-proxy is for a Service: it forwards raw bytes (the
//! TLS stays end to end between the client and a replica) to the replicas it considers ready,
//! each new connection to the next one. Readiness comes from polling each replica's admin
//! `/readyz` every [`Front::POLL`], as the endpoints controller learns it from the kubelet's
//! probes: a replica that turns not-ready gets no new connection after at most one poll
//! interval plus one probe (about 100-200 ms on loopback). Connections already open stay on
//! their replica, as with kube-proxy, until either side closes them.
//!
//! Everything runs on std threads; dropping the front stops them and closes every connection.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::webhook::{Webhook, http_get};

/// Where one replica serves, and where its readiness is read.
#[derive(Clone, Debug)]
pub struct Backend {
    /// The HTTPS address, e.g. `127.0.0.1:8443`.
    pub addr: SocketAddr,
    /// The admin base URL, e.g. `http://127.0.0.1:8080`.
    pub admin: String,
}

impl Backend {
    pub fn of(webhook: &Webhook) -> Backend {
        Backend {
            addr: webhook
                .url
                .trim_start_matches("https://")
                .parse()
                .expect("the webhook's address"),
            admin: webhook.admin.clone(),
        }
    }
}

struct Slot {
    backend: Backend,
    ready: bool,
}

struct Shared {
    slots: Mutex<Vec<Slot>>,
    next: AtomicUsize,
    stop: AtomicBool,
    /// Connections accepted, per slot.
    connections: Mutex<Vec<usize>>,
    /// Connections refused because no replica was ready.
    refused: AtomicUsize,
    /// Both ends of every forwarded connection, to close them when the front stops.
    open: Mutex<Vec<TcpStream>>,
}

pub struct Front {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Front {
    /// How often each replica's `/readyz` is polled.
    pub const POLL: Duration = Duration::from_millis(100);

    /// Starts a front on a free loopback port. Replicas start not ready, until their first poll.
    pub fn start(backends: Vec<Backend>) -> Front {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the front");
        let addr = listener.local_addr().expect("front address");
        let count = backends.len();
        let shared = Arc::new(Shared {
            slots: Mutex::new(
                backends
                    .into_iter()
                    .map(|backend| Slot {
                        backend,
                        ready: false,
                    })
                    .collect(),
            ),
            next: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            connections: Mutex::new(vec![0; count]),
            refused: AtomicUsize::new(0),
            open: Mutex::new(vec![]),
        });
        let poller = {
            let shared = shared.clone();
            std::thread::spawn(move || poll(&shared))
        };
        let acceptor = {
            let shared = shared.clone();
            std::thread::spawn(move || accept(&listener, &shared))
        };
        let front = Front {
            addr,
            shared,
            threads: vec![poller, acceptor],
        };
        front.wait_until(|ready| ready.iter().all(|r| *r), "every replica ready");
        front
    }

    /// The URL clients use, e.g. in a webhook configuration.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Replaces replica `index` (a restarted process listens elsewhere); it gets connections
    /// once its `/readyz` says so.
    pub fn set_backend(&self, index: usize, backend: Backend) {
        lock(&self.shared.slots)[index] = Slot {
            backend,
            ready: false,
        };
    }

    /// Which replicas are ready, as last polled.
    pub fn ready(&self) -> Vec<bool> {
        lock(&self.shared.slots).iter().map(|s| s.ready).collect()
    }

    /// Connections forwarded to each replica slot so far.
    pub fn connections(&self) -> Vec<usize> {
        lock(&self.shared.connections).clone()
    }

    /// Connections closed at once because no replica was ready.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// Waits (at most 30 s) until the replicas' readiness satisfies `check`.
    pub fn wait_until(&self, check: impl Fn(&[bool]) -> bool, what: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !check(&self.ready()) {
            assert!(
                std::time::Instant::now() < deadline,
                "front: timed out waiting for {what} (ready: {:?})",
                self.ready()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn poll(shared: &Shared) {
    while !shared.stop.load(Ordering::Relaxed) {
        let backends: Vec<Backend> = lock(&shared.slots)
            .iter()
            .map(|s| s.backend.clone())
            .collect();
        for (i, backend) in backends.iter().enumerate() {
            let ready = http_get(&backend.admin, "/readyz").is_some_and(|(code, _)| code == 200);
            let mut slots = lock(&shared.slots);
            // Only if the slot was not replaced meanwhile.
            if let Some(slot) = slots.get_mut(i).filter(|s| s.backend.addr == backend.addr) {
                slot.ready = ready;
            }
        }
        std::thread::sleep(Front::POLL);
    }
}

/// The next ready replica, round robin.
fn pick(shared: &Shared) -> Option<(usize, SocketAddr)> {
    let slots = lock(&shared.slots);
    let n = slots.len();
    let start = shared.next.fetch_add(1, Ordering::Relaxed);
    (0..n)
        .map(|k| (start + k) % n)
        .find(|i| slots[*i].ready)
        .map(|i| (i, slots[i].backend.addr))
}

fn accept(listener: &TcpListener, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(client) = client else { continue };
        let Some((index, addr)) = pick(shared) else {
            // No endpoint: like kube-proxy's reject, the client sees the connection fail.
            shared.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let Ok(server) = TcpStream::connect(addr) else {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        lock(&shared.connections)[index] += 1;
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
            lock(&shared.open).extend([c, s]);
        }
        pipe(&client, &server);
        pipe(&server, &client);
    }
}

/// Copies `from` to `to` on a thread; at the end of `from`, half-closes `to`.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

impl Drop for Front {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Wake the acceptor up.
        let _ = TcpStream::connect(self.addr);
        for stream in lock(&self.shared.open).drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
