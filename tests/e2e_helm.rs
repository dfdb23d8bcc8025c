//! The Helm chart (charts/scangate) as an admin meets it: lint clean, the same objects as the
//! kustomize install, installed on the real apiserver, upgraded from the previous chart version
//! while admissions run (the apiserver really calls the chart's webhook), uninstalled with no
//! webhook left behind, and the README's install blocks run as written.
//!
//! Helm is built by `make helm` into target/tools/helm (a dependency of `make test`).
//!
//! No kubelet runs here, so the chart's pods never start. The webhook the apiserver calls is
//! `scangate webhook` started by the test with the chart's certificate and admission config,
//! listening on this machine's non-loopback IPv4 address; an EndpointSlice the test creates
//! points the chart's Service at it (the control plane runs with
//! `--enable-aggregator-routing=true`, so webhooks are called at a Service's endpoints).
//!
//! The chart's webhook configurations apply cluster-wide, so the tests that install it take
//! one lock and run one at a time (other test binaries do not run meanwhile: cargo runs test
//! binaries one after another).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::cluster::{Cluster, cluster, stderr};
use common::webhook::{free_port, http_get};
use serde_json::{Value, json};

const CHART: &str = "charts/scangate";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The Helm binary `make helm` builds; fails loudly when it is missing.
fn helm_binary() -> PathBuf {
    let helm = repo().join("target/tools/helm");
    assert!(
        helm.is_file(),
        "{} is missing: run `make helm` (`make test` builds it)",
        helm.display()
    );
    helm
}

/// Runs helm against the test cluster, with its cache and config kept under target/.
fn helm(cluster: &Cluster, args: &[&str]) -> Output {
    let home = repo().join("target/tools/helm-home");
    Command::new(helm_binary())
        .args(args)
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .current_dir(repo())
        .output()
        .expect("run helm")
}

fn helm_ok(cluster: &Cluster, args: &[&str]) -> String {
    let out = helm(cluster, args);
    assert!(
        out.status.success(),
        "helm {} failed:\n{}\n{}",
        args.join(" "),
        text(&out.stdout),
        stderr(&out)
    );
    text(&out.stdout)
}

/// The chart's webhook configurations are cluster-wide: one test at a time installs it.
fn chart_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Every document of a multi-document YAML stream, as JSON values (empty ones dropped).
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| {
            let value: serde_yaml::Value =
                serde::Deserialize::deserialize(doc).expect("a YAML document");
            serde_json::to_value(value).expect("YAML as JSON")
        })
        .filter(|v| !v.is_null())
        .collect()
}

type Key = (String, String, String);

fn key(object: &Value) -> Key {
    let field = |path: &str| object.pointer(path).and_then(Value::as_str).unwrap_or("");
    (
        field("/kind").to_string(),
        field("/metadata/namespace").to_string(),
        field("/metadata/name").to_string(),
    )
}

fn by_key(objects: Vec<Value>) -> BTreeMap<Key, Value> {
    objects.into_iter().map(|o| (key(&o), o)).collect()
}

/// Labels Helm's convention adds (and the app name label, which deploy/ puts on some objects
/// only): not part of what an object does.
const BOOKKEEPING_LABELS: [&str; 5] = [
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
];

/// An object as it acts: bookkeeping labels, empty label and annotation maps removed; for the
/// Deployment, the image (the chart's default is `make image`'s `scangate:<appVersion>`,
/// deploy/ names a registry) and the pull policy (a chart value; deploy/ leaves the default).
fn content(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["labels", "annotations"] {
            if let Some(map) = metadata.get_mut(field).and_then(Value::as_object_mut) {
                for label in BOOKKEEPING_LABELS {
                    map.remove(label);
                }
                if map.is_empty() {
                    metadata.remove(field);
                }
            }
        }
    }
    if let Some(containers) = object
        .pointer_mut("/spec/template/spec/containers")
        .and_then(Value::as_array_mut)
    {
        for container in containers.iter_mut().filter_map(Value::as_object_mut) {
            container.remove("image");
            container.remove("imagePullPolicy");
        }
    }
    // The admission config: compared as what it says, not as text with comments.
    if let Some(config) = object
        .pointer_mut("/data/config.yaml")
        .and_then(|c| c.as_str().map(str::to_string))
    {
        let parsed = documents(&config).pop().unwrap_or(Value::Null);
        object["data"]["config.yaml"] = parsed;
    }
    object
}

fn kustomize(cluster: &Cluster, dir: &str) -> Vec<Value> {
    documents(&cluster.kubectl_ok(&["kustomize", dir]))
}

fn chart_template(cluster: &Cluster, extra: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "template",
        "scangate",
        CHART,
        "--namespace",
        "scangate-system",
        "--include-crds",
        "--no-hooks",
    ];
    args.extend_from_slice(extra);
    documents(&helm_ok(cluster, &args))
}

