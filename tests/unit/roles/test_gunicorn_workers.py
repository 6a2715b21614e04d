"""pyweb's Gunicorn worker classes under a real Gunicorn: a request over `timeout` is
ended, the requests beside it are answered, and at most the one worker is replaced.

The classes live in roles/python_app/files/tools (installed into
/usr/local/lib/pyweb and named by gunicorn.conf.py); Gunicorn, gevent, Uvicorn and
uvicorn-worker are the versions the gunicorn role pins (requirements-dev.txt holds
the same pins, checked below). Loopback only, every loop bounded.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import yaml
from live_http import SLOW_WSGI_APP, free_port, slow_beside_posts, wait_until_serving

ROOT = Path(__file__).resolve().parents[3]
TOOLS = ROOT / "roles" / "python_app" / "files" / "tools"
LIMIT = 2

WSGI_APP = SLOW_WSGI_APP

ASGI_APP = """
import asyncio

async def application(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(30)
    else:
        while (await receive()).get("more_body"):
            pass
        await asyncio.sleep(0.05)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})
"""

# worker class line of gunicorn.conf.py, threads, the app, workers replaced, the slow request's answer
CASES = {
    "sync": ('worker_class = "sync"', 1, WSGI_APP, 1, None),
    "gthread": ("from pyweb_gthread import ThreadWorker as worker_class", 2, WSGI_APP, 1, None),
    "gevent": ("from pyweb_gevent import GeventWorker as worker_class", 1, WSGI_APP, 0, None),
    "uvicorn": ("from pyweb_uvicorn import UvicornWorker as worker_class", 1, ASGI_APP, 0, 504),
}


def test_pins_match_the_gunicorn_role():
    defaults = yaml.safe_load((ROOT / "roles" / "gunicorn" / "defaults" / "main.yml").read_text())
    pins = dict(line.split("==") for line in (ROOT / "requirements-dev.txt").read_text().splitlines() if "==" in line)
    assert pins["gunicorn"] == defaults["gunicorn_version"]
    assert pins["gevent"] == defaults["gunicorn_gevent_version"]
    assert pins["uvicorn"] == defaults["gunicorn_uvicorn_version"]
    assert pins["uvicorn-worker"] == defaults["gunicorn_uvicorn_worker_version"]
    assert pins["wsproto"] == defaults["gunicorn_uvicorn_wsproto_version"]


@pytest.fixture
def gunicorn(tmp_path):
    procs = []

    def start(worker_line, threads, app):
        port = free_port()
        (tmp_path / "app.py").write_text(textwrap.dedent(app))
        (tmp_path / "conf.py").write_text(
            textwrap.dedent(
                """
                import sys
                sys.path.append(%r)
                %s
                bind = "127.0.0.1:%d"
                workers = 2
                threads = %d
                timeout = %d
                graceful_timeout = 3
                keepalive = 0
                errorlog = "-"
                """
            )
            % (str(TOOLS), worker_line, port, threads, LIMIT)
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "conf.py", "app:application"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(proc)
        wait_until_serving(port, proc, lambda: "gunicorn")
        return proc, port

    yield start
    for proc in procs:
        proc.terminate()
        try:
            out = proc.communicate(timeout=15)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate()[0]
        print(out)


def workers(proc):
    return {child.pid for child in psutil.Process(proc.pid).children()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_request_over_the_limit_is_ended_and_the_others_answered(gunicorn, case):
    worker_line, threads, app, replaced, slow_status = CASES[case]
    proc, port = gunicorn(worker_line, threads, app)
    before = workers(proc)
    # POSTs beside it, while it runs, is ended and its worker (if any) replaced
    (status, seconds), posts = slow_beside_posts(port, LIMIT + 4)
    slow = {"status": status, "seconds": seconds}
    # ended by the server: after the limit, well before the app's 30 s
    assert LIMIT - 0.1 <= seconds <= LIMIT + 2.5, slow
    if slow_status is not None:
        assert status == slow_status, slow
    else:
        assert status != 200, slow
    assert len(posts) > 20 and set(posts) == {200}, posts
    time.sleep(1)
    assert len(before - workers(proc)) == replaced
    assert len(workers(proc)) == 2
