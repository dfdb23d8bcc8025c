# Running pods in the local control plane: kube-scheduler and kwok's fake nodes (test tooling only).
# Included by controlplane.mk; `make controlplane` starts both after
# the control plane is ready and `make controlplane-stop` stops them (tests/controlplane/nodes.sh).
#
# kube-scheduler is built from the control plane's own module (same k8s.io/kubernetes version and
# ldflags); kwok from its Go module with the control plane's Go toolchain, flags and caches.
# Both are skipped when the binary exists.

# Don't let the file targets below become the including Makefile's default goal.
_nodes_default_goal := $(.DEFAULT_GOAL)

CONTROLPLANE_SCHEDULER := $(CONTROLPLANE_DIR)/bin/kube-scheduler
KWOK_VERSION := v0.8.0
KWOK := target/tools/kwok

$(CONTROLPLANE_SCHEDULER): $(CONTROLPLANE_MODFILES)
	@mkdir -p $(@D)
	@echo "controlplane: building $@"
	$(CONTROLPLANE_GO_BUILD) -o $(abspath $@) k8s.io/kubernetes/cmd/kube-scheduler

$(KWOK):
	@mkdir -p $(@D)
	@echo "controlplane: building kwok $(KWOK_VERSION) into $@ (first build takes a few minutes)"
	GOBIN=$(abspath $(@D)) $(CONTROLPLANE_GO) install $(CONTROLPLANE_GO_BUILD_FLAGS) -trimpath \
	  -ldflags '-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$(KWOK_VERSION)' \
	  sigs.k8s.io/kwok/cmd/kwok@$(KWOK_VERSION)

.PHONY: controlplane-nodes-build
## controlplane-nodes-build: build kube-scheduler and kwok (for running pods in the test cluster).
controlplane-nodes-build: $(CONTROLPLANE_SCHEDULER) $(KWOK)

controlplane-build: controlplane-nodes-build

.DEFAULT_GOAL := $(_nodes_default_goal)
