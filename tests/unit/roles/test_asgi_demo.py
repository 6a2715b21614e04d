"""The demo's ASGI twin (pyweb_demo.asgi) under the real servers the collection deploys, and ws_probe.py.

Granian (ASGI and, for the twin's counterpart, WSGI) and Uvicorn (with wsproto,
as the collection installs it) run the demo from a copy of its code with a
VERSION file, on free loopback ports, plain and with TLS. The tests' own
client, molecule/_shared/files/ws_probe.py, drives the WebSocket echo and the
event stream under the system python3 the test containers run it with; the
plain endpoints are asked with http.client and held against the WSGI app's
answers. Stub servers show that the probe fails when it should.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import importlib.util
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from live_http import free_port

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "playbooks" / "files" / "pyweb_demo"
PROBE = ROOT / "molecule" / "_shared" / "files" / "ws_probe.py"
BIN = Path(sys.executable).parent
# The probe runs on the hosts' own python3, which has the standard library only.
PROBE_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
SECRET = "s3cret-for-the-demo"
RELEASE = "r42"
NAME = "asgi.test"

if str(DEMO) not in sys.path:
    sys.path.insert(0, str(DEMO))
from pyweb_demo import asgi


def load_probe():
    spec = importlib.util.spec_from_file_location("ws_probe", PROBE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A release directory as python_app lays one out: the package and its VERSION."""
    root = tmp_path_factory.mktemp("release")
    shutil.copytree(DEMO / "pyweb_demo", root / "pyweb_demo", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "VERSION").write_text(RELEASE + "\n")
    return root


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    where = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"),
            *("-subj", "/CN=" + NAME, "-keyout", str(where / "key.pem"), "-out", str(where / "cert.pem")),
        ],
        check=True,
        capture_output=True,
        timeout=20,
    )
    return where / "cert.pem", where / "key.pem"


class Server:
    def __init__(self, kind, command, port, tls, cwd):
        self.kind, self.port, self.tls = kind, port, tls
        self.scheme = "https" if tls else "http"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GRANIAN_", "UVICORN_"))}
        env.update(DEMO_SECRET=SECRET, PYTHONPATH=str(cwd), PYTHONDONTWRITEBYTECODE="1")
        self.log = cwd / ("%s-%d.log" % (kind, port))
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.get("/healthz", timeout=1)[0] == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            assert self.proc.poll() is None and time.monotonic() < deadline, "%s did not start: %s" % (kind, self.output())
            time.sleep(0.1)

    def output(self):
        return self.log.read_text()

    def url(self, path, websocket=False):
        scheme = ("wss" if self.tls else "ws") if websocket else self.scheme
        return "%s://127.0.0.1:%d%s" % (scheme, self.port, path)

    def get(self, path, method="GET", body=None, headers=None, timeout=10):
        """(status, headers, body) of one request on a new connection."""
        if self.tls:
            context = ssl._create_unverified_context()
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers={"Host": NAME, **(headers or {})})
            answer = conn.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            conn.close()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def start(kind, release, certificate, tls, interface="asgi"):
    port = free_port()
    app = "pyweb_demo.%s:application" % ("asgi" if interface == "asgi" else "app")
    cert, key = certificate
    if kind == "granian":
        command = [str(BIN / "granian"), "--interface", interface, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        command += ["--ssl-certificate", str(cert), "--ssl-keyfile", str(key)] if tls else []
    else:
        # lifespan "on", not "auto": Uvicorn then refuses to start an app that mishandles it
        command = [str(BIN / "uvicorn"), "--host", "127.0.0.1", "--port", str(port), "--ws", "wsproto", "--lifespan", "on"]
        command += ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)] if tls else []
    return Server(kind, [*command, app], port, tls, release)


@pytest.fixture(scope="module", params=["granian", "granian-tls", "uvicorn", "uvicorn-tls"])
def server(request, release, certificate):
    kind, _sep, tls = request.param.partition("-")
    running = start(kind, release, certificate, bool(tls))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def wsgi_server(release, certificate):
    running = start("granian", release, certificate, False, interface="wsgi")
    yield running
    running.stop()


def probe(*args):
    out = subprocess.run([PROBE_PYTHON, str(PROBE), *args], check=False, capture_output=True, text=True, timeout=60)
    lines = out.stdout.strip().splitlines()
    assert lines, out.stderr
    return out.returncode, json.loads(lines[-1]), out.stderr


# --- WebSocket and event stream, through the probe ---------------------------------


def test_websocket_echoes_every_message_and_closes_cleanly(server):
    code, result, _err = probe("ws", "--url", server.url("/ws", websocket=True), "--host-header", NAME, "--messages", "12")
    assert code == 0, result
    assert result["ok"] and result["status"] == 101
    assert result["echoed"] == result["messages"] == 12
    # the server answered our close (1000) with its own
    assert result["close"] == 1000


