#!/usr/bin/env bash
# Installs everything agentscope needs on a fresh Debian 12 machine, idempotently:
# each step checks for what it installs first, so a second run changes nothing.
# Versions known to work are listed in DEVELOPERS.md.
set -euo pipefail

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: must run as root (apt-get, rustup components, tracefs mount); try: sudo make setup" >&2
    exit 1
  fi
}
need_root

export PATH="$HOME/.cargo/bin:$PATH"
LLVM_MAJOR=22
BPF_LINKER_VERSION=0.13.0

# Debian packages: LLVM for bpf-linker, test servers and tools for the test agents (util-linux:
# setpriv, which runs a console as another user in tests/serve_connect.rs; gcc and libssl-dev:
# the static OpenSSL 3 TLS loop, tests/agents/openssl_static_loop.c; kmod: the `insmod` and
# `modprobe` the agent runs in tests/agent_escape.rs, attempts this module-less kernel refuses).
debs=(
  "llvm-${LLVM_MAJOR}-dev" "libpolly-${LLVM_MAJOR}-dev" zlib1g-dev libzstd-dev
  pkg-config openssl ca-certificates python3 nodejs tmux postgresql iproute2
  redis-server redis-tools util-linux golang-go libmbedtls-dev gcc libssl-dev
  podman runc kmod
)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs may come from a non-Debian source on some machines; a working `node` is what matters.
if command -v node >/dev/null 2>&1; then
  missing=("${missing[@]/nodejs/}")
fi
# python3 likewise (pyenv builds count).
if command -v python3 >/dev/null 2>&1; then
  missing=("${missing[@]/python3/}")
