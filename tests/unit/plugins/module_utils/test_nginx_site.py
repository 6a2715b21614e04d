"""The nginx role's nginx.conf.j2 and site.conf.j2, rendered as the role renders them.

The templates get what the role gives them: the app layout, the sizing plan,
the checked settings and nginx_plan's result. With nginx on the host
(tools/ensure-packages.sh nginx=nginx) the whole configuration passes the real
`nginx -t`, and a live nginx in front of a real Granian (the version
requirements-dev.txt pins) carries a WebSocket and a stream; without it those
tests are skipped.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible.plugins.test.core import match, version_compare

from ansible_collections.pyweb.stack.plugins.module_utils._apps import app_layout
from ansible_collections.pyweb.stack.plugins.module_utils._nginx import nginx_plan, nginx_settings
from ansible_collections.pyweb.stack.plugins.module_utils._sizing import plan_workers, size_workers

ROOT = Path(__file__).resolve().parents[4]
TEMPLATES = ROOT / "roles" / "nginx" / "templates"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
SOURCE = {"type": "path", "path": "/src/demo"}
CAPACITY = {
    "cpus": 2.0,
    "cpus_host": 2,
    "cpus_source": "cgroup2 cpu.max",
    "memory": {"effective_mb": 4096, "total_mb": 4096, "source": "cgroup2 memory.max"},
    "kernel": {"somaxconn": 4096, "nr_open": 1048576},
    "measured": {},
}
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (tools/ensure-packages.sh nginx=nginx)")


def app(name, **overrides):
    base = {"name": name, "module": "demo.app:application", "source": SOURCE, "domains": ["%s.test" % name]}
    base.update(overrides)
    return base


def nginx_version():
    if NGINX is None:
        return "1.22.1"
    out = subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=False).stderr
    return re.search(r"nginx/([0-9.]+)", out).group(1)


def render(raw_apps, **settings_over):
    """{"nginx.conf": text, <app name>: its site} as the role would write them."""
    apps = app_layout(raw_apps)
    values = yaml.safe_load((ROOT / "roles" / "nginx" / "defaults" / "main.yml").read_text())
    values.update({"nginx_ipv6": False, **settings_over})
    settings = nginx_settings(values)
    version = nginx_version()
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        trim_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.tests.update({"match": match, "version": version_compare})
    context = {
        "ansible_managed": "managed",
        "ansible_facts": {"pyweb_capacity": CAPACITY},
        "pyweb_contract": {
            "apps": apps,
            "plan": plan_workers(apps, CAPACITY),
            "web": {"user": "www-data", "group": "www-data"},
        },
        "__nginx_settings": settings,
        "__nginx_plan": nginx_plan(settings, apps, nginx_v="nginx version: nginx/%s\nbuilt with OpenSSL 3.0.17" % version),
        "__nginx_version": version,
        "__nginx_size": size_workers(CAPACITY),
        "__nginx_pid": "/run/nginx.pid",
        "__nginx_modules_include": "/etc/nginx/modules-enabled/*.conf",
        "__nginx_sites_enabled": "/etc/nginx/sites-enabled",
    }
    files = {"nginx.conf": env.get_template("nginx.conf.j2").render(context)}
    for item in apps:
        files[item["name"]] = env.get_template("site.conf.j2").render(dict(context, item=item))
    return files


def location(site, path):
    """The directives of `location <path>` in a site, comments left out."""
    found = re.search(r"\n    location %s \{\n(.*?)\n    \}\n" % re.escape(path), site, re.DOTALL)
    assert found, "no location %s in:\n%s" % (path, site)
    return [line.strip() for line in found.group(1).splitlines() if line.strip() and not line.strip().startswith("#")]


def locations(site):
    return re.findall(r"\n    location (\S+) \{", site)


def test_apps_without_long_lived_paths_get_nothing_new():
    files = render([app("shop"), app("legacy", server="uwsgi"), app("api", server="uvicorn")])
    assert "pyweb_connection_upgrade" not in files["nginx.conf"]
    assert "worker_shutdown_timeout" not in files["nginx.conf"]
    for name in ("shop", "legacy", "api"):
        assert locations(files[name]) == ["/static/", "/media/", "/"]
    assert location(files["shop"], "/")[:3] == [
        "proxy_pass http://pyweb_shop;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
    ]
    assert "proxy_read_timeout 30s;" in location(files["shop"], "/")
    assert "proxy_next_upstream error;" in location(files["shop"], "/")


def test_a_websocket_location_upgrades_and_waits_stream_timeout():
    files = render([app("chat", server="granian", interface="asgi", websocket_paths=["/ws/"], stream_timeout=600)])
    ws = location(files["chat"], "/ws/")
    assert ws == [
        "proxy_pass http://pyweb_chat;",
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $pyweb_connection_upgrade;",
        "proxy_set_header Host $host;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Host $host;",
        "proxy_connect_timeout 5s;",
        "proxy_send_timeout 600s;",
        "proxy_read_timeout 600s;",
        "proxy_buffer_size 16k;",
        "proxy_buffers 16 16k;",
        "proxy_next_upstream error;",
        "proxy_next_upstream_tries 4;",
        "proxy_next_upstream_timeout 5s;",
    ]
    # the keep-alive's empty Connection of location / stays there
    assert 'proxy_set_header Connection "";' in location(files["chat"], "/")
    assert "proxy_read_timeout 30s;" in location(files["chat"], "/")
    conf = files["nginx.conf"]
    assert 'map $http_upgrade $pyweb_connection_upgrade {\n        default upgrade;\n        "" close;\n    }' in conf
    assert conf.index("map $http_upgrade") < conf.index("include /etc/nginx/conf.d/*.conf;")
    # the longest stream_timeout, or the apps' longest timeout and a minute
    assert "\nworker_shutdown_timeout 600s;\n" in conf
    assert locations(files["chat"]) == ["/static/", "/media/", "/ws/", "/"]


def test_a_streaming_location_buffers_nothing_and_is_retried_like_location_slash():
    files = render(
        [
            app("feed", server="gunicorn", streaming_paths=["/events/", "/export"], stream_timeout=5, timeout=60),
            app("old", server="uwsgi", streaming_paths=["/report/"]),
        ],
        nginx_upstream_keepalive=0,
    )
    events = location(files["feed"], "/events/")
    assert events == [
        "proxy_pass http://pyweb_feed;",
        "proxy_http_version 1.1;",
        "proxy_set_header Connection close;",
        "proxy_set_header Host $host;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Host $host;",
        "proxy_connect_timeout 5s;",
        "proxy_send_timeout 60s;",
        "proxy_read_timeout 5s;",
        "proxy_buffering off;",
        "proxy_buffer_size 16k;",
        "proxy_buffers 16 16k;",
        "proxy_cache off;",
        "gzip off;",
        "proxy_next_upstream error;",
        "proxy_next_upstream_tries 4;",
        "proxy_next_upstream_timeout 5s;",
    ]
    assert location(files["feed"], "/export") == events
    # the Gunicorn worker's own limit is said where it applies
    assert "Gunicorn's worker still ends the whole response at 63s." in files["feed"]
    report = location(files["old"], "/report/")
    assert report[:2] == ["uwsgi_pass pyweb_old;", "include uwsgi_params;"]
    for directive in (
        "uwsgi_read_timeout 3600s;",
        "uwsgi_buffering off;",
        "uwsgi_cache off;",
        "gzip off;",
        "uwsgi_next_upstream error;",
    ):
        assert directive in report
    assert not [line for line in report if line.startswith("proxy_")]
    assert "uWSGI's harakiri still ends the whole response at 33s." in files["old"]
    # no WebSocket anywhere: no map; the old workers' bound from the longest stream_timeout
    assert "pyweb_connection_upgrade" not in files["nginx.conf"]
    assert "\nworker_shutdown_timeout 3600s;\n" in files["nginx.conf"]


def test_brotli_is_off_where_gzip_is_and_a_short_stream_timeout_keeps_the_apps_timeout_for_old_workers():
    files = render([app("feed", server="uvicorn", streaming_paths=["/sse/"], stream_timeout=10, timeout=120)], nginx_brotli=True)
    assert location(files["feed"], "/sse/")[-5:-3] == ["gzip off;", "brotli off;"]
    assert "the worker answers\n        # 504 after 123s" in files["feed"]
    assert "\nworker_shutdown_timeout 180s;\n" in files["nginx.conf"]


def test_nginx_plan_says_what_nginx_conf_needs():
    settings = nginx_settings(
        dict(yaml.safe_load((ROOT / "roles" / "nginx" / "defaults" / "main.yml").read_text()), nginx_ipv6=False)
    )
    apps = app_layout(
        [app("a"), app("b", server="uvicorn", websocket_paths="/ws/", stream_timeout=90), app("c", streaming_paths="/e/")]
    )
    assert nginx_plan(settings, apps)["long_lived"] == {"websocket": True, "stream_timeout": 3600}
    assert nginx_plan(settings, apps[:1])["long_lived"] == {"websocket": False, "stream_timeout": None}
    assert nginx_plan(settings, apps[:2])["long_lived"] == {"websocket": True, "stream_timeout": 90}


def self_signed(directory, name):
    key, cert = directory / ("%s.key" % name), directory / ("%s.crt" % name)
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=%s.test" % name, "-days", "2"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return {"enabled": True, "certificate": str(cert), "key": str(key)}


def write_config(files, directory, listen=None):
    """The rendered files under `directory`, pointed there instead of /etc/nginx, /var/log/nginx and /run."""
    sites = directory / "sites"
    for sub in ("sites", "log", "modules", "temp"):
        (directory / sub).mkdir(exist_ok=True)
    shutil.copy("/etc/nginx/uwsgi_params", directory / "uwsgi_params")
    temp = "".join(
        "    %s_temp_path %s/temp/%s;\n" % (kind, directory, kind)
        for kind in ("client_body", "proxy", "uwsgi", "fastcgi", "scgi")
    )
    for name, rendered in files.items():
        text = rendered.replace("/var/log/nginx/", "%s/log/" % directory)
        if name == "nginx.conf":
            text = text.replace("pid /run/nginx.pid;", "pid %s/nginx.pid;" % directory)
            text = text.replace("/etc/nginx/modules-enabled/*.conf", "%s/modules/*.conf" % directory)
            text = text.replace("/etc/nginx/sites-enabled/*", "%s/*" % sites)
            text = text.replace("include /etc/nginx/conf.d/*.conf;\n", "")
            text = text.replace("http {\n", "http {\n" + temp)
            # Workers that can reach a socket in the test's own directory.
            text = re.sub(r"(?m)^user .*\n", "user root root;\n" if os.geteuid() == 0 else "", text)
            (directory / "nginx.conf").write_text(text)
        else:
            if listen:
                text = text.replace("listen 80 default_server;", "listen 127.0.0.1:%d default_server;" % listen)
            (sites / ("pyweb-%s.conf" % name)).write_text(text)
    return directory / "nginx.conf"


@needs_nginx
def test_the_whole_configuration_passes_nginx_t(tmp_path):
    files = render(
        [
            app("chat", server="uvicorn", websocket_paths=["/ws/", "/cable"], streaming_paths=["/events/"], domains=["_"]),
            app("live", server="granian", interface="rsgi", websocket_paths="/socket/", tls=self_signed(tmp_path, "live")),
            app("shop", server="uwsgi", streaming_paths=["/export/"], stream_timeout=120),
            app("parts", server="uwsgi", uwsgi_mode="instances", streaming_paths=["/feed/"], workers=2),
            app("plain"),
        ],
        nginx_brotli=False,
    )
    conf = write_config(files, tmp_path)
    result = subprocess.run(
        [NGINX, "-t", "-c", str(conf), "-e", str(tmp_path / "log" / "error.log")], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    assert "warn" not in result.stderr.replace('"user" directive makes sense only if', ""), result.stderr


# An ASGI app for the live test: /ws/ echoes, /events/ and /plain/ send two
# server-sent events a second apart, /idle/ accepts a WebSocket and says nothing.
LIVE_APP = """
import asyncio

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if scope["path"].startswith("/ws/"):
                await send({"type": "websocket.send", "text": "echo:" + message.get("text", "")})
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"data: one\\n\\n" * 40, "more_body": True})
    await asyncio.sleep(1.0)
    await send({"type": "http.response.body", "body": b"data: two\\n\\n", "more_body": False})
