"""Plain HTTP on loopback for the tests that run a real app server (Gunicorn, uWSGI)."""

from __future__ import annotations

import http.client
import socket
import threading
import time

# A WSGI app for them: /slow sleeps 30 s, anything else reads its body and answers at once.
SLOW_WSGI_APP = """
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


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(port, method, path, timeout):
    """(status or the error's name, seconds)."""
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


def wait_until_serving(port, proc, log, seconds=20):
    deadline = time.monotonic() + seconds
    while request(port, "GET", "/", 1)[0] != 200:
        assert proc.poll() is None and time.monotonic() < deadline, "the server did not start: %s" % log()
        time.sleep(0.2)


def slow_beside_posts(port, window, wait=20):
    """One GET /slow (waiting at most `wait` s) and, beside it for `window` s, POST / one
    after another: ((status, seconds) of the slow one, [status of each POST])."""
    slow = {}
    thread = threading.Thread(target=lambda: slow.update(answer=request(port, "GET", "/slow", wait)))
    thread.start()
    posts = []
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        posts.append(request(port, "POST", "/", 10)[0])
        time.sleep(0.03)
    thread.join(wait + 5)
    return slow["answer"], posts
