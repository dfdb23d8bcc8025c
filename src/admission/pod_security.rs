//! The Kubernetes Pod Security Standards, levels `baseline` and `restricted`, as of Kubernetes
//! v1.35, checked on a PodSpec: every violation, with the field's path and the control.
//!
//! The controls and their allowed values follow the published standard and the apiserver's own
//! implementation (`k8s.io/pod-security-admission` v0.35): where `restricted` tightens a
//! `baseline` control (capabilities, seccomp, `/proc` mount type, volume types over hostPath), a
//! `restricted` check reports the field once, under the restricted control. Pod annotations
//! (the deprecated AppArmor and seccomp annotations) are not part of a PodSpec and are not
//! checked here.

use std::fmt;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EphemeralContainer, Lifecycle, LifecycleHandler, PodSpec, Probe,
    SecurityContext, Volume,
};
use serde::{Deserialize, Serialize};

/// A Pod Security Standards level.
#[derive(
    Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, Hash, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Prevents known privilege escalations.
    Baseline,
    /// Baseline plus the current pod hardening practices.
    #[default]
    Restricted,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A control of the standard. Where `restricted` tightens a `baseline` control, the two are
/// separate variants with the same name and different levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Control {
    HostProcess,
    HostNamespaces,
    PrivilegedContainers,
    Capabilities,
    HostPathVolumes,
    HostPorts,
    HostProbes,
    AppArmor,
    SeLinux,
    ProcMount,
    Seccomp,
    Sysctls,
    VolumeTypes,
    PrivilegeEscalation,
    RunningAsNonRoot,
    RunningAsNonRootUser,
    SeccompRestricted,
    CapabilitiesRestricted,
    ProcMountRestricted,
}

impl Control {
    /// The control's name in the standard.
    pub fn name(self) -> &'static str {
        match self {
            Control::HostProcess => "HostProcess",
            Control::HostNamespaces => "Host Namespaces",
            Control::PrivilegedContainers => "Privileged Containers",
            Control::Capabilities | Control::CapabilitiesRestricted => "Capabilities",
            Control::HostPathVolumes => "HostPath Volumes",
            Control::HostPorts => "Host Ports",
            Control::HostProbes => "Host Probes / Lifecycle Hooks",
            Control::AppArmor => "AppArmor",
            Control::SeLinux => "SELinux",
            Control::ProcMount | Control::ProcMountRestricted => "/proc Mount Type",
            Control::Seccomp | Control::SeccompRestricted => "Seccomp",
            Control::Sysctls => "Sysctls",
            Control::VolumeTypes => "Volume Types",
            Control::PrivilegeEscalation => "Privilege Escalation",
            Control::RunningAsNonRoot => "Running as Non-root",
            Control::RunningAsNonRootUser => "Running as Non-root user",
        }
    }

    /// The lowest level that has the control.
    pub fn level(self) -> Level {
        match self {
            Control::VolumeTypes
            | Control::PrivilegeEscalation
            | Control::RunningAsNonRoot
            | Control::RunningAsNonRootUser
            | Control::SeccompRestricted
            | Control::CapabilitiesRestricted
            | Control::ProcMountRestricted => Level::Restricted,
            _ => Level::Baseline,
        }
    }
}

/// One field that breaks one control.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The field, e.g. `spec.template.containers[1].securityContext.capabilities.add`.
    pub path: String,
    pub control: Control,
    /// What the control requires of the field, and what it found.
    pub requirement: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: control {:?} ({}) {}",
            self.path,
            self.control.name(),
            self.control.level(),
            self.requirement
        )
    }
}

/// Capabilities `baseline` allows adding: the container runtimes' default set.
const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The "safe" sysctls (namespaced and isolated from other pods), as of v1.32.
const SAFE_SYSCTLS: [&str; 12] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// SELinux types `baseline` allows (besides unset).
const SELINUX_TYPES: [&str; 4] = [
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// The seccomp and AppArmor profile types both levels allow.
const PROFILE_TYPES: [&str; 2] = ["RuntimeDefault", "Localhost"];

/// A container of any of the three lists, as the checks see it.
struct ContainerView<'a> {
    path: String,
    security: Option<&'a SecurityContext>,
    ports: &'a [ContainerPort],
    probes: [(&'static str, Option<&'a Probe>); 3],
    lifecycle: Option<&'a Lifecycle>,
}

fn view<'a>(
    path: String,
    security: Option<&'a SecurityContext>,
    ports: Option<&'a Vec<ContainerPort>>,
    probes: [(&'static str, Option<&'a Probe>); 3],
    lifecycle: Option<&'a Lifecycle>,
) -> ContainerView<'a> {
    ContainerView {
        path,
        security,
        ports: ports.map(Vec::as_slice).unwrap_or_default(),
        probes,
        lifecycle,
    }
}

