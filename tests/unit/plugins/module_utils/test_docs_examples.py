"""The worked examples in docs/sizing.md are the sizing engine's real output."""

from __future__ import annotations

import os
import re

import pytest

from ansible_collections.pyweb.stack.plugins.module_utils._sizing import SizingError, size_workers

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "docs", "sizing.md")


def capacity(cpus, memory_mb, cpus_host):
    return {
        "cpus": cpus,
        "cpus_host": cpus_host,
        "cpus_source": "cgroup2 cpu.max" if cpus_host == 64 else "host",
        "memory": {"effective_mb": memory_mb, "total_mb": memory_mb, "source": "MemTotal"},
        "kernel": {"somaxconn": 4096, "nr_open": 1048576},
    }


HOSTS = {
    "1 vCPU / 1 GiB VPS": capacity(1.0, 1024, 1),
    "4 vCPU / 8 GiB VM": capacity(4.0, 8192, 4),
    "2-CPU quota / 4 GiB container on a 64-core host": capacity(2.0, 4096, 64),
}
ROW = re.compile(r"^\| (cpu|io|mixed) \| (\d+) x (\d+) \| (\w+) \| (\w+) \| (\d+) \| (\d+) \| (\d+) / (\d+) \| (\d+) \|$")


def tables():
    with open(DOC) as handle:
        text = handle.read()
    found = {}
    for title in HOSTS:
        section = text.split("### " + title, 1)[1].split("###", 1)[0]
        found[title] = [ROW.match(line).groups() for line in section.splitlines() if ROW.match(line)]
    return found


@pytest.mark.parametrize("title", sorted(HOSTS))
def test_worked_example_table_matches_the_code(title):
    rows = tables()[title]
    assert [row[0] for row in rows] == ["cpu", "io", "mixed"]
    for profile, workers, threads, worker_class, binding, budget, expected, timeout, read, backlog in rows:
        result = size_workers(HOSTS[title], "gunicorn", profile)
        assert (
            str(result["workers"]),
            str(result["threads"]),
            result["worker_class"],
            result["binding"],
            str(result["memory_budget_mb"]),
            str(result["expected_rss_mb"]),
            str(result["timeout"]),
            str(result["request_limit"]),
            str(result["backlog"]),
        ) == (workers, threads, worker_class, binding, budget, expected, timeout, read, backlog), profile


def test_heavy_worker_example():
    vps = HOSTS["1 vCPU / 1 GiB VPS"]
    got = [(p, size_workers(vps, "gunicorn", p, worker_rss_mb=250)) for p in ("cpu", "io", "mixed")]
    with open(DOC) as handle:
        text = handle.read()
    for profile, result in got:
        row = "| %s | %d x %d | %s | %d |" % (
            profile,
            result["workers"],
            result["threads"],
            result["binding"],
            result["expected_rss_mb"],
        )
        assert row in text


FORCED_ROW = re.compile(r"^\| `([^`]+)` \| (.+) \|$")


def forced_rows():
    with open(DOC) as handle:
        text = handle.read()
    section = text.split("### Forced numbers and the budgets", 1)[1].split("###", 1)[0]
    rows = [FORCED_ROW.match(line).groups() for line in section.splitlines() if FORCED_ROW.match(line)]
    assert len(rows) >= 6
    return rows


def _arguments(text):
    kwargs = {}
    for part in text.split(", "):
        key, value = part.split("=")
        kwargs[key] = value == "true" if value in ("true", "false") else int(value)
    return kwargs


@pytest.mark.parametrize("arguments, answer", forced_rows())
def test_forced_numbers_example_matches_the_code(arguments, answer):
    vps = HOSTS["1 vCPU / 1 GiB VPS"]
    try:
        result = size_workers(vps, "gunicorn", "mixed", **_arguments(arguments))
    except SizingError as exc:
        got = "refused: `%s`" % exc
    else:
        got = "%d x %d, %d MiB" % (result["workers"], result["threads"], result["expected_rss_mb"])
        if result["warnings"]:
            got += ", warning: `%s`" % "; ".join(result["warnings"])
    assert got == answer
