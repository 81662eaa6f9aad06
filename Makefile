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

.PHONY: help test demo bench bench-py build lint py py-release typecheck deps clang venv upstream fuzz-build fuzz clean

help:
	@echo "make test   - install what is needed, run every test suite (lint, cargo, pytest interop)"
	@echo "make demo   - install what is needed, run the RPC demo and the benchmark table"
	@echo "make bench  - the full benchmark (more samples)"
	@echo "make bench-py - the Python benchmark against upstream's Python package"

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

venv: $(VENV)/.stamp
upstream: $(UPSTREAM_VENV)/.stamp
deps: venv upstream

## ---- build and test -----------------------------------------------------------------

build:
	$(CARGO) build --workspace --profile $(PROFILE) -j$(JOBS) --bins --tests
	$(CARGO) build --manifest-path tachyon/fuzz/Cargo.toml --target-dir target -j$(JOBS)

lint:
	$(CARGO) clippy --workspace --all-targets -j$(JOBS) -- -D warnings

# The Python package `tachyon` (tachyon-py/), built and installed into .venv.
py: venv
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(VENV)/bin/maturin develop -q --profile $(PROFILE) \
		-m tachyon-py/Cargo.toml

# The package built optimised (thin LTO), for the demo and the benchmarks.
py-release: venv
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(VENV)/bin/maturin develop -q --release \
		-m tachyon-py/Cargo.toml

# The hand-written stubs and the examples, checked strictly.
typecheck: py
	$(VENV)/bin/mypy --strict tachyon-py/python/tachyon tachyon-py/examples examples/python
	$(VENV)/bin/python -m mypy.stubtest tachyon._tachyon --allowlist tachyon-py/stubtest-allowlist.txt

test: deps build lint py typecheck
	$(CARGO) test --workspace --profile $(PROFILE) -j$(JOBS)
	TACHYON_REQUIRE_PEERS=1 TACHYON_PEER=$(CURDIR)/$(TARGET_DIR)/tachyon-peer \
		UPSTREAM_PYTHON=$(CURDIR)/$(UPSTREAM_VENV)/bin/python \
		$(VENV)/bin/pytest tests tachyon-py/tests -q -p no:cacheprovider

## ---- demo and benchmark ---------------------------------------------------------------

demo: clang deps py-release
	$(CARGO) run -q -p tachyon-examples --bin rpc_demo --profile bench -j$(JOBS) -- \
		--python $(VENV)/bin/python examples/python/quote_client.py
	@echo
	$(CLANG_ENV) $(CARGO) run -q -p tachyon-bench --profile bench --features upstream -j$(JOBS) -- \
		--samples 100000 --rounds 5 --stream 2000000
	@echo
	$(VENV)/bin/python tachyon-py/bench/pybench.py --ours $(VENV)/bin/python \
		--upstream $(UPSTREAM_VENV)/bin/python --rounds 3

# Python to Python, ours against upstream's package.
bench-py: deps py-release
	$(VENV)/bin/python tachyon-py/bench/pybench.py --ours $(VENV)/bin/python \
		--upstream $(UPSTREAM_VENV)/bin/python --rounds 5 --stream 1000000 --samples 50000

bench: clang
	$(CLANG_ENV) $(CARGO) run -q -p tachyon-bench --profile bench --features upstream -j$(JOBS) -- \
		--samples 500000 --rounds 10 --stream 5000000

## ---- fuzzing ---------------------------------------------------------------------------

fuzz-build:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd tachyon && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build consumer

fuzz: fuzz-build
	cd tachyon && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run consumer -- -max_total_time=$(FUZZ_SECONDS)

clean:
	$(CARGO) clean
	rm -rf $(VENV) $(UPSTREAM_VENV)
