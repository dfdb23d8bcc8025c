//! What the cluster benches share: the control plane they measure against (kubectl, the install
//! of deploy/, impersonation, the apiserver's request counts) and the binary they measure.
#![allow(dead_code)] // each bench uses part of it

pub mod load;
#[path = "../../tests/common/net.rs"]
pub mod net;
#[path = "../../tests/common/prom.rs"]
pub mod prom;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The namespace deploy/ installs scangate in.
pub const SYSTEM: &str = "scangate-system";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A numeric setting from the environment, else `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `apiserver_request_total` summed by [verb, resource, subresource].
pub type Requests = BTreeMap<Vec<String>, f64>;

/// The control plane a bench runs against (`BENCH_CONTROLPLANE_DIR`, else
/// target/bench-controlplane, which the bench's make target starts).
pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
}

impl Cluster {
    /// The control plane, once it answers; `target` names the make target that starts it.
    pub fn reachable(target: &str) -> Result<Cluster> {
        let dir = std::env::var_os("BENCH_CONTROLPLANE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join("target/bench-controlplane"));
        let cluster = Cluster {
            kubeconfig: dir.join("kubeconfig"),
            kubectl: dir.join("bin/kubectl"),
        };
        cluster
            .kubectl(&["get", "--raw", "/readyz"], None)
            .map_err(|e| {
                format!(
                    "no control plane at {} (make {target} starts one): {e}",
                    dir.display()
                )
            })?;
        Ok(cluster)
    }

    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        use std::io::Write as _;
        let mut child = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .current_dir(repo())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(format!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The CRDs (PolicyReport's included), scangate's namespace, ServiceAccounts and RBAC, as
    /// deploy/ installs them.
    pub fn install(&self) -> Result<()> {
        let ssa = ["apply", "--server-side", "--force-conflicts"];
        self.kubectl(&[&ssa[..], &["-k", "deploy/crds/"]].concat(), None)?;
        self.kubectl(
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd/imagescans.scanning.scangate.dev",
                "crd/scanpolicies.scanning.scangate.dev",
                "crd/policyreports.wgpolicyk8s.io",
            ],
            None,
        )?;
        for file in ["deploy/rbac/namespace.yaml", "deploy/rbac/rbac.yaml"] {
            self.kubectl(&[&ssa[..], &["-f", file]].concat(), None)?;
        }
        Ok(())
    }

    /// A kubeconfig acting as ServiceAccount scangate-system/`service_account`.
    pub fn kubeconfig_as(&self, service_account: &str) -> Result<PathBuf> {
        let path = self
            .kubeconfig
            .with_file_name(format!("kubeconfig-as-{service_account}"));
        let mut config: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&self.kubeconfig)?)?;
        let user = format!("system:serviceaccount:{SYSTEM}:{service_account}");
        if let Some(users) = config.get_mut("users").and_then(|u| u.as_sequence_mut()) {
            for entry in users {
                if let Some(map) = entry.get_mut("user").and_then(|u| u.as_mapping_mut()) {
                    map.insert("as".into(), user.clone().into());
                }
            }
        }
        std::fs::write(&path, serde_yaml::to_string(&config)?)?;
        Ok(path)
    }

    /// The apiserver's request counts now.
    pub fn requests(&self) -> Result<Requests> {
        let text = self.kubectl(&["get", "--raw", "/metrics"], None)?;
        Ok(prom::sums_by(
            &text,
            "apiserver_request_total",
            &["verb", "resource", "subresource"],
        ))
    }

    /// The control plane process's CPU seconds so far (its `process_cpu_seconds_total`: the
    /// apiserver with its etcd, which run in one process here); `None` when it cannot be read.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let text = self.kubectl(&["get", "--raw", "/metrics"], None).ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix("process_cpu_seconds_total "))
            .and_then(|value| value.trim().parse().ok())
    }

    /// A kube client acting as the admin.
    pub async fn client(&self) -> Result<kube::Client> {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await?;
        Ok(kube::Client::try_from(config)?)
    }
}

/// The scangate binary whose controller is measured, and how to name it: BENCH_SCANGATE (e.g.
/// the static release binary of `make release`), else the one cargo built with the bench.
pub fn scangate_binary() -> (PathBuf, String) {
    match std::env::var_os("BENCH_SCANGATE") {
        Some(path) => {
            let name = format!("{}", Path::new(&path).display());
            (PathBuf::from(path), name)
        }
        None => {
            let profile = if cfg!(debug_assertions) {
                "dev build"
            } else {
                "release build"
            };
            (env!("CARGO_BIN_EXE_scangate").into(), profile.to_string())
        }
    }
}

/// Clock ticks per second of /proc/PID/stat times (USER_HZ, 100 on Linux).
const CLOCK_TICKS: f64 = 100.0;

/// A field of /proc/PID/status in KiB (VmRSS, VmHWM); 0 when it cannot be read.
pub fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// CPU time used so far, in seconds: the process's own (user + system) and its children's (the
/// policy workers: those reaped, and those still running, which live as long as they keep
/// within their limits), from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> (f64, f64) {
    let (own, reaped) = stat_seconds(pid);
    let running: f64 = children(pid).into_iter().map(|c| stat_seconds(c).0).sum();
    (own, reaped + running)
}

/// The process's own CPU seconds and its reaped children's, from /proc/PID/stat.
fn stat_seconds(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces), from field 3 (state).
    let fields: Vec<f64> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split(' ').map(|f| f.parse().unwrap_or(0.0)).collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i - 3).copied().unwrap_or(0.0) / CLOCK_TICKS;
    (ticks(14) + ticks(15), ticks(16) + ticks(17))
}

/// The running children of a process, from each of its threads' /proc/PID/task/TID/children.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return vec![];
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Starts the measured `scangate controller` as its ServiceAccount, of `namespace` or of every
/// namespace, logging to `log`: the process and its admin address (`127.0.0.1:PORT`).
pub fn spawn_controller(
    cluster: &Cluster,
    namespace: Option<&str>,
    log: &Path,
) -> Result<(std::process::Child, String)> {
    let admin = format!("127.0.0.1:{}", net::free_port());
    let mut command = Command::new(scangate_binary().0);
    command.args(["controller", "--admin-listen", &admin]);
    if let Some(ns) = namespace {
        command.args(["--namespace", ns]);
    }
    let child = command
        // The scanned images are on no reachable registry: scan the tags as written.
        .arg("--resolve-tags=false")
        .arg("--leader-election=false")
        .env("KUBECONFIG", cluster.kubeconfig_as("scangate-controller")?)
        .env("SCANGATE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()?;
    Ok((child, admin))
}
