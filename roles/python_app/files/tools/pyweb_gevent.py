# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Gunicorn's gevent worker, with a per-request time limit.

gunicorn.conf.py (the gunicorn role) names it as the worker class for the
async profile. Gunicorn's `timeout` is a heartbeat of the worker, beaten by
its own greenlet: a request waiting on I/O (a slow query, an API) lets it
beat, so without a limit of its own the request runs for as long as it
waits. Here each request's greenlet gets a gevent.Timeout of Gunicorn's
`timeout`: the request is ended where it waits, its connection closed, and
the worker and its other requests go on. nginx answered 504 before (its read
timeout is the app's timeout, a few seconds shorter). A request that burns
CPU never yields, so the heartbeat stops too and the arbiter ends the worker
after the same `timeout`.
"""

from __future__ import annotations

import gevent
from gunicorn.workers import ggevent


class GeventWorker(ggevent.GeventWorker):
    def handle_request(self, listener_name, req, sock, addr):
        limit = gevent.Timeout(self.cfg.timeout)
        limit.start()
        try:
            return super().handle_request(listener_name, req, sock, addr)
        except gevent.Timeout as exc:
            if exc is not limit:
                raise
            self.log.error(
                "pyweb: request %s %s over the %ds limit: ended (worker %s goes on)",
                req.method,
                req.path,
                self.cfg.timeout,
                self.pid,
            )
            # handle() closes the connection and reads no further request on it.
            raise StopIteration() from None
        finally:
            limit.cancel()
