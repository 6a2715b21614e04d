"""roles/uwsgi/files/uwsgi_limit.py under a real uWSGI (the venv's, requirements-dev.txt):
with threads, a request over the limit ends with its worker, gracefully, while the
requests beside it are answered; uWSGI's harakiri alone does not end it under load.

Loopback only, every loop bounded.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FILES = ROOT / "roles" / "uwsgi" / "files"
UWSGI = Path(sys.executable).parent / "uwsgi"
LIMIT = 2

APP = """
import time

def application(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(30)
    else:
        environ["wsgi.input"].read()
        time.sleep(0.05)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""

pytestmark = pytest.mark.skipif(not UWSGI.exists(), reason="uWSGI from requirements-dev.txt")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(port, method, path, timeout):
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=b"x=1" if method == "POST" else None, headers={"Connection": "close"})
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as error:
        status = type(error).__name__
    finally:
        conn.close()
    return status, time.monotonic() - started


@pytest.fixture
def uwsgi(tmp_path):
    procs = []

    def start(with_limit):
        port = free_port()
        (tmp_path / "app.py").write_text(textwrap.dedent(APP))
        argv = [str(UWSGI), "--master", "--http-socket", "127.0.0.1:%d" % port, "--processes", "2", "--threads", "2"]
        argv += ["--enable-threads", "--die-on-term", "--harakiri", str(LIMIT), "--worker-reload-mercy", "5"]
        argv += ["--pythonpath", str(tmp_path), "--pythonpath", str(FILES)]
        env = dict(os.environ, PYWEB_WSGI_APP="app:application", PYWEB_REQUEST_LIMIT=str(LIMIT), PYWEB_REQUEST_GRACE="5")
        argv += ["--module", "uwsgi_limit:application" if with_limit else "app:application"]
        log = open(tmp_path / "uwsgi.log", "w")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        procs.append((proc, log))
        deadline = time.monotonic() + 20
        while request(port, "GET", "/", 1)[0] != 200:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "uwsgi.log").read_text()
            time.sleep(0.2)
        return proc, port

    yield start
    for proc, log in procs:
        proc.send_signal(signal.SIGINT)
        try:
            # the request watcher must not keep a worker from stopping
            assert proc.wait(timeout=10) is not None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
            print((Path(log.name)).read_text())


def slow_beside_posts(port, wait=20):
    slow = {}
    thread = threading.Thread(target=lambda: slow.update(answer=request(port, "GET", "/slow", wait)))
    thread.start()
    posts = []
    deadline = time.monotonic() + LIMIT + 4
    while time.monotonic() < deadline:
        posts.append(request(port, "POST", "/", 10)[0])
        time.sleep(0.02)
    thread.join(25)
    return slow["answer"], posts


def test_a_request_over_the_limit_ends_with_its_worker_gracefully(uwsgi, tmp_path):
    _proc, port = uwsgi(with_limit=True)
    (status, seconds), posts = slow_beside_posts(port)
    assert status != 200 and LIMIT <= seconds <= LIMIT + 2, (status, seconds)
    assert len(posts) > 20 and set(posts) == {200}, posts
    log = (tmp_path / "uwsgi.log").read_text()
    assert "over the 2s limit" in log and "Gracefully killing worker" in log and "Respawned uWSGI worker" in log


def test_harakiri_alone_misses_a_stuck_thread_under_load(uwsgi):
    # the reason uwsgi_limit.py exists: without it the slow request ran on,
    # the other thread's requests clearing the worker's harakiri timer
    _proc, port = uwsgi(with_limit=False)
    (status, seconds), _posts = slow_beside_posts(port, wait=LIMIT + 5)
    assert seconds > LIMIT + 4, (status, seconds)