def test_websocket_echoes_bytes_as_bytes(server):
    # the probe speaks text; a binary message, through its own pieces
    ws = load_probe()
    sock, target = ws.connect(server.url("/ws", websocket=True), NAME)
    with sock:
        sock.sendall(
            b"GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" % (target.encode(), NAME.encode())
        )
        status, headers, rest = ws.read_head(sock)
        assert status == 101 and headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        frames = ws.Frames(sock, rest)
        for data in (bytes(range(256)), os.urandom(70000)):
            sock.sendall(ws.frame(0x2, data))
            assert frames.read(sock) == (0x2, data)
        sock.sendall(ws.frame(0x8, (1000).to_bytes(2, "big")))
        assert frames.read(sock)[0] == 0x8


def test_websocket_on_another_path_is_refused(server):
    code, result, err = probe("ws", "--url", server.url("/nows", websocket=True), "--host-header", NAME)
    assert code == 1 and not result["ok"] and result["status"] == 403 and result["echoed"] == 0
    assert "not 101" in err


def test_events_arrive_one_by_one_as_they_are_sent(server):
    code, result, _err = probe("sse", "--url", server.url("/sse?n=4&ms=250"), "--host-header", NAME)
    assert code == 0, result
    assert result["content_type"] == "text/event-stream" and result["events"] == 4
    gaps = [b - a for a, b in zip(result["arrivals"], result["arrivals"][1:])]
    assert result["first_s"] < 0.5 and all(0.15 <= gap <= 0.6 for gap in gaps), result


def test_event_stream_headers_and_events(server):
    started = time.time()
    status, headers, body = server.get("/sse?n=3&ms=0")
    assert status == 200
    assert headers["content-type"] == "text/event-stream"
    assert headers["cache-control"] == "no-cache"
    assert headers["x-pyweb-app"] == "demo"
    # buffering is nginx's configuration's say, never the app's
    assert "x-accel-buffering" not in headers
    events = body.decode().split("\n\n")
    assert events[-1] == "" and len(events) == 4
    for number, event in enumerate(events[:-1], 1):
        id_line, data_line = event.split("\n")
        assert id_line == "id: %d" % number
        assert data_line.startswith('data: {"k":%d,"t":' % number)
        assert started - 1 <= json.loads(data_line[6:])["t"] <= time.time() + 1


def test_event_stream_is_bounded(server):
    status, _headers, body = server.get("/sse?n=99999&ms=0", timeout=20)
    assert status == 200 and body.count(b"\n\n") == asgi.MAX_EVENTS


# --- the plain endpoints, as the WSGI app answers them --------------------------------


def payload(server, path, **request):
    status, headers, body = server.get(path, **request)
    assert headers["x-pyweb-app"] == "demo", (path, headers)
    assert headers["content-type"] == "application/json"
    return status, json.loads(body)


@pytest.mark.parametrize(
    "path",
    ["/", "/cpu?n=1000", "/io?ms=20", "/healthz", "/version", "/nope?x=1"],
)
def test_endpoints_answer_like_the_wsgi_app(server, wsgi_server, path):
    status, answer = payload(server, path)
    wsgi_status, wsgi_answer = payload(wsgi_server, path)
    assert status == wsgi_status == (404 if path.startswith("/nope") else 200)
    # the same but for the worker that answered; both read the release's VERSION at import
    assert os.getpid() not in (answer.pop("pid", None), wsgi_answer.pop("pid", None))
    assert answer == wsgi_answer


def test_version_is_the_release_imported(server, release):
    _status, answer = payload(server, "/version")
    assert answer["release"] == RELEASE and answer["code"] == os.path.realpath(release)
    assert answer["pid"] != os.getpid()


def test_whoami_names_the_worker_the_scheme_and_the_secret(server):
    _status, answer = payload(server, "/whoami")
    assert answer["pid"] != os.getpid()
    assert answer["uid"] == os.getuid()
    assert answer["scheme"] == server.scheme and answer["forwarded_proto"] is None
    assert answer["secret_sha256"] == hashlib.sha256(SECRET.encode()).hexdigest()
    # what nginx says the client used (Uvicorn also trusts it from loopback for the scheme)
    _status, answer = payload(server, "/whoami", headers={"X-Forwarded-Proto": "https"})
    assert answer["forwarded_proto"] == "https"


def test_a_post_is_read_whole_and_answered_by_path(server, wsgi_server):
    body = b"x" * (64 << 10)
    for path in ("/", "/healthz"):
        status, answer = payload(server, path, method="POST", body=body)
        assert (status, answer) == payload(wsgi_server, path, method="POST", body=body)
    assert status == 200


