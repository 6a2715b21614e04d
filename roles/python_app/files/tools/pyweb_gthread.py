# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Gunicorn's threaded worker, without the connections it drops when it retires.

gunicorn.conf.py (the gunicorn role) names it as the worker class for
threaded workers. Gunicorn's ThreadWorker accepts a connection, then waits in
its poller for the request's bytes before handing it to a thread. When the
worker retires - a reload (HUP), max_requests, a graceful stop - its loop
ends and it closes the poller: a connection accepted a moment earlier, whose
request had not been read yet, is reset. nginx retries a GET on another
worker and hides it; a POST it may not retry becomes a 502 (0.8 % of POSTs
lost to max_requests recycling alone, 23 of 2,840 across six reloads).

Here the loop is Gunicorn's (23.0, pinned by the role); when it ends, the
worker first stops accepting, then hands every connection it already
accepted to its threads as its request arrives (nginx sends it at once:
milliseconds), and only then goes on as Gunicorn does (the threads finish,
up to graceful_timeout). What can still be lost is an idle keep-alive
connection that nginx reuses the instant the worker closes it: the role
turns keep-alive off behind nginx.

It also ends a request that runs past Gunicorn's `timeout`. Gunicorn's own
timeout is a heartbeat of the worker's main loop, which keeps beating while a
thread is stuck: a request sleeping 8 s under `timeout = 5` was answered 200
after 8 s. Python cannot stop a thread, so the worker retires instead, the
way a reload retires it: it stops accepting, serves what it already
accepted, lets its other threads finish their requests, then exits without
waiting for the stuck one; the arbiter starts a new worker. nginx answered
504 before (its read timeout is the app's timeout, a few seconds shorter),
so the only request lost is the one that was over its time.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import threading
import time
from concurrent import futures
from functools import partial

from gunicorn.workers import gthread

# How long a retiring worker waits for the requests of connections it already
# accepted (bounded by graceful_timeout too).
DRAIN_SECONDS = 2.0


class ThreadWorker(gthread.ThreadWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # connection -> when its request started (monotonic), for the requests being handled
        self._running = {}
        self._running_lock = threading.Lock()
        self._over_limit = set()

    def handle(self, conn):
        with self._running_lock:
            self._running[conn] = time.monotonic()
        try:
            return super().handle(conn)
        finally:
            with self._running_lock:
                self._running.pop(conn, None)

    def _check_request_limit(self):
        """Retire (alive = False) when a request has run past the timeout."""
        limit = float(self.cfg.timeout)
        now = time.monotonic()
        with self._running_lock:
            over = [(conn, now - started) for conn, started in self._running.items() if now - started > limit]
        for conn, seconds in over:
            if conn in self._over_limit:
                continue
            self._over_limit.add(conn)
            self.log.error(
                "pyweb: request from %s over the %ds limit (%.1f s): ended, worker %s retires",
                conn.client,
                self.cfg.timeout,
                seconds,
                self.pid,
            )
            # nginx has answered 504 already; the thread's own writes fail from here on.
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
            self.alive = False

    def run(self):
        # Gunicorn 23.0's ThreadWorker.run, with _drain() before the poller closes,
        # the request limit, and no new work while every thread has some.
        for sock in self.sockets:
            sock.setblocking(False)
            server = sock.getsockname()
            acceptor = partial(self.accept, server)
            self.poller.register(sock, selectors.EVENT_READ, acceptor)

        while self.alive:
            self.notify()
            # Only while a thread is free for it: Gunicorn's own loop accepts up
            # to worker_connections and queues them behind busy threads, so a
            # request could wait inside a worker with a stuck thread (one POST
            # of 990 got 504 behind two slow requests) while other workers were
            # free. Not taken, it waits in the socket's queue for any free one.
            if self.nr_conns < self.worker_connections and len(self.futures) < self.cfg.threads:
                events = self.poller.select(1.0)
                for key, _mask in events:
                    callback = key.data
                    callback(key.fileobj)
                result = futures.wait(self.futures, timeout=0, return_when=futures.FIRST_COMPLETED)
            else:
                result = futures.wait(self.futures, timeout=1.0, return_when=futures.FIRST_COMPLETED)
            for fut in result.done:
                self.futures.remove(fut)
            if not self.is_parent_alive():
                break
            self.murder_keepalived()
            self._check_request_limit()

        self._drain()

        self.tpool.shutdown(False)
        self.poller.close()
        for s in self.sockets:
            s.close()
        others = [fut for fut in self.futures if getattr(fut, "conn", None) not in self._over_limit]
        deadline = time.monotonic() + float(self.cfg.graceful_timeout)
        while others and time.monotonic() < deadline:
            # Still beating: the arbiter kills a silent worker after `timeout`.
            self.notify()
            others = list(futures.wait(others, timeout=min(1.0, max(0.0, deadline - time.monotonic()))).not_done)
            # one that went over the limit meanwhile is not waited for either
            self._check_request_limit()
            others = [fut for fut in others if getattr(fut, "conn", None) not in self._over_limit]
        if self._over_limit:
            # The stuck thread would hold the interpreter's exit (the pool
            # joins its threads) until the arbiter kills the worker.
            self.log.info("pyweb: worker %s exits, leaving %d request(s) over the limit", self.pid, len(self._over_limit))
            os._exit(0)

    def _waiting(self):
        """Connections accepted whose first request has not been read yet."""
        with self._lock:
            keys = list(self.poller.get_map().values())
        waiting = []
        for key in keys:
            conn = getattr(key.data, "args", (None,))[0]
            if conn is not None and not getattr(conn, "initialized", True):
                waiting.append(key)
        return waiting

    def _drain(self):
        # No new connection: what waits in the listening socket's queue is
        # for the other workers (the socket stays open in them and the master).
        for sock in self.sockets:
            with contextlib.suppress(KeyError, ValueError):
                self.poller.unregister(sock)
        deadline = time.monotonic() + min(DRAIN_SECONDS, float(self.cfg.graceful_timeout))
        while self._waiting() and time.monotonic() < deadline:
            self.notify()
            # A readable keep-alive connection carries a request nginx just
            # sent: it goes to the threads too.
            for key, _mask in self.poller.select(0.05):
                key.data(key.fileobj)