#[test]
fn chart_app_version_is_the_crates_version() {
    let chart = std::fs::read_to_string(repo().join(CHART).join("Chart.yaml")).expect("Chart.yaml");
    let chart: serde_yaml::Value = serde_yaml::from_str(&chart).expect("Chart.yaml is YAML");
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "charts/scangate/Chart.yaml appVersion must be Cargo.toml's version"
    );
    assert_eq!(chart["version"].as_str(), Some("0.2.0"));
}

#[test]
fn lint_is_clean_with_every_option() {
    let Some(cluster) = cluster() else { return };
    for values in [
        &[][..],
        &["--set", "certManager.enabled=true"],
        &["--set", "metrics.serviceMonitor.enabled=true"],
        &[
            "--set",
            "networkPolicy.enabled=true,networkPolicy.apiserverCIDRs={172.18.0.0/16},policyReports.enabled=true,podDisruptionBudget.enabled=false",
        ],
        &[
            "--set",
            "priorityClassName=system-cluster-critical,webhook.failurePolicy=Ignore,replicas=3,mirror.enabled=true",
            "--set",
            "tolerations[0].operator=Exists,nodeSelector.kubernetes\\.io/os=linux",
        ],
        &[
            "--set",
            "admission.trustNamespaceScans=true,admission.trustedScanNamespaces={security},admission.exceptions.maxDuration=30d",
        ],
        &[
            "--set",
            "registry.resolveTags=false,registry.caConfigMap=registry-ca",
        ],
        &[
            "--set",
            "admission.attestations.sign.keySecret=verdict-key,admission.attestations.sign.pushSecret=verdict-push",
        ],
    ] {
        let mut args = vec!["lint", "--strict", CHART];
        args.extend_from_slice(values);
        let out = helm_ok(cluster, &args);
        assert!(
            out.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{values:?}: {out}"
        );
    }
    // The schema refuses what the webhook would refuse at start.
    for bad in [
        "admission.onError=maybe",
        "webhook.failurePolicy=Sometimes",
        "admission.exceptions.maxDuration=3 weeks",
        "admission.onPendng=warn",
        "admission.firstSight.perNamespace=0",
        "networkPolicy.apiserverCIDRs={not-a-cidr}",
        "admission.attestations.sign.pushSecret=verdict-push",
    ] {
        let out = helm(cluster, &["lint", CHART, "--set", bad]);
        assert!(!out.status.success(), "{bad} passed lint");
    }
}

/// The NetworkPolicy admits each port only from what the admin names: the webhook port from the
/// apiserver's CIDRs and peers, /metrics from the monitoring namespace, the results page from
/// no one unless named (port-forward does not cross the network). Rendered, not enforced: the
/// test control plane has no network plugin.
#[test]
fn the_network_policy_admits_only_what_the_admin_names() {
    let Some(cluster) = cluster() else { return };
    let _lock = chart_lock();
    let objects = chart_template(
        cluster,
        &[
            "--set",
            "networkPolicy.enabled=true,networkPolicy.apiserverCIDRs={172.18.0.0/16,10.0.0.0/28}",
            "--set-json",
            r#"networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]"#,
            "--set-json",
            r#"networkPolicy.webhookFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"kube-system"}},"podSelector":{"matchLabels":{"k8s-app":"konnectivity-agent"}}}]"#,
        ],
    );
    let policy = objects
        .iter()
        .find(|o| o["kind"] == "NetworkPolicy")
        .expect("a NetworkPolicy");
    let ingress = policy["spec"]["ingress"].as_array().expect("ingress rules");
    assert_eq!(ingress.len(), 2, "{policy}");
    assert_eq!(
        ingress[0],
        serde_json::json!({
            "from": [
                {"ipBlock": {"cidr": "172.18.0.0/16"}},
                {"ipBlock": {"cidr": "10.0.0.0/28"}},
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                 "podSelector": {"matchLabels": {"k8s-app": "konnectivity-agent"}}},
            ],
            "ports": [{"protocol": "TCP", "port": "webhook"}],
        }),
        "{policy}"
    );
    assert_eq!(
        ingress[1]["from"],
        serde_json::json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]),
        "{policy}"
    );
    let ports: Vec<&str> = ingress
        .iter()
        .flat_map(|rule| rule["ports"].as_array().into_iter().flatten())
        .filter_map(|p| p["port"].as_str())
        .collect();
    assert_eq!(ports, ["webhook", "hook-admin", "ctrl-admin"], "{policy}");
    // On, but open to no one: the apiserver could not reach the webhook; refused (helm lint
    // only reports a template's `fail`, so this is checked with helm template).
    let out = helm(
        cluster,
        &[
            "template",
            "scangate",
            CHART,
            "--set",
            "networkPolicy.enabled=true",
        ],
    );
    assert!(
        !out.status.success(),
        "a policy that admits no apiserver rendered"
    );
    assert!(
        text(&out.stderr).contains("networkPolicy.apiserverCIDRs"),
        "{}",
        text(&out.stderr)
    );
    // Off by default.
    let defaults = chart_template(cluster, &[]);
    assert!(!defaults.iter().any(|o| o["kind"] == "NetworkPolicy"));
}

