// Command controlplane runs a local, loopback-only Kubernetes control plane
// for scangate's tests: an embedded etcd and a kube-apiserver in this
// process, and a kube-controller-manager as a child process (a second
// invocation of this binary, `controlplane controller-manager ...`), because
// the apiserver and the controller-manager register the same process-global
// state (component registry, metrics) and cannot share one process.
//
// There is no kubelet and no scheduler: Pods are created and stay Pending.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	cmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

// defaultControllers is the set of kube-controller-manager controllers run by
// default: the workload controllers, garbage collection, namespaces, service
// accounts and their tokens, plus a few cheap ones a real cluster has and tests
// may rely on (kube-root-ca.crt ConfigMaps, aggregated ClusterRoles such as
// admin/edit/view, ResourceQuota status).
var defaultControllers = []string{
	"deployment-controller",
	"replicaset-controller",
	"statefulset-controller",
	"daemonset-controller",
	"job-controller",
	"cronjob-controller",
	"garbage-collector-controller",
	"namespace-controller",
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"root-ca-certificate-publisher-controller",
	"clusterrole-aggregation-controller",
	"resourcequota-controller",
}

const serviceCIDR = "10.0.0.0/24"

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "controlplane: %s "+format+"\n", append([]any{time.Now().Format(time.RFC3339)}, args...)...)
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "controlplane: invalid %s=%q: %v\n", name, v, err)
			os.Exit(2)
		}
		return n
	}
	return def
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

