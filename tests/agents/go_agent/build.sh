#!/bin/sh
# Builds the Go test agent twice into OUT_DIR: go_agent (with its symbol table) and
# go_agent_stripped (-ldflags='-s -w': no symbols, no DWARF; the Go function table stays).
# Used by the locator's unit tests and tests/go_tls_capture.rs; needs Debian's golang-go
# (make setup). Offline: the agent uses the standard library only.
set -eu
out=${1:?usage: build.sh OUT_DIR}
cd "$(dirname "$0")"
mkdir -p "$out"
export GOFLAGS=-mod=mod GOPROXY=off GO111MODULE=on
# go needs a build cache; without HOME (some CI environments) it has no default.
if [ -z "${GOCACHE:-}" ] && [ -z "${HOME:-}" ]; then
  export GOCACHE="${TMPDIR:-/tmp}/agentscope-go-build-cache"
fi
go build -trimpath -o "$out/go_agent" .
go build -trimpath -ldflags='-s -w' -o "$out/go_agent_stripped" .
