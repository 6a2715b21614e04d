"""pyweb_granian.py and the demo's ASGI twin under the real Granian and Uvicorn (the venv's).

The launcher is started the way systemd starts it: a listening unix socket on
descriptor 3, LISTEN_PID and LISTEN_FDS set for the process itself. Granian
must serve on that socket (and never remove it), survive a HUP with new
workers on the same socket, and leave it listening when it stops. The ASGI
demo's WebSocket echo and event stream are driven by the tests' own client
(molecule/_shared/files/ws_probe.py) over TCP on loopback.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from live_http import free_port

from ansible_collections.pyweb.stack.plugins.module_utils import _procmem

ROOT = Path(__file__).resolve().parents[3]
LAUNCHER = ROOT / "roles" / "python_app" / "files" / "tools" / "pyweb_granian.py"
DEMO = ROOT / "playbooks" / "files" / "pyweb_demo"
PROBE = ROOT / "molecule" / "_shared" / "files" / "ws_probe.py"
BIN = Path(sys.executable).parent
# How systemd hands the socket over, in the launched process itself.
SYSTEMD_LIKE = """
import os, socket, sys
sock = socket.socket(fileno=int(sys.argv[1]))
os.dup2(sock.fileno(), 3)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")
os.execv(sys.argv[2], sys.argv[2:])
"""


def test_the_pinned_granian_is_the_roles():
    defaults = yaml.safe_load((ROOT / "roles" / "granian" / "defaults" / "main.yml").read_text())
    pins = dict(line.split("==") for line in (ROOT / "requirements-dev.txt").read_text().splitlines() if "==" in line)
    assert pins["granian"] == defaults["granian_version"]


def unix_get(path, url="/whoami"):
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(5)
        client.connect(str(path))
        client.sendall(b"GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % url.encode())
        data = b""
        while chunk := client.recv(65536):
            data += chunk
    head, _sep, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def children(pid):
    """The workers (the module's view: Python's resource tracker left out)."""
    return _procmem.workers(pid)


def wait_for(predicate, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def systemd_socket(tmp_path):
    path = tmp_path / "app.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(64)
    os.set_inheritable(listener.fileno(), True)
    yield path, listener
    listener.close()


def start_launcher(listener, env, *args):
    return subprocess.Popen(
        [sys.executable, "-c", SYSTEMD_LIKE, str(listener.fileno()), sys.executable, str(LAUNCHER), *args],
        cwd=DEMO,
        env=env,
        pass_fds=(listener.fileno(),),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def granian_env(**options):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANIAN_")}
    env.update({"GRANIAN_" + k.upper(): str(v) for k, v in options.items()})
    return env


def test_granian_serves_systemds_socket_reloads_on_it_and_leaves_it(systemd_socket):
    path, listener = systemd_socket
    env = granian_env(interface="wsgi", workers=2, working_dir=DEMO, respawn_interval=0.5, blocking_threads=2)
    proc = start_launcher(listener, env, "serve", "pyweb_demo.app:application")
    try:
        assert wait_for(lambda: len(children(proc.pid)) == 2 and unix_get(path)[0] == 200), proc.stdout
        before = children(proc.pid)
        # the app answers from a worker, never from the master
        assert json.loads(unix_get(path)[1])["pid"] in before
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: len(children(proc.pid)) == 2 and not set(children(proc.pid)) & set(before)), before
        assert unix_get(path)[0] == 200
        assert proc.poll() is None
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert proc.returncode == 0, output
    assert "Listening at: http://unix:" in output and "(systemd's)" in output
    # systemd's socket: still there and listening after Granian stopped
    assert path.exists()
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(path))


def test_workers_are_spawned_so_the_metrics_threads_cannot_hang_them(systemd_socket):
    """With metrics on, the master runs exporter threads while it starts
    workers: forked, a worker could inherit a held lock and never answer
    (7 of 16 restarts on Debian 13). Spawned workers start clean: every start
    answers, and each worker is a fresh interpreter."""
    path, listener = systemd_socket
    port = free_port()
    env = granian_env(
        interface="wsgi", workers=2, working_dir=DEMO, metrics_enabled="true", metrics_address="127.0.0.1", metrics_port=port
    )
    for _start in range(4):
        proc = start_launcher(listener, env, "serve", "pyweb_demo.app:application")
        try:
            master = proc.pid
            assert wait_for(lambda pid=master: len(children(pid)) == 2 and unix_get(path)[0] == 200, seconds=15), proc.stdout
            for pid in children(master):
                assert "multiprocessing.spawn" in _procmem._cmdline(pid)
            assert json.loads(unix_get(path)[1])["pid"] in children(master)
            metrics = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            metrics.request("GET", "/metrics")
            assert b"granian_" in metrics.getresponse().read()
        finally:
            proc.terminate()
            output = proc.communicate(timeout=20)[0]
        assert proc.returncode == 0, output


def test_serve_refuses_to_start_without_a_socket_from_systemd():
    out = subprocess.run(
        [sys.executable, str(LAUNCHER), "serve", "pyweb_demo.app:application"],
        cwd=DEMO,
        env=granian_env(interface="wsgi"),
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert "needs exactly one socket from systemd" in out.stdout


@pytest.mark.parametrize(
    "options, extra, message",
    [
        ({"interface": "wsgi", "workerz": "2"}, [], "GRANIAN_WORKERZ: not a Granian option"),
        ({"interface": "wsgi", "blocking_threads_idle_timeout": "2h"}, [], "Invalid value for '--blocking-threads-idle-timeout'"),
        ({"interface": "wsgi", "working_dir": "/nonexistent"}, [], "Invalid value for '--working-dir'"),
        ({"interface": "wsgi", "working_dir": "/nonexistent"}, ["--working-dir", str(DEMO)], None),
        ({"interface": "asgi", "http1_keep_alive": "false"}, [], None),
    ],
)
def test_check_names_what_granian_refuses(options, extra, message):
    out = subprocess.run(
        [sys.executable, str(LAUNCHER), "check", "pyweb_demo.app:application", *extra],
        env=granian_env(**options),
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    answer = json.loads(out.stdout.strip().splitlines()[-1].split(" ", 1)[1])
    if message is None:
        assert out.returncode == 0 and answer == {"ok": True}, out.stdout
    else:
        assert out.returncode == 2 and message in answer["error"], out.stdout


def serve_tcp(command, port):
    proc = subprocess.Popen(command, cwd=DEMO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    assert wait_for(up), proc.poll()
    return proc


@pytest.fixture(params=["granian", "uvicorn"])
def asgi_server(request):
    port = free_port()
    if request.param == "granian":
        command = [str(BIN / "granian"), "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port)]
    else:
        command = [str(BIN / "uvicorn"), "--host", "127.0.0.1", "--port", str(port), "--ws", "wsproto"]
    proc = serve_tcp([*command, "pyweb_demo.asgi:application"], port)
    yield port
    proc.terminate()
    proc.communicate(timeout=20)


def probe(*args):
    out = subprocess.run([sys.executable, str(PROBE), *args], check=False, capture_output=True, text=True, timeout=30)
    return out.returncode, json.loads(out.stdout.strip().splitlines()[-1])


def test_asgi_demo_echoes_websocket_messages(asgi_server):
    code, result = probe("ws", "--url", "ws://127.0.0.1:%d/ws" % asgi_server, "--host-header", "localhost", "--messages", "12")
    assert code == 0, result
    assert result["status"] == 101 and result["echoed"] == 12 and result["close"] == 1000


def test_asgi_demo_streams_events_as_they_happen(asgi_server):
    url = "http://127.0.0.1:%d/sse?n=4&ms=250" % asgi_server
    code, result = probe("sse", "--url", url, "--host-header", "localhost")
    assert code == 0, result
    assert result["content_type"] == "text/event-stream" and result["events"] == 4
    assert result["first_s"] < 0.2 and result["spread_s"] >= 0.6, result


def test_asgi_demo_answers_like_the_wsgi_one(asgi_server):
    for method, path, key in (
        ("GET", "/", "hello"),
        ("POST", "/", "hello"),
        ("GET", "/io?ms=5", "slept_ms"),
        ("GET", "/nope", "error"),
    ):
        conn = http.client.HTTPConnection("127.0.0.1", asgi_server, timeout=5)
        conn.request(method, path, body=b"a=1" if method == "POST" else None)
        answer = conn.getresponse()
        assert answer.getheader("X-Pyweb-App") == "demo"
        assert key in json.loads(answer.read())
        assert answer.status == (404 if path == "/nope" else 200)
        conn.close()


def test_the_probe_fails_on_a_server_that_does_not_upgrade():
    port = free_port()
    proc = serve_tcp(
        [str(BIN / "granian"), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port), "pyweb_demo.app:application"],
        port,
    )
    try:
        code, result = probe("ws", "--url", "ws://127.0.0.1:%d/ws" % port, "--host-header", "localhost")
        assert code == 1 and not result["ok"] and "not 101" in result["error"]
        # a JSON answer in one piece is no stream
        code, result = probe("sse", "--url", "http://127.0.0.1:%d/?n=3&ms=300" % port, "--host-header", "localhost")
        assert code == 1 and not result["ok"]
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
