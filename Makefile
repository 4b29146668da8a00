# tesserafs: build, test, interop.
#
#   make deps     system packages (apt, when missing), Python venv (.venv), zarrita.js (tests/js),
#                 the viewer's npm packages (internal/viewer/web)
#   make viewer   bundle the map viewer into internal/viewer/dist (embedded by go:embed)
#   make build    the viewer, then bin/tesserafs
#   make test     go vet, gofmt, go test, then the interop suite on a synthetic store
#   make interop  only the interop suite: synth → materialize, mount the same tiles,
#                 pytest tests/interop against both (tests/with-mount.sh); test_http.py
#                 also starts `tesserafs serve` on the tiles and reads it over HTTP;
#                 PYTEST_ARGS='-k zarrita -x' narrows it, INTEROP_DIR=dir keeps its data
#   make bench    Go benchmarks (ratios against floors measured in the same run), xarray region read
#   make demo     the README's session (scripts/demo.sh): synthesise tiles; mount and read them
#                 with xarray; cache warm/clear; materialize; quicklooks; tiles from a loopback
#                 nginx through a mount and materialize; serve over HTTP; a partitioned run
#                 (installs only what it uses: make demo-deps)
#   make clean
#
# Everything downloads at `make deps` time only; the tests never reach the network.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build
MAKEFLAGS += --no-builtin-rules

GO      ?= go
PYTHON  ?= python3
NODE    ?= node
NPM     ?= npm
export CGO_ENABLED := 1