/// What differs between the two install paths, by design (kind, name, why).
const ONLY_IN_KUSTOMIZE: [(&str, &str, &str); 1] = [(
    "Namespace",
    "scangate-system",
    "Helm installs into an existing namespace (README: created and labelled restricted first, or --create-namespace); a chart that owns its release namespace breaks `helm install -n`",
)];

#[test]
fn helm_and_kustomize_render_the_same_objects() {
    let Some(cluster) = cluster() else { return };
    // deploy/ uses cert-manager; so does the chart with certManager.enabled.
    let chart = by_key(chart_template(
        cluster,
        &["--set", "certManager.enabled=true"],
    ));
    let mut kustomized = by_key(kustomize(cluster, "deploy/"));
    for (kind, name, _why) in ONLY_IN_KUSTOMIZE {
        assert!(
            kustomized
                .remove(&(kind.to_string(), String::new(), name.to_string()))
                .is_some(),
            "{kind} {name} is no longer only in deploy/: update ONLY_IN_KUSTOMIZE"
        );
    }
    let chart_keys: BTreeSet<_> = chart.keys().collect();
    let kustomize_keys: BTreeSet<_> = kustomized.keys().collect();
    assert_eq!(
        chart_keys, kustomize_keys,
        "helm template (left) and kubectl kustomize deploy/ (right) render different objects"
    );
    for (key, object) in &kustomized {
        assert_eq!(
            content(&chart[key]),
            content(object),
            "{key:?} differs between the chart (left) and deploy/ (right)"
        );
    }
}

#[test]
fn with_its_defaults_the_chart_is_deploy_core_and_a_generated_certificate() {
    let Some(cluster) = cluster() else { return };
    // deploy/core is deploy/ without cert-manager: its serving certificate is brought by the
    // admin; the chart's default generates it (Secret scangate-webhook-tls) and fills caBundle.
    let mut chart = by_key(chart_template(cluster, &[]));
    let mut core = by_key(kustomize(cluster, "deploy/core"));
    for (kind, name, _why) in ONLY_IN_KUSTOMIZE {
        core.remove(&(kind.to_string(), String::new(), name.to_string()));
    }
    let secret = chart
        .remove(&(
            "Secret".to_string(),
            "scangate-system".to_string(),
            "scangate-webhook-tls".to_string(),
        ))
        .expect("the chart's generated serving certificate");
    for field in ["ca.crt", "tls.crt", "tls.key"] {
        assert!(
            secret["data"][field]
                .as_str()
                .is_some_and(|v| !v.is_empty()),
            "{field} missing from the generated Secret"
        );
    }
    let chart_keys: BTreeSet<_> = chart.keys().collect();
    let core_keys: BTreeSet<_> = core.keys().collect();
    assert_eq!(chart_keys, core_keys);
}

#[test]
fn the_chart_webhooks_are_the_generated_ones() {
    let Some(cluster) = cluster() else { return };
    // `scangate webhook-config` generates deploy/core/webhooks.yaml (tests/cli.rs); the chart's
    // default (self-signed certificate) differs only in where the CA comes from.
    let out = Command::new(env!("CARGO_BIN_EXE_scangate"))
        .arg("webhook-config")
        .output()
        .expect("run scangate webhook-config");
    assert!(out.status.success(), "{}", stderr(&out));
    let generated = by_key(documents(&text(&out.stdout)));
    let chart = by_key(chart_template(cluster, &[]));
    for (key, object) in generated {
        let mut rendered = chart
            .get(&key)
            .unwrap_or_else(|| panic!("{key:?} not in the chart"))
            .clone();
        let mut object = object;
        // Generated: cert-manager injects the CA. Chart default: the generated CA, inline.
        object["metadata"]
            .as_object_mut()
            .map(|m| m.remove("annotations"));
        for webhook in rendered["webhooks"].as_array_mut().expect("webhooks") {
            let bundle = webhook["clientConfig"]
                .as_object_mut()
                .and_then(|c| c.remove("caBundle"));
            assert!(
                bundle.is_some_and(|b| b.as_str().is_some_and(|b| !b.is_empty())),
                "{key:?}: a webhook without caBundle"
            );
        }
        assert_eq!(content(&rendered), content(&object), "{key:?}");
    }
}

