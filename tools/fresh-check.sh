#!/usr/bin/env bash
# The README's two commands on a machine that has nothing: run every install
# step they take inside a bare Debian 12 container (the test image: python3
# without venv, no compiler, no debootstrap, no Docker), several at the same
# time as `make -j` would, and check each tool they need then works.
#
# What needs privileges a container lacks (starting dockerd, debootstrap's
# chroot) is not run here; the installs that precede them are.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
image=pyweb-stack-test:bookworm
name=pyweb-fresh-check
docker rm --force "$name" >/dev/null 2>&1 || true
trap 'docker rm --force "$name" >/dev/null 2>&1 || true' EXIT
start=$(date +%s)
# The README's only prerequisites: a clone (git), make and python3.
docker run --name "$name" --volume "$here:/src:ro" --env DEBIAN_FRONTEND=noninteractive "$image" bash -euo pipefail -c '
  apt-get update -qq && apt-get install -y -qq git make >/dev/null
  git clone -q /src /work && cd /work
  for tool in gcc debootstrap dockerd shellcheck; do
    if command -v "$tool" >/dev/null; then echo "fresh-check: $tool is already in the bare image"; exit 1; fi
  done
  # Everything that installs host packages, at once: the venv (compiler,
  # python3-venv, headers), the image builder (debootstrap), the engine
  # (docker.io) and the sanity tools (shellcheck).
  make venv > venv.log 2>&1 & venv=$!
  bash tools/ensure-packages.sh debootstrap=debootstrap > deboot.log 2>&1 & deboot=$!
  bash tools/ensure-packages.sh dockerd=docker.io > docker.log 2>&1 & dock=$!
  bash tools/ensure-packages.sh shellcheck=shellcheck > shellcheck.log 2>&1 & sc=$!
  status=0
  for job in venv:$venv deboot:$deboot docker:$dock shellcheck:$sc; do
    if ! wait "${job#*:}"; then echo "fresh-check: ${job%%:*} failed:"; tail -n 20 "${job%%:*}.log"; status=1; fi
  done
  [ "$status" = 0 ] || exit 1
  if grep -h "Could not get lock" ./*.log; then echo "fresh-check: apt lock collision"; exit 1; fi
  # (no "| head": under pipefail a closed pipe fails the check)
  .venv/bin/ansible-playbook --version >versions.txt
  # (molecule --version wants a Docker engine: importing it proves the install)
  .venv/bin/python -c "import importlib.metadata as m; print(\"molecule\", m.version(\"molecule\"))" >>versions.txt
  debootstrap --version >>versions.txt
  dockerd --version >>versions.txt
  shellcheck --version >>versions.txt
  grep -E "^(ansible-playbook|molecule|debootstrap|Docker version|version:)" versions.txt
  echo "fresh-check: every install step passed side by side"
'
echo "fresh-check: took $(( $(date +%s) - start ))s"
