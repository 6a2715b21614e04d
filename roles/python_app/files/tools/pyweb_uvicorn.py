# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Uvicorn's Gunicorn worker, without the requests it drops when it retires.

gunicorn.conf.py (the gunicorn role) names it as the worker class for
`server: uvicorn`. It is pyweb_asgi's worker (a per-request time limit), and
when a worker retires - a reload (HUP), max_requests, a graceful stop -
Uvicorn's Server.shutdown closes at once every connection with no request in
progress: idle keep-alive connections, on which nginx may be sending a
request that instant, and connections accepted a moment earlier whose
request it has not read yet. nginx retries a GET on another try; a POST it
may not retry becomes a 502 (measured with pyweb_asgi's worker and keep-alive
on: 4 of 2,958 POSTs over three reloads, 10 of 2,880 at max_requests 100).

Here:
- with Gunicorn's `keepalive` at 0 (the role's setting behind nginx), every
  response says `Connection: close`, so nginx never keeps an idle connection
  that a retiring worker could close under a request. (Uvicorn has no such
  setting: timeout_keep_alive 0 still lets nginx reuse the connection, and
  closes it a moment later.)
- a retiring worker stops accepting first, then waits until every connection
  it accepted has its request (nginx sends it at once: milliseconds; at most
  DRAIN_SECONDS, and never beyond graceful_timeout), and only then goes on
  as Uvicorn does: the requests in progress finish, the rest is closed.
- like Gunicorn's own workers, it retires when its master is gone.
"""

from __future__ import annotations

import asyncio
import sys

from gunicorn.arbiter import Arbiter
from pyweb_asgi import UvicornWorker as _LimitedUvicornWorker
from uvicorn.server import Server as _Server

# How long a retiring worker waits for the requests of connections it
# already accepted (bounded by graceful_timeout too).
DRAIN_SECONDS = 2.0
CLOSE = (b"connection", b"close")


class ConnectionClose:
    """ASGI middleware: every HTTP response closes its connection."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_close(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(name.lower() == b"connection" for name, _value in headers):
                    message = dict(message, headers=[*headers, CLOSE])
            await send(message)

        return await self.app(scope, receive, send_close)


def _waiting(connection):
    """A connection accepted whose first request has not been read yet (the
    HTTP protocols of Uvicorn set `cycle` at a request's headers)."""
    return getattr(connection, "cycle", True) is None


class Server(_Server):
    def __init__(self, config, drain_seconds):
        super().__init__(config=config)
        self.drain_seconds = drain_seconds

    async def shutdown(self, sockets=None):
        # No new connection: what waits in the listening socket's queue is
        # for the other workers (the socket stays open in them and the master).
        for server in self.servers:
            server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_seconds
        # asyncio makes the protocol of an accepted connection in a task of its own
        await asyncio.sleep(0)
        while any(_waiting(c) for c in list(self.server_state.connections)) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        await super().shutdown(sockets=sockets)


class UvicornWorker(_LimitedUvicornWorker):
    def load_wsgi(self):
        super().load_wsgi()
        if self.cfg.keepalive <= 0:
            self.wsgi = ConnectionClose(self.wsgi)

    async def _watch_parent(self, server):
        while not server.should_exit:
            if not self.is_parent_alive():
                server.should_exit = True
                return
            await asyncio.sleep(1.0)

    async def _serve(self):
        # uvicorn-worker 0.4.0's _serve (pinned by the role), with the server above.
        self.config.app = self.wsgi
        server = Server(self.config, min(DRAIN_SECONDS, float(self.cfg.graceful_timeout)))
        self._install_sigquit_handler()
        watcher = asyncio.ensure_future(self._watch_parent(server))
        try:
            await server.serve(sockets=self.sockets)
        finally:
            watcher.cancel()
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
