"""_capacity on fixture trees of cgroup v1, v2 and hybrid hosts."""

from __future__ import annotations

import os

import pytest

from ansible_collections.pyweb.stack.plugins.module_utils._capacity import (
    cgroup_paths,
    cpu_capacity,
    kernel_limits,
    memory_capacity,
    network_capacity,
    os_release,
    parse_cpu_list,
)

MEMINFO = "MemTotal:       65536000 kB\nMemFree:         1000000 kB\nMemAvailable:   32768000 kB\n"
V1_SENTINEL = "9223372036854771712"


def tree(root, files):
    for path, text in files.items():
        full = os.path.join(str(root), path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as handle:
            handle.write(text if text.endswith("\n") or not text else text + "\n")
    return str(root)


def v2_host(root, cgroup, files, online="0-63"):
    base = {
        "/proc/self/cgroup": "0::%s" % cgroup,
        "/proc/self/mountinfo": "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw",
        "/proc/meminfo": MEMINFO,
        "/sys/devices/system/cpu/online": online,
        "/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory pids",
    }
    base.update(files)
    return tree(root, base)


V1_MOUNTS = "\n".join(
    [
        "25 24 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755",
        "30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct",
        "31 25 0:27 / /sys/fs/cgroup/cpuset rw,nosuid - cgroup cgroup rw,cpuset",
        "32 25 0:28 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory",
        "33 25 0:29 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw",
    ]
)


def v1_host(root, path, files, online="0-63"):
    base = {
        "/proc/self/cgroup": "\n".join(["12:cpu,cpuacct:%s" % path, "5:cpuset:%s" % path, "4:memory:%s" % path, "0::%s" % path]),
        "/proc/self/mountinfo": V1_MOUNTS,
        "/proc/meminfo": MEMINFO,
        "/sys/devices/system/cpu/online": online,
        # hybrid: the unified hierarchy carries no controllers
        "/sys/fs/cgroup/unified/cgroup.controllers": "",
    }
    base.update(files)
    return tree(root, base)


@pytest.mark.parametrize(
    "text, count",
    [("0-3", 4), ("0-3,8,10-11", 7), ("5", 1), ("", None), ("garbage", None), ("3-1", None), (None, None)],
)
def test_parse_cpu_list(text, count):
    assert parse_cpu_list(text) == count


def test_v2_quota_on_the_process_cgroup(tmp_path):
    root = v2_host(tmp_path, "/system.slice/app.service", {"/sys/fs/cgroup/system.slice/app.service/cpu.max": "150000 100000"})
    cpu = cpu_capacity(root, affinity=64, cpu_count=64)
    assert cpu["cpus"] == 1.5
    assert cpu["cpus_source"] == "cgroup2 cpu.max"
    assert cpu["cpus_host"] == 64
    assert cpu["cgroup_version"] == 2


def test_v2_quota_on_a_parent_binds_the_child(tmp_path):
    root = v2_host(
        tmp_path,
        "/kubepods/pod1/ctr",
        {
            "/sys/fs/cgroup/kubepods/pod1/ctr/cpu.max": "max 100000",
            "/sys/fs/cgroup/kubepods/pod1/cpu.max": "50000 100000",
            "/sys/fs/cgroup/kubepods/cpu.max": "800000 100000",
        },
    )
    assert cpu_capacity(root, affinity=64, cpu_count=64)["cpus"] == 0.5


def test_v2_no_quota_means_the_host(tmp_path):
    root = v2_host(tmp_path, "/user.slice", {"/sys/fs/cgroup/user.slice/cpu.max": "max 100000"}, online="0-3")
    cpu = cpu_capacity(root, affinity=4, cpu_count=4)
    assert (cpu["cpus"], cpu["cpus_source"], cpu["cpu_quota"]) == (4.0, "host", None)


def test_v2_cpuset_and_affinity(tmp_path):
    root = v2_host(tmp_path, "/app", {"/sys/fs/cgroup/app/cpuset.cpus.effective": "0-2"})
    cpu = cpu_capacity(root, affinity=64, cpu_count=64)
    assert (cpu["cpus"], cpu["cpus_source"], cpu["cpuset_cpus"]) == (3.0, "cgroup2 cpuset", 3)
    cpu = cpu_capacity(root, affinity=2, cpu_count=64)
    assert (cpu["cpus"], cpu["cpus_source"]) == (2.0, "affinity")


def test_v2_garbage_quota_is_ignored(tmp_path):
    root = v2_host(tmp_path, "/app", {"/sys/fs/cgroup/app/cpu.max": "lots of cpu"}, online="0-7")
    assert cpu_capacity(root, affinity=8, cpu_count=8)["cpus"] == 8.0


def test_no_cpu_information_at_all(tmp_path):
    root = tree(tmp_path, {"/proc/meminfo": MEMINFO})
    cpu = cpu_capacity(root, affinity=None, cpu_count=None)
    assert cpu["cpus"] is None
    assert cpu["notes"]


def test_online_file_missing_uses_cpu_count(tmp_path):
    root = tree(tmp_path, {"/proc/meminfo": MEMINFO})
    assert cpu_capacity(root, affinity=None, cpu_count=12)["cpus"] == 12.0


def test_v2_memory_limit_and_available_inside_it(tmp_path):
    root = v2_host(
        tmp_path,
        "/docker/abc",
        {
            "/sys/fs/cgroup/docker/abc/memory.max": str(1024 * 1024 * 1024),
            "/sys/fs/cgroup/docker/abc/memory.current": str(800 * 1024 * 1024),
            "/sys/fs/cgroup/docker/abc/memory.stat": "anon 1\ninactive_file %d\nactive_file 5" % (200 * 1024 * 1024),
            "/sys/fs/cgroup/docker/memory.max": "max",
        },
    )
    memory = memory_capacity(root)
    assert memory == {
        "total_mb": 64000,
        "available_mb": 424,  # 1024 - (800 - 200 reclaimable)
        "cgroup_limit_mb": 1024,
        "effective_mb": 1024,
        "source": "cgroup2 memory.max",
    }


def test_v2_memory_max_means_no_limit(tmp_path):
    root = v2_host(tmp_path, "/app", {"/sys/fs/cgroup/app/memory.max": "max"})
    memory = memory_capacity(root)
    assert (memory["cgroup_limit_mb"], memory["effective_mb"], memory["source"]) == (None, 64000, "MemTotal")
    assert memory["available_mb"] == 32000


def test_limit_above_the_ram_is_no_limit(tmp_path):
    root = v2_host(tmp_path, "/app", {"/sys/fs/cgroup/app/memory.max": str(128 * 1024**3)})
    memory = memory_capacity(root)
    assert memory["effective_mb"] == 64000
    assert memory["cgroup_limit_mb"] == 128 * 1024
    assert memory["source"] == "MemTotal"


def test_v1_quota_and_memory_on_the_docker_parent(tmp_path):
    leaf = "/docker/abc/system.slice/app.service"
    root = v1_host(
        tmp_path,
        leaf,
        {
            "/sys/fs/cgroup/cpu,cpuacct%s/cpu.cfs_quota_us" % leaf: "-1",
            "/sys/fs/cgroup/cpu,cpuacct%s/cpu.cfs_period_us" % leaf: "100000",
            "/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "150000",
            "/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000",
            "/sys/fs/cgroup/memory%s/memory.limit_in_bytes" % leaf: V1_SENTINEL,
            "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": str(512 * 1024 * 1024),
            "/sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes": str(100 * 1024 * 1024),
            "/sys/fs/cgroup/memory/docker/abc/memory.stat": "total_inactive_file 0",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes": V1_SENTINEL,
        },
    )
    cpu = cpu_capacity(root, affinity=64, cpu_count=64)
    assert (cpu["cpus"], cpu["cpus_source"], cpu["cgroup_version"]) == (1.5, "cgroup1 cpu.cfs_quota_us", 1)
    memory = memory_capacity(root)
    assert (memory["cgroup_limit_mb"], memory["effective_mb"], memory["available_mb"]) == (512, 512, 412)
    assert memory["source"] == "cgroup1 memory.limit_in_bytes"


def test_v1_sentinel_everywhere_is_no_limit(tmp_path):
    root = v1_host(tmp_path, "/user.slice", {"/sys/fs/cgroup/memory/user.slice/memory.limit_in_bytes": V1_SENTINEL})
    assert memory_capacity(root)["cgroup_limit_mb"] is None


def test_v1_cpuset(tmp_path):
    root = v1_host(tmp_path, "/docker/abc", {"/sys/fs/cgroup/cpuset/docker/abc/cpuset.effective_cpus": "4-5"})
    cpu = cpu_capacity(root, affinity=64, cpu_count=64)
    assert (cpu["cpus"], cpu["cpus_source"]) == (2.0, "cgroup1 cpuset")


def test_v1_subtree_mount_of_an_older_docker(tmp_path):
    # Without a cgroup namespace the container sees the host's path in
    # /proc/self/cgroup but has only its own subtree mounted.
    root = tree(
        tmp_path,
        {
            "/proc/self/cgroup": "4:cpu,cpuacct:/docker/abc",
            "/proc/self/mountinfo": "30 25 0:26 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct",
            "/proc/meminfo": MEMINFO,
            "/sys/devices/system/cpu/online": "0-15",
            "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "200000",
            "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000",
        },
    )
    assert cgroup_paths(root)["v1"]["cpu"] == os.path.join(root, "sys/fs/cgroup/cpu,cpuacct")
    assert cpu_capacity(root, affinity=16, cpu_count=16)["cpus"] == 2.0


def test_hybrid_prefers_v1_controllers(tmp_path):
    root = v1_host(
        tmp_path,
        "/docker/abc",
        {
            "/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "50000",
            "/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000",
            "/sys/fs/cgroup/unified/docker/abc/cpu.max": "400000 100000",
        },
    )
    assert cpu_capacity(root, affinity=64, cpu_count=64)["cpus"] == 0.5


def test_meminfo_without_memavailable(tmp_path):
    root = tree(tmp_path, {"/proc/meminfo": "MemTotal: 2048000 kB\nMemFree: 512000 kB\nBuffers: 0 kB\nCached: 512000 kB\n"})
    memory = memory_capacity(root)
    assert (memory["total_mb"], memory["available_mb"]) == (2000, 1000)


def test_kernel_limits(tmp_path):
    root = tree(
        tmp_path,
        {
            "/proc/sys/net/core/somaxconn": "4096",
            "/proc/sys/net/ipv4/tcp_max_syn_backlog": "512",
            "/proc/sys/fs/file-max": "9223372036854775807",
            "/proc/sys/fs/nr_open": "1048576",
        },
    )
    limits = kernel_limits(root, nofile=(1024, 2**63))
    assert limits == {
        "somaxconn": 4096,
        "tcp_max_syn_backlog": 512,
        "file_max": 9223372036854775807,
        "nr_open": 1048576,
        "nofile_soft": 1024,
        "nofile_hard": None,
    }


@pytest.mark.parametrize(
    ("content", "ipv6"),
    [
        ("00000000000000000000000000000001 01 80 10 80       lo\n", True),
        ("", False),
        (None, False),
    ],
)
def test_network_capacity_sees_an_ipv6_stack(tmp_path, content, ipv6):
    root = tree(tmp_path, {} if content is None else {"/proc/net/if_inet6": content})
    assert network_capacity(root) == {"ipv6": ipv6}


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n',
            {"id": "debian", "distribution": "Debian", "major": "12", "family": "Debian", "codename": "bookworm"},
        ),
        (
            'ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n',
            {"id": "rocky", "distribution": "Rocky", "major": "9", "family": "RedHat", "codename": None},
        ),
        (
            "ID=alpine\nVERSION_ID=3.20.1\n",
            {"id": "alpine", "distribution": "Alpine", "major": "3", "family": None, "codename": None},
        ),
        ("", {"id": None, "distribution": None, "major": None, "family": None, "codename": None}),
    ],
)
def test_os_release(tmp_path, text, expected):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "os-release").write_text(text)
    assert os_release(str(tmp_path)) == expected
