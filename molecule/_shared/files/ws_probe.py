"""A WebSocket and server-sent-events client for the tests (standard library only).

ws_probe.py ws --url ws://127.0.0.1/ws --host-header NAME [--messages N]
    RFC 6455: the handshake (Sec-WebSocket-Accept checked), N masked text
    messages of growing size (one above 125 bytes, one above 65535: both
    extended lengths), each echo compared, then a clean close.
ws_probe.py sse --url http://127.0.0.1/sse?n=5&ms=300 --host-header NAME
    reads the stream as it comes and notes when each event arrived.

wss:// and https:// speak TLS without verifying the certificate (the test
sites' are self-signed), with the host header as the server name. One JSON
line on stdout; exit 1 on any failure, with the reason in it.
"""

import argparse
import base64
import hashlib
import json
import os
import socket
import ssl
import sys
import time
from urllib.parse import parse_qs, urlsplit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TIMEOUT = 10


def connect(url, host_header, timeout=TIMEOUT):
    parts = urlsplit(url)
    secure = parts.scheme in ("wss", "https")
    port = parts.port or (443 if secure else 80)
    sock = socket.create_connection((parts.hostname, port), timeout=timeout)
    if secure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        sock = context.wrap_socket(sock, server_hostname=host_header)
    target = parts.path + ("?" + parts.query if parts.query else "")
    return sock, target or "/"


