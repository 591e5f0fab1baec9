#!/usr/bin/env bash
# Builds the agentscope OCI image with podman, FROM scratch: the binary plus the shared
# libraries `ldd` says it loads (glibc's loader, libc, libm, libgcc_s), copied from this
# machine, so the image runs wherever this build's binary runs. No registry is needed.
#
#   scripts/build-image.sh [PROFILE] [TAG]
#
# PROFILE is release (default: what `make image` builds) or debug (the tests use the binary
# they already built, so CI never pays for a release build). TAG defaults to
# localhost/agentscope:PROFILE.
set -euo pipefail
profile="${1:-release}"
tag="${2:-localhost/agentscope:$profile}"
cd "$(dirname "$0")/.."
binary="target/$profile/agentscope"
if [ ! -x "$binary" ]; then
  echo "build-image: $binary not built (cargo build$([ "$profile" = release ] && echo " --release"))" >&2
  exit 1
fi
command -v podman >/dev/null || { echo "build-image: podman not installed (make setup)" >&2; exit 1; }
context="$(mktemp -d /tmp/agentscope-image.XXXXXX)"
trap 'rm -rf "$context"' EXIT
rootfs="$context/rootfs"
install -D -m 0755 "$binary" "$rootfs/usr/bin/agentscope"
# Every library the loader resolves, at the path it resolves it to, plus the loader itself.
ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\/.*ld-linux/ { print $1 }' | while read -r lib; do
  install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
done
# Writable scratch space (a recording's temporary files go next to it, not here; the TUI
# needs none), owned by nobody in particular.
install -d -m 1777 "$rootfs/tmp"
cp deploy/image/Containerfile "$context/Containerfile"
# The image this tag named before: removed once replaced, so rebuilds leave no untagged
# images behind (each holds a copy of the binary).
previous="$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
podman build --quiet --tag "$tag" "$context" >/dev/null
current="$(podman image inspect --format '{{.Id}}' "$tag")"
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
  podman rmi "$previous" >/dev/null 2>&1 || true
fi
echo "$tag"
