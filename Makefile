# The one task runner: the README's commands and CI call these targets word for word.
#   make run    the main job on a fresh machine (set-up included)
#   make test   every test: fmt, clippy, unit/property/golden/black-box tests, parity on real data

WASM_MODULES := -p tick-filter -p rolling-stats -p zscore-anomaly -p window-bars -p enrich -p bars
# A module with a bug, for the tests of a record a module traps on (never registered by setup).
TEST_WASM_MODULES := -p trap-on-symbol
CARGO ?= cargo

.PHONY: cluster-test setup setup-test wasm wasm-test wasm-release dashboard build run test lint unit e2e parity bench fuzz clean-cache

setup:
	@scripts/setup.sh

setup-test:
	@scripts/setup.sh --test

# What `smdk build` runs for each module (profile release-lto), plus the plain release build.
wasm: setup
	$(CARGO) build --profile release-lto --target wasm32-wasip1 $(WASM_MODULES)

wasm-test: setup
	$(CARGO) build --profile release-lto --target wasm32-wasip1 $(TEST_WASM_MODULES)

wasm-release: setup
	$(CARGO) build --release --target wasm32-wasip1 $(WASM_MODULES)

# The dashboard's front end (Leptos, wasm32-unknown-unknown) into dashboard/dist.
dashboard: setup
	@bash dashboard/build.sh

build: wasm dashboard
	$(CARGO) build --release -p stockstream

# The main job: the embedded pipeline over the sample data, Parquet under outputs/.
# (It resumes from its last commit when run again; `rm -rf outputs/*` starts afresh.)
run: build
	target/release/stockstream run

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --release -- -D warnings
	$(CARGO) fmt --manifest-path dashboard/app/Cargo.toml -- --check
	$(CARGO) clippy --manifest-path dashboard/app/Cargo.toml --release --target wasm32-unknown-unknown -- -D warnings

unit: setup-test wasm wasm-test wasm-release
	$(CARGO) test --workspace --release
	@scripts/fluvio-bins.sh >/dev/null || echo "note: the live-cluster tests (cli/tests/cluster.rs) were skipped: no fluvio-run in \$$FLUVIO_BIN_DIR or on PATH (README.md, Cluster mode)"

# Only the live-cluster tests (they skip without Fluvio's binaries; see README.md).
cluster-test: setup-test wasm wasm-test
	@scripts/fluvio-bins.sh
	$(CARGO) build --release -p producer
	$(CARGO) test --release -p stockstream --test cluster -- --test-threads 2

# The dashboard in headless Chromium against `stockstream run --synthetic`.
e2e: setup-test build
	cd dashboard/e2e && npm test

parity: setup-test build
	scripts/parity.sh

test: setup-test lint unit e2e parity

bench: build setup-test
	@[ -s .cache/es_ticks.jsonl ] || .venv/bin/python reference/prepare_es_ticks.py .cache/es_ticks.jsonl
	target/release/stockstream bench --input .cache/es_ticks.jsonl

# Each fuzz target for FUZZ_SECONDS (default 20 minutes), one after another, one job each:
# libFuzzer on nightly Rust with AddressSanitizer. New inputs go to target/fuzz-corpus; crashes
# to fuzz/targets/artifacts. `make fuzz FUZZ_TARGETS=tick_json FUZZ_SECONDS=60` runs one briefly.
# Not part of `make test`: the corpus replays there on stable (fuzz/tests/corpus.rs).
FUZZ_SECONDS ?= 1200
FUZZ_TARGETS ?= tick_json tick_reader transforms_file smartmodule_batch
fuzz: setup
	@scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)
