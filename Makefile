# scangate: `make demo` runs the product on a local control plane; `make test` runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
BIN := target/debug/scangate

.PHONY: all build demo test unit-test e2e bench bench-tools bench-controller bench-inventory bench-mirror fuzz lint fmt crds certs deploy-local tools helm registry-build cosign browser

# The local control plane picks free ports, so it never collides with another cluster here.
export CONTROLPLANE_APISERVER_PORT ?= 0
export CONTROLPLANE_ETCD_CLIENT_PORT ?= 0
export CONTROLPLANE_ETCD_PEER_PORT ?= 0

include tests/controlplane/controlplane.mk

## demo: the README's first command: a local cluster, scangate, a vulnerable deployment denied.
demo: build controlplane-build
	bash scripts/demo.sh

all: build

## build: compile the scangate binary (dev profile, shared by tests and the demo).
build:
	$(CARGO) build --locked

## tools: install what the checks need (rustfmt, clippy).
tools:
	@rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

## unit-test: unit, property and integration tests that need no cluster (e2e tests skip).
unit-test:
	$(CARGO) test --locked

# The slowest end-to-end binaries mostly wait (leases, retries, rollouts, a control plane of
# their own), and each acts only in namespaces of its own, with controllers of those namespaces
# only: `make test` runs them in two lanes at once, before the others. A binary that starts a
# cluster-wide controller or cluster-wide webhook configurations (the results page, VEX, Helm,
# the deploy tests) must not join a lane: it would act on the other lane's namespaces.
E2E_LANE_A := e2e_resolve e2e_controller_faults e2e_controller
E2E_LANE_B := e2e_webhook_faults e2e_rollout_bound e2e_queue
# Every other test binary, one after another as cargo runs them.
E2E_SEQUENTIAL := $(foreach t,$(filter-out $(E2E_LANE_A) $(E2E_LANE_B),$(basename $(notdir $(wildcard tests/*.rs)))),--test $(t))

## test: every test, the end-to-end ones on a fresh local control plane (stopped afterwards).
test: helm registry-build cosign browser
	@echo "test: tools ready at $$(date +%T)"
	$(CARGO) test --locked --no-run
	@echo "test: tests built at $$(date +%T)"
	$(MAKE) --no-print-directory controlplane
	@echo "test: control plane up at $$(date +%T)"
	rc=0; export SCANGATE_E2E=1; \
	  $(CARGO) test --locked --no-fail-fast $(addprefix --test ,$(E2E_LANE_B)) > target/e2e-lane-b.log 2>&1 & lane_b=$$!; \
	  $(CARGO) test --locked --no-fail-fast $(addprefix --test ,$(E2E_LANE_A)) || rc=$$?; \
	  wait $$lane_b || rc=$$?; \
	  echo "test: lane B ($(E2E_LANE_B)):"; cat target/e2e-lane-b.log; \
	  echo "test: lanes ran until $$(date +%T)"; \
	  $(CARGO) test --locked --no-fail-fast --lib --bins $(E2E_SEQUENTIAL) || rc=$$?; \
	  $(CARGO) test --locked --doc || rc=$$?; \
	  echo "test: tests ran until $$(date +%T)"; \
	  $(MAKE) --no-print-directory controlplane-stop; exit $$rc

## e2e: only the end-to-end tests, on a fresh local control plane.
e2e: helm registry-build cosign browser
	$(MAKE) --no-print-directory controlplane
	rc=0; SCANGATE_E2E=1 $(CARGO) test --locked --test 'e2e_*' || rc=$$?; \
	  $(MAKE) --no-print-directory controlplane-stop; exit $$rc

## bench: load the webhook (10,000 scans), a bare axum+rustls server and OPA; print all three.
bench: bench-tools
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	BENCH_OPA=$(abspath $(OPA)) $(CARGO) bench --locked --bench admission

## bench-controller: the controller's figures (issue 14) for BENCH_SCANS (1000,10000) ImageScans
## on a local control plane of its own, the controller built with BENCH_PROFILE (release; `dev`
## for a quick run): report-to-verdict times, apiserver requests per reconcile, status writes,
## resident memory at steady state and during a re-list. Prints the figures beside the targets.
## BENCH_SCANGATE=target/x86_64-unknown-linux-gnu/release/scangate measures the static release
## binary of `make release` (the image's) instead, with the bench itself built as BENCH_PROFILE.
BENCH_PROFILE ?= release
BENCH_CONTROLPLANE_DIR := target/bench-controlplane
bench-controller: controlplane-build
	$(CARGO) build --locked --profile $(BENCH_PROFILE) --bench controller --bin scangate
	@mkdir -p $(BENCH_CONTROLPLANE_DIR)/bin
	@ln -sf $(abspath $(CONTROLPLANE_BIN)) $(abspath $(CONTROLPLANE_KUBECTL)) $(BENCH_CONTROLPLANE_DIR)/bin/
	CONTROLPLANE_DIR=$(BENCH_CONTROLPLANE_DIR) bash $(CONTROLPLANE_SRC)/start.sh
	rc=0; BENCH_CONTROLPLANE_DIR=$(abspath $(BENCH_CONTROLPLANE_DIR)) \
	  $(CARGO) bench --locked --profile $(BENCH_PROFILE) --bench controller || rc=$$?; \
	  CONTROLPLANE_DIR=$(BENCH_CONTROLPLANE_DIR) bash $(CONTROLPLANE_SRC)/stop.sh; exit $$rc

## bench-inventory: the runtime inventory (issue 13) at BENCH_PODS (5000) Running pods in
## BENCH_NAMESPACES (50) namespaces, on a control plane of its own with kube-scheduler and
## BENCH_INVENTORY_NODES (5) kwok nodes: time until every PolicyReport is complete, time until
## one image turned Failed shows `fail`, the controller's memory and apiserver requests.
## BENCH_PROFILE and BENCH_SCANGATE as for bench-controller. The kube-controller-manager and
## kube-scheduler get a higher client QPS so 5,000 pods are created and bound in minutes.
BENCH_INVENTORY_NODES ?= 5
bench-inventory: controlplane-build
	$(CARGO) build --locked --profile $(BENCH_PROFILE) --bench inventory --bin scangate
	@mkdir -p $(BENCH_CONTROLPLANE_DIR)/bin
	@ln -sf $(abspath $(CONTROLPLANE_BIN)) $(abspath $(CONTROLPLANE_KUBECTL)) $(abspath $(CONTROLPLANE_SCHEDULER)) $(BENCH_CONTROLPLANE_DIR)/bin/
	CONTROLPLANE_DIR=$(BENCH_CONTROLPLANE_DIR) \
	  CONTROLPLANE_CONTROLLER_MANAGER_ARGS="--kube-api-qps=300 --kube-api-burst=600" \
	  bash $(CONTROLPLANE_SRC)/start.sh
	rc=0; CONTROLPLANE_DIR=$(BENCH_CONTROLPLANE_DIR) KWOK=$(KWOK) \
	  CONTROLPLANE_FAKE_NODES=$(BENCH_INVENTORY_NODES) \
	  CONTROLPLANE_SCHEDULER_ARGS="--kube-api-qps=300 --kube-api-burst=600" \
	  bash $(CONTROLPLANE_SRC)/nodes.sh start || rc=$$?; \
	  [ $$rc -ne 0 ] || BENCH_CONTROLPLANE_DIR=$(abspath $(BENCH_CONTROLPLANE_DIR)) \
	  $(CARGO) bench --locked --profile $(BENCH_PROFILE) --bench inventory || rc=$$?; \
	  CONTROLPLANE_DIR=$(BENCH_CONTROLPLANE_DIR) bash $(CONTROLPLANE_SRC)/nodes.sh stop; \
	  CONTROLPLANE_DIR=$(BENCH_CONTROLPLANE_DIR) bash $(CONTROLPLANE_SRC)/stop.sh; exit $$rc

## bench-mirror: the verdict mirror (issue 22) on a control plane of its own: admission latency
## (p50/p99 of dry-run Pods at BENCH_RATE (100)/s through the apiserver) with no policy, the
## mirror, the webhook and both; the mirror's size, update time, latency and CEL check time at
## BENCH_MIRROR_SIZES (1000,10000,100000) denied digests. BENCH_PROFILE as for bench-controller.
bench-mirror: controlplane-build
	$(CARGO) build --locked --profile $(BENCH_PROFILE) --bench mirror --bin scangate
	@mkdir -p $(BENCH_CONTROLPLANE_DIR)/bin
	@ln -sf $(abspath $(CONTROLPLANE_BIN)) $(abspath $(CONTROLPLANE_KUBECTL)) $(BENCH_CONTROLPLANE_DIR)/bin/
	CONTROLPLANE_DIR=$(BENCH_CONTROLPLANE_DIR) bash $(CONTROLPLANE_SRC)/start.sh
	rc=0; BENCH_CONTROLPLANE_DIR=$(abspath $(BENCH_CONTROLPLANE_DIR)) \
	  $(CARGO) bench --locked --profile $(BENCH_PROFILE) --bench mirror || rc=$$?; \
	  CONTROLPLANE_DIR=$(BENCH_CONTROLPLANE_DIR) bash $(CONTROLPLANE_SRC)/stop.sh; exit $$rc

# OPA, the bench's peer (test tooling only), built from its Go module with the Go toolchain
# and module/build caches the control plane build uses; skipped when the binary exists.
OPA_VERSION := v1.22.3
OPA := target/tools/opa

bench-tools: $(OPA)

$(OPA):
	@mkdir -p $(@D)
	@echo "bench: building OPA $(OPA_VERSION) into $@ (first build takes a few minutes)"
	GOBIN=$(abspath $(@D)) $(CONTROLPLANE_GO) install $(CONTROLPLANE_GO_BUILD_FLAGS) -trimpath \
	  github.com/open-policy-agent/opa@$(OPA_VERSION)

## fuzz: build the fuzz targets in fuzz/ (cargo-fuzz, libFuzzer) and run each for FUZZ_SECONDS
## (default 20) from its seeds in fuzz/corpus/, FUZZ_JOBS at a time (default: one per core, as
## libFuzzer runs on one); fails on a crash, whose input is left in
## fuzz/artifacts/<target>/ (replay it with `cd fuzz && cargo fuzz run <target> <file>`).
FUZZ_SECONDS ?= 20
FUZZ_JOBS ?= $(shell nproc 2>/dev/null || echo 1)
FUZZ_TARGETS := admission_review report configmap_report rego_input
# No sanitizer: the scangate library forbids unsafe code (the fuzz targets link it, not the
# binary's allocator), and one doubles the build and halves the speed.
FUZZ_FLAGS := --sanitizer none --codegen-units 16
# cargo-fuzz needs a nightly compiler: the nightly toolchain when there is one, else stable with
# its unstable flags unlocked.
FUZZ_CARGO = $(if $(shell rustup toolchain list 2>/dev/null | grep '^nightly'),$(CARGO) +nightly,RUSTC_BOOTSTRAP=1 $(CARGO))
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && $(FUZZ_CARGO) fuzz build $(FUZZ_FLAGS)
	cd fuzz && for target in $(FUZZ_TARGETS); do \
	  while [ "$$(jobs -rp | wc -l)" -ge $(FUZZ_JOBS) ]; do wait -n || true; done; \
	  mkdir -p target/corpus/$$target; rm -f target/$$target.status; \
	  { $(FUZZ_CARGO) fuzz run $(FUZZ_FLAGS) $$target target/corpus/$$target corpus/$$target -- \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=30 -print_final_stats=1 > target/$$target.log 2>&1; \
	    echo $$? > target/$$target.status; } & \
	done; wait; passed=0 failed=0; for target in $(FUZZ_TARGETS); do \
	  if [ "$$(cat target/$$target.status 2>/dev/null)" = 0 ]; \
	  then passed=$$((passed + 1)); { grep -E '^(Done|stat::)' target/$$target.log | sed "s/^/$$target: /" || true; }; \
	  else failed=$$((failed + 1)); tail -n 60 target/$$target.log; echo "fuzz target $$target found a crash"; fi; \
	done; echo "fuzz: $$passed passed, $$failed failed"; test $$failed -eq 0

# Helm, for the chart's tests (tests/e2e_helm.rs; test tooling only), built from its Go module
# with the Go toolchain and module/build caches the control plane build uses; skipped when the
# binary exists.
HELM_VERSION := v3.22.0
HELM := target/tools/helm
# The Kubernetes version `helm lint` and `helm template` assume without a cluster, set as Helm's
# own release build sets it: from its k8s.io/client-go (v0.37 in Helm v3.22.0), so 1.37.
HELM_LDFLAGS := -s -w -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	$(foreach pkg,pkg/chartutil pkg/lint/rules,-X helm.sh/helm/v3/$(pkg).k8sVersionMajor=1 \
	  -X helm.sh/helm/v3/$(pkg).k8sVersionMinor=37)

## helm: build Helm into target/tools/helm (first build takes a few minutes).
helm: $(HELM)

$(HELM):
	@mkdir -p $(@D)
	@echo "helm: building Helm $(HELM_VERSION) into $@ (first build takes a few minutes)"
	GOBIN=$(abspath $(@D)) $(CONTROLPLANE_GO) install $(CONTROLPLANE_GO_BUILD_FLAGS) -trimpath \
	  -ldflags '$(HELM_LDFLAGS)' \
	  helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

# The CNCF distribution registry, for the registry tests (tests/common/registry.rs; test tooling
# only), built from its Go module with the Go toolchain and module/build caches the control plane
# build uses; skipped when the binary exists. The fixture writes htpasswd files with `htpasswd`
# (apache2-utils), installed here when missing.
REGISTRY_VERSION := v3.1.2
REGISTRY := target/tools/registry

## registry-build: build the distribution registry into target/tools/registry, install htpasswd.
registry-build: $(REGISTRY)
	@command -v htpasswd >/dev/null || { apt-get update -qq && apt-get install -y -qq apache2-utils; }

$(REGISTRY):
	@mkdir -p $(@D)
	@echo "registry: building distribution $(REGISTRY_VERSION) into $@ (first build takes a few minutes)"
	GOBIN=$(abspath $(@D)) $(CONTROLPLANE_GO) install $(CONTROLPLANE_GO_BUILD_FLAGS) -trimpath \
	  -ldflags '-s -w -X github.com/distribution/distribution/v3/version.version=$(REGISTRY_VERSION)' \
	  github.com/distribution/distribution/v3/cmd/registry@$(REGISTRY_VERSION)

# cosign, for the attestation tests (tests/e2e_cosign.rs; test tooling only): it signs and
# attests fixture reports as a CI pipeline would and verifies the verdicts scangate pushes. Built
# from its Go module with the Go toolchain and module/build caches the control plane build uses;
# kept while the binary there says it is COSIGN_VERSION, rebuilt when the pin changes.
COSIGN_VERSION := v3.1.3
COSIGN := target/tools/cosign

## cosign: build cosign into target/tools/cosign (first build takes a few minutes).
cosign:
	@if [ -x $(COSIGN) ] && $(COSIGN) version 2>/dev/null | grep -qx 'GitVersion: *$(COSIGN_VERSION)'; then \
	  exit 0; fi; \
	mkdir -p $(dir $(COSIGN)); \
	echo "cosign: building cosign $(COSIGN_VERSION) into $(COSIGN) (first build takes a few minutes)"; \
	GOBIN=$(abspath $(dir $(COSIGN))) CGO_ENABLED=0 $(CONTROLPLANE_GO) install $(CONTROLPLANE_GO_BUILD_FLAGS) \
	  -trimpath -ldflags '-s -w -X sigs.k8s.io/release-utils/version.gitVersion=$(COSIGN_VERSION)' \
	  github.com/sigstore/cosign/v3/cmd/cosign@$(COSIGN_VERSION)

## browser: install headless Chromium and pdftotext (Debian's chromium, poppler-utils) for the
## browser tests (tests/common/browser.rs) when missing; a cold install takes about 40 s.
browser:
	@command -v chromium >/dev/null && command -v pdftotext >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq chromium poppler-utils; }

## deploy-local: webhook configurations for a webhook on 127.0.0.1:18443 with the local CA.
deploy-local: certs
	$(BIN) webhook-config --url https://127.0.0.1:18443 --ca-file certs/local/ca.crt > deploy/local/webhooks.yaml

## certs: a local CA and serving certificate in certs/local (for the demo and manual runs).
certs: build
	$(BIN) certs --out-dir certs/local

## lint: formatting, clippy with warnings as errors, and CRD drift.
lint: tools
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

## crds: regenerate deploy/crds, the chart's crds/ and deploy/core/webhooks.yaml from the Rust code.
crds: build
	$(BIN) crds > deploy/crds/scanning.scangate.dev.yaml
	$(BIN) crds > charts/scangate/crds/scanning.scangate.dev.yaml
	$(BIN) webhook-config > deploy/core/webhooks.yaml

.PHONY: install release image-rootfs image image-test krew-manifest

## install: install the binary in $(PREFIX)/bin (default ~/.local/bin) with the kubectl plugin
## beside it: kubectl-scangate, a symlink to scangate, so `kubectl scangate …` runs it.
PREFIX ?= $(HOME)/.local
install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/scangate
	ln -sfn scangate $(DESTDIR)$(PREFIX)/bin/kubectl-scangate
	@echo "installed $(DESTDIR)$(PREFIX)/bin/scangate and the kubectl plugin kubectl-scangate beside it"

# The release build of the image and the plugin archive: a static binary (glibc linked in), for
# the gnu target named explicitly so that its build cache is apart from the dev build's and build
# scripts still run dynamically linked. Neither `make test` nor CI runs it.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
REVISION := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
RELEASE_TARGET := x86_64-unknown-linux-gnu
RELEASE_BIN := target/$(RELEASE_TARGET)/release/scangate
IMAGE_DIR := target/image
IMAGE_ROOTFS := $(IMAGE_DIR)/rootfs
IMAGE_ARCHIVE := $(IMAGE_DIR)/scangate-$(VERSION).oci.tar
IMAGE_NAME ?= localhost/scangate:$(VERSION)
# buildah keeps its images under target/ (vfs: no daemon, no overlay mounts).
BUILDAH = buildah --root $(abspath $(IMAGE_DIR))/storage --runroot $(abspath $(IMAGE_DIR))/run \
	--storage-driver vfs

## release: the static release binary (20+ minutes cold on 2 cores).
release:
	RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --release --locked \
	  --target $(RELEASE_TARGET) --bin scangate

## image-rootfs: the image's files in target/image/rootfs (stripped static binary, CA
## certificates, user 65532).
image-rootfs: release
	bash scripts/image-rootfs.sh $(RELEASE_BIN) $(IMAGE_ROOTFS)

## image: the container image (FROM scratch, Containerfile) built with buildah, exported as the OCI
## archive target/image/scangate-<version>.oci.tar, then tested (image-test). Not part of `make test`.
image: image-rootfs
	@command -v buildah >/dev/null || { apt-get update -qq && apt-get install -y -qq buildah; }
	$(BUILDAH) bud --quiet --layers=false --timestamp $(SOURCE_DATE_EPOCH) -f Containerfile \
	  --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t $(IMAGE_NAME) $(IMAGE_ROOTFS)
	rm -f $(IMAGE_ARCHIVE)
	$(BUILDAH) push --quiet $(IMAGE_NAME) oci-archive:$(IMAGE_ARCHIVE):$(VERSION)
	@echo "image: $(IMAGE_ARCHIVE), $$(stat -c %s $(IMAGE_ARCHIVE)) bytes (binary $$(stat -c %s $(IMAGE_ROOTFS)/usr/local/bin/scangate) bytes)"
	$(MAKE) --no-print-directory image-test

## image-test: unpack the OCI archive, check its config and files, and run its entrypoint as its
## user (chroot; needs root) with --version and crds.
image-test:
	SCANGATE_IMAGE_ARCHIVE=$(abspath $(IMAGE_ARCHIVE)) SCANGATE_IMAGE_REVISION=$(REVISION) \
	  $(CARGO) test --locked --test image -- --nocapture

## krew-manifest: the plugin's release archive target/krew/scangate-v<version>-linux-amd64.tar.gz
## (static binary and LICENSE), and its version and sha256 written into deploy/krew/scangate.yaml.
KREW_DIR := target/krew
KREW_ARCHIVE := $(KREW_DIR)/scangate-v$(VERSION)-linux-amd64.tar.gz
krew-manifest: image-rootfs
	rm -rf $(KREW_DIR)/stage && mkdir -p $(KREW_DIR)/stage
	cp $(IMAGE_ROOTFS)/usr/local/bin/scangate LICENSE $(KREW_DIR)/stage/
	tar --sort=name --mtime=@$(SOURCE_DATE_EPOCH) --owner=0 --group=0 --numeric-owner \
	  -C $(KREW_DIR)/stage -cf - LICENSE scangate | gzip -n > $(KREW_ARCHIVE)
	sha=$$(sha256sum $(KREW_ARCHIVE) | cut -d ' ' -f 1); \
	  sed -i -E -e "s/^(    sha256: ).*/\1$$sha/" -e "s/^(  version: ).*/\1v$(VERSION)/" \
	    -e "s#/v[0-9][^/]*/scangate-v[^/]*-linux-amd64.tar.gz#/v$(VERSION)/scangate-v$(VERSION)-linux-amd64.tar.gz#" \
	    -e "s#target/krew/scangate-v[^ ]*-linux-amd64.tar.gz#$(KREW_ARCHIVE)#" deploy/krew/scangate.yaml
	$(CARGO) test --locked --test plugin krew
	@echo "krew: $(KREW_ARCHIVE) ($$(stat -c %s $(KREW_ARCHIVE)) bytes); deploy/krew/scangate.yaml updated"