/// This machine's IPv4 address on its default route: Endpoints may not be loopback.
fn host_ipv4() -> IpAddr {
    let socket = UdpSocket::bind("0.0.0.0:0").expect("a UDP socket");
    // Connecting a UDP socket sends nothing; it only picks the route and source address.
    socket.connect("198.51.100.1:9").unwrap_or_else(|e| {
        panic!("no IPv4 route on this machine, so no non-loopback address for the webhook: {e}")
    });
    let ip = socket.local_addr().expect("local address").ip();
    assert!(
        ip.is_ipv4() && !ip.is_loopback() && !ip.is_unspecified(),
        "this machine's address {ip} cannot be an endpoint (loopback or unspecified): the test needs a non-loopback IPv4 address"
    );
    ip
}

/// `scangate webhook` serving as a replica of the chart: its certificate and admission config,
/// its webhook ServiceAccount's RBAC, on this machine's address; stopped on drop.
struct ChartWebhook {
    child: Child,
    log: PathBuf,
}

impl ChartWebhook {
    fn start(cluster: &Cluster, namespace: &str, release: &str, dir: &Path) -> ChartWebhook {
        let secret: Value = serde_json::from_str(&cluster.kubectl_ok(&[
            "-n",
            namespace,
            "get",
            "secret",
            &format!("{release}-webhook-tls"),
            "-o",
            "json",
        ]))
        .expect("Secret JSON");
        for file in ["tls.crt", "tls.key"] {
            let data = secret["data"][file].as_str().expect("a TLS Secret");
            let out = Command::new("base64")
                .arg("-d")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    use std::io::Write;
                    child
                        .stdin
                        .take()
                        .expect("stdin")
                        .write_all(data.as_bytes())?;
                    child.wait_with_output()
                })
                .expect("base64 -d");
            std::fs::write(dir.join(file), out.stdout).expect("write TLS file");
        }
        let config = cluster.kubectl_ok(&[
            "-n",
            namespace,
            "get",
            "configmap",
            &format!("{release}-config"),
            "-o",
            "jsonpath={.data.config\\.yaml}",
        ]);
        std::fs::write(dir.join("config.yaml"), config).expect("write config");
        let kubeconfig = cluster.kubeconfig_as_in(namespace, &format!("{release}-webhook"));
        let ip = host_ipv4();
        let port = free_port();
        let admin = free_port();
        let log = dir.join("webhook.log");
        let child = Command::new(env!("CARGO_BIN_EXE_scangate"))
            .args(["webhook", "--listen", &format!("{ip}:{port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .arg("--tls-cert")
            .arg(dir.join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.join("tls.key"))
            .arg("--config")
            .arg(dir.join("config.yaml"))
            .env("KUBECONFIG", &kubeconfig)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start scangate webhook");
        let webhook = ChartWebhook { child, log };
        let base = format!("http://127.0.0.1:{admin}");
        cluster.eventually("the webhook to be ready", Duration::from_secs(30), || {
            http_get(&base, "/readyz")
                .filter(|(status, _)| *status == 200)
                .map(|_| ())
        });
        // The chart's Service, pointed at this process the way the EndpointSlice controller
        // would point it at the chart's pods.
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": format!("{release}-webhook-test"),
                "namespace": namespace,
                "labels": {"kubernetes.io/service-name": format!("{release}-webhook")},
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip.to_string()], "conditions": {"ready": true}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        });
        let out = cluster.apply(&slice.to_string(), &[]);
        assert!(out.status.success(), "EndpointSlice: {}", stderr(&out));
        webhook
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChartWebhook {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Pod, as YAML, named `name`, running an image no scan covers.
fn pod(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers: [{{name: app, image: \"registry.example/unscanned/app:1\"}}]\n"
    )
}

/// What one admission attempt gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Admitted,
    Denied,
    /// The apiserver could not call the webhook: `failed calling webhook`.
    WebhookFailed,
}

fn admit(cluster: &Cluster, namespace: &str, name: &str) -> (Admission, String) {
    let out = cluster.kubectl_in(
        &[
            "-n",
            namespace,
            "create",
            "--dry-run=server",
            "-o",
            "name",
            "-f",
            "-",
        ],
        Some(&pod(name)),
    );
    let err = stderr(&out);
    let outcome = if out.status.success() {
        Admission::Admitted
    } else if err.contains("failed calling webhook") {
        Admission::WebhookFailed
    } else if err.contains("denied the request") {
        Admission::Denied
    } else {
        panic!("kubectl create failed for another reason: {err}");
    };
    (outcome, err)
}

/// One admission through the API (a server-side dry run, as `kubectl create --dry-run=server`
/// sends it), classified as [`admit`] does.
async fn admit_api(
    pods: &kube::Api<k8s_openapi::api::core::v1::Pod>,
    pod: &k8s_openapi::api::core::v1::Pod,
) -> (Admission, String) {
    let params = kube::api::PostParams {
        dry_run: true,
        ..Default::default()
    };
    match pods.create(&params, pod).await {
        Ok(_) => (Admission::Admitted, String::new()),
        Err(kube::Error::Api(status)) if status.message.contains("failed calling webhook") => {
            (Admission::WebhookFailed, status.message.clone())
        }
        Err(kube::Error::Api(status)) if status.message.contains("denied the request") => {
            (Admission::Denied, status.message.clone())
        }
        Err(other) => panic!("creating a Pod failed for another reason: {other}"),
    }
}

/// Admissions in a loop in two namespaces, one enforcing (an unscanned image is denied, with
/// `onUnscanned: deny`) and one in audit (admitted), from several concurrent clients, until
/// stopped: through the API rather than kubectl processes, so that hundreds of requests a
/// second find any moment in which the apiserver cannot call the webhook.
struct AdmissionLoop {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<(Admission, Admission, String)>>,
}

const ADMISSION_CLIENTS: usize = 4;

impl AdmissionLoop {
    fn start(cluster: &'static Cluster, enforced: String, audited: String) -> AdmissionLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (started, ready) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let client = cluster.client().await;
                let pod: k8s_openapi::api::core::v1::Pod =
                    serde_yaml::from_str(&pod("loop")).expect("Pod");
                let mut tasks = vec![];
                for _ in 0..ADMISSION_CLIENTS {
                    let enforced = kube::Api::namespaced(client.clone(), &enforced);
                    let audited = kube::Api::namespaced(client.clone(), &audited);
                    let (pod, flag) = (pod.clone(), flag.clone());
                    tasks.push(tokio::spawn(async move {
                        let mut results = vec![];
                        while !flag.load(Ordering::Relaxed) {
                            let (denied, err) = admit_api(&enforced, &pod).await;
                            let (admitted, err2) = admit_api(&audited, &pod).await;
                            results.push((denied, admitted, format!("{err}{err2}")));
                        }
                        results
                    }));
                }
                let _ = started.send(());
                let mut results = vec![];
                for task in tasks {
                    results.extend(task.await.expect("admission task"));
                }
                results
            })
        });
        ready
            .recv_timeout(Duration::from_secs(30))
            .expect("admission loop started");
        AdmissionLoop { stop, handle }
    }

    fn finish(self) -> Vec<(Admission, Admission, String)> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("admission loop")
    }
}