BIN     := bin/tesserafs
VENV    := .venv
VPY     := $(VENV)/bin/python
REQ     := tests/requirements.txt
# The venv is rebuilt only when the pinned requirements change.
REQ_HASH := $(shell sha256sum $(REQ) 2>/dev/null | cut -c1-16)
VENV_STAMP := $(VENV)/.requirements-$(REQ_HASH)
JS_DIR  := tests/js
JS_STAMP := $(JS_DIR)/node_modules/.package-lock.json
# The map viewer that `serve` shows at /: npm packages in its own
# node_modules, bundled by esbuild into dist/ (not committed: a plain
# `go build` embeds a placeholder page that says to run make viewer).
VIEWER_WEB := internal/viewer/web
VIEWER_STAMP := $(VIEWER_WEB)/node_modules/.package-lock.json
VIEWER_DIST := internal/viewer/dist
VIEWER_SRC := $(wildcard $(VIEWER_WEB)/src/*.js) $(VIEWER_WEB)/index.html $(VIEWER_WEB)/build.mjs

# nginx: the HTTP tiles server and the serving peer in tests; chromium: the
# viewer test; slurmctld/slurmd/slurm-client/munge: the one-node Slurm test.
APT_PKGS := libproj-dev proj-data pkg-config fuse3 curl nginx chromium slurmctld slurmd slurm-client munge
# The demo needs only these (no browser, no Slurm, no S3 server, no zarrita.js).
DEMO_APT_PKGS := libproj-dev proj-data pkg-config fuse3 curl nginx

# versitygw, the S3-compatible server the tests start, built from its module.
VERSITYGW_VERSION := v1.8.0
TOOLS   := .tools/bin
VERSITYGW := $(TOOLS)/versitygw
VERSITYGW_STAMP := $(TOOLS)/.versitygw-$(VERSITYGW_VERSION)

# Interop: a fresh synthetic tiles root and materialized tree per run, in a
# new directory under tests/.work (concurrent runs do not collide), removed
# after a passing run. INTEROP_DIR=/some/dir uses (and keeps) that directory.
INTEROP_DIR   ?=
INTEROP_YEAR  ?= 2024
# Extra name=/dir roots to test besides the materialized tree (e.g. a mount).
INTEROP_EXTRA_ROOTS ?=
PYTEST_ARGS   ?=

DEMO_DIR ?= $(CURDIR)/demo

.PHONY: all deps demo-deps apt-deps venv js-deps viewer-deps viewer tools build test vet fmt-check go-test interop bench demo clean

all: build

# --- dependencies -------------------------------------------------------------

deps: apt-deps venv js-deps viewer-deps tools

tools: $(VERSITYGW_STAMP)

$(VERSITYGW_STAMP):
	mkdir -p $(TOOLS)
	GOBIN=$(CURDIR)/$(TOOLS) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)
	touch $@

apt-deps:
	@missing=""; \
	for p in $(APT_PKGS); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if ! $(PYTHON) -c 'import ensurepip' >/dev/null 2>&1; then missing="$$missing python3-venv"; fi; \
	if [ -z "$$missing" ]; then echo "apt: system packages present"; exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "apt: missing:$$missing — not root, install them with: sudo apt-get install$$missing" >&2; exit 1; \
	fi; \
	echo "apt: installing$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get install -y -q --no-install-recommends $$missing || { apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; }

venv: $(VENV_STAMP)

$(VENV_STAMP): $(REQ)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check --only-binary=:all: -r $(REQ)
	touch $@

js-deps: $(JS_STAMP)

$(JS_STAMP): $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	@if command -v $(NPM) >/dev/null; then \
	  cd $(JS_DIR) && $(NPM) ci --no-audit --no-fund --loglevel=error; \
	else echo "js: npm not found: the zarrita.js interop test will be skipped" >&2; fi

viewer-deps: $(VIEWER_STAMP)

$(VIEWER_STAMP): $(VIEWER_WEB)/package.json $(VIEWER_WEB)/package-lock.json
	@command -v $(NPM) >/dev/null || { echo "viewer: npm not found: install Node.js and npm (make deps on Debian needs them on PATH)" >&2; exit 1; }
	cd $(VIEWER_WEB) && $(NPM) ci --no-audit --no-fund --loglevel=error

# --- build and Go tests ---------------------------------------------------------

viewer: $(VIEWER_DIST)/app.js

$(VIEWER_DIST)/app.js: $(VIEWER_STAMP) $(VIEWER_SRC)
	cd $(VIEWER_WEB) && $(NODE) build.mjs

build: viewer
	$(GO) build -o $(BIN) ./cmd/tesserafs

vet:
	$(GO) vet ./...

fmt-check:
	@out="$$(gofmt -l $$($(GO) list -f '{{.Dir}}' ./...))"; \
	if [ -n "$$out" ]; then echo "gofmt: these files need formatting:"; echo "$$out"; exit 1; fi

# go-test needs the built viewer: its Chromium test fails under
# TESSERAFS_REQUIRE_SERVERS=1 when only the placeholder is embedded.
# scripts/testsummary prints each package's line, the output of every
# failed test, every skipped test with its reason, and a closing count.
go-test: viewer
	$(GO) build -o bin/testsummary ./scripts/testsummary
	$(GO) test -json -timeout 20m ./... | bin/testsummary

test: deps vet fmt-check go-test interop

# --- interop ------------------------------------------------------------------------

# TESSERAFS_REQUIRE_JS=1 turns a skipped zarrita.js test into a failure.
interop: build venv js-deps
	@dir="$(INTEROP_DIR)"; keep=1; \
	if [ -z "$$dir" ]; then mkdir -p tests/.work; dir="$$(mktemp -d "$(CURDIR)/tests/.work/run.XXXXXX")"; keep=0; \
	else rm -rf "$$dir"; mkdir -p "$$dir"; fi; \
	start=$$(date +%s); \
	echo "interop: synth → $$dir/tiles"; \
	./$(BIN) synth --out "$$dir/tiles" --year $(INTEROP_YEAR) --preset test; \
	echo "interop: materialize → $$dir/out"; \
	./$(BIN) materialize --tiles "$$dir/tiles" --out "$$dir/out" --year $(INTEROP_YEAR); \
	echo "interop: data ready in $$(( $$(date +%s) - start )) s"; \
	echo "interop: the zarr package's own store (zarr/interop_test.go) read by zarr-python, tensorstore, xarray"; \
	ZARR_INTEROP_DIR="$$dir/zarr" $(GO) test -count=1 -run '^TestWriteInteropStore$$' ./zarr; \
	$(VPY) testdata/zarr/check_interop_store.py "$$dir/zarr/store.zarr"; \
	roots="materialized=$$dir/out$(if $(INTEROP_EXTRA_ROOTS),:$(INTEROP_EXTRA_ROOTS))"; \
	start=$$(date +%s); rc=0; \
	TESSERAFS_TILES="$$dir/tiles" TESSERAFS_ROOTS="$$roots" TESSERAFS_YEAR=$(INTEROP_YEAR) \
	TESSERAFS_REQUIRE_JS=1 TESSERAFS_NODE=$(NODE) \
	TESSERAFS_BIN="$(CURDIR)/$(BIN)" TESSERAFS_REQUIRE_SERVE=1 \
	tests/with-mount.sh ./$(BIN) "$$dir/tiles" "$$dir/mount" \
	  $(VPY) -m pytest -c tests/pytest.ini tests/interop $(PYTEST_ARGS) || rc=$$?; \
	echo "interop: pytest took $$(( $$(date +%s) - start )) s (exit $$rc)"; \
	if [ $$rc -eq 0 ] && [ $$keep -eq 0 ]; then rm -rf "$$dir"; else echo "interop: data kept in $$dir"; fi; \
	exit $$rc

# --- bench, demo, clean -------------------------------------------------------------

# Every Go benchmark reports a ratio against a floor measured in the same
# run (zstd alone, local disk, a minimal go-fuse server, in-process
# generation, discovery alone), then the xarray region read (one repetition;
# `make bench-xarray` alone does three). BENCH=regexp narrows the Go part.
BENCH ?= .
bench: build venv
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem ./...
	$(MAKE) --no-print-directory bench-xarray REPS=1

# A 2048 x 2048 x 128 xarray region read through the mount after a remount
# vs. the materialized store (goal >= 0.8x). Data is kept between runs in
# BENCH_XARRAY_DIR (default: tesserafs-bench-xarray under $TMPDIR or /tmp).
BENCH_XARRAY_DIR ?=
REPS ?= 3
.PHONY: bench-xarray
bench-xarray: build venv
	REPS=$(REPS) tests/bench/xarray_region.sh $(BENCH_XARRAY_DIR)

# Only what the demo uses: its system packages, the Python readers, the
# viewer's npm packages (the binary embeds the viewer).
demo-deps:
	$(MAKE) --no-print-directory apt-deps APT_PKGS="$(DEMO_APT_PKGS)"
	$(MAKE) --no-print-directory venv viewer-deps

demo: demo-deps build
	scripts/demo.sh $(BIN) $(CURDIR)/$(VPY) $(DEMO_DIR)

clean:
	rm -rf bin .tools tests/.work $(DEMO_DIR) $(VENV) $(JS_DIR)/node_modules $(VIEWER_WEB)/node_modules
	rm -f $(VIEWER_DIST)/index.html $(VIEWER_DIST)/app.js
	find tests -name __pycache__ -type d -prune -exec rm -rf {} +
