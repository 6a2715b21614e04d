"""pyweb.stack.sysctl inside a systemd container: file, live values, never lowering."""

from __future__ import annotations

import pytest
from pyweb_verify import live_sysctl, remote_json, sysctl_comments, sysctl_conf

CONF = "/etc/sysctl.d/90-pyweb.conf"
NAMESPACED = {
    # converge asked 4096 with sysctl_min_somaxconn 8192; the side effect then
    # asked 1024: the higher value stays.
    "net.core.somaxconn": "8192",
    "net.ipv4.tcp_max_syn_backlog": "8192",
    "net.ipv4.ip_local_port_range": "10240 65535",
    "net.ipv4.tcp_tw_reuse": "1",
    "net.ipv4.tcp_fin_timeout": "20",
    "net.ipv4.tcp_congestion_control": "reno",
}
HOST_OWNED = {"fs.file-max": 2097152, "fs.nr_open": 1048576}


def test_file_owner_and_mode(host):
    conf = host.file(CONF)
    assert conf.is_file
    assert conf.user == "root"
    assert conf.group == "root"
    assert conf.mode == 0o644


def test_file_holds_exactly_the_planned_keys(host):
    assert set(sysctl_conf(host, CONF)) == set(NAMESPACED) | set(HOST_OWNED)


@pytest.mark.parametrize("key", sorted(NAMESPACED))
def test_namespaced_key_written_and_live(host, key):
    assert sysctl_conf(host, CONF)[key] == NAMESPACED[key]
    assert live_sysctl(host, key) == NAMESPACED[key]


@pytest.mark.parametrize("key", sorted(HOST_OWNED))
def test_host_wide_key_written_never_lowered_not_applied(host, key):
    live = int(live_sysctl(host, key))
    written = int(sysctl_conf(host, CONF)[key])
    # never lower than the kernel already has
    assert written == max(HOST_OWNED[key], live)
    assert "host kernel owns it" in sysctl_comments(host, CONF)[key]
    decision = {e["key"]: e for e in remote_json(host, "/root/sysctl_result.json")["entries"]}
    assert decision[key]["apply_live"] is False
    assert decision[key]["scope"] == "host"


def test_host_wide_keys_reported(host):
    plan = remote_json(host, "/root/sysctl_result.json")
    assert plan["in_container"] is True
    assert plan["container"] == "docker"
    assert sorted(plan["host_owned"]) == sorted(HOST_OWNED)
    assert any("host kernel owns them" in note for note in plan["notes"])


def test_min_somaxconn_raised_the_requested_value(host):
    entries = {e["key"]: e for e in remote_json(host, "/root/sysctl_result.json")["entries"]}
    assert entries["net.core.somaxconn"]["requested"] == "4096"
    assert entries["net.core.somaxconn"]["value"] == "8192"
    assert entries["net.core.somaxconn"]["reason"].startswith("raised to 8192")


def test_lower_request_kept_the_higher_live_value(host):
    entries = {e["key"]: e for e in remote_json(host, "/root/sysctl_result_lower.json")["entries"]}
    somax = entries["net.core.somaxconn"]
    assert somax["requested"] == "1024"
    assert somax["value"] == "8192"
    assert "never lowered" in somax["reason"]
    assert entries["net.ipv4.tcp_max_syn_backlog"]["value"] == "8192"
    assert "never lowered" in sysctl_comments(host, CONF)["net.core.somaxconn"]
