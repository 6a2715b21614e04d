# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The app, with a per-request time limit that holds in threaded uWSGI workers.

Installed by the pyweb.stack.uwsgi role; an ini whose workers run threads
loads this module instead of the app (`module = uwsgi_limit:application`),
and this module loads the app named by PYWEB_WSGI_APP ("package.module:callable").

uWSGI's harakiri is a worker's timer in uWSGI 2.0, and every request that
ends in the worker clears it: under load, a request stuck in one thread of a
threaded worker was never killed (10 s past `harakiri = 8` with the other
thread busy). Here each worker watches how long its requests have been
running (the app callable's call). When one is past PYWEB_REQUEST_LIMIT
seconds the worker retires the way a reload retires it: SIGHUP to itself
(uWSGI stops giving it requests and lets its other threads finish theirs),
then it exits once only requests over the limit are left, without waiting
for them (Python cannot stop a thread); the master starts a new worker.
nginx answered 504 before: its read timeout is the app's timeout, a few
seconds shorter. harakiri stays set as the backstop for a worker that
holds the GIL.
"""

import importlib
import os
import signal
import sys
import threading
import time

_TARGET = os.environ["PYWEB_WSGI_APP"]
_MODULE, _SEP, _CALLABLE = _TARGET.partition(":")
_APP = getattr(importlib.import_module(_MODULE), _CALLABLE or "application")
LIMIT = float(os.environ.get("PYWEB_REQUEST_LIMIT", "30"))
# How long a retiring worker waits for its other requests (the reload mercy).
GRACE = float(os.environ.get("PYWEB_REQUEST_GRACE", "30"))
CHECK_SECONDS = 0.5

_running = {}
_lock = threading.Lock()
_watching = {"pid": None}


def _log(message):
    sys.stderr.write("pyweb: %s\n" % message)
    sys.stderr.flush()


def _watch():
    # uWSGI's signals (stop, reload) are for its own threads: one handled in
    # this thread hung the worker's exit.
    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    retiring = None
    deadline = None
    while True:
        time.sleep(CHECK_SECONDS)
        now = time.monotonic()
        with _lock:
            running = dict(_running)
        over = {key: value for key, value in running.items() if now - value[0] > LIMIT and key not in (retiring or ())}
        for started, method, path in over.values():
            _log(
                "request %s %s over the %gs limit (%.1f s): ended, worker %d retires"
                % (method, path, LIMIT, now - started, os.getpid())
            )
        if retiring is None:
            if not over:
                continue
            retiring = set(over)
            deadline = now + GRACE
            # uWSGI's graceful worker stop: no new request, the others finish.
            os.kill(os.getpid(), signal.SIGHUP)
            continue
        # one that went over the limit while the worker retires is not waited for either
        retiring |= set(over)
        if not (set(running) - retiring) or now > deadline:
            _log("worker %d exits, leaving %d request(s) over the limit" % (os.getpid(), len(retiring)))
            os._exit(0)


def _ensure_watching():
    # One watcher per worker process, started in the worker (threads do not survive fork).
    pid = os.getpid()
    if _watching["pid"] != pid:
        with _lock:
            if _watching["pid"] != pid:
                _running.clear()
                threading.Thread(target=_watch, name="pyweb-request-limit", daemon=True).start()
                _watching["pid"] = pid


def application(environ, start_response):
    _ensure_watching()
    key = threading.get_ident()
    with _lock:
        _running[key] = (time.monotonic(), environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
    try:
        return _APP(environ, start_response)
    finally:
        with _lock:
            _running.pop(key, None)