/// A setting at the pod level (`pod`), then in each container, with where each lives.
fn at_every_level<'a, T: 'a>(
    path: &'a str,
    pod: Option<T>,
    all: &'a [ContainerView<'a>],
    container: impl Fn(&'a SecurityContext) -> Option<T> + 'a,
) -> impl Iterator<Item = (&'a str, Option<T>)> + 'a {
    std::iter::once((path, pod)).chain(
        all.iter()
            .map(move |c| (c.path.as_str(), c.security.and_then(&container))),
    )
}

fn container_view<'a>(path: String, c: &'a Container) -> ContainerView<'a> {
    let probes = [
        ("livenessProbe", c.liveness_probe.as_ref()),
        ("readinessProbe", c.readiness_probe.as_ref()),
        ("startupProbe", c.startup_probe.as_ref()),
    ];
    view(
        path,
        c.security_context.as_ref(),
        c.ports.as_ref(),
        probes,
        c.lifecycle.as_ref(),
    )
}

fn ephemeral_view<'a>(path: String, c: &'a EphemeralContainer) -> ContainerView<'a> {
    let probes = [
        ("livenessProbe", c.liveness_probe.as_ref()),
        ("readinessProbe", c.readiness_probe.as_ref()),
        ("startupProbe", c.startup_probe.as_ref()),
    ];
    view(
        path,
        c.security_context.as_ref(),
        c.ports.as_ref(),
        probes,
        c.lifecycle.as_ref(),
    )
}

/// Every container: init containers, containers, ephemeral containers.
fn containers<'a>(pod: &'a PodSpec, path: &str) -> Vec<ContainerView<'a>> {
    let init = pod.init_containers.iter().flatten().enumerate();
    let init = init.map(|(i, c)| container_view(format!("{path}.initContainers[{i}]"), c));
    let main = pod.containers.iter().enumerate();
    let main = main.map(|(i, c)| container_view(format!("{path}.containers[{i}]"), c));
    let ephemeral = pod.ephemeral_containers.iter().flatten().enumerate();
    let ephemeral =
        ephemeral.map(|(i, c)| ephemeral_view(format!("{path}.ephemeralContainers[{i}]"), c));
    init.chain(main).chain(ephemeral).collect()
}

/// Collects violations.
struct Found(Vec<Violation>);

impl Found {
    fn add(&mut self, path: String, control: Control, requirement: impl Into<String>) {
        self.0.push(Violation {
            path,
            control,
            requirement: requirement.into(),
        });
    }
}

/// `values` separated by commas.
fn listed(values: &[&str]) -> String {
    values.join(", ")
}

/// Every violation of `level` in `pod`, whose fields are under `path` (e.g. `spec.template`).
pub fn check(pod: &PodSpec, level: Level, path: &str) -> Vec<Violation> {
    let mut found = Found(vec![]);
    let all = containers(pod, path);
    baseline(pod, level, path, &all, &mut found);
    if level == Level::Restricted {
        restricted(pod, path, &all, &mut found);
    }
    found.0
}

/// A pod in a user namespace (`hostUsers: false`): root in it is not root on the node.
fn user_namespaced(pod: &PodSpec) -> bool {
    pod.host_users == Some(false)
}

fn windows(pod: &PodSpec) -> bool {
    pod.os.as_ref().is_some_and(|os| os.name == "windows")
}

