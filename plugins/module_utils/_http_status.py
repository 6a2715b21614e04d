# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Is an HTTP app server behind a unix socket serving, on new workers only?

Private to pyweb.stack. The http_status module's logic: the workers of a
systemd unit (the children of its main process, Python's multiprocessing
helpers left out), an HTTP request over the unit's unix socket with the
app's Host, and a wait until the app answers and none of the workers seen
before a graceful reload runs any more, so a play that reports a reload
done never leaves old code answering.
"""

from __future__ import annotations

import http.client
import os
import socket as socketlib
import time

from ansible_collections.pyweb.stack.plugins.module_utils._procmem import workers as serving_children

__all__ = ["FAIL_FAST", "HttpStatusError", "alive", "request", "wait_for"]

# Answers of exactly 500 in a row, from new workers only, that end the wait
# at once: the app raised (a broken release), it is not still starting (a
# 502/503/504 or a refused connection keeps the wait going). Each second a
# broken release stays live is a second of failed requests.
FAIL_FAST = 3


class HttpStatusError(Exception):
    pass


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        sock = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def request(socket_path, path="/", host="localhost", timeout=5.0):
    """Status of GET ``path`` with ``Host: host`` over the unix socket; raises OSError."""
    conn = _UnixConnection(socket_path, timeout)
    try:
        conn.request("GET", path, headers={"Host": host, "User-Agent": "pyweb.stack health check"})
        response = conn.getresponse()
        response.read(65536)
        return response.status
    finally:
        conn.close()


def alive(pids, proc="/proc"):
    """The pids of ``pids`` that still run (zombies count as gone)."""
    running = []
    for pid in pids:
        try:
            with open(os.path.join(proc, str(pid), "stat")) as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            running.append(pid)
    return running


def wait_for(
    main_pid,
    socket_path,
    *,
    path="/",
    host="localhost",
    max_status=499,
    replaced_pids=(),
    expect_workers=1,
    timeout=30.0,
    interval=0.5,
    fail_fast=FAIL_FAST,
    proc="/proc",
    clock=time.monotonic,
    sleep=time.sleep,
    probe=request,
):
    """Poll until: the main process runs ``expect_workers`` workers, none of
    ``replaced_pids`` runs any more, and GET ``path`` answers up to
    ``max_status``. ``main_pid`` is a callable returning the unit's main pid
    (0 when none). Returns {main_pid, workers, status, elapsed}; raises
    HttpStatusError naming what still failed, at once after ``fail_fast``
    answers of 500 in a row (0: wait the whole ``timeout``).
    """
    start = clock()
    errors = 0
    while True:
        problem = None
        status = None
        pid = main_pid()
        workers = serving_children(pid, proc) if pid else []
        left = alive(replaced_pids, proc)
        if not pid:
            problem = "no main process"
        elif left:
            problem = "old workers still run: %s" % ", ".join(str(p) for p in sorted(left))
        elif len(workers) < expect_workers:
            problem = "%d of %d workers run" % (len(workers), expect_workers)
        else:
            try:
                status = probe(socket_path, path, host, max(1.0, min(5.0, timeout)))
            except (OSError, http.client.HTTPException) as exc:
                problem = "GET %s on %s: %s" % (path, socket_path, exc)
            else:
                if status > max_status:
                    problem = "GET %s on %s answered %d (healthy: up to %d)" % (path, socket_path, status, max_status)
        errors = errors + 1 if status == 500 else 0
        elapsed = round(clock() - start, 3)
        if problem is None:
            return {"main_pid": pid, "workers": workers, "status": status, "elapsed": elapsed}
        if fail_fast and errors >= fail_fast:
            raise HttpStatusError(
                "%s, %d times in a row on new workers after %.1fs: the app fails, it is not starting" % (problem, errors, elapsed)
            )
        if elapsed >= timeout:
            raise HttpStatusError("not serving after %.1fs: %s" % (elapsed, problem))
        sleep(max(0.0, min(interval, timeout - elapsed)))
