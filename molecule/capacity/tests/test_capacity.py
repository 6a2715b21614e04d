"""capacity_facts inside containers run with docker --cpus / --memory."""

from __future__ import annotations

import os

import pytest
from pyweb_verify import remote_json

EXPECTED = {
    # platform: (cpus, memory MiB) given to docker run in molecule.yml
    "pyweb-capacity-debian12": (1.5, 1024),
    "pyweb-capacity-debian13": (0.5, 512),
}


@pytest.fixture
def results(host):
    return remote_json(host, "/root/capacity.json")


@pytest.fixture
def expected(host):
    return EXPECTED[host.backend.get_hostname()]


def test_cpus_are_the_quota_not_the_host(results, expected):
    capacity = results["capacity"]
    assert capacity["cpus"] == expected[0]
    assert capacity["cpu_quota"] == expected[0]
    assert "quota" in capacity["cpus_source"] or "cpu.max" in capacity["cpus_source"]
    # what Ansible's own facts say: the host's cores
    assert int(results["host_nproc"]) == os.cpu_count()
    assert capacity["cpus_host"] == os.cpu_count()


def test_memory_is_the_cgroup_limit_not_the_host(results, expected):
    memory = results["capacity"]["memory"]
    assert memory["cgroup_limit_mb"] == expected[1]
    assert memory["effective_mb"] == expected[1]
    assert memory["source"].startswith("cgroup")
    assert memory["total_mb"] > 4 * expected[1]  # the host's RAM, several GiB here
    assert 0 < memory["available_mb"] <= expected[1]
    assert int(results["host_memtotal_mb"]) == memory["total_mb"]


def test_kernel_and_container_facts(results):
    capacity = results["capacity"]
    assert capacity["kernel"]["somaxconn"] >= 128
    assert capacity["kernel"]["nr_open"] >= 1024
    assert capacity["kernel"]["nofile_soft"] >= 1024
    assert capacity["container"] == {"in_container": True, "kind": "docker", "evidence": "/run/systemd/container"}


def test_sizing_follows_the_limits_not_the_host(results, expected):
    cpus, memory_mb = expected
    cpu = results["cpu"]
    # (2 x quota) + 1, unless the memory limit binds first
    assert cpu["workers"] <= int(2 * cpus) + 1
    assert cpu["expected_rss_mb"] <= cpu["memory_budget_mb"] < memory_mb
    plain = results["plain"]
    # the same filter fed only Ansible's facts sizes for the whole host
    assert plain["workers"] >= cpu["workers"]
    assert plain["memory_budget_mb"] > memory_mb
    assert any("not a container's quota" in line for line in plain["explain"])


def test_measured_master_and_workers(results):
    for name in ("fake", "fake_by_pattern"):
        measured = results["capacity"]["measured"][name]
        assert measured["workers"]["count"] == 3, name
        assert measured["master"]["pid"] not in measured["workers"]["pids"]
        # each worker holds 24 MiB of its own, the master none of it
        assert 24 <= measured["workers"]["rss_median_mb"] < 60
        assert 24 <= measured["workers"]["uss_median_mb"] <= measured["workers"]["rss_max_mb"]
        assert measured["workers"]["pss_median_mb"] >= 24
        assert measured["master"]["uss_mb"] < 24
    assert (
        results["capacity"]["measured"]["fake"]["workers"]["pids"]
        == results["capacity"]["measured"]["fake_by_pattern"]["workers"]["pids"]
    )


def test_sizing_uses_the_measurement(results):
    measured = results["measured"]
    assert measured["worker_rss_mb"] == results["capacity"]["measured"]["fake"]["workers"]["pss_median_mb"]
    assert any("measured median PSS of 3 running worker(s) of fake" in line for line in measured["explain"])
