//! A control plane of a test's own (tests/controlplane), for faults that would disturb the
//! shared one: its own directory and ports, restarted on the same ports and data (etcd and
//! PKI kept, so clients' kubeconfigs stay valid). Stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::webhook::free_port;

pub struct ControlPlane {
    dir: tempfile::TempDir,
    ports: [u16; 3],
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

impl ControlPlane {
    /// Starts a new cluster with the binaries of the shared one (`make controlplane-build`).
    pub fn start() -> ControlPlane {
        let shared = std::env::var_os("SCANGATE_CONTROLPLANE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join("target/controlplane"));
        let dir = tempfile::Builder::new()
            .prefix("controlplane-")
            .tempdir_in(repo().join("target"))
            .expect("control plane directory");
        std::os::unix::fs::symlink(shared.join("bin"), dir.path().join("bin"))
            .expect("link the control plane binaries");
        let plane = ControlPlane {
            dir,
            ports: [free_port(), free_port(), free_port()],
        };
        plane.run("start.sh");
        plane
    }

    /// The state directory (kubeconfig, logs, data/).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops etcd, the apiserver and the controller-manager (SIGTERM, as a node shutdown).
    pub fn stop(&self) {
        self.run("stop.sh");
    }

    /// Starts them again on the same ports and data; returns when the apiserver is ready.
    pub fn restart(&self) {
        self.run("start.sh");
    }

    fn run(&self, script: &str) {
        let [apiserver, etcd_client, etcd_peer] = self.ports.map(|p| p.to_string());
        let out = Command::new("bash")
            .arg(repo().join("tests/controlplane").join(script))
            .env("CONTROLPLANE_DIR", self.dir.path())
            .env("CONTROLPLANE_APISERVER_PORT", apiserver)
            .env("CONTROLPLANE_ETCD_CLIENT_PORT", etcd_client)
            .env("CONTROLPLANE_ETCD_PEER_PORT", etcd_peer)
            .env("CONTROLPLANE_KEEP_DATA", "1")
            .output()
            .expect("run the control plane script");
        assert!(
            out.status.success(),
            "{script} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("tests/controlplane/stop.sh"))
            .arg("--quiet")
            .env("CONTROLPLANE_DIR", self.dir.path())
            .output();
    }
}
