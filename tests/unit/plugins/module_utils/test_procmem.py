"""_procmem against real processes: a master that forks workers holding memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from ansible_collections.pyweb.stack.plugins.module_utils import _procmem
from ansible_collections.pyweb.stack.plugins.module_utils._procmem import (
    descendants,
    find_by_pattern,
    measure_group,
    process_memory,
    workers,
)

MASTER = r"""
import os, signal, sys, time
children = []
for _ in range(int(sys.argv[1])):
    pid = os.fork()
    if pid == 0:
        ballast = bytearray(os.urandom(1024 * 1024)) * int(sys.argv[2])
        os.write(1, b"ready\n")  # one write: atomic on a pipe
        time.sleep(120)
        os._exit(0)
    children.append(pid)
time.sleep(120)
"""


@pytest.fixture
def app_server():
    """A master (tagged with a unique marker) with 3 workers of 16 MiB each."""
    marker = "pyweb-test-%s" % uuid.uuid4().hex[:8]
    process = subprocess.Popen(
        [sys.executable, "-c", MASTER, "3", "16", marker], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    for _worker in range(3):
        assert process.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    yield process.pid, marker
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_descendants_are_the_workers(app_server):
    master, _marker = app_server
    workers = descendants(master)
    assert len(workers) == 3
    assert master not in workers


# A master that spawns its workers as Granian does under pyweb_granian.py:
# Python starts its resource tracker beside them.
SPAWNING_MASTER = r"""
import multiprocessing, sys, time

def serve():
    print("ready", flush=True)
    time.sleep(120)

if __name__ == "__main__":
    multiprocessing.set_start_method("spawn")
    kids = [multiprocessing.Process(target=serve) for _ in range(2)]
    for kid in kids:
        kid.start()
    time.sleep(120)
"""


def test_workers_leave_out_pythons_resource_tracker(tmp_path):
    script = tmp_path / "master.py"
    script.write_text(SPAWNING_MASTER)
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        for _worker in range(2):
            assert process.stdout.readline().strip() == "ready"
        everything = descendants(process.pid)
        serving = workers(process.pid)
        helpers = sorted(set(everything) - set(serving))
        assert len(serving) == 2
        assert len(helpers) == 1
        assert "multiprocessing.resource_tracker" in _procmem._cmdline(helpers[0])
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_workers_of_a_forking_master_are_its_descendants(app_server):
    master, _marker = app_server
    assert workers(master) == descendants(master)


def test_pattern_tells_master_from_workers(app_server):
    master, marker = app_server
    masters, workers = find_by_pattern(marker)
    assert masters == [master]
    assert workers == descendants(master)


@pytest.mark.parametrize("use_psutil", [True, False])
def test_measure_group(app_server, use_psutil):
    if use_psutil and _procmem.psutil is None:
        pytest.skip("psutil not installed")
    master, _marker = app_server
    result = measure_group([master], descendants(master), use_psutil=use_psutil)
    assert result["source"] == ("psutil" if use_psutil else "/proc")
    workers = result["workers"]
    assert workers["count"] == 3
    assert 16 <= workers["rss_median_mb"] <= workers["rss_max_mb"] < 64
    assert 16 <= workers["uss_median_mb"] <= workers["rss_median_mb"]
    assert workers["uss_median_mb"] <= workers["pss_median_mb"] <= workers["rss_median_mb"]
    assert result["master"]["pid"] == master
    assert result["master"]["uss_mb"] < 16


def test_psutil_and_proc_agree(app_server):
    if _procmem.psutil is None:
        pytest.skip("psutil not installed")
    master, _marker = app_server
    worker = descendants(master)[0]
    a = process_memory(worker, use_psutil=True)
    b = process_memory(worker, use_psutil=False)
    for key in ("rss_mb", "pss_mb", "uss_mb"):
        assert abs(a[key] - b[key]) <= 1.0, key


def test_gone_process():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    assert process_memory(process.pid, use_psutil=False) is None
    if _procmem.psutil is not None:
        assert process_memory(process.pid, use_psutil=True) is None
    assert measure_group([], [process.pid], use_psutil=False)["workers"]["count"] == 0