/// Stands in for the kubelet and kube-proxy during an uninstall: as soon as the chart's
/// Service is gone, its endpoint stops answering (the test's webhook process is killed), as
/// it would in a cluster where the Service's rules and the Deployment's pods go away. (The
/// apiserver keeps its connections to a webhook open, so without this a deleted Service
/// would go unnoticed here.) Returns whether the Service was seen gone.
fn stop_with_the_service(
    cluster: &'static Cluster,
    namespace: String,
    service: String,
    mut webhook: ChartWebhook,
) -> std::thread::JoinHandle<bool> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(async move {
            let client = cluster.client().await;
            let services: kube::Api<k8s_openapi::api::core::v1::Service> =
                kube::Api::namespaced(client, &namespace);
            for _ in 0..6000 {
                if services.get_opt(&service).await.ok().flatten().is_none() {
                    webhook.kill();
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            false
        })
    })
}

fn webhook_configurations(cluster: &Cluster, name: &str) -> Vec<String> {
    [
        "validatingwebhookconfiguration",
        "mutatingwebhookconfiguration",
    ]
    .iter()
    .filter(|kind| {
        cluster
            .kubectl(&["get", &format!("{kind}/{name}")])
            .status
            .success()
    })
    .map(|kind| kind.to_string())
    .collect()
}

/// Uninstalls a release and removes what a failed test may have left (the webhook
/// configurations first), so later tests are not locked out.
struct Release {
    cluster: &'static Cluster,
    name: String,
    namespace: String,
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = helm(
            self.cluster,
            &["uninstall", &self.name, "--namespace", &self.namespace],
        );
        for kind in [
            "validatingwebhookconfiguration",
            "mutatingwebhookconfiguration",
        ] {
            let _ = self
                .cluster
                .kubectl(&["delete", kind, &self.name, "--ignore-not-found"]);
        }
        let _ = self
            .cluster
            .kubectl(&["delete", "namespace", &self.namespace, "--wait=false"]);
    }
}