def read_head(sock):
    """The status line and headers (lower-cased names), and what came after them."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise OSError("connection closed before the response headers")
        data += chunk
    head, _sep, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _colon, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest


class Frames:
    """Frames read from a socket, with what was read ahead kept."""

    def __init__(self, sock, buffered=b""):
        self.sock = sock
        self.buffer = buffered

    def exactly(self, count):
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("connection closed inside a frame")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def read(self, sock):
        """(opcode, payload) of the next message (continuation frames joined), pings answered."""
        while True:
            opcode, payload = self.frame()
            if opcode != 0x9:
                return opcode, payload
            sock.sendall(frame(0xA, payload))

    def frame(self):
        payload, opcode = b"", None
        while True:
            first, second = self.exactly(2)
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(self.exactly(2), "big")
            elif length == 127:
                length = int.from_bytes(self.exactly(8), "big")
            if second & 0x80:
                # RFC 6455 5.1: a client must fail a connection whose server masks
                raise ValueError("the server sent a masked frame")
            data = self.exactly(length)
            if opcode is None:
                opcode = first & 0x0F
            payload += data
            if first & 0x80:
                return opcode, payload


def frame(opcode, payload):
    """A client frame: always masked (RFC 6455 5.3)."""
    head = bytes([0x80 | opcode])
    if len(payload) < 126:
        head += bytes([0x80 | len(payload)])
    elif len(payload) < 65536:
        head += bytes([0x80 | 126]) + len(payload).to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + len(payload).to_bytes(8, "big")
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def websocket(url, host_header, messages):
    started = time.monotonic()
    result = {"ok": False, "status": None, "messages": messages, "echoed": 0}
    sock = None
    try:
        sock, target = connect(url, host_header)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (target, host_header, key)
        )
        sock.sendall(request.encode())
        result["status"], headers, rest = read_head(sock)
        # the accept value proves the server read our key: no plain HTTP server or cache answered
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        if result["status"] != 101:
            result["error"] = "handshake answered %d, not 101" % result["status"]
        elif headers.get("sec-websocket-accept") != accept:
            result["error"] = "Sec-WebSocket-Accept %r, expected %r" % (headers.get("sec-websocket-accept"), accept)
        else:
            echo_and_close(sock, Frames(sock, rest), result)
    except (OSError, ValueError) as exc:
        # what was echoed before the failure stays in the result
        result["error"] = "%s: %s" % (type(exc).__name__, exc)
    finally:
        if sock is not None:
            sock.close()
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def echo_and_close(sock, frames, result):
    messages = result["messages"]
    # growing sizes, the last two past 125 and 65535 bytes: the 16-bit and the 64-bit length
    sizes = [min(10 * (i + 1), 120) for i in range(max(0, messages - 2))] + [200, 70000][: min(messages, 2)]
    for number, size in enumerate(sizes):
        text = ("%d:" % number + "x" * size)[:size].encode()
        sock.sendall(frame(0x1, text))
        opcode, payload = frames.read(sock)
        if opcode != 0x1 or payload != text:
            result["error"] = "message %d (%d bytes) came back as opcode %d, %d bytes" % (number, size, opcode, len(payload))
            return
        result["echoed"] += 1
    # a clean close: ours (1000), and the server's close frame in answer
    sock.sendall(frame(0x8, (1000).to_bytes(2, "big")))
    opcode, payload = frames.read(sock)
    if opcode != 0x8:
        result["error"] = "no close frame back (opcode %d)" % opcode
        return
    result["close"] = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
    result["ok"] = True


def events(url, host_header, count, gap_ms):
    started = time.monotonic()
    sock, target = connect(url, host_header, timeout=TIMEOUT + 2 * gap_ms / 1000.0)
    sock.sendall(
        ("GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n" % (target, host_header)).encode()
    )
    status, headers, raw = read_head(sock)
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    # bytes until an event is whole: a chunk or a read may end inside a character
    arrivals, ids, stream = [], [], b""
    while True:
        # without the chunk framing, what is left is the event stream
        if chunked:
            while b"\r\n" in raw:
                size_line, _sep, after = raw.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if len(after) < size + 2:
                    break
                if size == 0:
                    raw = None
                    break
                stream += after[:size]
                raw = after[size + 2 :]
        else:
            stream, raw = stream + raw, b""
        while b"\n\n" in stream:
            event, _sep, stream = stream.partition(b"\n\n")
            fields = {}
            for line in event.decode().splitlines():
                name, _colon, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
            # a browser dispatches only events with data: comments (keep-alives) are no events
            if "data" in fields:
                arrivals.append(round(time.monotonic() - started, 3))
                ids.append(fields.get("id"))
        if raw is None:
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        raw += chunk
    sock.close()
    spread = round(arrivals[-1] - arrivals[0], 3) if arrivals else 0.0
    result = {
        "status": status,
        "content_type": headers.get("content-type"),
        "events": len(arrivals),
        "arrivals": arrivals,
        "first_s": arrivals[0] if arrivals else None,
        "spread_s": spread,
    }
    # unbuffered: the events came as they were sent, not in one burst at the end
    wanted = 0.6 * max(0, count - 1) * gap_ms / 1000.0
    if status != 200 or not (result["content_type"] or "").startswith("text/event-stream"):
        result["error"] = "answered %s with %s, not 200 with text/event-stream" % (status, result["content_type"])
    elif ids != [str(k) for k in range(1, count + 1)]:
        result["error"] = "event ids %s, expected 1 to %d" % (ids, count)
    elif spread < wanted:
        result["error"] = "all %d events within %.3f s: buffered (at least %.3f s wanted)" % (count, spread, wanted)
    result["ok"] = "error" not in result
    return result


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("ws", "sse"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--host-header", required=True)
    parser.add_argument("--messages", type=int, default=10)
    args = parser.parse_args(argv)
    try:
        if args.kind == "ws":
            result = websocket(args.url, args.host_header, args.messages)
        else:
            # what the stream should look like, from the URL asking for it (the demo's defaults)
            query = parse_qs(urlsplit(args.url).query)
            result = events(args.url, args.host_header, int(query.get("n", ["5"])[0]), int(query.get("ms", ["200"])[0]))
    except (OSError, ValueError, IndexError) as exc:
        result = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}
    print(json.dumps(result, sort_keys=True))
    if not result["ok"]:
        print("ws_probe %s %s: %s" % (args.kind, args.url, result["error"]), file=sys.stderr)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
