"""_uwsgi against a real uWSGI (from the venv, requirements-dev.txt): stats, uwsgi protocol, reload, emperor."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.pyweb.stack.plugins.module_utils._uwsgi import (
    UwsgiError,
    encode_packet,
    parse_response,
    read_stats,
    request_vars,
    summarise,
    uwsgi_request,
    wait_for,
)

UWSGI = Path(sys.executable).parent / "uwsgi"
# Every wait on a real process is bounded by this.
LIMIT = 20.0

APP = """\
import os


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/boom":
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"boom"]
    if path == "/missing":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"missing"]
    body = "pid=%d path=%s query=%s host=%s" % (
        os.getpid(), path, environ["QUERY_STRING"], environ["HTTP_HOST"])
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Worker-Pid", str(os.getpid()))])
    return [body.encode()]
"""


def lp(data):
    return struct.pack("<H", len(data)) + data


# --- the wire format, byte for byte ------------------------------------------------------------


def test_encode_packet_is_byte_exact():
    body = lp(b"REQUEST_METHOD") + lp(b"GET") + lp(b"PATH_INFO") + lp(b"/a") + lp(b"QUERY_STRING") + lp(b"")
    assert len(body) == 2 + 14 + 2 + 3 + 2 + 9 + 2 + 2 + 2 + 12 + 2 + 0
    expected = bytes([0]) + struct.pack("<H", len(body)) + bytes([0]) + body
    assert encode_packet([("REQUEST_METHOD", "GET"), ("PATH_INFO", "/a"), ("QUERY_STRING", "")]) == expected
    assert encode_packet({"REQUEST_METHOD": "GET", "PATH_INFO": b"/a", "QUERY_STRING": b""}) == expected
    # datasize is little-endian: 52 bytes of body are 0x34 0x00.
    assert expected[:4] == b"\x00\x34\x00\x00"


def test_encode_packet_modifiers_and_long_values():
    value = "x" * 300
    packet = encode_packet([("K", value)], modifier1=5, modifier2=9)
    assert packet == b"\x05" + struct.pack("<H", 2 + 1 + 2 + 300) + b"\x09" + b"\x01\x00K" + b"\x2c\x01" + value.encode()


def test_encode_packet_refuses_what_does_not_fit():
    with pytest.raises(UwsgiError, match="more than a packet can carry"):
        encode_packet([("K", "x" * 70000)])
    with pytest.raises(UwsgiError, match="more than a packet can carry"):
        encode_packet([("K%d" % i, "x" * 30000) for i in range(3)])


def test_request_vars_are_what_nginx_sends():
    variables = dict(request_vars("/a%20b/c?x=1&y=2", host="shop.example.com", method="head"))
    assert variables == {
        "REQUEST_METHOD": "HEAD",
        "REQUEST_URI": "/a%20b/c?x=1&y=2",
        "PATH_INFO": b"/a b/c",
        "QUERY_STRING": "x=1&y=2",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "shop.example.com",
        "SERVER_PORT": "80",
        "HTTP_HOST": "shop.example.com",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "0",
    }
    with pytest.raises(UwsgiError, match="must start with /"):
        request_vars("healthz")


def test_parse_response():
    raw = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n\r\ndown"
    assert parse_response(raw) == {
        "status": 503,
        "reason": "Service Unavailable",
        "headers": {"content-type": "text/plain", "set-cookie": "a=1, b=2"},
        "body": b"down",
    }
    big = parse_response(b"HTTP/1.1 200 OK\r\n\r\n" + b"y" * 70000)
    assert len(big["body"]) == 64 * 1024
    with pytest.raises(UwsgiError, match=re.escape("/run/a.sock answered something that is not HTTP")):
        parse_response(b"garbage", "/run/a.sock")
    with pytest.raises(UwsgiError, match=re.escape("/run/a.sock closed the connection without answering")):
        parse_response(b"", "/run/a.sock")


# --- pure summaries and the wait loop ----------------------------------------------------------


def test_summarise_counts_cheap_workers_out():
    stats = {
        "pid": 10,
        "listen_queue": 3,
        "workers": [
            {"id": 1, "pid": 11, "status": "busy", "accepting": 1, "rss": 3 * 1024 * 1024 + 60000, "cores": [{}, {}, {}]},
            {"id": 2, "pid": 0, "status": "cheap", "accepting": 0, "rss": 0, "cores": [{}, {}, {}]},
            {"id": 3, "pid": 13, "status": "idle", "accepting": 0},
        ],
    }
    summary = summarise(stats)
    assert summary["running_pids"] == [11, 13]
    assert (summary["accepting_pids"], summary["accepting_count"]) == ([11], 1)
    assert (summary["worker_count"], summary["running_count"], summary["busy_count"], summary["threads"]) == (3, 2, 1, 3)
    assert [w["rss_mb"] for w in summary["workers"]] == [3.1, None, None]
    assert "listen_queue_errors" not in summary
    with pytest.raises(UwsgiError, match="neither 'workers'"):
        summarise({"pid": 1})


def test_wait_for_polls_on_the_injected_clock_until_the_timeout(tmp_path):
    now = [100.0]
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    missing = str(tmp_path / "nope.sock")
    with pytest.raises(UwsgiError) as caught:
        wait_for(missing, timeout=2.0, interval=0.5, clock=lambda: now[0], sleep=sleep)
    assert sleeps == [0.5, 0.5, 0.5, 0.5]
    assert str(caught.value) == "uWSGI at %s not ready after 2.0s (5 attempts): stats socket %s does not exist" % (
        missing,
        missing,
    )
    sleeps.clear()
    with pytest.raises(UwsgiError, match=r"\(1 attempt\)"):
        wait_for(missing, timeout=0, clock=lambda: now[0], sleep=sleep)
    assert sleeps == []


def serve_once(path, payload):
    """A one-shot unix socket server sending ``payload``, standing in for a broken stats server."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def run():
        connection, _address = server.accept()
        connection.sendall(payload)
        connection.close()
        server.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_read_stats_names_the_socket_on_bad_json(workdir):
    path = str(workdir / "bad.sock")
    thread = serve_once(path, b"{not json")
    with pytest.raises(UwsgiError, match=re.escape("stats socket %s sent no valid JSON" % path)):
        read_stats(path, timeout=LIMIT)
    thread.join(LIMIT)


