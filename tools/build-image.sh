#!/usr/bin/env bash
# Build the local test image for one Debian release: systemd as PID 1 and
# python3 inside, made by debootstrap from Debian's packages (no image registry
# is reachable) and loaded with `docker import`.
#
#   tools/build-image.sh bookworm|trixie [--force]
#
# The image is tagged pyweb-stack-test:<release> and labelled with a hash of
# this recipe and of the host's CA bundle; it is rebuilt only when that hash
# changes (or with --force).
set -euo pipefail

release=${1:?usage: build-image.sh bookworm|trixie [--force]}
force=${2:-}
case "$release" in
  bookworm|trixie) ;;
  *) echo "build-image: unknown release '$release' (allowed: bookworm, trixie)" >&2; exit 2 ;;
esac

mirror=${PYWEB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${PYWEB_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
ca_bundle=/etc/ssl/certs/ca-certificates.crt
image=pyweb-stack-test:$release

# What goes into the image. python3-apt: ansible's apt module; dbus: systemctl
# and hostnamectl talk to it; iproute2/procps: the verify helpers use them.
# No curl and no wrk: a first deploy must work on a host without them (the
# verifiers install their load tools themselves, after converge).
packages=systemd,systemd-sysv,dbus,python3,python3-apt,ca-certificates,procps,iproute2,sudo,gnupg,less

recipe_hash=$( { cat "$0"; echo "$release $packages $mirror"; cat "$ca_bundle"; } | sha256sum | cut -c1-16)

current=$(docker image inspect --format '{{ index .Config.Labels "pyweb.recipe" }}' "$image" 2>/dev/null || true)
if [ "$current" = "$recipe_hash" ] && [ "$force" != "--force" ]; then
  echo "build-image: $image is up to date (recipe $recipe_hash)"
  exit 0
fi

echo "build-image: building $image (recipe $recipe_hash)"
bash "$(dirname "$0")/ensure-packages.sh" debootstrap=debootstrap

work=$(mktemp -d "${TMPDIR:-/var/tmp}/pyweb-rootfs-$release.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root

debootstrap --variant=minbase --include="$packages" \
  --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
  "$release" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror $release main
deb $mirror $release-updates main
deb $security_mirror $release-security main
SOURCES

# apt and pip inside the containers must trust what the host trusts (TLS may
# be intercepted by an egress proxy with its own CA). Kept under
# /usr/local/share so update-ca-certificates keeps it in the bundle.
install -m 0644 "$ca_bundle" "$root/usr/local/share/ca-certificates/pyweb-host-bundle.crt"
install -m 0644 "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt"

# Units that have nothing to do in a container, or that fail there.
for unit in getty.target console-getty.service systemd-udevd.service \
            systemd-udevd-control.socket systemd-udevd-kernel.socket \
            systemd-modules-load.service systemd-remount-fs.service \
            systemd-firstboot.service dev-hugepages.mount \
            sys-fs-fuse-connections.mount systemd-timesyncd.service \
            apt-daily.timer apt-daily-upgrade.timer; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done

# A fresh machine-id per container (systemd writes one on first boot).
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
echo "pyweb-$release" >"$root/etc/hostname"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
# No package lists in the image: make the empty cache look old, so apt
# clients honouring a cache_valid_time refresh it instead of trusting it.
touch -d @0 "$root/var/lib/apt/lists" "$root/var/cache/apt"
rm -f "$root/var/lib/apt/periodic/update-success-stamp"

tar -C "$root" --numeric-owner -c . | docker import \
  --change 'ENV container=docker' \
  --change 'CMD ["/lib/systemd/systemd"]' \
  --change "LABEL pyweb.recipe=$recipe_hash" \
  --change "LABEL pyweb.release=$release" \
  - "$image" >/dev/null
echo "build-image: built $image"