#[test]
fn install_upgrade_from_the_previous_version_and_uninstall_keep_admission_answering() {
    let Some(cluster) = cluster() else { return };
    let _lock = chart_lock();
    let release = Release {
        cluster,
        name: "scangate-e2e".to_string(),
        namespace: format!("scangate-e2e-{}", std::process::id()),
    };
    let (name, namespace) = (release.name.as_str(), release.namespace.as_str());
    let enforced = cluster.namespace("helm-enforced", &[]);
    let audited = cluster.namespace("helm-audited", &[("scangate.dev/enforcement", "audit")]);
    let dir = tempfile::tempdir().expect("temp dir");

    // The previous chart version: the same templates, packaged as 0.1.0.
    helm_ok(
        cluster,
        &[
            "package",
            CHART,
            "--version",
            "0.1.0",
            "--destination",
            &dir.path().display().to_string(),
        ],
    );
    let previous = dir.path().join("scangate-0.1.0.tgz");
    let values = ["--set", "admission.onUnscanned=deny"];
    let mut install = vec![
        "install",
        name,
        previous.to_str().expect("UTF-8 path"),
        "--namespace",
        namespace,
        "--create-namespace",
    ];
    install.extend_from_slice(&values);
    let notes = helm_ok(cluster, &install);
    // NOTES say what an uninstall leaves and how to remove it.
    for part in [
        "leaves the",
        "CustomResourceDefinitions",
        "kubectl delete crd imagescans.scanning.scangate.dev",
        &format!("kubectl delete namespace {namespace}"),
    ] {
        assert!(
            notes.contains(part),
            "{part:?} not in the install notes:\n{notes}"
        );
    }

    // Every object of the release exists (created server-side by the install).
    let manifest = helm_ok(
        cluster,
        &["get", "manifest", name, "--namespace", namespace],
    );
    let objects = documents(&manifest);
    let kinds: BTreeSet<_> = objects.iter().map(|o| key(o).0).collect();
    for kind in [
        "ServiceAccount",
        "Secret",
        "ConfigMap",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        assert!(kinds.contains(kind), "no {kind} in the release: {kinds:?}");
    }
    for object in &objects {
        let (kind, ns, object_name) = key(object);
        let mut args = vec!["get".to_string(), format!("{kind}/{object_name}")];
        if !ns.is_empty() {
            args.extend(["-n".to_string(), ns]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cluster.kubectl_ok(&args);
    }
    let ca_before = cluster.kubectl_ok(&[
        "get",
        "validatingwebhookconfiguration",
        name,
        "-o",
        "jsonpath={.webhooks[0].clientConfig.caBundle}",
    ]);

    // The apiserver calls the chart's webhook: denied and admitted as configured.
    let webhook = ChartWebhook::start(cluster, namespace, name, dir.path());
    cluster.eventually(
        "the apiserver to call the chart's webhook",
        Duration::from_secs(30),
        || {
            let (outcome, _) = admit(cluster, &enforced.name, "first");
            (outcome == Admission::Denied).then_some(())
        },
    );
    assert_eq!(
        admit(cluster, &audited.name, "first").0,
        Admission::Admitted
    );

    // Upgrade to this chart, with changed values (replicas, the excluded namespaces: the
    // webhook configurations change), while admissions run.
    let admissions = AdmissionLoop::start(cluster, enforced.name.clone(), audited.name.clone());
    std::thread::sleep(Duration::from_millis(500));
    let mut upgrade = vec!["upgrade", name, CHART, "--namespace", namespace];
    upgrade.extend_from_slice(&values);
    upgrade.extend_from_slice(&[
        "--set",
        "replicas=3,webhook.excludedNamespaces={kube-system,kube-public}",
    ]);
    helm_ok(cluster, &upgrade);
    std::thread::sleep(Duration::from_millis(500));
    let results = admissions.finish();
    assert!(results.len() >= 2, "too few admissions: {results:?}");
    eprintln!("during the upgrade: {} admission pairs", results.len());
    let wrong: Vec<_> = results
        .iter()
        .filter(|(denied, admitted, _)| {
            *denied != Admission::Denied || *admitted != Admission::Admitted
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} admissions went wrong during the upgrade: {wrong:?}\nwebhook log:\n{}",
        wrong.len(),
        results.len(),
        webhook.logs()
    );
    let list = helm_ok(
        cluster,
        &[
            "list",
            "--namespace",
            namespace,
            "--filter",
            name,
            "-o",
            "json",
        ],
    );
    let list: Value = serde_json::from_str(&list).expect("helm list JSON");
    assert_eq!(list[0]["chart"], "scangate-0.2.0", "{list}");
    assert_eq!(list[0]["revision"], "2", "one upgrade: release revision 2");
    // The generated CA was kept: pods keep serving the certificate the apiserver trusts.
    let ca_after = cluster.kubectl_ok(&[
        "get",
        "validatingwebhookconfiguration",
        name,
        "-o",
        "jsonpath={.webhooks[0].clientConfig.caBundle}",
    ]);
    assert!(!ca_after.is_empty());
    assert_eq!(ca_before, ca_after, "the upgrade replaced the CA");
    let excluded = cluster.kubectl_ok(&[
        "get",
        "validatingwebhookconfiguration",
        name,
        "-o",
        "jsonpath={.webhooks[0].namespaceSelector.matchExpressions[0].values}",
    ]);
    assert!(excluded.contains("kube-public"), "{excluded}");

    // Uninstall while admissions run: no request fails, no webhook configuration is left, and
    // a Pod created right after is admitted.
    let admissions = AdmissionLoop::start(cluster, enforced.name.clone(), audited.name.clone());
    let stopped = stop_with_the_service(
        cluster,
        namespace.to_string(),
        format!("{name}-webhook"),
        webhook,
    );
    std::thread::sleep(Duration::from_millis(500));
    let uninstall = helm_ok(cluster, &["uninstall", name, "--namespace", namespace]);
    assert!(
        stopped.join().expect("service watcher"),
        "the uninstall left the Service"
    );
    std::thread::sleep(Duration::from_millis(500));
    let results = admissions.finish();
    let failed: Vec<_> = results
        .iter()
        .filter(|(a, b, _)| *a == Admission::WebhookFailed || *b == Admission::WebhookFailed)
        .collect();
    eprintln!("during the uninstall: {} admission pairs", results.len());
    assert!(
        failed.is_empty(),
        "{} of {} admissions failed calling the webhook during the uninstall: {:?}\n{uninstall}",
        failed.len(),
        results.len(),
        failed.first()
    );
    assert_eq!(webhook_configurations(cluster, name), Vec::<String>::new());
    let out = cluster.kubectl_in(
        &["-n", &enforced.name, "create", "-f", "-"],
        Some(&pod("after-uninstall")),
    );
    assert!(
        out.status.success(),
        "a Pod created right after the uninstall: {}",
        stderr(&out)
    );
    // Left by Helm convention: the CRDs.
    cluster.kubectl_ok(&["get", "crd", "imagescans.scanning.scangate.dev"]);
}

/// The shell block that follows `<!-- install:NAME -->` in README.md, or else in
/// docs/install.md (upgrade and uninstall).
fn readme_block(name: &str) -> String {
    let marker = format!("<!-- install:{name} -->");
    let text = ["README.md", "docs/install.md"]
        .iter()
        .map(|page| std::fs::read_to_string(repo().join(page)).expect("README.md, docs/install.md"))
        .find(|text| text.contains(&marker))
        .unwrap_or_else(|| panic!("neither README.md nor docs/install.md has {marker}"));
    let after = text
        .split_once(&marker)
        .unwrap_or_else(|| panic!("no {marker}"))
        .1;
    let body = after
        .trim_start()
        .strip_prefix("```sh\n")
        .unwrap_or_else(|| panic!("a ```sh block must follow {marker} in README.md"));
    body.split_once("\n```")
        .unwrap_or_else(|| panic!("the block after {marker} is not closed"))
        .0
        .to_string()
}

/// Runs a README block as an admin pastes it into bash, with the test cluster's kubeconfig
/// (KUBECONFIG) and its kubectl and helm first on PATH.
fn run_block(cluster: &Cluster, name: &str, script: &str, bin: &Path) -> String {
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let home = repo().join("target/tools/helm-home");
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env("PATH", path)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .current_dir(repo())
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "README block install:{name} failed:\n{script}\n{}\n{}",
        text(&out.stdout),
        stderr(&out)
    );
    text(&out.stdout)
}

/// cert-manager's two kinds deploy/ uses, as schema-less stand-ins: no cert-manager runs here,
/// so the kustomize install's Issuers and Certificates are stored but never acted on.
const CERT_MANAGER_STAND_INS: &str = "
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: issuers.cert-manager.io}
spec:
  group: cert-manager.io
  scope: Namespaced
  names: {kind: Issuer, plural: issuers, singular: issuer}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: certificates.cert-manager.io}