type config struct {
	dir             string
	apiserverPort   int
	etcdClientPort  int
	etcdPeerPort    int
	controllers     string
	apiserverArgs   multiFlag
	cmArgs          multiFlag
	setsid          bool
	keepData        bool
	readyTimeout    time.Duration
	shutdownTimeout time.Duration
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "controller-manager" {
		// Child mode: run kube-controller-manager with the remaining args.
		cmd := cmapp.NewControllerManagerCommand()
		cmd.SetArgs(os.Args[2:])
		if err := cmd.Execute(); err != nil {
			fmt.Fprintf(os.Stderr, "controller-manager: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		logf("error: %v", err)
		os.Exit(1)
	}
}

func parseFlags() *config {
	c := &config{}
	// Own FlagSet: imported Kubernetes packages register many flags on
	// flag.CommandLine that mean nothing here.
	flag := flag.NewFlagSet("controlplane", flag.ExitOnError)
	flag.StringVar(&c.dir, "dir", envOr("CONTROLPLANE_DIR", "target/controlplane"),
		"state directory: kubeconfig, pid files and logs; its data/ subdirectory (etcd, pki) is wiped on start [$CONTROLPLANE_DIR]")
	flag.IntVar(&c.apiserverPort, "apiserver-port", envInt("CONTROLPLANE_APISERVER_PORT", 6443),
		"kube-apiserver secure port on 127.0.0.1, 0 = pick a free port [$CONTROLPLANE_APISERVER_PORT]")
	flag.IntVar(&c.etcdClientPort, "etcd-client-port", envInt("CONTROLPLANE_ETCD_CLIENT_PORT", 2379),
		"etcd client port on 127.0.0.1, 0 = pick a free port [$CONTROLPLANE_ETCD_CLIENT_PORT]")
	flag.IntVar(&c.etcdPeerPort, "etcd-peer-port", envInt("CONTROLPLANE_ETCD_PEER_PORT", 2380),
		"etcd peer port on 127.0.0.1, 0 = pick a free port [$CONTROLPLANE_ETCD_PEER_PORT]")
	flag.StringVar(&c.controllers, "controllers", envOr("CONTROLPLANE_CONTROLLERS", strings.Join(defaultControllers, ",")),
		"kube-controller-manager --controllers value [$CONTROLPLANE_CONTROLLERS]")
	flag.Var(&c.apiserverArgs, "apiserver-arg", "extra kube-apiserver flag, e.g. --apiserver-arg=--v=2 (repeatable; also $CONTROLPLANE_APISERVER_ARGS, space-separated)")
	flag.Var(&c.cmArgs, "controller-manager-arg", "extra kube-controller-manager flag (repeatable; also $CONTROLPLANE_CONTROLLER_MANAGER_ARGS, space-separated)")
	flag.BoolVar(&c.setsid, "setsid", false, "start a new session (detach from the terminal's process group); used by start.sh")
	flag.BoolVar(&c.keepData, "keep-data", envOr("CONTROLPLANE_KEEP_DATA", "") == "1",
		"restart on the data/ (etcd, PKI) of a previous start instead of wiping it, to test clients across an apiserver restart; give the same ports [$CONTROLPLANE_KEEP_DATA=1]")
	flag.DurationVar(&c.readyTimeout, "ready-timeout", 3*time.Minute, "give up if etcd or the apiserver is not ready within this time")
	flag.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "time allowed for each component to stop on SIGTERM/SIGINT")
	_ = flag.Parse(os.Args[1:])
	c.apiserverArgs = append(strings.Fields(os.Getenv("CONTROLPLANE_APISERVER_ARGS")), c.apiserverArgs...)
	c.cmArgs = append(strings.Fields(os.Getenv("CONTROLPLANE_CONTROLLER_MANAGER_ARGS")), c.cmArgs...)
	return c
}

// freePort returns a free TCP port on 127.0.0.1 when port is 0.
func freePort(port int) (int, error) {
	if port != 0 {
		return port, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func run() error {
	c := parseFlags()
	if c.setsid {
		_, _ = syscall.Setsid() // fails harmlessly if already a group leader
	}

	// Catch signals from the start: the apiserver installs its own handler
	// later (first signal: graceful stop; second: exit), and Go delivers each
	// signal to every registered channel.
	sigCh := make(chan os.Signal, 2)
	signal.Notify(sigCh, syscall.SIGTERM, syscall.SIGINT)

	dir, err := filepath.Abs(c.dir)
	if err != nil {
		return err
	}
	dataDir := filepath.Join(dir, "data")
	pkiDir := filepath.Join(dataDir, "pki")
	kubeconfig := filepath.Join(dir, "kubeconfig")
	pidFile := filepath.Join(dir, "controlplane.pid")
	cmPidFile := filepath.Join(dir, "controller-manager.pid")

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	_, statErr := os.Stat(filepath.Join(pkiDir, "ca.crt"))
	keep := c.keepData && statErr == nil
	if !keep {
		if err := os.RemoveAll(dataDir); err != nil {
			return fmt.Errorf("wiping %s: %w", dataDir, err)
		}
	}
	for _, f := range []string{kubeconfig, filepath.Join(dir, "env"), cmPidFile, filepath.Join(dir, "etcd.log")} {
		_ = os.Remove(f)
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(pidFile)

	for _, p := range []*int{&c.apiserverPort, &c.etcdClientPort, &c.etcdPeerPort} {
		if *p, err = freePort(*p); err != nil {
			return err
		}
	}
	start := time.Now()

	_, svcNet, _ := net.ParseCIDR(serviceCIDR)
	svcIP := append(net.IP(nil), svcNet.IP.To4()...)
	svcIP[3]++ // first service IP, taken by the "kubernetes" Service
	var certs *pki
	if keep {
		if certs, err = loadPKI(pkiDir); err != nil {
			return fmt.Errorf("--keep-data: %w", err)
		}
		logf("PKI and etcd data kept in %s", dataDir)
	} else {
		if certs, err = generatePKI(pkiDir, svcIP); err != nil {
			return err
		}
		logf("PKI generated in %s", pkiDir)
	}

	// --- etcd ---------------------------------------------------------------
	etcd, err := startEtcd(c, filepath.Join(dataDir, "etcd"), filepath.Join(dir, "etcd.log"))
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	etcdClosed := false
	closeEtcd := func() {
		if !etcdClosed {
			etcdClosed = true
			etcd.Close()
		}
	}
	defer closeEtcd()
	select {
	case <-etcd.Server.ReadyNotify():
		logf("etcd ready on 127.0.0.1:%d after %s", c.etcdClientPort, time.Since(start).Round(time.Millisecond))
	case err := <-etcd.Err():
		return fmt.Errorf("etcd: %w", err)
	case <-time.After(c.readyTimeout):
		return errors.New("etcd not ready in time")
	case s := <-sigCh:
		logf("got %s while starting etcd, exiting", s)
		return nil
	}

	// --- kube-apiserver -----------------------------------------------------
	server := fmt.Sprintf("https://127.0.0.1:%d", c.apiserverPort)
	apiArgs := []string{
		"--etcd-servers=" + fmt.Sprintf("http://127.0.0.1:%d", c.etcdClientPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// Endpoints may not hold loopback IPs, so don't publish the
		// "kubernetes" Service endpoints (nothing in-cluster could use them).
		"--endpoint-reconciler-type=none",
		"--secure-port=" + strconv.Itoa(c.apiserverPort),
		"--cert-dir=" + pkiDir,
		"--tls-cert-file=" + certs.servingCertFile,
		"--tls-private-key-file=" + certs.servingKeyFile,
		"--client-ca-file=" + certs.caFile,
		"--service-cluster-ip-range=" + serviceCIDR,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + certs.saKeyFile,
		"--service-account-signing-key-file=" + certs.saKeyFile,
		"--authorization-mode=Node,RBAC",
		// The default admission plugins stay on (NamespaceLifecycle,
		// LimitRanger, ServiceAccount, DefaultStorageClass, ResourceQuota,
		// Mutating/ValidatingAdmissionWebhook, PodSecurity, ...); add the
		// one kubeadm adds.
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--profiling=false",
	}
	apiArgs = append(apiArgs, c.apiserverArgs...)
	logf("starting kube-apiserver on %s", server)
	apiCmd := apiserverapp.NewAPIServerCommand()
	apiCmd.SetArgs(apiArgs)
	apiDone := make(chan error, 1)
	go func() { apiDone <- apiCmd.Execute() }()

	if err := certs.writeKubeconfig(filepath.Join(pkiDir, "controller-manager.kubeconfig"), server, "system:kube-controller-manager", certs.cm); err != nil {
		return err
	}

	stopAPIServer := func() {
		// Only reached on a signal (the apiserver's own handler then stops
		// it gracefully) or after it has already exited.
		select {
		case <-apiDone:
		case <-time.After(c.shutdownTimeout):
			logf("kube-apiserver did not stop within %s", c.shutdownTimeout)
		}
	}

	readyCtx, cancelReady := context.WithTimeout(context.Background(), c.readyTimeout)
	readyErr := make(chan error, 1)
	go func() { readyErr <- waitReady(readyCtx, server, certs) }()
	select {
	case err := <-readyErr:
		cancelReady()
		if err != nil {
			return fmt.Errorf("kube-apiserver not ready: %w", err)
		}
	case err := <-apiDone:
		cancelReady()
		return fmt.Errorf("kube-apiserver exited: %v", err)
	case s := <-sigCh:
		cancelReady()
		logf("got %s while starting kube-apiserver, stopping", s)
		stopAPIServer()
		return nil
	}
	logf("kube-apiserver ready after %s", time.Since(start).Round(time.Millisecond))

	// --- kube-controller-manager (child process) ----------------------------
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmArgs := []string{
		"--kubeconfig=" + filepath.Join(pkiDir, "controller-manager.kubeconfig"),
		"--controllers=" + c.controllers,
		"--service-account-private-key-file=" + certs.saKeyFile,
		"--root-ca-file=" + certs.caFile,
		"--use-service-account-credentials=true",
		"--leader-elect=false",
		"--secure-port=0", // no serving endpoint needed
		"--profiling=false",
	}
	cmArgs = append(cmArgs, c.cmArgs...)
	cmLogPath := filepath.Join(dir, "controller-manager.log")
	cm := newChild(exe, append([]string{"controller-manager"}, cmArgs...), cmLogPath, cmPidFile)
	if err := cm.start(); err != nil {
		return fmt.Errorf("controller-manager: %w", err)
	}

	// Admin kubeconfig last: its presence means the apiserver is serving.
	if err := certs.writeKubeconfig(kubeconfig, server, "kubernetes-admin", certs.admin); err != nil {
		cm.stop(c.shutdownTimeout)
		return err
	}
	env := fmt.Sprintf("export KUBECONFIG=%s\nexport CONTROLPLANE_KUBECTL=%s\nexport CONTROLPLANE_APISERVER=%s\nexport CONTROLPLANE_CA_FILE=%s\nexport CONTROLPLANE_CA_KEY_FILE=%s\n",
		kubeconfig, filepath.Join(filepath.Dir(exe), "kubectl"), server, certs.caFile, certs.caKeyFile)
	_ = os.WriteFile(filepath.Join(dir, "env"), []byte(env), 0o644)
	logf("control plane up after %s; kubeconfig %s", time.Since(start).Round(time.Millisecond), kubeconfig)

	// --- run until a signal or a component failure ---------------------------
	var runErr error
	select {
	case s := <-sigCh:
		logf("got %s, stopping", s)
	case err := <-apiDone:
		runErr = fmt.Errorf("kube-apiserver exited: %v", err)
		apiDone <- err // let stopAPIServer see it
		// Make the apiserver's signal context irrelevant: it already stopped.
	case err := <-cm.failed:
		runErr = fmt.Errorf("controller-manager failed: %v (see %s)", err, cmLogPath)
		// Stop the in-process apiserver through its own signal handler.
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	case err := <-etcd.Err():
		runErr = fmt.Errorf("etcd: %v", err)
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}
	cm.stop(c.shutdownTimeout)
	logf("controller-manager stopped")
	stopAPIServer()
	logf("kube-apiserver stopped")
	closeEtcd()
	logf("etcd stopped")
	return runErr
}

func startEtcd(c *config, dataDir, logFile string) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "controlplane"
	cfg.Dir = dataDir
	cfg.UnsafeNoFsync = true // test cluster: speed over durability
	clientURL := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", c.etcdClientPort)}
	peerURL := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", c.etcdPeerPort)}
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.ListenMetricsUrls = nil
	cfg.InitialCluster = cfg.Name + "=" + peerURL.String()
	cfg.LogLevel = "warn"
	// embed.NewConfig leaves this 0, which logs every request as "expensive".
	cfg.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration
	cfg.LogOutputs = []string{logFile}
	return embed.StartEtcd(cfg)
}

// waitReady polls /readyz with the admin certificate until it answers 200.
func waitReady(ctx context.Context, server string, p *pki) error {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.cert)
	cert, err := tls.X509KeyPair(p.admin.certPEM, p.admin.keyPEM)
	if err != nil {
		return err
	}
	client := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
		}},
	}
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, server+"/readyz", nil)
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last answer: %s)", ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// child supervises the controller-manager process: it is restarted a few
// times if it dies on its own, and dies with us (Pdeathsig).
type child struct {
	exe     string
	args    []string
	logPath string
	pidFile string
	failed  chan error
	done    chan struct{}

	mu       sync.Mutex
	stopping bool
	proc     *os.Process
}

