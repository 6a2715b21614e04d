# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tell whether the code runs inside a container, and which kind.

Private to pyweb.stack. Every probe reads a file under a root that tests can
point at a fixture tree; nothing here executes a command.
"""

from __future__ import annotations

import os
import re

__all__ = ["detect_container"]

# Names systemd and the container engines write, mapped to one spelling.
_KNOWN = {
    "docker": "docker",
    "podman": "podman",
    "lxc": "lxc",
    "lxc-libvirt": "lxc",
    "systemd-nspawn": "systemd-nspawn",
    "containerd": "containerd",
    "crio": "cri-o",
    "cri-o": "cri-o",
    "kubepods": "kubernetes",
    "wsl": "wsl",
    "oci": "oci",
}

_CGROUP_HINTS = (
    ("docker", "docker"),
    ("kubepods", "kubernetes"),
    ("libpod", "podman"),
    ("lxc.payload", "lxc"),
    ("/lxc/", "lxc"),
    ("containerd", "containerd"),
)


def _read(root, path):
    try:
        with open(os.path.join(root, path.lstrip("/")), "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return None


def _normalise(name):
    name = name.strip().lower()
    return _KNOWN.get(name, name or "unknown")


def detect_container(root="/"):
    """Return ``(in_container, kind, evidence)``.

    ``kind`` is ``None`` on a host or VM. ``evidence`` names the file that
    decided, so a surprising answer can be checked by hand.
    """
    value = _read(root, "/run/systemd/container")
    if value and value.strip():
        return True, _normalise(value), "/run/systemd/container"

    environ = _read(root, "/proc/1/environ")
    if environ:
        for item in environ.split("\0"):
            if item.startswith("container="):
                return True, _normalise(item.split("=", 1)[1]), "/proc/1/environ"

    if os.path.exists(os.path.join(root, ".dockerenv")):
        return True, "docker", "/.dockerenv"
    if os.path.exists(os.path.join(root, "run/.containerenv")):
        return True, "podman", "/run/.containerenv"

    cgroup = _read(root, "/proc/1/cgroup") or ""
    for hint, kind in _CGROUP_HINTS:
        if re.search(re.escape(hint), cgroup):
            return True, kind, "/proc/1/cgroup"

    return False, None, None