spec:
  group: cert-manager.io
  scope: Namespaced
  names: {kind: Certificate, plural: certificates, singular: certificate}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
";

/// Puts the cluster back as the other tests expect it after the README's installs: no webhook
/// configuration of theirs, no kustomize-installed workload, the shared RBAC of deploy/rbac.
struct ReadmeCleanup {
    cluster: &'static Cluster,
    helm_namespace: String,
}

impl Drop for ReadmeCleanup {
    fn drop(&mut self) {
        let cluster = self.cluster;
        for kind in [
            "validatingwebhookconfiguration",
            "mutatingwebhookconfiguration",
        ] {
            let _ = cluster.kubectl(&["delete", kind, "scangate", "--ignore-not-found"]);
        }
        let _ = helm(
            cluster,
            &["uninstall", "scangate", "--namespace", &self.helm_namespace],
        );
        for object in [
            "deployment/scangate",
            "service/scangate-webhook",
            "poddisruptionbudget/scangate",
            "configmap/scangate-config",
            "issuers.cert-manager.io/scangate-selfsigned",
            "issuers.cert-manager.io/scangate-ca",
            "certificates.cert-manager.io/scangate-ca",
            "certificates.cert-manager.io/scangate-webhook",
        ] {
            let _ = cluster.kubectl(&[
                "-n",
                "scangate-system",
                "delete",
                object,
                "--ignore-not-found",
            ]);
        }
        let _ = cluster.kubectl(&[
            "delete",
            "crd",
            "issuers.cert-manager.io",
            "certificates.cert-manager.io",
            "--ignore-not-found",
        ]);
        let _ = cluster.kubectl(&[
            "delete",
            "namespace",
            &self.helm_namespace,
            "--wait=false",
            "--ignore-not-found",
        ]);
        let _ = cluster.kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            "deploy/rbac/rbac.yaml",
        ]);
    }
}

