"""detect_container on fixture roots."""

from __future__ import annotations

import os

import pytest

from ansible_collections.pyweb.stack.plugins.module_utils._container import detect_container


def write(root, path, text):
    full = os.path.join(str(root), path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as handle:
        handle.write(text)


def test_plain_host(tmp_path):
    write(tmp_path, "/proc/1/cgroup", "0::/init.scope\n")
    write(tmp_path, "/proc/1/environ", "HOME=/\0TERM=linux\0")
    assert detect_container(str(tmp_path)) == (False, None, None)


@pytest.mark.parametrize(
    "text, kind",
    [("docker\n", "docker"), ("podman", "podman"), ("lxc", "lxc"), ("systemd-nspawn", "systemd-nspawn"), ("lxc-libvirt", "lxc")],
)
def test_systemd_marker_wins(tmp_path, text, kind):
    write(tmp_path, "/run/systemd/container", text)
    write(tmp_path, "/proc/1/cgroup", "0::/kubepods/x\n")
    assert detect_container(str(tmp_path)) == (True, kind, "/run/systemd/container")


def test_pid1_environment(tmp_path):
    write(tmp_path, "/proc/1/environ", "PATH=/bin\0container=podman\0")
    assert detect_container(str(tmp_path)) == (True, "podman", "/proc/1/environ")


def test_dockerenv(tmp_path):
    write(tmp_path, "/.dockerenv", "")
    assert detect_container(str(tmp_path)) == (True, "docker", "/.dockerenv")


def test_containerenv(tmp_path):
    write(tmp_path, "/run/.containerenv", "")
    assert detect_container(str(tmp_path))[1] == "podman"


@pytest.mark.parametrize(
    "cgroup, kind",
    [
        ("12:memory:/docker/0123abcd\n", "docker"),
        ("0::/kubepods/burstable/pod1/abc\n", "kubernetes"),
        ("0::/machine.slice/libpod-abc.scope\n", "podman"),
        ("0::/lxc.payload.web/\n", "lxc"),
    ],
)
def test_cgroup_hints(tmp_path, cgroup, kind):
    write(tmp_path, "/proc/1/cgroup", cgroup)
    assert detect_container(str(tmp_path)) == (True, kind, "/proc/1/cgroup")