def test_read_stats_names_the_socket_when_nothing_comes(workdir):
    path = str(workdir / "mute.sock")
    thread = serve_once(path, b"")
    with pytest.raises(UwsgiError, match=re.escape("stats socket %s closed the connection without sending anything" % path)):
        read_stats(path, timeout=LIMIT)
    thread.join(LIMIT)


def test_read_stats_rejects_an_address_that_is_neither(workdir):
    with pytest.raises(UwsgiError, match="neither a unix socket path"):
        read_stats("run/stats.sock")


# --- a real uWSGI ------------------------------------------------------------------------------


@pytest.fixture
def workdir():
    # Unix socket paths hold at most 107 bytes; pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="pyweb-uw", dir="/tmp"))
    (path / "app.py").write_text(APP)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def module_workdir():
    path = Path(tempfile.mkdtemp(prefix="pyweb-uw", dir="/tmp"))
    (path / "app.py").write_text(APP)
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Uwsgi:
    def __init__(self, workdir, *args):
        assert UWSGI.is_file(), "%s is missing: install requirements-dev.txt (uWSGI) into the venv" % UWSGI
        self.dir = workdir
        self.app = str(workdir / "app.sock")
        self.stats = str(workdir / "stats.sock")
        self.log = workdir / "uwsgi.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(UWSGI), *args],
                cwd=str(workdir),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def sleep(self, seconds):
        """wait_for's sleep: stops waiting as soon as uWSGI died."""
        if self.proc.poll() is not None:
            raise AssertionError("uwsgi exited with %s:\n%s" % (self.proc.returncode, self.log.read_text()[-3000:]))
        time.sleep(seconds)

    def wait(self, address, **kwargs):
        kwargs.setdefault("timeout", LIMIT)
        kwargs.setdefault("interval", 0.05)
        return wait_for(address, sleep=self.sleep, **kwargs)

    def stop(self, pids=()):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(LIMIT)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(LIMIT)
            raise AssertionError("uwsgi did not stop on SIGINT within %ss" % LIMIT) from None
        deadline = time.monotonic() + LIMIT
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [pid for pid in pids if alive(pid)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, "uwsgi left processes behind: %s" % left


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def parent_of(pid):
    with open("/proc/%d/stat" % pid) as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def app_server(workdir, *extra, app="app.py"):
    return Uwsgi(
        workdir,
        "--master",
        "--processes=2",
        "--threads=2",
        "--socket=%s" % (workdir / "app.sock"),
        "--stats=%s" % (workdir / "stats.sock"),
        "--wsgi-file=%s" % (workdir / app),
        "--need-app",
        "--lazy-apps",
        *extra,
    )


def running(server):
    """Start-up as a deployment sees it: wait_for with every condition."""
    pids = []
    try:
        summary, response, _elapsed = server.wait(server.stats, expect_running=2, socket=server.app)
        pids = summary["running_pids"]
        assert response["status"] == 200
    except BaseException:
        server.stop()
        raise
    return pids


@pytest.fixture(scope="module")
def uwsgi(module_workdir):
    server = app_server(module_workdir, "--memory-report")
    pids = running(server)
    yield server
    server.stop(pids)


def test_a_worker_loading_its_app_runs_but_does_not_accept(workdir):
    (workdir / "slow.py").write_text("import time\n\ntime.sleep(2)\nfrom app import application  # noqa: F401\n")
    server = app_server(workdir, app="slow.py")
    pids = []
    try:
        deadline = time.monotonic() + LIMIT
        summary = None
        while summary is None or summary["running_count"] < 2:
            assert time.monotonic() < deadline, "no 2 workers within %ss" % LIMIT
            server.sleep(0.02)
            try:
                summary = summarise(read_stats(server.stats))
            except UwsgiError:
                continue
        # Both workers run, each still in the 2 s import of its app.
        assert summary["accepting_count"] < 2
        with pytest.raises(UwsgiError, match=r"\(1 attempt\): [12] of 2 running workers do not accept requests yet \[\d+"):
            wait_for(server.stats, expect_running=2, timeout=0)
        summary, response, _elapsed = server.wait(server.stats, expect_running=2, socket=server.app)
        pids = summary["running_pids"]
        assert summary["accepting_pids"] == pids
        assert response["status"] == 200
    finally:
        server.stop(pids)


def test_stats_of_a_real_app_server(uwsgi):
    for _request in range(4):
        assert uwsgi_request(uwsgi.app, "/")["status"] == 200
    # A worker closes the connection before it counts the request and leaves it.
    deadline = time.monotonic() + LIMIT
    summary = summarise(read_stats(uwsgi.stats))
    while summary["busy_count"] and time.monotonic() < deadline:
        assert {worker["status"] for worker in summary["workers"]} <= {"idle", "busy"}
        time.sleep(0.05)
        summary = summarise(read_stats(uwsgi.stats))
    assert summary["emperor"] is False
    assert summary["pid"] == uwsgi.proc.pid
    assert (summary["worker_count"], summary["running_count"], summary["accepting_count"], summary["threads"]) == (2, 2, 2, 2)
    assert summary["accepting_pids"] == summary["running_pids"]
    assert summary["busy_count"] == 0
    assert summary["listen_queue"] == 0
    assert summary["listen_queue_errors"] == 0
    assert summary["version"] == "2.0.31"
    assert summary["sockets"] == [{"name": uwsgi.app, "proto": "uwsgi", "queue": 0, "max_queue": 0}]
    assert len(set(summary["running_pids"])) == 2
    for pid in summary["running_pids"]:
        assert parent_of(pid) == uwsgi.proc.pid
    for worker in summary["workers"]:
        assert worker["status"] == "idle"
        assert worker["accepting"] is True
        assert worker["respawn_count"] == 1
        assert worker["last_spawn"] > 1_600_000_000
        # --memory-report measures a worker at the end of each request it served.
        if worker["requests"]:
            assert worker["rss_mb"] > 1, worker
    # The readiness probe, the four above and whatever ran before on this server.
    assert sum(worker["requests"] for worker in summary["workers"]) >= 5


def test_request_over_the_uwsgi_protocol(uwsgi):
    pids = summarise(read_stats(uwsgi.stats))["running_pids"]
    response = uwsgi_request(uwsgi.app, "/hello%20there?a=1", host="shop.example.com")
    assert (response["status"], response["reason"]) == (200, "OK")
    assert response["headers"]["content-type"] == "text/plain"
    worker = int(response["headers"]["x-worker-pid"])
    assert worker in pids
    assert response["body"] == b"pid=%d path=/hello there query=a=1 host=shop.example.com" % worker


def test_request_statuses(uwsgi):
    missing = uwsgi_request(uwsgi.app, "/missing")
    assert (missing["status"], missing["reason"], missing["body"]) == (404, "Not Found", b"missing")
    boom = uwsgi_request(uwsgi.app, "/boom")
    assert (boom["status"], boom["reason"], boom["body"]) == (500, "Internal Server Error", b"boom")


def test_request_to_a_missing_socket_names_it(uwsgi):
    path = str(uwsgi.dir / "nope.sock")
    with pytest.raises(UwsgiError, match="^%s$" % re.escape("app socket %s does not exist" % path)):
        uwsgi_request(path)


def test_wait_for_says_how_many_workers_are_missing(uwsgi):
    start = time.monotonic()
    with pytest.raises(UwsgiError) as caught:
        wait_for(uwsgi.stats, expect_running=3, timeout=0.5, interval=0.1)
    assert time.monotonic() - start < 5
    message = str(caught.value)
    assert message.startswith("uWSGI at %s not ready after 0." % uwsgi.stats)
    assert "2 of 3 expected workers are running; last state: master pid %d, workers: " % uwsgi.proc.pid in message
    assert message.endswith(" idle")


def test_wait_for_names_a_failing_probe(uwsgi):
    with pytest.raises(
        UwsgiError, match=re.escape("(1 attempt): GET /boom on %s answered 500 (healthy: at most 499); last state" % uwsgi.app)
    ):
        wait_for(uwsgi.stats, socket=uwsgi.app, path="/boom", timeout=0)
    summary, response, elapsed = wait_for(uwsgi.stats, socket=uwsgi.app, path="/missing", timeout=0)
    assert response["status"] == 404
    assert summary["running_count"] == 2
    assert elapsed < 5


def test_wait_for_gives_up_at_once_on_500_in_a_row(uwsgi):
    # A broken release answers 500 from its new workers: fail now, not after the timeout.
    start = time.monotonic()
    with pytest.raises(UwsgiError, match=re.escape("answered 500 (healthy: at most 499), 2 times in a row on new workers")):
        wait_for(uwsgi.stats, socket=uwsgi.app, path="/boom", timeout=30, interval=0.1, fail_fast=2)
    assert time.monotonic() - start < 5


def test_a_named_health_path_must_answer_below_400(uwsgi):
    with pytest.raises(UwsgiError, match=re.escape("GET /missing on %s answered 404 (healthy: at most 399)" % uwsgi.app)):
        wait_for(uwsgi.stats, socket=uwsgi.app, path="/missing", max_status=399, timeout=0)


def test_wait_for_a_stats_socket_that_does_not_exist(uwsgi):
    path = str(uwsgi.dir / "gone.sock")
    with pytest.raises(UwsgiError) as caught:
        wait_for(path, timeout=0.3, interval=0.1)
    assert str(caught.value).endswith("): stats socket %s does not exist" % path)


def test_graceful_reload_replaces_every_worker(workdir):
    server = app_server(workdir)
    old = running(server)
    new = []
    try:
        before = summarise(read_stats(server.stats))
        assert before["running_pids"] == old
        os.kill(server.proc.pid, signal.SIGHUP)
        summary, response, elapsed = server.wait(server.stats, expect_running=2, replaced_pids=old, socket=server.app)
        new = summary["running_pids"]
        assert len(new) == 2
        assert not set(new) & set(old)
        assert summary["pid"] == before["pid"] == server.proc.pid
        assert server.proc.poll() is None
        assert response["status"] == 200
        assert int(response["headers"]["x-worker-pid"]) in new
        assert elapsed < LIMIT
        assert not any(alive(pid) for pid in old)
        assert "gracefully" in (workdir / "uwsgi.log").read_text()
    finally:
        server.stop(old + new)


def test_emperor_stats(workdir):
    vassals = workdir / "vassals"
    vassals.mkdir()
    (vassals / "shop.ini").write_text(
        "[uwsgi]\nmaster = true\nprocesses = 1\nsocket = %s\nwsgi-file = %s\nneed-app = true\n"
        % (workdir / "shop.sock", workdir / "app.py")
    )
    emperor_stats = str(workdir / "emperor.sock")
    server = Uwsgi(workdir, "--emperor=%s" % vassals, "--emperor-stats-server=%s" % emperor_stats)
    pids = []
    try:
        summary, response, _elapsed = server.wait(emperor_stats, expect_running=1, socket=str(workdir / "shop.sock"))
        pids = summary["running_pids"]
        assert response["status"] == 200
        assert summary["emperor"] is True
        assert summary["pid"] == server.proc.pid
        assert summary["monitors"] == [str(vassals)]
        assert summary["vassal_count"] == 1
        assert (summary["running_count"], summary["accepting_count"]) == (1, 1)
        assert summary["blacklist"] == []
        (vassal,) = summary["vassals"]
        assert vassal["id"] == "shop.ini"
        assert vassal["pid"] == pids[0]
        assert parent_of(vassal["pid"]) == server.proc.pid
        assert (vassal["ready"], vassal["accepting"], vassal["respawns"]) == (True, True, 0)
        assert (vassal["uid"], vassal["gid"]) == (os.getuid(), os.getgid())
        assert vassal["monitor"] == str(vassals)
        assert vassal["on_demand"] is None
        # The raw dump the summary came from, as uWSGI 2.0 writes it.
        raw = read_stats(emperor_stats)
        assert set(raw) >= {"version", "pid", "emperor", "vassals", "blacklist", "throttle_level"}
        assert json.loads(json.dumps(raw))["vassals"][0]["id"] == "shop.ini"
    finally:
        server.stop(pids)
