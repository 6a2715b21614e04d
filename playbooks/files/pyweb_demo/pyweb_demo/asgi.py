"""The demo app's ASGI twin (ASGI 3, the standard library only).

The same endpoints as pyweb_demo.app, answered the same way, with I/O that
awaits instead of blocking, plus what only an event loop serves well:

/io?ms=20          awaits asyncio.sleep, like a database call
/ws                a WebSocket echo: every text or bytes message comes back
/sse?n=5&ms=200    server-sent events: n events (at most 1000), ms apart (at
                   most 10000), each sent on its own as it happens

Everything else (/, /cpu, /whoami, /healthz, /version, any other path, GET or
POST - a request body is read to its end first) as the WSGI app answers it.
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


async def _events(query, send):
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
    for number in range(1, count + 1):
        if number > 1:
            await asyncio.sleep(gap)
        event = "id: %d\ndata: %s\n\n" % (number, json.dumps({"k": number, "t": round(time.time(), 3)}))
        await send({"type": "http.response.body", "body": event.encode(), "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


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
        await _events(query, send)
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
