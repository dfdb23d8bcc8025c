# Local Kubernetes control plane for tests (see tests/controlplane/README.md).
# Included from the top-level Makefile; all paths are relative to the repo root.
#
#   make controlplane        build (if sources changed) and start a clean cluster, wait until ready
#   make controlplane-stop   stop the processes started by `make controlplane`
#   make controlplane-build  only build target/controlplane/bin/{controlplane,kubectl}
#   make controlplane-status print whether it runs, and the env to use it
#
# Env: CONTROLPLANE_APISERVER_PORT (6443), CONTROLPLANE_ETCD_CLIENT_PORT (2379),
#      CONTROLPLANE_ETCD_PEER_PORT (2380) (0 = pick a free port),
#      CONTROLPLANE_READY_TIMEOUT (seconds, 180), CONTROLPLANE_GO (go binary),
#      CONTROLPLANE_GO_BUILD_FLAGS (-p=2).

# Don't let the file targets below become the including Makefile's default goal.
_controlplane_default_goal := $(.DEFAULT_GOAL)

CONTROLPLANE_DIR ?= target/controlplane
CONTROLPLANE_SRC := tests/controlplane
CONTROLPLANE_BIN := $(CONTROLPLANE_DIR)/bin/controlplane
CONTROLPLANE_KUBECTL := $(CONTROLPLANE_DIR)/bin/kubectl
CONTROLPLANE_KUBECONFIG := $(CONTROLPLANE_DIR)/kubeconfig
CONTROLPLANE_GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
CONTROLPLANE_GO_BUILD_FLAGS ?= -p=2
# Must match the k8s.io/kubernetes version in $(CONTROLPLANE_SRC)/go.mod.
CONTROLPLANE_K8S_VERSION := v1.35.4
CONTROLPLANE_LDFLAGS := -s -w \
	-X k8s.io/component-base/version.gitVersion=$(CONTROLPLANE_K8S_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 \
	-X k8s.io/component-base/version.gitMinor=35 \
	-X k8s.io/component-base/version.gitTreeState=clean \
	-X k8s.io/client-go/pkg/version.gitVersion=$(CONTROLPLANE_K8S_VERSION) \
	-X k8s.io/client-go/pkg/version.gitMajor=1 \
	-X k8s.io/client-go/pkg/version.gitMinor=35 \
	-X k8s.io/client-go/pkg/version.gitTreeState=clean
CONTROLPLANE_MODFILES := $(CONTROLPLANE_SRC)/go.mod $(CONTROLPLANE_SRC)/go.sum $(CONTROLPLANE_SRC)/controlplane.mk
CONTROLPLANE_GO_BUILD = cd $(CONTROLPLANE_SRC) && $(CONTROLPLANE_GO) build $(CONTROLPLANE_GO_BUILD_FLAGS) \
	-buildvcs=false -trimpath -ldflags '$(CONTROLPLANE_LDFLAGS)'

$(CONTROLPLANE_BIN): $(wildcard $(CONTROLPLANE_SRC)/*.go) $(CONTROLPLANE_MODFILES)
	@mkdir -p $(@D)
	@echo "controlplane: building $@ (first build takes several minutes)"
	$(CONTROLPLANE_GO_BUILD) -o $(abspath $@) .

$(CONTROLPLANE_KUBECTL): $(CONTROLPLANE_MODFILES)
	@mkdir -p $(@D)
	@echo "controlplane: building $@"
	$(CONTROLPLANE_GO_BUILD) -o $(abspath $@) k8s.io/kubernetes/cmd/kubectl

.PHONY: controlplane controlplane-build controlplane-stop controlplane-status
controlplane-build: $(CONTROLPLANE_BIN) $(CONTROLPLANE_KUBECTL)

controlplane: controlplane-build
	@CONTROLPLANE_DIR=$(CONTROLPLANE_DIR) bash $(CONTROLPLANE_SRC)/start.sh
	@CONTROLPLANE_DIR=$(CONTROLPLANE_DIR) KWOK=$(KWOK) bash $(CONTROLPLANE_SRC)/nodes.sh start

controlplane-stop:
	@CONTROLPLANE_DIR=$(CONTROLPLANE_DIR) bash $(CONTROLPLANE_SRC)/nodes.sh stop
	@CONTROLPLANE_DIR=$(CONTROLPLANE_DIR) bash $(CONTROLPLANE_SRC)/stop.sh

controlplane-status:
	@CONTROLPLANE_DIR=$(CONTROLPLANE_DIR) bash $(CONTROLPLANE_SRC)/stop.sh --status

# kube-scheduler and kwok's fake nodes: pods are scheduled and run (tests/controlplane/nodes.mk).
include $(CONTROLPLANE_SRC)/nodes.mk

.DEFAULT_GOAL := $(_controlplane_default_goal)