func newChild(exe string, args []string, logPath, pidFile string) *child {
	return &child{exe: exe, args: args, logPath: logPath, pidFile: pidFile,
		failed: make(chan error, 1), done: make(chan struct{})}
}

const maxChildRestarts = 3

func (ch *child) start() error {
	logFile, err := os.OpenFile(ch.logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	started := make(chan error, 1)
	go func() {
		defer close(ch.done)
		defer logFile.Close()
		defer os.Remove(ch.pidFile)
		// Pdeathsig fires when the creating OS thread exits: keep this
		// goroutine on one thread for the child's whole life.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for restarts := 0; ; restarts++ {
			cmd := exec.Command(ch.exe, ch.args...)
			cmd.Stdout, cmd.Stderr = logFile, logFile
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			ch.mu.Lock()
			if ch.stopping {
				ch.mu.Unlock()
				return
			}
			err := cmd.Start()
			if err == nil {
				ch.proc = cmd.Process
			}
			ch.mu.Unlock()
			if restarts == 0 {
				started <- err
			}
			if err != nil {
				if restarts > 0 {
					ch.failed <- err
				}
				return
			}
			_ = os.WriteFile(ch.pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
			logf("controller-manager started, pid %d", cmd.Process.Pid)
			err = cmd.Wait()
			ch.mu.Lock()
			stopping := ch.stopping
			ch.proc = nil
			ch.mu.Unlock()
			if stopping {
				return
			}
			if restarts >= maxChildRestarts {
				ch.failed <- fmt.Errorf("exited %d times, last: %v", restarts+1, err)
				return
			}
			logf("controller-manager exited (%v), restarting (%d/%d)", err, restarts+1, maxChildRestarts)
			fmt.Fprintf(logFile, "\n==== controller-manager exited (%v), restarting ====\n", err)
			time.Sleep(time.Second)
		}
	}()
	return <-started
}

// stop sends SIGTERM to the child (SIGKILL after timeout) and waits for it.
func (ch *child) stop(timeout time.Duration) {
	ch.mu.Lock()
	ch.stopping = true
	proc := ch.proc
	ch.mu.Unlock()
	if proc != nil {
		_ = proc.Signal(syscall.SIGTERM)
	}
	select {
	case <-ch.done:
	case <-time.After(timeout):
		if proc != nil {
			_ = proc.Kill()
		}
		<-ch.done
	}
}