fn baseline(pod: &PodSpec, level: Level, path: &str, all: &[ContainerView<'_>], f: &mut Found) {
    let restricted = level == Level::Restricted;
    let pod_security = pod.security_context.as_ref();
    let unset_or_false = "requires it unset or false";

    // HostProcess
    if pod_security
        .and_then(|s| s.windows_options.as_ref())
        .and_then(|w| w.host_process)
        == Some(true)
    {
        f.add(
            format!("{path}.securityContext.windowsOptions.hostProcess"),
            Control::HostProcess,
            unset_or_false,
        );
    }
    for c in all {
        if c.security
            .and_then(|s| s.windows_options.as_ref())
            .and_then(|w| w.host_process)
            == Some(true)
        {
            f.add(
                format!("{}.securityContext.windowsOptions.hostProcess", c.path),
                Control::HostProcess,
                unset_or_false,
            );
        }
    }

    // Host Namespaces
    for (field, value) in [
        ("hostNetwork", pod.host_network),
        ("hostPID", pod.host_pid),
        ("hostIPC", pod.host_ipc),
    ] {
        if value == Some(true) {
            f.add(
                format!("{path}.{field}"),
                Control::HostNamespaces,
                unset_or_false,
            );
        }
    }

    // Privileged Containers
    for c in all {
        if c.security.and_then(|s| s.privileged) == Some(true) {
            f.add(
                format!("{}.securityContext.privileged", c.path),
                Control::PrivilegedContainers,
                unset_or_false,
            );
        }
    }

    // Capabilities (restricted tightens it: see `restricted`)
    if !restricted {
        for c in all {
            let added = c
                .security
                .and_then(|s| s.capabilities.as_ref())
                .and_then(|c| c.add.as_ref());
            let bad: Vec<&str> = added
                .into_iter()
                .flatten()
                .map(String::as_str)
                .filter(|cap| !BASELINE_CAPABILITIES.contains(cap))
                .collect();
            if !bad.is_empty() {
                f.add(
                    format!("{}.securityContext.capabilities.add", c.path),
                    Control::Capabilities,
                    format!(
                        "allows adding only {}; found {}",
                        listed(&BASELINE_CAPABILITIES),
                        listed(&bad)
                    ),
                );
            }
        }
    }

    // HostPath Volumes (restricted reports them as Volume Types)
    if !restricted {
        for (i, volume) in pod.volumes.iter().flatten().enumerate() {
            if volume.host_path.is_some() {
                f.add(
                    format!("{path}.volumes[{i}].hostPath"),
                    Control::HostPathVolumes,
                    "requires it unset",
                );
            }
        }
    }

    // Host Ports
    for c in all {
        for (j, port) in c.ports.iter().enumerate() {
            if port.host_port.is_some_and(|p| p != 0) {
                f.add(
                    format!("{}.ports[{j}].hostPort", c.path),
                    Control::HostPorts,
                    "requires it unset or 0",
                );
            }
        }
    }

    // Host Probes / Lifecycle Hooks
    for c in all {
        for (name, probe) in c.probes {
            if let Some(probe) = probe {
                host_fields(
                    &format!("{}.{name}", c.path),
                    probe.http_get.as_ref().and_then(|h| h.host.as_deref()),
                    probe.tcp_socket.as_ref().and_then(|t| t.host.as_deref()),
                    f,
                );
            }
        }
        let hooks: [(&str, Option<&LifecycleHandler>); 2] = [
            ("postStart", c.lifecycle.and_then(|l| l.post_start.as_ref())),
            ("preStop", c.lifecycle.and_then(|l| l.pre_stop.as_ref())),
        ];
        for (name, hook) in hooks {
            if let Some(hook) = hook {
                host_fields(
                    &format!("{}.lifecycle.{name}", c.path),
                    hook.http_get.as_ref().and_then(|h| h.host.as_deref()),
                    hook.tcp_socket.as_ref().and_then(|t| t.host.as_deref()),
                    f,
                );
            }
        }
    }

    // AppArmor
    let profiles = "allows only RuntimeDefault or Localhost";
    let pod_apparmor = pod_security.and_then(|s| s.app_armor_profile.as_ref());
    for (at, profile) in at_every_level(path, pod_apparmor, all, |s| s.app_armor_profile.as_ref()) {
        if let Some(profile) = profile
            && !PROFILE_TYPES.contains(&profile.type_.as_str())
        {
            f.add(
                format!("{at}.securityContext.appArmorProfile.type"),
                Control::AppArmor,
                format!("{profiles}; found {:?}", profile.type_),
            );
        }
    }

    // SELinux
    let pod_selinux = pod_security.and_then(|s| s.se_linux_options.as_ref());
    for (at, options) in at_every_level(path, pod_selinux, all, |s| s.se_linux_options.as_ref()) {
        let Some(options) = options else { continue };
        let type_ = options.type_.as_deref().unwrap_or_default();
        if !type_.is_empty() && !SELINUX_TYPES.contains(&type_) {
            f.add(
                format!("{at}.securityContext.seLinuxOptions.type"),
                Control::SeLinux,
                format!(
                    "allows only unset, {}; found {type_:?}",
                    listed(&SELINUX_TYPES)
                ),
            );
        }
        for (field, value) in [("user", &options.user), ("role", &options.role)] {
            if value.as_deref().is_some_and(|v| !v.is_empty()) {
                f.add(
                    format!("{at}.securityContext.seLinuxOptions.{field}"),
                    Control::SeLinux,
                    "requires it unset",
                );
            }
        }
    }

    // /proc Mount Type: any value in a user namespace (restricted drops that exception)
    if !restricted && !user_namespaced(pod) {
        proc_mount(all, Control::ProcMount, f);
    }

    // Seccomp (restricted tightens it)
    if !restricted {
        let pod_seccomp = pod_security.and_then(|s| s.seccomp_profile.as_ref());
        for (at, profile) in at_every_level(path, pod_seccomp, all, |s| s.seccomp_profile.as_ref())
        {
            if let Some(profile) = profile
                && !PROFILE_TYPES.contains(&profile.type_.as_str())
            {
                f.add(
                    format!("{at}.securityContext.seccompProfile.type"),
                    Control::Seccomp,
                    format!("{profiles} (or unset); found {:?}", profile.type_),
                );
            }
        }
    }

    // Sysctls
    let sysctls = pod_security.and_then(|s| s.sysctls.as_ref());
    for (i, sysctl) in sysctls.into_iter().flatten().enumerate() {
        if !SAFE_SYSCTLS.contains(&sysctl.name.as_str()) {
            f.add(
                format!("{path}.securityContext.sysctls[{i}].name"),
                Control::Sysctls,
                format!(
                    "allows only the safe sysctls {}; found {:?}",
                    listed(&SAFE_SYSCTLS),
                    sysctl.name
                ),
            );
        }
    }
}

fn host_fields(at: &str, http: Option<&str>, tcp: Option<&str>, f: &mut Found) {
    for (action, host) in [("httpGet", http), ("tcpSocket", tcp)] {
        if host.is_some_and(|h| !h.is_empty()) {
            f.add(
                format!("{at}.{action}.host"),
                Control::HostProbes,
                "requires it unset or empty",
            );
        }
    }
}

fn proc_mount(all: &[ContainerView<'_>], control: Control, f: &mut Found) {
    for c in all {
        if let Some(mount) = c.security.and_then(|s| s.proc_mount.as_deref())
            && mount != "Default"
        {
            f.add(
                format!("{}.securityContext.procMount", c.path),
                control,
                format!("requires it unset or Default; found {mount:?}"),
            );
        }
    }
}

/// The name of a volume's source when `restricted` forbids it.
fn forbidden_volume_type(volume: &Volume) -> Option<&'static str> {
    let v = volume;
    [
        ("hostPath", v.host_path.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("nfs", v.nfs.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("rbd", v.rbd.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("cinder", v.cinder.is_some()),
        ("cephfs", v.cephfs.is_some()),
        ("flocker", v.flocker.is_some()),
        ("fc", v.fc.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("storageos", v.storageos.is_some()),
    ]
    .into_iter()
    .find_map(|(name, set)| set.then_some(name))
}

const ALLOWED_VOLUME_TYPES: &str = "configMap, csi, downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, projected, secret";

fn restricted(pod: &PodSpec, path: &str, all: &[ContainerView<'_>], f: &mut Found) {
    let pod_security = pod.security_context.as_ref();
    let windows = windows(pod);
    let user_namespaced = user_namespaced(pod);

    // Volume Types (a volume without a source is defaulted to an emptyDir)
    for (i, volume) in pod.volumes.iter().flatten().enumerate() {
        if let Some(kind) = forbidden_volume_type(volume) {
            f.add(
                format!("{path}.volumes[{i}].{kind}"),
                Control::VolumeTypes,
                format!("allows only {ALLOWED_VOLUME_TYPES} volumes; found {kind}"),
            );
        }
    }

    // Privilege Escalation (not settable on Windows)
    if !windows {
        for c in all {
            if c.security.and_then(|s| s.allow_privilege_escalation) != Some(false) {
                f.add(
                    format!("{}.securityContext.allowPrivilegeEscalation", c.path),
                    Control::PrivilegeEscalation,
                    "requires false",
                );
            }
        }
    }

    // Running as Non-root, Running as Non-root user: any value in a user namespace
    if !user_namespaced {
        let pod_non_root = pod_security.and_then(|s| s.run_as_non_root);
        if pod_non_root == Some(false) {
            f.add(
                format!("{path}.securityContext.runAsNonRoot"),
                Control::RunningAsNonRoot,
                "requires true",
            );
        }
        for c in all {
            let at = format!("{}.securityContext.runAsNonRoot", c.path);
            match c.security.and_then(|s| s.run_as_non_root) {
                Some(true) => {}
                Some(false) => f.add(at, Control::RunningAsNonRoot, "requires true"),
                None if pod_non_root == Some(true) => {}
                None => f.add(
                    at,
                    Control::RunningAsNonRoot,
                    format!("requires true (here or in {path}.securityContext.runAsNonRoot)"),
                ),
            }
        }
        let pod_user = pod_security.and_then(|s| s.run_as_user);
        for (at, user) in at_every_level(path, pod_user, all, |s| s.run_as_user) {
            if user == Some(0) {
                f.add(
                    format!("{at}.securityContext.runAsUser"),
                    Control::RunningAsNonRootUser,
                    "requires it unset or non-zero",
                );
            }
        }
    }

    // Seccomp (required; not settable on Windows)
    if !windows {
        let requirement = "requires RuntimeDefault or Localhost";
        let pod_profile = pod_security.and_then(|s| s.seccomp_profile.as_ref());
        let pod_valid = match pod_profile {
            Some(p) if PROFILE_TYPES.contains(&p.type_.as_str()) => true,
            Some(p) => {
                f.add(
                    format!("{path}.securityContext.seccompProfile.type"),
                    Control::SeccompRestricted,
                    format!("{requirement}; found {:?}", p.type_),
                );
                false
            }
            None => false,
        };
        for c in all {
            let at = format!("{}.securityContext.seccompProfile.type", c.path);
            match c.security.and_then(|s| s.seccomp_profile.as_ref()) {
                Some(p) if PROFILE_TYPES.contains(&p.type_.as_str()) => {}
                Some(p) => f.add(
                    at,
                    Control::SeccompRestricted,
                    format!("{requirement}; found {:?}", p.type_),
                ),
                None if pod_valid => {}
                None => f.add(
                    at,
                    Control::SeccompRestricted,
                    format!(
                        "{requirement} (here or in {path}.securityContext.seccompProfile.type)"
                    ),
                ),
            }
        }
    }

    // Capabilities: drop ALL, add at most NET_BIND_SERVICE (not settable on Windows)
    if !windows {
        for c in all {
            let caps = c.security.and_then(|s| s.capabilities.as_ref());
            let drops_all = caps
                .and_then(|c| c.drop.as_ref())
                .is_some_and(|d| d.iter().any(|c| c == "ALL"));
            if !drops_all {
                f.add(
                    format!("{}.securityContext.capabilities.drop", c.path),
                    Control::CapabilitiesRestricted,
                    "requires it to include ALL",
                );
            }
            let bad: Vec<&str> = caps
                .and_then(|c| c.add.as_ref())
                .into_iter()
                .flatten()
                .map(String::as_str)
                .filter(|cap| *cap != "NET_BIND_SERVICE")
                .collect();
            if !bad.is_empty() {
                f.add(
                    format!("{}.securityContext.capabilities.add", c.path),
                    Control::CapabilitiesRestricted,
                    format!(
                        "allows adding only NET_BIND_SERVICE; found {}",
                        listed(&bad)
                    ),
                );
            }
        }
    }

    // /proc Mount Type: Default, even in a user namespace
    proc_mount(all, Control::ProcMountRestricted, f);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// A pod that passes `restricted`, with `patch` merged in (objects merged, the rest replaced).
    fn pod(patch: Value) -> PodSpec {
        let mut pod = json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "scan", "image": "i", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
        });
        merge(&mut pod, patch);
        serde_json::from_value(pod).unwrap_or_else(|e| panic!("{e}"))
    }

    fn merge(into: &mut Value, patch: Value) {
        match (into, patch) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (slot, v) => *slot = v,
        }
    }

    /// The container with its security context replaced by `security`.
    fn container(security: Value) -> Value {
        json!({"containers": [{"name": "scan", "image": "i", "securityContext": security}]})
    }

    const GOOD: &str = r#"{"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}"#;

    fn good_with(extra: Value) -> Value {
        let mut security: Value = serde_json::from_str(GOOD).unwrap_or_default();
        merge(&mut security, extra);
        container(security)
    }

    fn found(patch: Value, level: Level) -> Vec<(String, Control)> {
        check(&pod(patch), level, "spec.template")
            .into_iter()
            .map(|v| (v.path, v.control))
            .collect()
    }

    fn one(path: &str, control: Control) -> Vec<(String, Control)> {
        vec![(path.to_string(), control)]
    }

    const C0: &str = "spec.template.containers[0]";

    #[test]
    fn the_reference_pod_passes_both_levels() {
        assert!(found(json!({}), Level::Restricted).is_empty());
        assert!(found(json!({}), Level::Baseline).is_empty());
        let minimal: PodSpec =
            serde_json::from_value(json!({"containers": [{"name": "a", "image": "i"}]}))
                .unwrap_or_default();
        assert!(check(&minimal, Level::Baseline, "spec").is_empty());
        assert!(!check(&minimal, Level::Restricted, "spec").is_empty());
    }

    #[test]
    fn host_process() {
        let patch = json!({"securityContext": {"windowsOptions": {"hostProcess": true}}});
        for level in [Level::Baseline, Level::Restricted] {
            assert_eq!(
                found(patch.clone(), level),
                one(
                    "spec.template.securityContext.windowsOptions.hostProcess",
                    Control::HostProcess
                )
            );
        }
        let patch = good_with(json!({"windowsOptions": {"hostProcess": true}}));
        assert_eq!(
            found(patch, Level::Baseline),
            one(
                &format!("{C0}.securityContext.windowsOptions.hostProcess"),
                Control::HostProcess
            )
        );
        let off = json!({"securityContext": {"windowsOptions": {"hostProcess": false}}});
        assert!(found(off, Level::Restricted).is_empty());
    }

    #[test]
    fn host_namespaces() {
        let patch =
            json!({"hostNetwork": true, "hostPID": true, "hostIPC": true, "hostUsers": true});
        for level in [Level::Baseline, Level::Restricted] {
            let paths: Vec<String> = found(patch.clone(), level)
                .into_iter()
                .filter(|(_, c)| *c == Control::HostNamespaces)
                .map(|(p, _)| p)
                .collect();
            assert_eq!(
                paths,
                [
                    "spec.template.hostNetwork",
                    "spec.template.hostPID",
                    "spec.template.hostIPC"
                ]
            );
        }
        assert!(found(json!({"hostIPC": false}), Level::Restricted).is_empty());
    }

    #[test]
    fn privileged_containers() {
        for level in [Level::Baseline, Level::Restricted] {
            assert_eq!(
                found(good_with(json!({"privileged": true})), level),
                one(
                    &format!("{C0}.securityContext.privileged"),
                    Control::PrivilegedContainers
                )
            );
        }
        assert!(found(good_with(json!({"privileged": false})), Level::Restricted).is_empty());
    }

    #[test]
    fn capabilities_baseline_and_restricted() {
        let add = |caps: Value| good_with(json!({"capabilities": {"add": caps}}));
        let at = format!("{C0}.securityContext.capabilities.add");
        // The default set is fine for baseline; restricted allows only NET_BIND_SERVICE.
        assert!(found(add(json!(["CHOWN", "NET_BIND_SERVICE"])), Level::Baseline).is_empty());
        assert_eq!(
            found(add(json!(["CHOWN", "NET_BIND_SERVICE"])), Level::Restricted),
            one(&at, Control::CapabilitiesRestricted)
        );
        assert!(found(add(json!(["NET_BIND_SERVICE"])), Level::Restricted).is_empty());
        // SYS_ADMIN and NET_RAW are beyond the default set.
        assert_eq!(
            found(add(json!(["SYS_ADMIN", "NET_RAW"])), Level::Baseline),
            one(&at, Control::Capabilities)
        );
        let violations = check(
            &pod(add(json!(["SYS_ADMIN"]))),
            Level::Restricted,
            "spec.template",
        );
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert_eq!(
            violations[0].to_string(),
            format!(
                "{at}: control \"Capabilities\" (restricted) allows adding only NET_BIND_SERVICE; found SYS_ADMIN"
            )
        );
        // Restricted requires dropping ALL.
        let keeps = container(json!({"allowPrivilegeEscalation": false}));
        assert_eq!(
            found(keeps.clone(), Level::Restricted),
            one(
                &format!("{C0}.securityContext.capabilities.drop"),
                Control::CapabilitiesRestricted
            )
        );
        assert!(found(keeps, Level::Baseline).is_empty());
    }

    #[test]
    fn host_path_volumes_and_volume_types() {
        let volumes = json!({"volumes": [
            {"name": "a", "emptyDir": {}},
            {"name": "b", "secret": {"secretName": "s"}},
            {"name": "c", "hostPath": {"path": "/"}},
            {"name": "d", "nfs": {"server": "n", "path": "/"}},
            {"name": "e", "configMap": {"name": "m"}},
            {"name": "f", "persistentVolumeClaim": {"claimName": "p"}},
            {"name": "g", "projected": {"sources": []}},
            {"name": "h"},
        ]});
        assert_eq!(
            found(volumes.clone(), Level::Baseline),
            one(
                "spec.template.volumes[2].hostPath",
                Control::HostPathVolumes
            )
        );
        assert_eq!(
            found(volumes, Level::Restricted),
            vec![
                (
                    "spec.template.volumes[2].hostPath".to_string(),
                    Control::VolumeTypes
                ),
                (
                    "spec.template.volumes[3].nfs".to_string(),
                    Control::VolumeTypes
                ),
            ]
        );
    }

    #[test]
    fn host_ports() {
        let mut patch = good_with(json!({}));
        patch["containers"][0]["ports"] = json!([{"containerPort": 80}, {"containerPort": 81, "hostPort": 0}, {"containerPort": 82, "hostPort": 8082}]);
        for level in [Level::Baseline, Level::Restricted] {
            assert_eq!(
                found(patch.clone(), level),
                one(&format!("{C0}.ports[2].hostPort"), Control::HostPorts)
            );
        }
    }

    #[test]
    fn host_probes_and_lifecycle_hooks() {
        let mut patch = good_with(json!({}));
        patch["containers"][0]["livenessProbe"] =
            json!({"httpGet": {"port": 80, "host": "10.0.0.1"}});
        patch["containers"][0]["readinessProbe"] = json!({"tcpSocket": {"port": 80, "host": ""}});
        patch["containers"][0]["lifecycle"] =
            json!({"preStop": {"tcpSocket": {"port": 1, "host": "node"}}});
        for level in [Level::Baseline, Level::Restricted] {
            assert_eq!(
                found(patch.clone(), level),
                vec![
                    (
                        format!("{C0}.livenessProbe.httpGet.host"),
                        Control::HostProbes
                    ),
                    (
                        format!("{C0}.lifecycle.preStop.tcpSocket.host"),
                        Control::HostProbes
                    ),
                ]
            );
        }
    }

    #[test]
    fn app_armor() {
        let patch = json!({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}});
        for level in [Level::Baseline, Level::Restricted] {
            assert_eq!(
                found(patch.clone(), level),
                one(
                    "spec.template.securityContext.appArmorProfile.type",
                    Control::AppArmor
                )
            );
        }
        let local =
            good_with(json!({"appArmorProfile": {"type": "Localhost", "localhostProfile": "p"}}));
        assert!(found(local, Level::Restricted).is_empty());
    }

    #[test]
    fn se_linux() {
        let patch = json!({"securityContext": {"seLinuxOptions": {"type": "spc_t", "user": "u", "level": "s0:c1"}}});
        for level in [Level::Baseline, Level::Restricted] {
            assert_eq!(
                found(patch.clone(), level),
                vec![
                    (
                        "spec.template.securityContext.seLinuxOptions.type".to_string(),
                        Control::SeLinux
                    ),
                    (
                        "spec.template.securityContext.seLinuxOptions.user".to_string(),
                        Control::SeLinux
                    ),
                ]
            );
        }
        let fine =
            good_with(json!({"seLinuxOptions": {"type": "container_engine_t", "level": "s0"}}));
        assert!(found(fine, Level::Restricted).is_empty());
        let role = good_with(json!({"seLinuxOptions": {"role": "r"}}));
        assert_eq!(
            found(role, Level::Baseline),
            one(
                &format!("{C0}.securityContext.seLinuxOptions.role"),
                Control::SeLinux
            )
        );
    }

    #[test]
    fn proc_mount_type() {
        let unmasked = good_with(json!({"procMount": "Unmasked"}));
        let at = format!("{C0}.securityContext.procMount");
        assert_eq!(
            found(unmasked.clone(), Level::Baseline),
            one(&at, Control::ProcMount)
        );
        assert_eq!(
            found(unmasked.clone(), Level::Restricted),
            one(&at, Control::ProcMountRestricted)
        );
        // In a user namespace baseline allows any value; restricted still requires Default.
        let mut user_ns = unmasked;
        user_ns["hostUsers"] = json!(false);
        assert!(found(user_ns.clone(), Level::Baseline).is_empty());
        assert_eq!(
            found(user_ns, Level::Restricted),
            one(&at, Control::ProcMountRestricted)
        );
        assert!(
            found(
                good_with(json!({"procMount": "Default"})),
                Level::Restricted
            )
            .is_empty()
        );
    }

    #[test]
    fn seccomp() {
        let unconfined = json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}}});
        let at = "spec.template.securityContext.seccompProfile.type";
        assert_eq!(
            found(unconfined.clone(), Level::Baseline),
            one(at, Control::Seccomp)
        );
        // Restricted: the pod's bad value, and the container no valid pod value covers.
        assert_eq!(
            found(unconfined, Level::Restricted),
            vec![
                (at.to_string(), Control::SeccompRestricted),
                (
                    format!("{C0}.securityContext.seccompProfile.type"),
                    Control::SeccompRestricted
                ),
            ]
        );
        // Unset is fine for baseline, not for restricted; a container value covers itself.
        let unset: PodSpec = serde_json::from_value(json!({
            "securityContext": {"runAsNonRoot": true},
            "containers": [
                {"name": "a", "image": "i", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "Localhost", "localhostProfile": "p"}}},
                {"name": "b", "image": "i", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}},
            ],
        }))
        .unwrap_or_default();
        assert!(check(&unset, Level::Baseline, "spec").is_empty());
        let restricted = check(&unset, Level::Restricted, "spec");
        assert_eq!(restricted.len(), 1, "{restricted:?}");
        assert_eq!(
            restricted[0].to_string(),
            "spec.containers[1].securityContext.seccompProfile.type: control \"Seccomp\" (restricted) requires RuntimeDefault or Localhost (here or in spec.securityContext.seccompProfile.type)"
        );
    }

    #[test]
    fn sysctls() {
        let patch = json!({"securityContext": {"sysctls": [
            {"name": "net.ipv4.tcp_rmem", "value": "4096 87380 6291456"},
            {"name": "kernel.msgmax", "value": "65536"},
        ]}});
        for level in [Level::Baseline, Level::Restricted] {
            assert_eq!(
                found(patch.clone(), level),
                one(
                    "spec.template.securityContext.sysctls[1].name",
                    Control::Sysctls
                )
            );
        }
    }

    #[test]
    fn privilege_escalation() {
        let at = format!("{C0}.securityContext.allowPrivilegeEscalation");
        for value in [json!(true), Value::Null] {
            let mut patch = good_with(json!({}));
            patch["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = value;
            assert_eq!(
                found(patch.clone(), Level::Restricted),
                one(&at, Control::PrivilegeEscalation)
            );
            assert!(found(patch, Level::Baseline).is_empty());
        }
    }

    #[test]
    fn running_as_non_root() {
        let at = format!("{C0}.securityContext.runAsNonRoot");
        let pod_false = json!({"securityContext": {"runAsNonRoot": false}});
        assert_eq!(
            found(pod_false.clone(), Level::Restricted),
            vec![
                (
                    "spec.template.securityContext.runAsNonRoot".to_string(),
                    Control::RunningAsNonRoot
                ),
                (at.clone(), Control::RunningAsNonRoot),
            ]
        );
        assert!(found(pod_false.clone(), Level::Baseline).is_empty());
        // A container's own true covers it; its own false is refused even under a pod true.
        let mut covered = good_with(json!({"runAsNonRoot": true}));
        covered["securityContext"] = json!({"runAsNonRoot": false});
        assert_eq!(
            found(covered, Level::Restricted)
                .into_iter()
                .filter(|(_, c)| *c == Control::RunningAsNonRoot)
                .count(),
            1
        );
        assert_eq!(
            found(good_with(json!({"runAsNonRoot": false})), Level::Restricted),
            one(&at, Control::RunningAsNonRoot)
        );
        // Any value in a user namespace.
        let mut user_ns = pod_false;
        user_ns["hostUsers"] = json!(false);
        assert!(found(user_ns, Level::Restricted).is_empty());
    }

    #[test]
    fn running_as_non_root_user() {
        let patch = json!({"securityContext": {"runAsUser": 0}});
        assert_eq!(
            found(patch.clone(), Level::Restricted),
            one(
                "spec.template.securityContext.runAsUser",
                Control::RunningAsNonRootUser
            )
        );
        assert!(found(patch.clone(), Level::Baseline).is_empty());
        assert_eq!(
            found(good_with(json!({"runAsUser": 0})), Level::Restricted),
            one(
                &format!("{C0}.securityContext.runAsUser"),
                Control::RunningAsNonRootUser
            )
        );
        assert!(found(good_with(json!({"runAsUser": 1000})), Level::Restricted).is_empty());
        let mut user_ns = patch;
        user_ns["hostUsers"] = json!(false);
        assert!(found(user_ns, Level::Restricted).is_empty());
    }

    #[test]
    fn windows_pods_skip_what_windows_cannot_set() {
        let windows: PodSpec = serde_json::from_value(json!({
            "os": {"name": "windows"},
            "securityContext": {"runAsNonRoot": true},
            "containers": [{"name": "a", "image": "i"}],
        }))
        .unwrap_or_default();
        assert!(check(&windows, Level::Restricted, "spec").is_empty());
    }

    #[test]
    fn every_container_list_is_checked() {
        let patch = json!({
            "initContainers": [{"name": "i", "image": "i", "securityContext": {"privileged": true}}],
            "ephemeralContainers": [{"name": "e", "image": "i", "securityContext": {"privileged": true}}],
        });
        let paths: Vec<String> = found(patch, Level::Baseline)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            paths,
            [
                "spec.template.initContainers[0].securityContext.privileged",
                "spec.template.ephemeralContainers[0].securityContext.privileged",
            ]
        );
    }

    #[test]
    fn levels_read_and_print_in_lowercase() {
        assert_eq!(Level::default(), Level::Restricted);
        assert_eq!(
            serde_json::from_value::<Level>(json!("baseline")).ok(),
            Some(Level::Baseline)
        );
        assert!(serde_json::from_value::<Level>(json!("privileged")).is_err());
        assert_eq!(Level::Restricted.to_string(), "restricted");
        assert_eq!(Control::HostProbes.level(), Level::Baseline);
        assert_eq!(Control::SeccompRestricted.name(), "Seccomp");
    }
}