def test_io_awaits_so_one_worker_serves_many_at_once(server):
    # 20 x 300 ms on one worker's loop: together in well under the 6 s one after another would take
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(server.get("/io?ms=300")[0])) for _client in range(20)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert answers == [200] * 20
    assert time.monotonic() - started < 2.0


def test_uvicorn_saw_the_lifespan_completed(server):
    if server.kind != "uvicorn":
        pytest.skip("Granian does not log the lifespan")
    assert "Application startup complete." in server.output()


# --- the app in-process: lifespan, and a stream whose client leaves ----------------------


def test_lifespan_startup_and_shutdown_complete():
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent = []

    async def receive():
        return incoming.pop(0)

    async def send(message):
        sent.append(message["type"])

    asyncio.run(asyncio.wait_for(asgi.application({"type": "lifespan"}, receive, send), 5))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_event_stream_ends_when_the_client_leaves():
    bodies = []

    async def run():
        incoming = asyncio.Queue()
        incoming.put_nowait({"type": "http.request", "body": b"", "more_body": False})

        async def send(message):
            if message["type"] == "http.response.body":
                bodies.append(message)

        scope = {"type": "http", "path": "/sse", "query_string": b"n=1000&ms=50", "method": "GET", "headers": []}
        app = asyncio.ensure_future(asgi.application(scope, incoming.get, send))
        await asyncio.sleep(0.3)
        incoming.put_nowait({"type": "http.disconnect"})
        # not the 50 s the 1000 events would take
        await asyncio.wait_for(app, 1)

    asyncio.run(run())
    assert 3 <= len(bodies) < 20 and all(body["more_body"] for body in bodies)


# --- the probe fails when it should ------------------------------------------------------


def test_the_probe_fails_on_a_server_that_does_not_upgrade(wsgi_server):
    code, result, err = probe("ws", "--url", wsgi_server.url("/ws", websocket=True), "--host-header", NAME)
    assert code == 1 and not result["ok"] and result["status"] != 101 and "not 101" in err
    # a JSON answer in one piece is no event stream
    code, result, err = probe("sse", "--url", wsgi_server.url("/?n=3&ms=300"), "--host-header", NAME)
    assert code == 1 and not result["ok"] and "text/event-stream" in result["error"]


def test_the_probe_fails_when_nothing_listens():
    code, result, _err = probe("sse", "--url", "http://127.0.0.1:%d/sse" % free_port(), "--host-header", NAME)
    assert code == 1 and "ConnectionRefusedError" in result["error"]


def one_answer_server(answer):
    """A loopback server that answers one connection with `answer` and closes: its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        with listener:
            conn, _addr = listener.accept()
            with conn:
                conn.recv(65536)
                for piece in answer:
                    conn.sendall(piece)
                    time.sleep(0.05)

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


def test_the_probe_calls_a_stream_sent_in_one_burst_buffered():
    events = b"".join(b'id: %d\ndata: {"k":%d}\n\n' % (k, k) for k in range(1, 6))
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    port = one_answer_server([head + chunk(events) + chunk(b"")])
    code, result, _err = probe("sse", "--url", "http://127.0.0.1:%d/sse?n=5&ms=300" % port, "--host-header", NAME)
    assert code == 1 and result["events"] == 5 and "buffered" in result["error"], result


def test_the_probe_reads_chunks_split_anywhere_and_misses_no_event():
    # one chunk holding two events, split inside its size line, its data and a character
    events = 'id: 1\ndata: {"k":1,"é":1}\n\nid: 2\ndata: {"k":2}\n\n'.encode()
    stream = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    stream += chunk(events) + chunk(b'id: 3\ndata: {"k":3}\n\n') + chunk(b"")
    start, accent = stream.index(events), stream.index("é".encode()) + 1
    pieces = [stream[: start - 3], stream[start - 3 : accent], stream[accent:]]
    port = one_answer_server(pieces)
    code, result, _err = probe("sse", "--url", "http://127.0.0.1:%d/sse?n=3&ms=0" % port, "--host-header", NAME)
    assert code == 0 and result["events"] == 3, result


def test_the_probe_sends_the_host_header_as_tls_server_name(certificate):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    names = []
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():
        with listener, context.wrap_socket(listener.accept()[0], server_side=True) as conn:
            conn.recv(1024)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    sock, target = load_probe().connect("https://127.0.0.1:%d/sse?n=1" % port, NAME)
    with sock:
        sock.sendall(b"x")
    thread.join(5)
    assert names == [NAME] and target == "/sse?n=1"
