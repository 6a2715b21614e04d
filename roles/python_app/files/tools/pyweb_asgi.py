# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Uvicorn's Gunicorn worker, with a per-request time limit.

gunicorn.conf.py (the gunicorn role) names it as the worker class for
`server: uvicorn`. Uvicorn has no request timeout, and Gunicorn's `timeout`
is a heartbeat of the worker's event loop, which keeps beating while a
request awaits a slow query: the request would run for as long as it waits.
Here each HTTP request gets until Gunicorn's `timeout` to start its
response; past it the request's task is cancelled (its `finally` blocks
run), the worker and its other requests go on, and it is answered 504 if
anyone still listens. nginx answered 504 before (its read timeout is the
app's timeout, a few seconds shorter). Once a response has started (a
stream, server-sent events) the limit is off: nginx's read timeout then
bounds the silence between two chunks. WebSocket and lifespan scopes have
no limit.
"""

from __future__ import annotations

import asyncio
import contextlib

from uvicorn_worker import UvicornWorker as _UvicornWorker


class RequestLimit:
    """ASGI middleware: an HTTP request must start its response within `seconds`."""

    def __init__(self, app, seconds, log):
        self.app = app
        self.seconds = seconds
        self.log = log

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = asyncio.Event()

        async def send_started(message):
            if message["type"] == "http.response.start":
                started.set()
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, send_started))
        waiter = asyncio.ensure_future(started.wait())
        try:
            await asyncio.wait({task, waiter}, timeout=self.seconds, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            waiter.cancel()
        if task.done() or started.is_set():
            return await task
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        self.log.error(
            "pyweb: request %s %s over the %ss limit: ended (the worker goes on)",
            scope.get("method"),
            scope.get("path"),
            self.seconds,
        )
        if not started.is_set():
            with contextlib.suppress(Exception):
                await send({"type": "http.response.start", "status": 504, "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": b"504 Gateway Timeout\n"})


class UvicornWorker(_UvicornWorker):
    def load_wsgi(self):
        super().load_wsgi()
        self.wsgi = RequestLimit(self.wsgi, self.cfg.timeout, self.log)
