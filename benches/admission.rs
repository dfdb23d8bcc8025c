//! `make bench`: real Pod and Deployment AdmissionReviews over kept-alive TLS, sent to
//! `scangate webhook` holding 10,000 scans in its index, to a bare axum + rustls server
//! answering a fixed AdmissionReview, and to an OPA server evaluating the equivalent Rego
//! decision (benches/opa/admission.rego) over the same scans as OPA data, in the same run, on
//! the same machine. Each target is loaded twice: by wrk as fast as it answers (requests/s and
//! latency percentiles), and by a fixed-rate loader here (wrk2-style: latency at a constant
//! request rate, counted from when each request was due if the connection was still busy).
//! Prints both tables and the ratios to the targets of issue 11; asserts no timing.
//!
//! Settings (environment): BENCH_SECONDS (10), BENCH_CONNECTIONS (16), BENCH_SCANS (10000),
//! BENCH_RATE (2000 requests/s for the fixed-rate runs), BENCH_OPA (the `opa` binary; `make
//! bench` builds it into target/tools/opa; without it the OPA rows are left out).

#[path = "common/admission_data.rs"]
mod admission_data;
#[path = "common/load.rs"]
mod load;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use admission_data::{OPA_POLICY, Result, opa_data, repo, reviews, write_scans};
use scangate::admission::config::AdmissionConfig;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A request body, as a file for wrk and in memory for the fixed-rate loader.
struct Body {
    file: PathBuf,
    bytes: Vec<u8>,
}

fn body(dir: &Path, name: &str, value: &Value) -> Result<Body> {
    let bytes = serde_json::to_vec(value)?;
    let file = dir.join(name);
    std::fs::write(&file, &bytes)?;
    Ok(Body { file, bytes })
}

const WRK_SCRIPT: &str = r#"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"#;

struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    errors: u64,
}

