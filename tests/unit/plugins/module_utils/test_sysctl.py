"""plan_sysctl: validation, never lowering, container awareness."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.pyweb.stack.plugins.module_utils._sysctl import (
    KNOWN_KEYS,
    SysctlError,
    normalise_key,
    plan_sysctl,
)

from .proc_tree import make_proc_sys

LIVE = {
    "net.core.somaxconn": "4096",
    "net.ipv4.tcp_max_syn_backlog": "512",
    "net.ipv4.ip_local_port_range": "32768\t60999",
    "net.ipv4.tcp_tw_reuse": "2",
    "net.ipv4.tcp_fin_timeout": "60",
    "net.ipv4.tcp_syn_retries": "6",
    "net.ipv4.tcp_synack_retries": "5",
    "net.ipv4.tcp_congestion_control": "cubic",
    "fs.file-max": "9223372036854775807",
    "fs.nr_open": "1048576",
    "vm.swappiness": "60",
}
BASELINE = {
    "net.core.somaxconn": 4096,
    "net.ipv4.tcp_max_syn_backlog": 8192,
    "net.ipv4.ip_local_port_range": "10240 65535",
    "net.ipv4.tcp_tw_reuse": 1,
    "fs.file-max": 2097152,
    "fs.nr_open": 1048576,
}


@pytest.fixture
def proc(tmp_path):
    return make_proc_sys(tmp_path / "sys", LIVE)


def read_only(*keys):
    """An access() probe that says the given keys are read-only."""
    suffixes = tuple(os.path.join(*k.split(".")) for k in keys)

    def access(path, mode):
        return not (mode & os.W_OK and path.endswith(suffixes))

    return access


def by_key(plan):
    return {e["key"]: e for e in plan["entries"]}


def test_baseline_on_a_host_applies_everything(proc):
    plan = plan_sysctl(BASELINE, proc_sys=proc)
    entries = by_key(plan)
    assert set(entries) == set(BASELINE)
    assert all(e["apply_live"] for e in entries.values())
    assert plan["host_owned"] == [] and plan["not_writable"] == [] and plan["notes"] == []
    assert entries["net.ipv4.tcp_max_syn_backlog"]["value"] == "8192"
    assert entries["net.ipv4.ip_local_port_range"]["value"] == "10240 65535"
    assert entries["net.ipv4.tcp_tw_reuse"]["value"] == "1"


def test_capacity_keys_are_never_lowered(proc):
    entries = by_key(plan_sysctl({"net.core.somaxconn": 1024, "fs.file-max": 2097152}, proc_sys=proc))
    assert entries["net.core.somaxconn"]["value"] == "4096"
    assert entries["net.core.somaxconn"]["requested"] == "1024"
    assert "never lowered" in entries["net.core.somaxconn"]["reason"]
    assert entries["fs.file-max"]["value"] == "9223372036854775807"


def test_choice_keys_are_set_as_requested_even_when_lower(proc):
    entries = by_key(plan_sysctl({"net.ipv4.tcp_tw_reuse": 0, "net.ipv4.ip_local_port_range": [40000, 50000]}, proc_sys=proc))
    assert entries["net.ipv4.tcp_tw_reuse"]["value"] == "0"
    assert entries["net.ipv4.ip_local_port_range"]["value"] == "40000 50000"


def test_min_somaxconn_raises_somaxconn_and_syn_backlog(proc):
    entries = by_key(
        plan_sysctl({"net.core.somaxconn": 4096, "net.ipv4.tcp_max_syn_backlog": 512}, min_somaxconn=16384, proc_sys=proc)
    )
    for key in ("net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog"):
        assert entries[key]["value"] == "16384"
        assert entries[key]["reason"].startswith("raised to 16384")


def test_min_somaxconn_below_request_changes_nothing(proc):
    entries = by_key(plan_sysctl({"net.core.somaxconn": 8192}, min_somaxconn=1024, proc_sys=proc))
    assert entries["net.core.somaxconn"]["value"] == "8192"
    assert entries["net.core.somaxconn"]["reason"] == "requested"


def test_min_somaxconn_alone_adds_somaxconn(proc):
    entries = by_key(plan_sysctl({}, min_somaxconn=8192, proc_sys=proc))
    assert entries["net.core.somaxconn"]["value"] == "8192"


def test_container_applies_only_namespaced_keys(proc):
    plan = plan_sysctl(BASELINE, proc_sys=proc, in_container=True, container="docker")
    entries = by_key(plan)
    assert sorted(plan["host_owned"]) == ["fs.file-max", "fs.nr_open"]
    for key, entry in entries.items():
        assert entry["apply_live"] is key.startswith("net."), key
        assert entry["scope"] == ("namespaced" if key.startswith("net.") else "host")
    assert "host kernel owns it" in entries["fs.nr_open"]["reason"]
    assert len(plan["notes"]) == 1 and "fs.file-max, fs.nr_open" in plan["notes"][0]
    assert "docker container" in plan["notes"][0]


def test_container_with_read_only_proc_reports_and_does_not_fail(proc):
    plan = plan_sysctl(
        BASELINE,
        proc_sys=proc,
        in_container=True,
        container="docker",
        access=read_only("net.core.somaxconn", "net.ipv4.tcp_tw_reuse"),
    )
    entries = by_key(plan)
    assert plan["not_writable"] == ["net.core.somaxconn", "net.ipv4.tcp_tw_reuse"]
    assert not entries["net.core.somaxconn"]["apply_live"]
    assert entries["net.ipv4.tcp_max_syn_backlog"]["apply_live"]
    assert any("--sysctl" in note for note in plan["notes"])


def test_container_read_only_somaxconn_below_minimum_fails_naming_it(proc):
    with pytest.raises(SysctlError, match=r"net.core.somaxconn is 4096 here .* at least 8192"):
        plan_sysctl(BASELINE, min_somaxconn=8192, proc_sys=proc, in_container=True, access=read_only("net.core.somaxconn"))


def test_container_read_only_somaxconn_already_high_enough_passes(proc):
    plan = plan_sysctl(BASELINE, min_somaxconn=2048, proc_sys=proc, in_container=True, access=read_only("net.core.somaxconn"))
    assert "net.core.somaxconn" in plan["not_writable"]


def test_read_only_key_on_a_host_fails(proc):
    with pytest.raises(SysctlError, match=r"read-only sysctl key.*vm\.swappiness"):
        plan_sysctl({"vm.swappiness": 10}, proc_sys=proc, access=read_only("vm.swappiness"))


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"net.core.somaxconn_typo": 1}, "net.core.somaxconn_typo: unknown key"),
        ({"net.core.somaxconn": "lots"}, "net.core.somaxconn: 'lots' is not an integer"),
        ({"net.core.somaxconn": 40.5}, "net.core.somaxconn: 40.5 is not an integer"),
        ({"net.core.somaxconn": True}, "net.core.somaxconn: True is not an integer"),
        ({"net.core.somaxconn": None}, "net.core.somaxconn: None is not an integer"),
        ({"net.core.somaxconn": 64}, r"net.core.somaxconn: 64 is out of range \(allowed 128..1048576\)"),
        ({"net.core.somaxconn": 2000000}, "2000000 is out of range"),
        ({"net.ipv4.tcp_tw_reuse": 3}, "net.ipv4.tcp_tw_reuse: 3 is not one of 0, 1, 2"),
        ({"net.ipv4.ip_local_port_range": "1024"}, "must be 2 integer"),
        ({"net.ipv4.ip_local_port_range": "80 65535"}, "80 is out of range"),
        ({"net.ipv4.ip_local_port_range": "60000 20000"}, "low end 60000 is above high end 20000"),
        ({"fs.nr_open": -1}, "fs.nr_open: -1 is out of range"),
        # Issue 9: the kernel's maximum is 127; refused before the file is written.
        ({"net.ipv4.tcp_syn_retries": 1000}, r"net.ipv4.tcp_syn_retries: 1000 is out of range \(allowed 1..127\)"),
        ({"net.ipv4.tcp_syn_retries": "128"}, r"net.ipv4.tcp_syn_retries: 128 is out of range \(allowed 1..127\)"),
        ({"net.ipv4.tcp_syn_retries": 0}, r"net.ipv4.tcp_syn_retries: 0 is out of range \(allowed 1..127\)"),
        ({"net.ipv4.tcp_synack_retries": 256}, r"net.ipv4.tcp_synack_retries: 256 is out of range \(allowed 0..255\)"),
        ({"net.ipv4.tcp_synack_retries": -1}, r"net.ipv4.tcp_synack_retries: -1 is out of range \(allowed 0..255\)"),
        ({"net.ipv4.tcp_syn_retries": "often"}, "net.ipv4.tcp_syn_retries: 'often' is not an integer"),
        ({"net.ipv4.tcp_fin_timeout": "soon"}, "net.ipv4.tcp_fin_timeout: 'soon' is not an integer"),
        ({"net.ipv4.tcp_fin_timeout": "1 2"}, "must be 1 integer"),
        ({"net.ipv4.tcp_congestion_control": ["bbr"]}, "is not a string or integer"),
        ({"net.ipv4.tcp_congestion_control": "a\nb"}, "spans lines"),
        ({"": 1}, "is not a non-empty string"),
        ({"net..core": 1}, "has characters no kernel key has"),
        ({"net.core.somaxconn": 4096, "net/core/somaxconn": 4096}, "given twice"),
    ],
)
def test_bad_input_names_the_key(proc, settings, message):
    with pytest.raises(SysctlError, match=message):
        plan_sysctl(settings, proc_sys=proc)


def test_every_bad_key_is_named_at_once(proc):
    with pytest.raises(SysctlError) as info:
        plan_sysctl({"net.core.nope": 1, "net.ipv4.tcp_tw_reuse": 9, "net.core.somaxconn": 4096}, proc_sys=proc)
    assert "net.core.nope" in str(info.value) and "net.ipv4.tcp_tw_reuse" in str(info.value)


@pytest.mark.parametrize("bad", [-1, 2000000, "8192", True])
def test_bad_min_somaxconn(proc, bad):
    with pytest.raises(SysctlError, match="min_somaxconn"):
        plan_sysctl({}, min_somaxconn=bad, proc_sys=proc)


def test_settings_must_be_a_mapping(proc):
    with pytest.raises(SysctlError, match="settings must be a mapping"):
        plan_sysctl([("net.core.somaxconn", 1)], proc_sys=proc)


@pytest.mark.parametrize(
    "key, value",
    [
        ("net.ipv4.tcp_syn_retries", 1),
        ("net.ipv4.tcp_syn_retries", 127),
        ("net.ipv4.tcp_synack_retries", 0),
        ("net.ipv4.tcp_synack_retries", 255),
    ],
)
def test_retry_keys_accept_the_kernels_whole_range(proc, key, value):
    assert by_key(plan_sysctl({key: value}, proc_sys=proc))[key]["value"] == str(value)


def test_out_of_range_retries_named_with_every_other_bad_key(proc):
    with pytest.raises(SysctlError) as info:
        plan_sysctl(
            {"net.ipv4.tcp_syn_retries": 1000, "net.ipv4.tcp_synack_retries": 300, "net.ipv4.tcp_tw_reuse": 9}, proc_sys=proc
        )
    message = str(info.value)
    assert "net.ipv4.tcp_syn_retries: 1000 is out of range (allowed 1..127)" in message
    assert "net.ipv4.tcp_synack_retries: 300 is out of range (allowed 0..255)" in message
    assert "net.ipv4.tcp_tw_reuse: 9" in message


def test_changes_live_marks_only_the_live_values_that_move(proc):
    entries = by_key(
        plan_sysctl(
            {
                "net.core.somaxconn": 1024,  # kept at the live 4096
                "net.ipv4.ip_local_port_range": "32768 60999",  # the live value, tab-separated there
                "net.ipv4.tcp_fin_timeout": 20,
                "net.ipv4.tcp_congestion_control": "cubic",
                "fs.nr_open": 2097152,
            },
            proc_sys=proc,
            in_container=True,
        )
    )
    assert {k for k, e in entries.items() if e["changes_live"]} == {"net.ipv4.tcp_fin_timeout"}
    # host-wide in a container: its value moves, but not live here
    assert entries["fs.nr_open"]["value"] == "2097152" and not entries["fs.nr_open"]["changes_live"]


def test_changes_live_when_the_live_value_cannot_be_read(tmp_path):
    # A write-only key (net.ipv4.route.flush): it exists but reading it fails.
    # Root reads a 0200 file anyway, so a directory stands in for it.
    proc = make_proc_sys(tmp_path / "sys", {})
    os.makedirs(os.path.join(proc, "net", "ipv4", "route", "flush"))
    entry = plan_sysctl({"net.ipv4.route.flush": 1}, proc_sys=proc)["entries"][0]
    assert entry["live"] is None
    assert entry["apply_live"] and entry["changes_live"]


def test_extra_keys_follow_the_kernels_shape(proc):
    entries = by_key(plan_sysctl({"net/ipv4/tcp_fin_timeout": "15", "net.ipv4.tcp_congestion_control": "reno"}, proc_sys=proc))
    assert entries["net.ipv4.tcp_fin_timeout"]["value"] == "15"
    assert entries["net.ipv4.tcp_congestion_control"]["value"] == "reno"


def test_normalise_key():
    assert normalise_key(" net/core/somaxconn ") == "net.core.somaxconn"
    assert normalise_key("net.ipv4.conf.eth0.rp_filter") == "net.ipv4.conf.eth0.rp_filter"


def test_entries_are_sorted_and_values_match(proc):
    plan = plan_sysctl(BASELINE, proc_sys=proc)
    keys = [e["key"] for e in plan["entries"]]
    assert keys == sorted(keys)
    assert plan["values"] == {e["key"]: e["value"] for e in plan["entries"]}
    assert all(isinstance(e["changes_live"], bool) for e in plan["entries"])


@given(
    live=st.integers(min_value=128, max_value=1048576),
    requested=st.integers(min_value=128, max_value=1048576),
    minimum=st.integers(min_value=0, max_value=1048576),
)
def test_somaxconn_is_max_of_live_request_and_minimum(tmp_path_factory, live, requested, minimum):
    proc = make_proc_sys(tmp_path_factory.mktemp("sys"), {"net.core.somaxconn": str(live)})
    entry = plan_sysctl({"net.core.somaxconn": requested}, min_somaxconn=minimum, proc_sys=proc)["entries"][0]
    assert int(entry["value"]) == max(live, requested, minimum)


@given(st.sampled_from(sorted(KNOWN_KEYS)), st.integers(min_value=-(2**64), max_value=2**64))
def test_known_keys_accept_exactly_their_range(tmp_path_factory, key, number):
    spec = KNOWN_KEYS[key]
    proc = make_proc_sys(tmp_path_factory.mktemp("sys"), {key: LIVE[key]})
    value = [number] * spec.count
    ok = (spec.choices is None or number in spec.choices) and (
        (spec.minimum is None or number >= spec.minimum) and (spec.maximum is None or number <= spec.maximum)
    )
    if ok:
        plan_sysctl({key: value}, proc_sys=proc)
    else:
        with pytest.raises(SysctlError, match=key):
            plan_sysctl({key: value}, proc_sys=proc)
