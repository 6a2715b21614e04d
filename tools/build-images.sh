#!/usr/bin/env bash
# Build several test images side by side (debootstrap is mostly waiting on the
# network); fail if any build failed, showing its log.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
# Once, before the builds start: each build would otherwise install it itself,
# and two apt runs at once fail on its lock.
bash "$here/ensure-packages.sh" debootstrap=debootstrap
pids=()
for release in "$@"; do
  bash "$here/build-image.sh" "$release" >"$logs/$release.log" 2>&1 &
  pids+=("$!")
done
status=0
i=0
for release in "$@"; do
  if ! wait "${pids[$i]}"; then status=1; fi
  cat "$logs/$release.log"
  i=$((i + 1))
done
exit "$status"