fn wrk(url: &str, body: &Path, script: &Path, seconds: u64, connections: u64) -> Result<Figures> {
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .env("BENCH_BODY", body)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .ok_or_else(|| {
            format!(
                "wrk printed no result: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    let n: Vec<f64> = line[7..]
        .split(' ')
        .filter_map(|v| v.parse().ok())
        .collect();
    if n.len() != 6 {
        return Err(format!("unexpected wrk result line {line:?}").into());
    }
    Ok(Figures {
        rps: n[0] / (n[1] / 1e6),
        p50_ms: n[2] / 1000.0,
        p99_ms: n[3] / 1000.0,
        p999_ms: n[4] / 1000.0,
        errors: n[5] as u64,
    })
}

/// The baseline: a bare axum + rustls server answering every POST with a fixed review.
fn start_bare(cert: &Path, key: &Path, port: u16) -> Result<std::thread::JoinHandle<()>> {
    let (cert, key) = (cert.to_path_buf(), key.to_path_buf());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    Ok(std::thread::spawn(move || {
        runtime.block_on(async move {
            let fixed = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"fixed","allowed":true,"status":{}}}"#;
            let app = Router::new().fallback(post(move || async move {
                ([("content-type", "application/json")], fixed)
            }));
            let tls = match RustlsConfig::from_pem_file(cert, key).await {
                Ok(tls) => tls,
                Err(e) => return eprintln!("bare server: {e}"),
            };
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            if let Err(e) = axum_server::bind_rustls(addr, tls).serve(app.into_make_service()).await {
                eprintln!("bare server: {e}");
            }
        })
    }))
}

fn wait_listening(port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("nothing listening on {port} after 60s").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The OPA peer: `opa run --server` with TLS on loopback, the Rego of benches/opa and the
/// scans as data. Decision logs, bundles and status are off unless configured, which they
/// are not here.
fn start_opa(opa: &Path, dir: &Path, data: &Value, port: u16) -> Result<Killed> {
    let data_file = dir.join("data.json");
    std::fs::write(&data_file, serde_json::to_vec(data)?)?;
    let child = Command::new(opa)
        .args(["run", "--server", "--skip-version-check"])
        .args(["--log-level", "error"])
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .arg("--tls-cert-file")
        .arg(dir.join("tls.crt"))
        .arg("--tls-private-key-file")
        .arg(dir.join("tls.key"))
        .arg(&data_file)
        .arg(repo().join(OPA_POLICY))
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run {} (`make bench` builds it): {e}", opa.display()))?;
    Ok(Killed(child))
}

/// One target of the benchmark.
struct Target {
    name: &'static str,
    port: u16,
    path: &'static str,
    /// The Pod and Deployment review bodies, in what this target's API takes.
    bodies: [Body; 2],
    /// Where the answer's `allowed` is, to check the decision (`None`: not a decision).
    allowed_at: Option<&'static str>,
}

const REVIEWS: [&str; 2] = ["Pod (2 containers, 5.3 KB)", "Deployment"];

/// A kept-alive HTTP/1.1 connection over TLS, sending one POST at a time.
struct Connection {
    stream: BufReader<TlsStream<tokio::net::TcpStream>>,
    head: Vec<u8>,
}

impl Connection {
    async fn open(tls: &TlsConnector, port: u16, path: &str, body_len: usize) -> Result<Self> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        tcp.set_nodelay(true)?;
        let server = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
        let stream = BufReader::new(tls.connect(server, tcp).await?);
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n"
        )
        .into_bytes();
        Ok(Connection { stream, head })
    }

    /// Sends the body and reads the answer: its status code and body.
    async fn post(&mut self, body: &[u8]) -> Result<(u16, Vec<u8>)> {
        let mut request = Vec::with_capacity(self.head.len() + body.len());
        request.extend_from_slice(&self.head);
        request.extend_from_slice(body);
        let stream = self.stream.get_mut();
        stream.write_all(&request).await?;
        stream.flush().await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("not an HTTP status line: {line:?}"))?;
        let (mut length, mut chunked) = (None, false);
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err("the connection closed in the response headers".into());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = Some(value.parse::<usize>()?);
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.eq_ignore_ascii_case("chunked");
                }
            }
        }
        let mut answer = vec![];
        if chunked {
            loop {
                line.clear();
                self.stream.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim_end(), 16)?;
                let start = answer.len();
                answer.resize(start + size + 2, 0);
                self.stream.read_exact(&mut answer[start..]).await?;
                answer.truncate(start + size);
                if size == 0 {
                    break;
                }
            }
        } else {
            answer.resize(length.unwrap_or(0), 0);
            self.stream.read_exact(&mut answer).await?;
        }
        Ok((status, answer))
    }
}

fn tls_connector(ca: &Path) -> Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Whether the target allowed the review (its answer's `allowed`), `None` for the bare
/// server, which decides nothing.
async fn decision(tls: &TlsConnector, target: &Target, review: usize) -> Result<Option<bool>> {
    let body = &target.bodies[review].bytes;
    let mut connection = Connection::open(tls, target.port, target.path, body.len()).await?;
    let (status, answer) = connection.post(body).await?;
    let answer: Value = serde_json::from_slice(&answer)?;
    let Some(pointer) = target.allowed_at else {
        return Ok(None);
    };
    match (status, answer.pointer(pointer).and_then(Value::as_bool)) {
        (200, Some(allowed)) => Ok(Some(allowed)),
        _ => Err(format!("{}: no decision (HTTP {status}): {answer}", target.name).into()),
    }
}

/// wrk2-style: `rate` requests/s for `seconds`, spread over `connections` kept-alive TLS
/// connections, each request due at a fixed time. A request's latency counts from when it was
/// sent, or from when it was due if its connection was still waiting for the answer before
/// then (so a slow answer also counts against the requests queued behind it).
async fn fixed_rate(
    tls: &TlsConnector,
    port: u16,
    path: &str,
    body: &[u8],
    rate: u64,
    seconds: u64,
    connections: u64,
) -> Result<Figures> {
    let total = rate * seconds;
    let mut opened = vec![];
    for _ in 0..connections {
        opened.push(Connection::open(tls, port, path, body.len()).await?);
    }
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let body: Arc<[u8]> = body.into();
    let mut tasks = vec![];
    for (k, mut connection) in opened.into_iter().enumerate() {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (vec![], 0u64);
            let mut free_at = start;
            for i in (k as u64..total).step_by(connections as usize) {
                let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
                tokio::time::sleep_until(due).await;
                let sent = tokio::time::Instant::now();
                let from = if free_at > due { due } else { sent };
                match connection.post(&body).await {
                    Ok((200, _)) => {}
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
                free_at = tokio::time::Instant::now();
                latencies.push(free_at - from);
            }
            (latencies, errors, free_at)
        }));
    }
    let (mut latencies, mut errors, mut end) = (vec![], 0, start);
    for task in tasks {
        let (l, e, done) = task.await?;
        latencies.extend(l);
        errors += e;
        end = end.max(done);
    }
    latencies.sort_unstable();
    let percentile = |p: f64| {
        let rank = ((p / 100.0 * latencies.len() as f64).ceil() as usize).max(1);
        latencies
            .get(rank - 1)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    Ok(Figures {
        rps: latencies.len() as f64 / (end - start).as_secs_f64(),
        p50_ms: percentile(50.0),
        p99_ms: percentile(99.0),
        p999_ms: percentile(99.9),
        errors,
    })
}