"""


def wait_for(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def first_chunk_after(port, path):
    """Seconds until the first byte of the body reaches the client, and the whole response."""
    sock = connect(port)
    started = time.monotonic()
    sock.sendall(("GET %s HTTP/1.1\r\nHost: live.test\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n" % path).encode())
    data, first = b"", None
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        if first is None and b"\r\n\r\n" in data and data.split(b"\r\n\r\n", 1)[1]:
            first = time.monotonic() - started
    sock.close()
    return first, data


def websocket(port, path):
    sock = connect(port)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            "GET %s HTTP/1.1\r\nHost: live.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, key)
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, head
        head += chunk
    return sock, head.split(b"\r\n")[0].decode()


def send_text(sock, text):
    payload = text.encode()
    mask = os.urandom(4)
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def read_frame(sock):
    head = sock.recv(2)
    if len(head) < 2:
        return None
    length = head[1] & 0x7F
    payload = b""
    while len(payload) < length:
        payload += sock.recv(length - len(payload))
    return head[0] & 0x0F, payload


@needs_nginx
def test_live_websocket_and_stream_through_nginx(tmp_path):
    """A real nginx in front of a real Granian: the WebSocket echoes and closes at stream_timeout, the stream is not held."""
    pytest.importorskip("granian")
    (tmp_path / "liveapp.py").write_text(textwrap.dedent(LIVE_APP))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    raw = app("live", server="granian", interface="asgi", websocket_paths=["/ws/", "/idle/"], streaming_paths=["/events/"])
    raw.update({"domains": ["_"], "stream_timeout": 2})
    # text/event-stream compressed where it is not streamed, to show what gzip holds back
    types = yaml.safe_load((ROOT / "roles" / "nginx" / "defaults" / "main.yml").read_text())["nginx_compress_types"]
    files = render([raw], nginx_compress_types=[*types, "text/event-stream"])
    (layout,) = app_layout([raw])
    sock_path = tmp_path / "live.sock"
    files["live"] = files["live"].replace("unix:%s" % layout["socket"], "unix:%s" % sock_path)
    conf = write_config(files, tmp_path, listen=port)
    granian = subprocess.Popen(
        [sys.executable, "-m", "granian", "--interface", "asgi", "--uds", str(sock_path), "--workers", "1", "liveapp:app"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    nginx = None
    try:
        assert wait_for(sock_path.exists, 20), "granian did not bind its socket"
        nginx = subprocess.Popen([NGINX, "-c", str(conf), "-e", str(tmp_path / "log" / "error.log"), "-g", "daemon off;"])
        assert wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 10), "nginx did not listen"

        sock, status = websocket(port, "/ws/")
        assert status == "HTTP/1.1 101 Switching Protocols"
        send_text(sock, "hello")
        assert read_frame(sock) == (0x1, b"echo:hello")
        sock.close()

        # The client's frames alone keep it open past stream_timeout (the app says nothing) ...
        sock, status = websocket(port, "/idle/")
        assert status == "HTTP/1.1 101 Switching Protocols"
        for _frame in range(8):
            send_text(sock, "ping")
            time.sleep(0.5)
        sock.settimeout(0.2)
        with pytest.raises(socket.timeout):
            sock.recv(1)
        sock.close()

        # ... and nothing either way for stream_timeout (2 s) closes the tunnel.
        sock, status = websocket(port, "/idle/")
        assert status == "HTTP/1.1 101 Switching Protocols"
        started = time.monotonic()
        sock.settimeout(10)
        assert read_frame(sock) is None
        idle = time.monotonic() - started
        assert 1.5 < idle < 4, idle
        sock.close()

        # Streamed: the first event at once; location / (gzip) holds it until the end.
        first, body = first_chunk_after(port, "/events/")
        assert first < 0.5, first
        assert b"data: one" in body and b"data: two" in body and b"Content-Encoding" not in body
        held, body = first_chunk_after(port, "/plain/")
        assert held > 0.9, held
        assert b"Content-Encoding: gzip" in body
        print("\nidle WebSocket closed after %.2fs; first event: %.3fs streamed, %.3fs through location /" % (idle, first, held))
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(10)
        granian.terminate()
        granian.wait(10)
