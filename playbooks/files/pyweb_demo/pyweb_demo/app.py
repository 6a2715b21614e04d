"""Endpoints that load a server the ways real apps do.

/          fast: a few bytes
/io?ms=20  I/O-bound: sleeps like a database call
/cpu?n=N   CPU-bound: N rounds of hashing
/whoami    pid, uid and thread of the worker that answered, the scheme
           it was told the client used (and X-Forwarded-Proto), and the
           sha256 of DEMO_SECRET
/healthz   ok
/version   the code this worker imported: the VERSION file at the code
           root as it was at import time ("none" without one), that
           root's resolved path, and the worker's pid
Any method, POST too, answers by path. pyweb_demo.asgi is the ASGI twin: the
same endpoints plus a WebSocket echo (/ws) and server-sent events (/sse).
Every response carries X-Pyweb-App, so a static file served by nginx (which
has no such header) can be told from one that reached the app.
"""

import hashlib
import json
import os
import threading
import time
from urllib.parse import parse_qs

NAME = os.environ.get("PYWEB_APP_NAME", "demo")
# The directory that holds the pyweb_demo package, symlinks resolved: which
# release this worker really imported.
CODE = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def _release():
    try:
        with open(os.path.join(CODE, "VERSION"), encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return "none"


# Read once: a worker still running old code answers the old release.
RELEASE = _release()


def _number(query, key, default, limit):
    try:
        return max(0, min(limit, int(query.get(key, [default])[0])))
    except ValueError:
        return default


def _body(environ):
    path = environ.get("PATH_INFO", "/")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/":
        return "200 OK", {"app": NAME, "hello": "world"}
    if path == "/io":
        ms = _number(query, "ms", 20, 10000)
        time.sleep(ms / 1000.0)
        return "200 OK", {"slept_ms": ms}
    if path == "/cpu":
        rounds = _number(query, "n", 20000, 5000000)
        digest = b"pyweb"
        for _round in range(rounds):
            digest = hashlib.sha256(digest).digest()
        return "200 OK", {"rounds": rounds, "digest": digest.hex()[:16]}
    if path == "/whoami":
        return "200 OK", {
            "pid": os.getpid(),
            "uid": os.getuid(),
            "thread": threading.current_thread().name,
            "scheme": environ.get("wsgi.url_scheme"),
            "forwarded_proto": environ.get("HTTP_X_FORWARDED_PROTO"),
            # a digest, not the value: tests check the exact secret arrived
            "secret_sha256": hashlib.sha256(os.environ.get("DEMO_SECRET", "").encode()).hexdigest(),
        }
    if path == "/healthz":
        return "200 OK", {"status": "ok"}
    if path == "/version":
        return "200 OK", {"release": RELEASE, "code": CODE, "pid": os.getpid()}
    return "404 Not Found", {"error": "not found", "path": path}


def application(environ, start_response):
    status, payload = _body(environ)
    data = json.dumps(payload).encode()
    start_response(
        status,
        [("Content-Type", "application/json"), ("Content-Length", str(len(data))), ("X-Pyweb-App", NAME)],
    )
    return [data]