#[test]
fn the_readme_install_blocks_work_as_written() {
    let Some(cluster) = cluster() else { return };
    let _lock = chart_lock();
    let helm_namespace = format!("readme-helm-{}", std::process::id());
    let _cleanup = ReadmeCleanup {
        cluster,
        helm_namespace: helm_namespace.clone(),
    };
    let bin = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::symlink(&cluster.kubectl, bin.path().join("kubectl")).expect("kubectl");
    std::os::unix::fs::symlink(helm_binary(), bin.path().join("helm")).expect("helm");

    // kustomize, verbatim (cert-manager's kinds as stand-ins).
    let out = cluster.apply(CERT_MANAGER_STAND_INS, &["--server-side"]);
    assert!(out.status.success(), "{}", stderr(&out));
    cluster.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/issuers.cert-manager.io",
        "crd/certificates.cert-manager.io",
    ]);
    let script = readme_block("kustomize");
    let applied = run_block(cluster, "kustomize", &script, bin.path());
    for object in kustomize(cluster, "deploy/") {
        let (kind, namespace, name) = key(&object);
        let mut args = vec!["get".to_string(), format!("{kind}/{name}")];
        if kind.ends_with("Issuer") || kind == "Certificate" {
            args[1] = format!("{}.cert-manager.io/{name}", kind.to_lowercase());
        }
        if !namespace.is_empty() {
            args.extend(["-n".to_string(), namespace]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert!(
            cluster.kubectl(&args).status.success(),
            "{kind} {name} not created by the kustomize block:\n{applied}"
        );
    }
    // Take the kustomize install down (webhook configurations first) before the Helm one,
    // which creates objects of the same cluster-wide names.
    for kind in [
        "validatingwebhookconfiguration",
        "mutatingwebhookconfiguration",
    ] {
        cluster.kubectl_ok(&["delete", kind, "scangate"]);
    }
    cluster.kubectl_ok(&[
        "delete",
        "--ignore-not-found",
        "-f",
        "deploy/rbac/rbac.yaml",
    ]);

    // Helm, with the namespace changed (scangate-system is the other tests' namespace).
    let namespaced = |block: &str| readme_block(block).replace("scangate-system", &helm_namespace);
    run_block(cluster, "helm", &namespaced("helm"), bin.path());
    assert_eq!(
        webhook_configurations(cluster, "scangate").len(),
        2,
        "the Helm block installed no webhook configurations"
    );
    for object in [
        "deployment/scangate",
        "service/scangate-webhook",
        "secret/scangate-webhook-tls",
        "configmap/scangate-config",
    ] {
        cluster.kubectl_ok(&["-n", &helm_namespace, "get", object]);
    }
    let labels = cluster.kubectl_ok(&[
        "get",
        "namespace",
        &helm_namespace,
        "-o",
        "jsonpath={.metadata.labels}",
    ]);
    assert!(
        labels.contains("\"pod-security.kubernetes.io/enforce\":\"restricted\""),
        "{labels}"
    );
    let uninstalled = run_block(
        cluster,
        "helm-uninstall",
        &namespaced("helm-uninstall"),
        bin.path(),
    );
    assert!(uninstalled.contains("uninstalled"), "{uninstalled}");
    assert_eq!(
        webhook_configurations(cluster, "scangate"),
        Vec::<String>::new()
    );
}
