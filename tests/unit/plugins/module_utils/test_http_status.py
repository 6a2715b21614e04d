# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from ansible_collections.pyweb.stack.plugins.module_utils._http_status import HttpStatusError, alive, request, wait_for


def _proc(tmp_path, tree):
    """A fake /proc: tree maps pid -> (ppid, state)."""
    for pid, (ppid, state) in tree.items():
        d = tmp_path / str(pid)
        d.mkdir()
        (d / "stat").write_text("%d (python3) %s %d 1 1" % (pid, state, ppid))
        (d / "cmdline").write_bytes(b"gunicorn\0")
    return str(tmp_path)


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += max(seconds, 0.5)


def test_alive_skips_zombies_and_missing(tmp_path):
    proc = _proc(tmp_path, {10: (1, "S"), 11: (10, "Z")})
    assert alive([10, 11, 12], proc) == [10]


def test_waits_until_the_old_workers_are_gone(tmp_path):
    proc = _proc(tmp_path, {10: (1, "S"), 11: (10, "S"), 12: (10, "S")})
    clock = _Clock()
    calls = []

    def probe(*args):
        calls.append(args)
        return 200

    with pytest.raises(HttpStatusError, match="old workers still run: 11"):
        wait_for(lambda: 10, "/x.sock", replaced_pids=[11], timeout=2, proc=proc, clock=clock, sleep=clock.sleep, probe=probe)
    assert calls == []  # never asked while an old worker could answer
    result = wait_for(
        lambda: 10, "/x.sock", replaced_pids=[99], timeout=2, proc=proc, clock=clock, sleep=clock.sleep, probe=probe
    )
    assert result["workers"] == [11, 12] and result["status"] == 200


def test_a_status_above_the_limit_fails_naming_it(tmp_path):
    proc = _proc(tmp_path, {10: (1, "S"), 11: (10, "S")})
    clock = _Clock()
    with pytest.raises(HttpStatusError, match="answered 500 \\(healthy: up to 399\\)"):
        wait_for(
            lambda: 10,
            "/x.sock",
            path="/healthz",
            max_status=399,
            timeout=1,
            proc=proc,
            clock=clock,
            sleep=clock.sleep,
            probe=lambda *a: 500,
        )
    with pytest.raises(HttpStatusError, match="no main process"):
        wait_for(lambda: 0, "/x.sock", timeout=0, proc=proc, clock=clock, sleep=clock.sleep, probe=lambda *a: 200)


def test_request_speaks_http_over_a_unix_socket(tmp_path):
    path = str(tmp_path / "app.sock")
    seen = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen["host"] = self.headers["Host"]
            self.send_response(404 if self.path == "/missing" else 200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    class UnixServer(HTTPServer):
        address_family = socket.AF_UNIX

        def server_bind(self):
            self.socket.bind(self.server_address)

        def get_request(self):
            conn, _address = self.socket.accept()
            return conn, ("local", 0)

    server = UnixServer(path, Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert request(path, "/", "shop.test") == 200 and seen["host"] == "shop.test"
        assert request(path, "/missing") == 404
    finally:
        server.shutdown()
        server.server_close()
        os.unlink(path)


@pytest.mark.parametrize(("status", "fail_fast", "gives_up_at"), [(500, 3, 1.0), (500, 1, 0.0), (503, 3, 30.0), (500, 0, 30.0)])
def test_a_broken_app_fails_at_once_a_starting_one_is_waited_for(tmp_path, status, fail_fast, gives_up_at):
    # 500 from new workers only, N times in a row: the release is broken, and
    # every second it stays live fails requests. 503 (still starting) waits.
    proc = _proc(tmp_path, {10: (1, "S"), 11: (10, "S")})
    clock = _Clock()
    with pytest.raises(HttpStatusError) as caught:
        wait_for(
            lambda: 10,
            "/x.sock",
            path="/healthz",
            max_status=399,
            timeout=30,
            fail_fast=fail_fast,
            proc=proc,
            clock=clock,
            sleep=clock.sleep,
            probe=lambda *a: status,
        )
    assert clock.now == gives_up_at
    if gives_up_at < 30:
        assert "answered 500 (healthy: up to 399), %d times in a row on new workers" % fail_fast in str(caught.value)
    else:
        assert str(caught.value).startswith("not serving after 30.0s")


def test_a_500_between_good_answers_does_not_count(tmp_path):
    proc = _proc(tmp_path, {10: (1, "S"), 11: (10, "S")})
    clock = _Clock()
    answers = iter([500, 500, 200])
    result = wait_for(
        lambda: 10, "/x.sock", timeout=30, fail_fast=3, proc=proc, clock=clock, sleep=clock.sleep, probe=lambda *a: next(answers)
    )
    assert result["status"] == 200 and clock.now == 1.0
