#!/usr/bin/env bash
# Regenerates tests/fixtures/mcp/ from a live capture: runs the privileged end-to-end
# test tests/mcp_capture.rs (the MCP client agent, its stdio server and the Streamable HTTP
# server under `agentscope collect --json`), which saves what the collector captured there.
# Needs root and the MCP test venv (make setup). Extra arguments go to cargo, e.g. --release.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$PWD/tests/fixtures/mcp"
rm -rf "$out"
mkdir -p "$out"
AGENTSCOPE_WRITE_MCP_FIXTURES="$out" ${CARGO:-cargo} test --locked "$@" -p agentscope \
  --test e2e -- --exact mcp_capture::stdio_mcp_is_captured_on_both_ends
ls -l "$out"
