# The two commands a newcomer runs: `make demo` and `make test`. Each installs what it
# needs (Debian's clang-19/lld-19 for upstream's C++, the project venvs) and is safe to
# re-run: stamps skip finished installs.

SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO   ?= cargo
JOBS    ?= 2
PROFILE ?= ci
PYTHON  ?= python3

VENV          := .venv
UPSTREAM_VENV := .venv-upstream
UPSTREAM_PKG  := tachyon-ipc==0.5.1
TARGET_DIR    := target/$(PROFILE)
FUZZ_SECONDS  ?= 60

# Upstream's package and crate compile C++ that needs clang-19; its objects are LTO
# bitcode, so its links must go through lld-19 too.
CLANG_ENV := CC=clang-19 CXX=clang++-19 \
	LDSHARED="clang-19 -shared --ld-path=/usr/bin/ld.lld-19" \
	LDCXXSHARED="clang++-19 -shared --ld-path=/usr/bin/ld.lld-19"

.PHONY: test-suites demo-run node-path codegen schema-lock help test demo bench bench-py bench-node bench-tcp bench-channel bench-grpc bench-async bench-rust-rpc bench-tonic sysdeps build lint py py-release typecheck deps clang venv upstream node node-release node-deps node-typecheck fuzz-build fuzz sanitize clean

help:
	@echo "make test   - install what is needed, run every test suite (lint, cargo, pytest interop)"
	@echo "make demo   - install what is needed, run the RPC demo and the benchmark table"
	@echo "make bench  - the full benchmark (more samples)"
	@echo "make bench-py - the Python benchmark against upstream's Python package"
	@echo "make bench-node - the Node benchmark against Node's own net over a UNIX socket"
	@echo "make codegen - regenerate the checked-in Python and TypeScript modules from the schemas"
	@echo "make schema-lock - record schemas/tachyon.lock (refuses a breaking change)"
	@echo "make bench-tcp - RPC over TCP against std::net, tokio, raw io_uring and Node's net"
	@echo "make bench-channel - log channel appends and wake-ups against a UNIX datagram socket and a futex"
	@echo "make bench-grpc - cross-host RPC against grpcio and @grpc/grpc-js, and our TLS against plaintext"
	@echo "make bench-async - awaitable calls against blocking ones, over shared memory and TCP"
	@echo "make bench-rust-rpc - async TCP calls against tonic and tarpc (unary echo)"

## ---- installs ---------------------------------------------------------------------

clang:
	@if ! command -v clang-19 >/dev/null || ! command -v ld.lld-19 >/dev/null; then \
		echo "installing clang-19 and lld-19 from Debian"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang-19 lld-19 >/dev/null; \
	fi

$(VENV)/.stamp: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(UPSTREAM_VENV)/.stamp:
	$(MAKE) clang
	$(PYTHON) -m venv $(UPSTREAM_VENV)
	$(CLANG_ENV) $(UPSTREAM_VENV)/bin/pip install -q --disable-pip-version-check $(UPSTREAM_PKG)
	touch $@

# iproute2 for the network-namespace tests (the cross-host TCP path).
sysdeps:
	@if ! command -v ip >/dev/null; then \
		echo "installing iproute2 from Debian"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null; \
	fi

venv: $(VENV)/.stamp
upstream: $(UPSTREAM_VENV)/.stamp
deps: sysdeps venv upstream

# The Node package's dev tools (typescript, @types/node), pinned by package-lock.json.
NODE_DIR := tachyon-node
# --ignore-scripts: `prepare` would build the release addon; the test flow builds its own.
$(NODE_DIR)/node_modules/.stamp: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@
node-deps: $(NODE_DIR)/node_modules/.stamp

## ---- build and test -----------------------------------------------------------------

