#!/usr/bin/env bash
# Install the Debian packages the project's tools need when they are missing:
#   tools/ensure-packages.sh COMMAND=PACKAGE ...   (py:MODULE=PACKAGE: a python3 module)
# The one way the project's scripts install host packages. Two scripts running
# at once (image builds side by side, make -j) would collide on apt's locks
# ("Could not get lock /var/lib/apt/lists/lock"): every install here takes one
# project lock first, and apt itself waits for a lock held by anyone else
# (unattended-upgrades, a user's apt) instead of failing.
set -euo pipefail
have() {
  case "$1" in
    py:*) python3 -c "import ${1#py:}" >/dev/null 2>&1 ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}
missing=()
for pair in "$@"; do
  have "${pair%%=*}" || missing+=("${pair#*=}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
export DEBIAN_FRONTEND=noninteractive
lock=${PYWEB_APT_LOCK:-/var/lock/pyweb-apt.lock}
wait_s=${PYWEB_APT_LOCK_WAIT:-600}
exec 9>"$lock"
flock --timeout "$wait_s" 9 || { echo "ensure-packages: $lock held for ${wait_s}s" >&2; exit 1; }
# Another holder of the lock may have installed them meanwhile.
still=()
for pair in "$@"; do
  have "${pair%%=*}" || still+=("${pair#*=}")
done
[ ${#still[@]} -eq 0 ] && exit 0
echo "ensure-packages: installing ${still[*]}" >&2
apt_opts=(-o "DPkg::Lock::Timeout=$wait_s" -o "APT::Update::Error-Mode=any")
apt-get "${apt_opts[@]}" update -qq
apt-get "${apt_opts[@]}" install -y -qq "${still[@]}" >/dev/null
