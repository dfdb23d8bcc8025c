//! `make bench`: real Pod and Deployment AdmissionReviews over kept-alive TLS, sent by wrk to
//! `scangate webhook` holding 10,000 scans in its index, and the same load to a bare axum +
//! rustls server answering a fixed AdmissionReview, in the same run, on the same machine.
//! Prints requests/s and latency percentiles of both and their ratio.
//!
//! Settings (environment): BENCH_SECONDS (10), BENCH_CONNECTIONS (16), BENCH_SCANS (10000).

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use axum_server::tls_rustls::RustlsConfig;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// 10,000 ImageScans of distinct images across namespaces, plus the two the reviews hit.
fn write_scans(dir: &Path, count: u64) -> Result<()> {
    let mut out = std::fs::File::create(dir.join("scans.yaml"))?;
    for i in 0..count {
        let phase = if i % 7 == 0 { "Failed" } else { "Completed" };
        writeln!(
            out,
            "---\napiVersion: scanning.scangate.dev/v1beta1\nkind: ImageScan\nmetadata: {{name: scan-{i}, namespace: ns-{}}}\nspec: {{registry: {{image: \"registry.example/team-{}/app-{i}:1.{}\"}}}}\nstatus:\n  phase: {phase}\n  artifact: {{registry: {{image: \"registry.example/team-{}/app-{i}@sha256:{:064x}\"}}}}\n  scannedAt: \"2026-11-20T10:00:00Z\"",
            i % 50,
            i % 100,
            i % 10,
            i % 100,
            i
        )?;
    }
    std::fs::copy(
        repo().join("examples/scans/busybox.yaml"),
        dir.join("busybox.yaml"),
    )?;
    std::fs::copy(
        repo().join("examples/scans/alpine.yaml"),
        dir.join("alpine.yaml"),
    )?;
    Ok(())
}

/// The real captures, pointed at namespace `shop` and at the example scans' images.
fn write_reviews(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let pod_path =
        repo().join("tests/fixtures/admission/pod-create-privileged.admissionreview.json");
    let mut pod: serde_json::Value = serde_json::from_slice(&std::fs::read(pod_path)?)?;
    pod["request"]["namespace"] = "shop".into();
    pod["request"]["object"]["metadata"]["namespace"] = "shop".into();
    pod["request"]["object"]["spec"]["containers"][0]["image"] = "alpine:3.10".into();
    pod["request"]["object"]["spec"]["containers"][1]["image"] = "busybox:1.32.1".into();
    let deployment_path =
        repo().join("tests/fixtures/admission/deployment-create.admissionreview.json");
    let mut deployment: serde_json::Value =
        serde_json::from_slice(&std::fs::read(deployment_path)?)?;
    deployment["request"]["namespace"] = "shop".into();
    deployment["request"]["object"]["metadata"]["namespace"] = "shop".into();
    deployment["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["image"] =
        "alpine:3.10".into();
    let pod_file = dir.join("pod.json");
    let deployment_file = dir.join("deployment.json");
    std::fs::write(&pod_file, serde_json::to_vec(&pod)?)?;
    std::fs::write(&deployment_file, serde_json::to_vec(&deployment)?)?;
    Ok((pod_file, deployment_file))
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

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` asks for a list; this bench has no tests.
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let seconds = env_or("BENCH_SECONDS", 10);
    let connections = env_or("BENCH_CONNECTIONS", 16);
    let scans = env_or("BENCH_SCANS", 10_000);
    let dir = tempfile::tempdir()?;
    scangate::certs::generate(&["127.0.0.1".to_string()], 2)?.write(dir.path())?;
    let scans_dir = dir.path().join("scans");
    std::fs::create_dir_all(&scans_dir)?;
    write_scans(&scans_dir, scans)?;
    let (pod, deployment) = write_reviews(dir.path())?;
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
        "scangate webhook: {scans} scans loaded, listening after {:.1}s (pid {})",
        started.elapsed().as_secs_f64(),
        webhook.0.id()
    );
    let bare_port = free_port()?;
    let _bare = start_bare(&cert, &key, bare_port)?;
    wait_listening(bare_port)?;

    println!("wrk: 1 thread, {connections} kept-alive TLS connections, {seconds}s per run\n");
    println!("| target | review | requests/s | p50 ms | p99 ms | p99.9 ms | errors |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let mut ratios = vec![];
    for (name, body, path) in [
        ("Pod (2 containers, 5.3 KB)", &pod, "/validate/workloads"),
        ("Deployment", &deployment, "/validate/workloads"),
    ] {
        let ours = wrk(
            &format!("https://127.0.0.1:{port}{path}"),
            body,
            &script,
            seconds,
            connections,
        )?;
        let bare = wrk(
            &format!("https://127.0.0.1:{bare_port}{path}"),
            body,
            &script,
            seconds,
            connections,
        )?;
        for (target, f) in [("scangate", &ours), ("bare axum+rustls", &bare)] {
            println!(
                "| {target} | {name} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
                f.rps, f.p50_ms, f.p99_ms, f.p999_ms, f.errors
            );
        }
        ratios.push((name, ours.rps / bare.rps, ours.p99_ms / bare.p99_ms));
    }
    println!();
    for (name, throughput, p99) in ratios {
        println!("ratio scangate / bare, {name}: throughput {throughput:.2}, p99 latency {p99:.2}");
    }
    Ok(())
}
