"""roles/uwsgi/files/uwsgi_limit.py under a real uWSGI (the venv's, requirements-dev.txt):
with threads, a request over the limit ends with its worker, gracefully, while the
requests beside it are answered; uWSGI's harakiri alone does not end it under load.

Loopback only, every loop bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from live_http import SLOW_WSGI_APP, free_port, slow_beside_posts, wait_until_serving

ROOT = Path(__file__).resolve().parents[3]
FILES = ROOT / "roles" / "uwsgi" / "files"
UWSGI = Path(sys.executable).parent / "uwsgi"
LIMIT = 2

APP = SLOW_WSGI_APP

pytestmark = pytest.mark.skipif(not UWSGI.exists(), reason="uWSGI from requirements-dev.txt")


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
        wait_until_serving(port, proc, (tmp_path / "uwsgi.log").read_text)
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


def test_a_request_over_the_limit_ends_with_its_worker_gracefully(uwsgi, tmp_path):
    _proc, port = uwsgi(with_limit=True)
    (status, seconds), posts = slow_beside_posts(port, LIMIT + 4)
    assert status != 200 and LIMIT <= seconds <= LIMIT + 2, (status, seconds)
    assert len(posts) > 20 and set(posts) == {200}, posts
    log = (tmp_path / "uwsgi.log").read_text()
    assert "over the 2s limit" in log and "Gracefully killing worker" in log and "Respawned uWSGI worker" in log


def test_harakiri_alone_misses_a_stuck_thread_under_load(uwsgi):
    # the reason uwsgi_limit.py exists: without it the slow request ran on,
    # the other thread's requests clearing the worker's harakiri timer
    _proc, port = uwsgi(with_limit=False)
    (status, seconds), _posts = slow_beside_posts(port, LIMIT + 4, wait=LIMIT + 5)
    assert seconds > LIMIT + 4, (status, seconds)