build:
	$(CARGO) build --workspace --profile $(PROFILE) -j$(JOBS) --bins --tests
	# The fuzz targets compile (checked, not built: the corpus replay runs their entry points).
	$(CARGO) check --manifest-path tachyon/fuzz/Cargo.toml --target-dir target -j$(JOBS)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -j$(JOBS) -- -D warnings
	$(CARGO) clippy -p tachyon --no-default-features --all-targets -j$(JOBS) -- -D warnings
	$(CARGO) clippy -p tachyon-schema --features cli --all-targets -j$(JOBS) -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc -p tachyon --no-deps -j$(JOBS)
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc -p tachyon --no-deps --all-features -j$(JOBS)

# The Python package `tachyon` (tachyon-py/): its manylinux wheel (zig links against
# glibc 2.28), built once and installed into .venv; the packaging test checks this same
# wheel (TACHYON_WHEEL).
WHEEL_DIR := $(CURDIR)/target/wheels-$(PROFILE)
py: venv
	rm -rf $(WHEEL_DIR)
	env -u VIRTUAL_ENV PATH="$(CURDIR)/$(VENV)/bin:$$PATH" CARGO_BUILD_JOBS=$(JOBS) \
		$(VENV)/bin/maturin build -q --profile $(PROFILE) --zig --compatibility manylinux_2_28 \
		-m tachyon-py/Cargo.toml -o $(WHEEL_DIR)
	$(VENV)/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps $(WHEEL_DIR)/*.whl

# The package built optimised (thin LTO), for the demo and the benchmarks.
py-release: venv
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(VENV)/bin/maturin develop -q --release \
		-m tachyon-py/Cargo.toml

# The hand-written stubs and the examples, checked strictly.
typecheck: py
	MYPYPATH=examples/generated/python $(VENV)/bin/mypy --strict tachyon-py/python/tachyon tachyon-py/examples \
		examples/python tests/schema/generated/conformance.py tests/schema/generated/feed.py examples/generated/python/quote.py
	$(VENV)/bin/python -m mypy.stubtest tachyon._tachyon --allowlist tachyon-py/stubtest-allowlist.txt

# The Node package's native addon (tachyon-node/), built by napi-rs's CLI next to its JS
# layer (tachyon.<platform>.node); it also regenerates the committed loader (native.js)
# and native typings (native.d.ts), which a test checks for drift.
NAPI_BUILD := cd $(NODE_DIR) && CARGO_BUILD_JOBS=$(JOBS) node_modules/.bin/napi build --platform --js native.js --dts native.d.ts
node: node-deps
	$(NAPI_BUILD) --profile $(PROFILE)

node-release: node-deps
	$(NAPI_BUILD) --release

# The TypeScript declarations, checked against the typed usage examples.
node-typecheck: node-deps
	cd $(NODE_DIR) && node_modules/.bin/tsc -p test/types --noEmit
	cd $(NODE_DIR) && node_modules/.bin/tsc -p ../tests/schema

PEER_ENV := TACHYON_REQUIRE_PEERS=1 TACHYON_PEER=$(CURDIR)/$(TARGET_DIR)/tachyon-peer \
	TACHYON_WHEEL=$$(ls $(WHEEL_DIR)/*.whl 2>/dev/null) \
	TACHYON_PYTHON=$(CURDIR)/$(VENV)/bin/python UPSTREAM_PYTHON=$(CURDIR)/$(UPSTREAM_VENV)/bin/python

# Everything runs with TMPDIR in a directory of its own, removed when the run ends
# (tests/with-tmpdir); the suites also clean up after themselves.
WITH_TMPDIR := $(CURDIR)/tests/with-tmpdir

test:
	$(WITH_TMPDIR) $(MAKE) --no-print-directory test-suites

test-suites: deps build lint py typecheck node node-typecheck
	$(PEER_ENV) $(CARGO) test --workspace --profile $(PROFILE) -j$(JOBS)
	# The shared-memory-only build (default-features = false) is a configuration of its own.
	$(CARGO) test -p tachyon --no-default-features --profile $(PROFILE) -j$(JOBS) --lib --test wakeups
	$(PEER_ENV) $(VENV)/bin/pytest tests tachyon-py/tests -q -p no:cacheprovider
	cd $(NODE_DIR) && $(PEER_ENV) node --test --test-concurrency=1 test/*.test.js

## ---- demo and benchmark ---------------------------------------------------------------

# What `npm install tachyon-rpc` would give the examples: the package under its name.
node-path:
	mkdir -p target/node_path && ln -sfn ../../$(NODE_DIR) target/node_path/tachyon-rpc

# The checked-in modules generated from schemas/ and tests/schemas/ (a test checks
# that they match), and schemas/tachyon.lock (a test checks that nothing breaks it).
CODEGEN := $(CARGO) run -q -p tachyon-schema --features cli -j$(JOBS) --
codegen:
	$(CODEGEN) gen --lang python schemas -o examples/generated/python
	$(CODEGEN) gen --lang typescript schemas -o examples/generated/ts
	$(CODEGEN) gen --lang python tests/schemas -o tests/schema/generated
	$(CODEGEN) gen --lang typescript tests/schemas -o tests/schema/generated
	$(CODEGEN) gen --lang python tests/schemas/streaming -o tests/schema/generated
	$(CODEGEN) gen --lang typescript tests/schemas/streaming -o tests/schema/generated
schema-lock:
	$(CODEGEN) lock schemas

demo:
	$(WITH_TMPDIR) $(MAKE) --no-print-directory demo-run

demo-run: clang deps py-release node-release node-path
	NODE_PATH=$(CURDIR)/target/node_path $(CARGO) run -q -p tachyon-examples --bin rpc_demo --profile bench -j$(JOBS) -- \
		--python $(VENV)/bin/python examples/python/quote_client.py \
		--node node examples/node/quote_client.js
	@echo
	$(CARGO) run -q -p tachyon-cli --profile bench -j$(JOBS) -- bench --plot target/tachyon-bench.svg
	@echo
	$(CLANG_ENV) $(CARGO) run -q -p tachyon-bench --profile bench --features upstream -j$(JOBS) -- \
		--samples 100000 --rounds 5 --stream 2000000
	@echo
	$(VENV)/bin/python tachyon-py/bench/pybench.py --ours $(VENV)/bin/python \
		--upstream $(UPSTREAM_VENV)/bin/python --rounds 3

# Python to Python, ours against upstream's package.
bench-py: deps py-release
	$(CARGO) build -q -p tachyon-tests --bin tachyon-peer --release -j$(JOBS)
	$(VENV)/bin/python tachyon-py/bench/pybench.py --ours $(VENV)/bin/python \
		--upstream $(UPSTREAM_VENV)/bin/python --peer target/release/tachyon-peer \
		--rounds 5 --stream 1000000 --samples 50000

# Node to Node and Node to Rust, against Node's own net over a UNIX socket.
bench-node: node-release
	$(CARGO) build -q -p tachyon-tests --bin tachyon-peer --release -j$(JOBS)
	TACHYON_PEER=$(CURDIR)/target/release/tachyon-peer taskset -c 0 node $(NODE_DIR)/bench/bench.js

bench: clang bench-tcp
	$(CLANG_ENV) $(CARGO) run -q -p tachyon-bench --profile bench --features upstream -j$(JOBS) -- \
		--samples 500000 --rounds 10 --stream 5000000

# RPC over TCP against std::net, tokio, raw io_uring and Node's net (CPU placement is
# printed; see bench/src/tcp/main.rs).
bench-tcp:
	$(CARGO) run -q -p tachyon-bench --bin tachyon-tcp-bench --profile bench -j$(JOBS) -- \
		--samples 50000 --rounds 5 --seconds 2

# Cross-host RPC against gRPC: Python (ours vs grpcio, generated stubs) and Node (ours vs
# @grpc/grpc-js), then our TLS against our plaintext. CPU placement is printed by each.
bench-grpc: deps py-release node-release
	$(VENV)/bin/pip install -q 'grpcio>=1.60' 'grpcio-tools>=1.60'
	cd bench/grpc && npm install --no-audit --no-fund --silent
	$(VENV)/bin/python bench/grpc/py_bench.py --rounds 3 --seconds 2
	@echo
	mkdir -p $(CURDIR)/target/node_path && ln -sfn $(CURDIR)/$(NODE_DIR) $(CURDIR)/target/node_path/tachyon-rpc
	NODE_PATH=$(CURDIR)/target/node_path node bench/grpc/node_bench.js --rounds 3 --seconds 2
	@echo
	$(CARGO) run -q -p tachyon-bench --bin tachyon-tls-bench --profile bench -j$(JOBS) -- \
		--rounds 3 --seconds 2

# Awaitable calls against blocking ones, shared memory and TCP (CPU placement printed).
bench-async:
	$(CARGO) run -q -p tachyon-bench --bin tachyon-async-bench --profile bench -j$(JOBS) -- \
		--rounds 3 --seconds 2

# Async TCP calls against tonic and tarpc (bench/rust-rpc, its own crate outside the
# workspace, so make test never builds gRPC; protoc comes from apt for tonic-build).
# CPU placement is printed.
bench-rust-rpc:
	command -v protoc >/dev/null || (apt-get update -qq && apt-get install -y -qq protobuf-compiler)
	cd bench/rust-rpc && $(CARGO) run -q --release -j$(JOBS) -- --rounds 3 --seconds 2 --samples 10000

bench-tonic: bench-rust-rpc

bench-channel:
	$(CARGO) run -q -p tachyon-bench --bin tachyon-channel-bench --profile bench -j$(JOBS) -- \
		--entries 2000000 --samples 2000

## ---- fuzzing and sanitizers ---------------------------------------------------------

# Every parser of untrusted bytes has a cargo-fuzz target (tachyon/fuzz/fuzz_targets/).
# `make test` replays their committed corpora uninstrumented (tachyon/tests/fuzz_corpus.rs);
# `make fuzz` runs each target for FUZZ_SECONDS and grows its corpus.
FUZZ_TARGETS := consumer consumer_fast bootstrap arena_attach producer rpc_error tiga_call typed_dispatch rpc_correlation frames tcp_conn channel_file peer_identity

fuzz-build:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd tachyon && RUSTC_BOOTSTRAP=1 CARGO_BUILD_JOBS=$(JOBS) $(CARGO) fuzz build

fuzz: fuzz-build
	cd tachyon && for t in $(FUZZ_TARGETS); do \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 || exit 1; \
	done

# The core's tests under ThreadSanitizer and AddressSanitizer. Both rebuild the standard
# library instrumented (-Zbuild-std, hence rust-src); RUSTC_BOOTSTRAP lets the stable
# toolchain take the flags.
SANITIZE_TESTS := --lib --test wakeups --test fuzz_corpus
SAN_TARGET := x86_64-unknown-linux-gnu

sanitize:
	rustup component list --installed | grep -q rust-src || rustup component add rust-src
	RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zsanitizer=thread" TSAN_OPTIONS="halt_on_error=1" \
		$(CARGO) test -Zbuild-std --target $(SAN_TARGET) --target-dir target/tsan -j$(JOBS) \
		-p tachyon --features test-hooks $(SANITIZE_TESTS)
	RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zsanitizer=address" ASAN_OPTIONS="detect_leaks=1" \
		$(CARGO) test -Zbuild-std --target $(SAN_TARGET) --target-dir target/asan -j$(JOBS) \
		-p tachyon --features test-hooks $(SANITIZE_TESTS)

clean:
	$(CARGO) clean
	rm -rf $(VENV) $(UPSTREAM_VENV) $(NODE_DIR)/node_modules $(NODE_DIR)/*.node
