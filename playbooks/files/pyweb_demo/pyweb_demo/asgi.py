"""The demo app's ASGI twin (ASGI 3, the standard library only): pyweb_demo.asgi:application.

The WSGI app's endpoints, answered the same way and with the same
X-Pyweb-App header, plus what only an event loop serves well:

/                  fast: a few bytes
/io?ms=20          I/O-bound: awaits asyncio.sleep, like a database call
/cpu?n=N           CPU-bound: N rounds of hashing (it blocks the loop, as such code does)
/whoami            pid, uid, scheme, X-Forwarded-Proto, the secret's digest
/healthz           ok
/version           release, code root and pid, as pyweb_demo.app reads them
/ws                a WebSocket echo: every text or bytes message comes back
                   until the client closes
/sse?n=5&ms=200    server-sent events: n events (at most 1000), ms apart (at
                   most 10000), each sent on its own as it happens; no
                   X-Accel-Buffering, so nginx's configuration decides buffering
Any method, POST too, answers by path; a request body is read to its end
first. The lifespan scope is acknowledged (nothing to set up).
"""

import asyncio
import json
import time
from urllib.parse import parse_qs

from pyweb_demo import app as wsgi

MAX_EVENTS = 1000
MAX_GAP_MS = 10000


def _headers(content_type, length=None):
    headers = [(b"content-type", content_type), (b"x-pyweb-app", wsgi.NAME.encode())]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return headers


def _environ(scope):
    """What the WSGI twin reads of a request."""
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}
    return {
        "PATH_INFO": scope["path"],
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "REQUEST_METHOD": scope.get("method", "GET"),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "HTTP_X_FORWARDED_PROTO": headers.get("x-forwarded-proto"),
    }


async def _read_body(receive):
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        more = message.get("more_body", False)
    return True


async def _lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _websocket(receive, send):
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes") is not None:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
        else:
            await send({"type": "websocket.send", "text": message.get("text") or ""})


async def _events(query, receive, send):
    count = wsgi._number(query, "n", 5, MAX_EVENTS)
    gap = wsgi._number(query, "ms", 200, MAX_GAP_MS) / 1000.0
    # No X-Accel-Buffering: whether nginx buffers is the site's streaming_paths' say.
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [*_headers(b"text/event-stream"), (b"cache-control", b"no-cache")],
        }
    )
    # Servers drop what is sent after the client left (Uvicorn without a word):
    # waiting for the disconnect between events ends the stream instead of
    # running on for up to n x ms into the void.
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        for number in range(1, count + 1):
            if number > 1:
                await asyncio.wait([gone], timeout=gap)
                if gone.done():
                    return
            data = json.dumps({"k": number, "t": round(time.time(), 3)}, separators=(",", ":"))
            event = "id: %d\ndata: %s\n\n" % (number, data)
            await send({"type": "http.response.body", "body": event.encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        gone.cancel()


async def _disconnected(receive):
    while (await receive())["type"] != "http.disconnect":
        pass


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] == "websocket":
        if scope["path"] == "/ws":
            await _websocket(receive, send)
        else:
            await send({"type": "websocket.close", "code": 1008})
        return
    if not await _read_body(receive):
        return
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if scope["path"] == "/sse":
        await _events(query, receive, send)
        return
    if scope["path"] == "/io":
        ms = wsgi._number(query, "ms", 20, 10000)
        await asyncio.sleep(ms / 1000.0)
        status, payload = "200 OK", {"slept_ms": ms}
    else:
        environ = _environ(scope)
        status, payload = wsgi._body(environ)
    body = json.dumps(payload).encode()
    await send(
        {"type": "http.response.start", "status": int(status.split()[0]), "headers": _headers(b"application/json", len(body))}
    )
    await send({"type": "http.response.body", "body": body})