fi
filtered=()
for p in "${missing[@]}"; do [ -n "$p" ] && filtered+=("$p"); done
if [ ${#filtered[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${filtered[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${filtered[@]}"
  # The Debian postgresql package starts a cluster service on install; tests start their own.
  if command -v pg_ctlcluster >/dev/null 2>&1; then pg_ctlcluster --force 15 main stop >/dev/null 2>&1 || true; fi
  # Likewise redis-server's service (fixture regeneration starts its own on a free port).
  if command -v service >/dev/null 2>&1; then service redis-server stop >/dev/null 2>&1 || true; fi
fi

# The test agents (the MCP SDK venv and the coding agents from npm) are downloads, while the
# Rust toolchain steps below are mostly CPU (bpf-linker's build): the agents install in the
# background meanwhile, into a log that is shown if they fail.
install_test_agents() {
  # MCP test agents (tests/agents/mcp_*.py): the official MCP Python SDK, pinned, in a venv of
  # their own rather than system-wide. Tests run that venv's interpreter: $AGENTSCOPE_TEST_PYTHON,
  # by default $HOME/.cache/agentscope/test-venv/bin/python.
  MCP_SDK_VERSION=2.3.0
  TEST_VENV="$HOME/.cache/agentscope/test-venv"
  if ! "$TEST_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('mcp') != '$MCP_SDK_VERSION')" 2>/dev/null; then
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
      echo "setup: installing python3-venv"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
    fi
    echo "setup: installing the MCP Python SDK $MCP_SDK_VERSION into $TEST_VENV"
    python3 -m venv "$TEST_VENV"
    "$TEST_VENV/bin/pip" install --quiet --disable-pip-version-check "mcp==$MCP_SDK_VERSION"
  fi

  # The HTTP/2 protocol library (python-hyper's h2) for the h2c test agent and server
  # (tests/agents/h2c_*.py), in the same venv.
  H2_VERSION=4.3.0
  if ! "$TEST_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('h2') != '$H2_VERSION')" 2>/dev/null; then
    echo "setup: installing h2 $H2_VERSION into $TEST_VENV"
    "$TEST_VENV/bin/pip" install --quiet --disable-pip-version-check "h2==$H2_VERSION"
  fi

  # The WebSocket library (websockets) for the wss test agent and server
  # (tests/agents/websocket_*.py) and the WebSocket fixtures
  # (scripts/regenerate-fixtures-websocket.py), in the same venv.
  WEBSOCKETS_VERSION=17.4
  if ! "$TEST_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('websockets') != '$WEBSOCKETS_VERSION')" 2>/dev/null; then
    echo "setup: installing websockets $WEBSOCKETS_VERSION into $TEST_VENV"
    "$TEST_VENV/bin/pip" install --quiet --disable-pip-version-check "websockets==$WEBSOCKETS_VERSION"
  fi

  # A real gRPC stack (grpcio: gRPC C-core, which writes with sendmsg and reads with recvmsg)
  # for the gRPC client and the vector-database-shaped server (tests/agents/grpc_*.py).
  GRPCIO_VERSION=1.76.0
  if ! "$TEST_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('grpcio') != '$GRPCIO_VERSION')" 2>/dev/null; then
    echo "setup: installing grpcio $GRPCIO_VERSION into $TEST_VENV"
    "$TEST_VENV/bin/pip" install --quiet --disable-pip-version-check "grpcio==$GRPCIO_VERSION"
  fi

  # The OTLP receiver of the export tests (tests/agents/otlp_receiver.py): the official
  # OpenTelemetry protocol definitions (protobuf messages and gRPC services; grpcio above).
  OTEL_PROTO_VERSION=1.45.2
  if ! "$TEST_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('opentelemetry-proto') != '$OTEL_PROTO_VERSION')" 2>/dev/null; then
    echo "setup: installing opentelemetry-proto $OTEL_PROTO_VERSION into $TEST_VENV"
    "$TEST_VENV/bin/pip" install --quiet --disable-pip-version-check "opentelemetry-proto==$OTEL_PROTO_VERSION"
  fi
  # A DNS server whose answers change (tests/agents/dns_server.py) for enforcement's DNS names
  # (tests/enforcement_ops.rs), in the same venv.
  DNSLIB_VERSION=0.9.26
  if ! "$TEST_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('dnslib') != '$DNSLIB_VERSION')" 2>/dev/null; then
    echo "setup: installing dnslib $DNSLIB_VERSION into $TEST_VENV"
    "$TEST_VENV/bin/pip" install --quiet --disable-pip-version-check "dnslib==$DNSLIB_VERSION"
  fi

  # Offline validation of deploy/'s manifests against the Kubernetes schemas
  # (tests/node_container.rs), in the same venv.
  KUBERNETES_VALIDATE_VERSION=1.37.0
  if ! "$TEST_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('kubernetes-validate') != '$KUBERNETES_VALIDATE_VERSION')" 2>/dev/null; then
    echo "setup: installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $TEST_VENV"
    "$TEST_VENV/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  fi

  # The official CycloneDX JSON schemas (bom-1.6.schema.json and the SPDX and JSF schemas it
  # refers to), as the CycloneDX Python library ships them: tests/aibom_cyclonedx.rs validates
  # `agentscope aibom -o cyclonedx` against them. In the same venv.
  CYCLONEDX_LIB_VERSION=11.12.0
  if ! "$TEST_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('cyclonedx-python-lib') != '$CYCLONEDX_LIB_VERSION')" 2>/dev/null; then
    echo "setup: installing cyclonedx-python-lib $CYCLONEDX_LIB_VERSION into $TEST_VENV"
    "$TEST_VENV/bin/pip" install --quiet --disable-pip-version-check "cyclonedx-python-lib==$CYCLONEDX_LIB_VERSION"
  fi

  # Real coding agents from npm, at pinned releases, each in a prefix of its own under
  # $AGENTSCOPE_AGENTS_DIR (default $HOME/.cache/agentscope/agents/NAME@VERSION; the executable
  # is node_modules/.bin/NAME there). Two releases of Claude Code six months apart and of Codex
  # CLI four months apart: their TLS stacks are located from the binaries themselves, and a
  # locator that only works for one build is caught. Tests run them against a local TLS mock.
  AGENTS_DIR="${AGENTSCOPE_AGENTS_DIR:-$HOME/.cache/agentscope/agents}"
  npm_agents=(
    "@anthropic-ai/claude-code@2.1.113"
    "@anthropic-ai/claude-code@2.1.332"
    "@openai/codex@0.101.0"
    "@openai/codex@0.171.0"
    "@google/gemini-cli@0.61.0"
    # Plain Bun (its BoringSSL linked in, SSL_* not exported), for the per-call cost of the
    # located BoringSSL probes (crates/cli/benches/tls_probe_overhead.rs).
    "@oven/bun-linux-x64@1.3.5"
  )
  for spec in "${npm_agents[@]}"; do
    name="${spec%@*}"; version="${spec##*@}"
    prefix="$AGENTS_DIR/${name#*/}@$version"
    if [ ! -f "$prefix/.installed" ]; then
      echo "setup: installing $spec into $prefix"
      rm -rf "$prefix"; mkdir -p "$prefix"
      npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "$spec" >/dev/null
      touch "$prefix/.installed"
    fi
  done
}
agents_log="$(mktemp /tmp/agentscope-setup-agents.XXXXXX)"
install_test_agents >"$agents_log" 2>&1 &
agents_pid=$!
# A failing step below ends the script: the background installs end with it.
trap 'kill "$agents_pid" 2>/dev/null || true' EXIT

# Rust toolchains: stable for userspace, nightly with rust-src for the BPF target (build-std).
if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
if ! rustup component list --toolchain nightly --installed | grep -q '^rust-src'; then
  rustup component add rust-src --toolchain nightly
fi
if ! rustup component list --installed | grep -q '^rustfmt'; then
  rustup component add rustfmt
fi

# bpf-linker built against the system LLVM 22.
if ! { command -v bpf-linker >/dev/null 2>&1 && bpf-linker --version 2>/dev/null | grep -q "$BPF_LINKER_VERSION"; }; then
  echo "setup: building bpf-linker $BPF_LINKER_VERSION against LLVM $LLVM_MAJOR (takes a few minutes)"
  PATH="/usr/lib/llvm-${LLVM_MAJOR}/bin:$PATH" cargo +stable install --locked bpf-linker \
    --version "$BPF_LINKER_VERSION" --no-default-features --features "llvm-${LLVM_MAJOR}"
fi

# The rustls + aws-lc-rs TLS loop (tests/rustls_capture.rs, the aws-lc locator's unit tests, the
# tls_probe_overhead bench): its own lockfile and target directory under $HOME/.cache, so
# aws-lc's C build (about a minute of CPU) is paid once per machine; afterwards this is cargo's
# no-op check.
if ! "$(dirname "$0")/../tests/agents/rustls_tls_loop/build.sh" >/dev/null; then
  echo "setup: building tests/agents/rustls_tls_loop failed" >&2
  exit 1
fi

# tracefs: the collector mounts it too, but tests and bpftool-style debugging want it.
if [ ! -e /sys/kernel/tracing/events ]; then
  mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
fi

agents_status=0
wait "$agents_pid" || agents_status=$?
trap - EXIT
if [ "$agents_status" -ne 0 ]; then
  cat "$agents_log" >&2
  rm -f "$agents_log"
  echo "setup: installing the test agents failed (output above)" >&2
  exit 1
fi
cat "$agents_log"
rm -f "$agents_log"

echo "setup: ok"