fn row(target: &str, review: &str, f: &Figures) {
    println!(
        "| {target} | {review} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
        f.rps, f.p50_ms, f.p99_ms, f.p999_ms, f.errors
    );
}

/// A ratio and whether it meets issue 11's target.
fn ratio(what: &str, value: f64, target: &str, met: bool) {
    let verdict = if met { "met" } else { "NOT met" };
    println!("{what}: {value:.2} (target {target}: {verdict})");
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` asks for a list; this bench has no tests.
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let seconds = env_or("BENCH_SECONDS", 10);
    let connections = env_or("BENCH_CONNECTIONS", 16);
    let scans = env_or("BENCH_SCANS", 10_000);
    let rate = env_or("BENCH_RATE", 2_000);
    let opa = std::env::var_os("BENCH_OPA").map(PathBuf::from);
    // Figures taken while anything else runs are noise: say how quiet the machine was.
    println!(
        "load average (1, 5, 15 min) when the bench started: {}",
        load::load_averages().join(" ")
    );
    let dir = tempfile::tempdir()?;
    scangate::cmd::certs::generate(&["127.0.0.1".to_string()], 2)?.write(dir.path())?;
    let scans_dir = dir.path().join("scans");
    std::fs::create_dir_all(&scans_dir)?;
    write_scans(&scans_dir, scans)?;
    let (pod, deployment) = reviews()?;
    let script = dir.path().join("bench.lua");
    std::fs::write(&script, WRK_SCRIPT)?;
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));

    let port = free_port()?;
    let admin = free_port()?;
    let started = Instant::now();
    let webhook = Killed(
        Command::new(env!("CARGO_BIN_EXE_scangate"))
            .args(["webhook", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .arg("--scans-dir")
            .arg(&scans_dir)
            .env("SCANGATE_LOG", "warn,rustls=error")
            .stderr(Stdio::inherit())
            .spawn()?,
    );
    wait_listening(port)?;
    println!(
        "scangate webhook (no --config): {scans} scans loaded, listening after {:.1}s (pid {})",
        started.elapsed().as_secs_f64(),
        webhook.0.id()
    );
    let bare_port = free_port()?;
    let _bare = start_bare(&cert, &key, bare_port)?;
    wait_listening(bare_port)?;

    let mut targets = vec![
        Target {
            name: "scangate",
            port,
            path: "/validate/workloads",
            bodies: [
                body(dir.path(), "pod.json", &pod)?,
                body(dir.path(), "deployment.json", &deployment)?,
            ],
            allowed_at: Some("/response/allowed"),
        },
        Target {
            name: "bare axum+rustls",
            port: bare_port,
            path: "/validate/workloads",
            bodies: [
                body(dir.path(), "pod.json", &pod)?,
                body(dir.path(), "deployment.json", &deployment)?,
            ],
            allowed_at: None,
        },
    ];
    let _opa = match &opa {
        Some(opa) => {
            let opa_port = free_port()?;
            let started = Instant::now();
            let server = start_opa(
                opa,
                dir.path(),
                &opa_data(&scans_dir, &AdmissionConfig::default())?,
                opa_port,
            )?;
            wait_listening(opa_port)?;
            println!(
                "OPA server: the same scans as data, listening after {:.1}s (pid {})",
                started.elapsed().as_secs_f64(),
                server.0.id()
            );
            targets.push(Target {
                name: "OPA",
                port: opa_port,
                path: "/v1/data/scangate/admission/review",
                bodies: [
                    body(dir.path(), "opa-pod.json", &json!({ "input": pod }))?,
                    body(
                        dir.path(),
                        "opa-deployment.json",
                        &json!({ "input": deployment }),
                    )?,
                ],
                allowed_at: Some("/result/response/allowed"),
            });
            Some(server)
        }
        None => {
            println!("BENCH_OPA is not set: the OPA rows are left out (`make bench` builds OPA)");
            None
        }
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let tls = tls_connector(&dir.path().join("ca.crt"))?;
    for target in &targets {
        let allowed = runtime.block_on(async {
            Ok::<_, Box<dyn std::error::Error>>([
                decision(&tls, target, 0).await?,
                decision(&tls, target, 1).await?,
            ])
        })?;
        if let [Some(pod), Some(deployment)] = allowed {
            if pod || !deployment {
                return Err(format!(
                    "{} decided the Pod review allowed={pod}, the Deployment review allowed={deployment}; expected a denial and an admission",
                    target.name
                )
                .into());
            }
            println!(
                "{}: Pod review denied, Deployment review admitted",
                target.name
            );
        }
    }

    println!(
        "\nAs fast as answered: wrk, 1 thread, {connections} kept-alive TLS connections, {seconds}s per run\n"
    );
    println!("| target | review | requests/s | p50 ms | p99 ms | p99.9 ms | errors |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let mut fastest: Vec<[Figures; 2]> = vec![];
    for target in &targets {
        let mut figures = vec![];
        for (review, body) in REVIEWS.iter().zip(&target.bodies) {
            let url = format!("https://127.0.0.1:{}{}", target.port, target.path);
            let f = wrk(&url, &body.file, &script, seconds, connections)?;
            row(target.name, review, &f);
            figures.push(f);
        }
        fastest.push(figures.try_into().map_err(|_| "two reviews")?);
    }

    println!(
        "\nAt a fixed {rate} requests/s: {connections} kept-alive TLS connections, {seconds}s per run\n"
    );
    println!("| target | review | requests/s | p50 ms | p99 ms | p99.9 ms | errors |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let mut fixed: Vec<[Figures; 2]> = vec![];
    for target in &targets {
        let mut figures = vec![];
        for (review, body) in REVIEWS.iter().zip(&target.bodies) {
            let f = runtime.block_on(fixed_rate(
                &tls,
                target.port,
                target.path,
                &body.bytes,
                rate,
                seconds,
                connections,
            ))?;
            row(target.name, review, &f);
            figures.push(f);
        }
        fixed.push(figures.try_into().map_err(|_| "two reviews")?);
    }

    println!();
    for (i, review) in REVIEWS.iter().enumerate() {
        let (ours, bare) = (&fastest[0][i], &fastest[1][i]);
        ratio(
            &format!("{review}: requests/s scangate / bare"),
            ours.rps / bare.rps,
            ">= 0.6",
            ours.rps >= 0.6 * bare.rps,
        );
        if let Some(opa) = fastest.get(2) {
            ratio(
                &format!("{review}: requests/s scangate / OPA"),
                ours.rps / opa[i].rps,
                ">= 10",
                ours.rps >= 10.0 * opa[i].rps,
            );
        }
        let (ours, bare) = (&fixed[0][i], &fixed[1][i]);
        ratio(
            &format!("{review}: p99 at {rate} requests/s scangate / bare"),
            ours.p99_ms / bare.p99_ms,
            "<= 1.5",
            ours.p99_ms <= 1.5 * bare.p99_ms,
        );
        if let Some(opa) = fixed.get(2) {
            println!(
                "{review}: p99 at {rate} requests/s OPA / scangate: {:.1} (OPA answered {:.0} requests/s of the {rate} asked)",
                opa[i].p99_ms / ours.p99_ms,
                opa[i].rps
            );
        }
    }
    Ok(())
}
