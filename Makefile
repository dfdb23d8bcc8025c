# scangate: `make demo` runs the product on a local control plane; `make test` runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
BIN := target/debug/scangate

.PHONY: all build demo test unit-test e2e bench bench-tools fuzz lint fmt crds certs deploy-local tools helm registry-build

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

## test: every test, the end-to-end ones on a fresh local control plane (stopped afterwards).
test: helm registry-build
	$(CARGO) test --locked --no-run
	$(MAKE) --no-print-directory controlplane
	rc=0; SCANGATE_E2E=1 $(CARGO) test --locked || rc=$$?; \
	  $(MAKE) --no-print-directory controlplane-stop; exit $$rc

## e2e: only the end-to-end tests, on a fresh local control plane.
e2e: helm registry-build
	$(MAKE) --no-print-directory controlplane
	rc=0; SCANGATE_E2E=1 $(CARGO) test --locked --test 'e2e_*' || rc=$$?; \
	  $(MAKE) --no-print-directory controlplane-stop; exit $$rc

## bench: load the webhook (10,000 scans), a bare axum+rustls server and OPA; print all three.
bench: bench-tools
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	BENCH_OPA=$(abspath $(OPA)) $(CARGO) bench --locked --bench admission

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
## (default 20) from its seeds in fuzz/corpus/; fails on a crash, whose input is left in
## fuzz/artifacts/<target>/ (replay it with `cd fuzz && cargo fuzz run <target> <file>`).
FUZZ_SECONDS ?= 20
FUZZ_TARGETS := admission_review report configmap_report rego_input
# No sanitizer: scangate has no unsafe code, and one doubles the build and halves the speed.
FUZZ_FLAGS := --sanitizer none --codegen-units 16
# cargo-fuzz needs a nightly compiler: the nightly toolchain when there is one, else stable with
# its unstable flags unlocked.
FUZZ_CARGO = $(if $(shell rustup toolchain list 2>/dev/null | grep '^nightly'),$(CARGO) +nightly,RUSTC_BOOTSTRAP=1 $(CARGO))
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && $(FUZZ_CARGO) fuzz build $(FUZZ_FLAGS)
	cd fuzz && passed=0 failed=0; for target in $(FUZZ_TARGETS); do \
	  mkdir -p target/corpus/$$target; \
	  if $(FUZZ_CARGO) fuzz run $(FUZZ_FLAGS) $$target target/corpus/$$target corpus/$$target -- \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=30 -print_final_stats=1 > target/$$target.log 2>&1; \
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
