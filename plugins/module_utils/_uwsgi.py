# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ask a running uWSGI how it is doing: stats server, uwsgi-protocol probe, readiness wait.

Private to pyweb.stack; the uwsgi_status module is a thin wrapper. Standard
library only, so it runs on any target Python. Field names follow what uWSGI
2.0 really sends from --stats (app server) and --emperor-stats-server.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from urllib.parse import unquote_to_bytes

from ansible_collections.pyweb.stack.plugins.module_utils._http_status import FAIL_FAST

__all__ = [
    "BODY_LIMIT",
    "UwsgiError",
    "encode_packet",
    "parse_response",
    "read_stats",
    "request_vars",
    "summarise",
    "uwsgi_request",
    "wait_for",
]

MIB = 1024.0 * 1024.0
BODY_LIMIT = 64 * 1024
# A stats dump of a few hundred workers with per-core request vars stays well below this.
STATS_LIMIT = 32 * 1024 * 1024
HEADERS_LIMIT = 64 * 1024


class UwsgiError(ValueError):
    """A uWSGI socket could not be read, or did not reach the state asked for."""


def _family_and_target(address):
    if address.startswith("/"):
        return socket.AF_UNIX, address
    if address.startswith("@"):
        # uWSGI's notation for Linux abstract sockets.
        return socket.AF_UNIX, "\0" + address[1:]
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UwsgiError("%r is neither a unix socket path (starting with /) nor host:port" % address)
    return None, (host.strip("[]"), int(port))


def _connect(address, timeout, what):
    family, target = _family_and_target(address)
    try:
        if family is None:
            return socket.create_connection(target, timeout=timeout)
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(target)
        except BaseException:
            sock.close()
            raise
        return sock
    except FileNotFoundError:
        raise UwsgiError("%s %s does not exist" % (what, address)) from None
    except ConnectionRefusedError as exc:
        raise UwsgiError("%s %s refused: %s" % (what, address, exc)) from None
    except PermissionError as exc:
        raise UwsgiError(
            "%s %s: permission denied (%s); run as its owner or a member of its group" % (what, address, exc)
        ) from None
    # Targets before Python 3.10 raise socket.timeout, not yet an alias of TimeoutError.
    except socket.timeout:  # noqa: UP041
        raise UwsgiError("%s %s: no connection within %ss" % (what, address, timeout)) from None
    except OSError as exc:
        raise UwsgiError("%s %s: %s" % (what, address, exc)) from None


def _receive(sock, limit, deadline, address, what):
    """Read until EOF, ``limit`` bytes or ``deadline``, whichever comes first."""
    chunks = []
    size = 0
    while size < limit:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UwsgiError("%s %s: no complete answer within the timeout (%d bytes so far)" % (what, address, size))
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(min(65536, limit - size))
        except socket.timeout:  # noqa: UP041
            raise UwsgiError("%s %s: no complete answer within the timeout (%d bytes so far)" % (what, address, size)) from None
        except OSError as exc:
            raise UwsgiError("%s %s: reading failed after %d bytes: %s" % (what, address, size, exc)) from None
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _fetch_stats(address, timeout):
    deadline = time.monotonic() + timeout
    sock = _connect(address, timeout, "stats socket")
    try:
        return _receive(sock, STATS_LIMIT, deadline, address, "stats socket")
    finally:
        sock.close()


def read_stats(address, timeout=5.0):
    """The JSON uWSGI's stats server (--stats or --emperor-stats-server) dumps on connect.

    ``address`` is a unix socket path (``/run/app/stats.sock``), ``@name`` for an
    abstract socket, or ``host:port``.
    """
    raw = _fetch_stats(address, timeout)
    if not raw:
        # A --stats-http server waits for a request and closes after 4 s without
        # one; sending one to a plain server could reset the dump it is writing.
        raise UwsgiError("stats socket %s closed the connection without sending anything (stats-http is not read)" % address)
    try:
        # uWSGI copies request variables into the dump verbatim: tolerate bad
        # UTF-8 and raw control characters rather than lose the whole reading.
        stats = json.loads(raw.decode("utf-8", "replace"), strict=False)
    except ValueError as exc:
        raise UwsgiError("stats socket %s sent no valid JSON (%s): %r" % (address, exc, raw[:120])) from None
    if not isinstance(stats, dict):
        raise UwsgiError("stats socket %s sent JSON that is not an object: %r" % (address, raw[:120]))
    return stats


def _int(value, default=0):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _summarise_emperor(stats):
    vassals = []
    for vassal in stats.get("vassals") or []:
        vassals.append(
            {
                "id": vassal.get("id"),
                "pid": _int(vassal.get("pid")),
                "uid": vassal.get("uid"),
                "gid": vassal.get("gid"),
                "respawns": _int(vassal.get("respawns")),
                "ready": bool(vassal.get("ready")),
                "accepting": bool(vassal.get("accepting")),
                "loyal": bool(vassal.get("loyal")),
                "born": vassal.get("born"),
                "last_mod": vassal.get("last_mod"),
                "last_ready": vassal.get("last_ready"),
                "cursed": vassal.get("cursed"),
                "on_demand": vassal.get("on_demand") or None,
                "monitor": vassal.get("monitor"),
            }
        )
    running = [vassal["pid"] for vassal in vassals if vassal["pid"] > 0]
    accepting = [vassal["pid"] for vassal in vassals if vassal["pid"] > 0 and vassal["accepting"]]
    return {
        "emperor": True,
        "version": stats.get("version"),
        "pid": _int(stats.get("pid")),
        "monitors": list(stats.get("emperor") or []),
        "throttle_level": stats.get("throttle_level"),
        "vassals": vassals,
        "vassal_count": len(vassals),
        "running_pids": running,
        "running_count": len(running),
        "accepting_pids": accepting,
        "accepting_count": len(accepting),
        "blacklist": [
            {key: item.get(key) for key in ("id", "attempt", "throttle_level", "first_attempt", "last_attempt")}
            for item in stats.get("blacklist") or []
        ],
    }


def summarise(stats):
    """The parts of a stats dump that tell whether the server is healthy.

    App server (``workers`` key): master pid, listen queue, one entry per worker
    and the pids of the running ones (a cheaped worker keeps its slot with pid 0
    and status ``cheap``) and of those accepting requests (with lazy-apps a new
    worker runs a while before its app is loaded). Emperor (``vassals`` key): one
    entry per vassal; running is a vassal with a pid, accepting one that told
    the emperor its workers accept requests.
    """
    if not isinstance(stats, dict):
        raise UwsgiError("uWSGI stats must be a JSON object, got %s" % type(stats).__name__)
    if "vassals" in stats:
        return _summarise_emperor(stats)
    if "workers" not in stats:
        raise UwsgiError("uWSGI stats hold neither 'workers' (app server) nor 'vassals' (emperor stats server)")
    workers = []
    threads = None
    for worker in stats.get("workers") or []:
        rss = _int(worker.get("rss"))
        workers.append(
            {
                "id": worker.get("id"),
                "pid": _int(worker.get("pid")),
                "status": worker.get("status"),
                "accepting": bool(worker.get("accepting")),
                "requests": _int(worker.get("requests")),
                "exceptions": _int(worker.get("exceptions")),
                "harakiri_count": _int(worker.get("harakiri_count")),
                # uWSGI measures RSS only with --memory-report; 0 means not measured.
                "rss_mb": round(rss / MIB, 1) if rss > 0 else None,
                "respawn_count": _int(worker.get("respawn_count")),
                "last_spawn": worker.get("last_spawn"),
            }
        )
        if isinstance(worker.get("cores"), list):
            threads = max(threads or 0, len(worker["cores"]))
    running = [worker["pid"] for worker in workers if worker["pid"] > 0 and worker["status"] != "cheap"]
    accepting = [worker["pid"] for worker in workers if worker["pid"] in running and worker["accepting"]]
    summary = {
        "emperor": False,
        "version": stats.get("version"),
        "pid": _int(stats.get("pid")),
        "listen_queue": stats.get("listen_queue"),
        "workers": workers,
        "worker_count": len(workers),
        "running_pids": running,
        "running_count": len(running),
        "accepting_pids": accepting,
        "accepting_count": len(accepting),
        "busy_count": sum(1 for worker in workers if worker["status"] == "busy"),
        "threads": threads,
        "sockets": [
            {key: item.get(key) for key in ("name", "proto", "queue", "max_queue")} for item in stats.get("sockets") or []
        ],
    }
    if "listen_queue_errors" in stats:
        summary["listen_queue_errors"] = stats["listen_queue_errors"]
    return summary


def encode_packet(variables, modifier1=0, modifier2=0):
    """One uwsgi-protocol request packet: 4-byte header, then length-prefixed key/value pairs.

    ``variables`` is a sequence of (key, value) pairs or a dict; str is sent as
    latin-1 when it fits (what WSGI servers expect) and UTF-8 otherwise.
    """
    if isinstance(variables, dict):
        variables = list(variables.items())
    body = bytearray()
    for key, value in variables:
        for item in (key, value):
            data = _bytes(item)
            if len(data) > 0xFFFF:
                raise UwsgiError("uwsgi variable %r is %d bytes, more than a packet can carry (65535)" % (key, len(data)))
            body += struct.pack("<H", len(data)) + data
    if len(body) > 0xFFFF:
        raise UwsgiError("uwsgi request variables take %d bytes, more than a packet can carry (65535)" % len(body))
    return struct.pack("<BHB", modifier1, len(body), modifier2) + bytes(body)


def _bytes(value):
    if isinstance(value, bytes):
        return value
    text = str(value)
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def request_vars(path="/", host="localhost", method="GET"):
    """The CGI-style variables a front end (nginx uwsgi_params) would send for one request."""
    if not path.startswith("/"):
        raise UwsgiError("request path must start with /, got %r" % path)
    path_only, _sep, query = path.partition("?")
    return [
        ("REQUEST_METHOD", method.upper()),
        ("REQUEST_URI", path),
        ("PATH_INFO", unquote_to_bytes(path_only)),
        ("QUERY_STRING", query),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", host),
        ("SERVER_PORT", "80"),
        ("HTTP_HOST", host),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "0"),
    ]


def parse_response(raw, socket_path="socket"):
    """Split uWSGI's raw HTTP answer into status, reason, lower-cased headers and body."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition(b"\n\n")
    lines = head.decode("latin-1").replace("\r\n", "\n").split("\n")
    parts = lines[0].split(" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        if not raw:
            raise UwsgiError("app socket %s closed the connection without answering" % socket_path)
        raise UwsgiError("app socket %s answered something that is not HTTP: %r" % (socket_path, raw[:120]))
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            continue
        name = name.strip().lower()
        value = value.strip()
        headers[name] = headers[name] + ", " + value if name in headers else value
    return {
        "status": int(parts[1]),
        "reason": parts[2] if len(parts) > 2 else "",
        "headers": headers,
        "body": body[:BODY_LIMIT],
    }


def uwsgi_request(socket_path, path="/", host="localhost", method="GET", timeout=5.0):
    """Send one request over the uwsgi protocol, the way nginx does, and parse the answer."""
    packet = encode_packet(request_vars(path, host, method))
    deadline = time.monotonic() + timeout
    sock = _connect(socket_path, timeout, "app socket")
    try:
        try:
            sock.sendall(packet)
        except OSError as exc:
            raise UwsgiError("app socket %s: sending the request failed: %s" % (socket_path, exc)) from None
        raw = _receive(sock, HEADERS_LIMIT + BODY_LIMIT, deadline, socket_path, "app socket")
    finally:
        sock.close()
    return parse_response(raw, socket_path)


def _describe(summary):
    if summary.get("emperor"):
        items = ["%s pid %d%s" % (v["id"], v["pid"], "" if v["accepting"] else " (not accepting)") for v in summary["vassals"]]
        return "emperor pid %d, vassals: %s" % (summary["pid"], ", ".join(items) or "none")
    items = ["%d %s%s" % (w["pid"], w["status"], "" if w["accepting"] else " (not accepting)") for w in summary["workers"]]
    return "master pid %d, workers: %s" % (summary["pid"], ", ".join(items) or "none")


def _check(stats_address, expect_running, replaced, socket_path, path, host, io_timeout, max_status=499):
    """One attempt: (summary, response, None) when everything holds, else (summary, response, why not)."""
    try:
        summary = summarise(read_stats(stats_address, io_timeout))
    except UwsgiError as exc:
        return None, None, str(exc)
    running = summary["running_pids"]
    noun = "vassals" if summary["emperor"] else "workers"
    if expect_running is not None and summary["running_count"] < expect_running:
        return summary, None, "%d of %d expected %s are running" % (summary["running_count"], expect_running, noun)
    old = [pid for pid in running if pid in replaced]
    if old:
        return summary, None, "%d of %d running %s are still old pids %s" % (len(old), len(running), noun, old)
    # A lazy-apps worker still loading its app ignores the master's SIGHUP, and
    # the graceful reload then waits worker-reload-mercy (60 s by default) to
    # kill it: ready means every running worker accepts, before a reload too.
    loading = [pid for pid in running if pid not in summary["accepting_pids"]]
    if loading:
        return (
            summary,
            None,
            "%d of %d running %s do not accept requests yet %s" % (len(loading), len(running), noun, loading),
        )
    if socket_path is None:
        return summary, None, None
    try:
        response = uwsgi_request(socket_path, path, host, timeout=io_timeout)
    except UwsgiError as exc:
        return summary, None, str(exc)
    if response["status"] > max_status:
        return (
            summary,
            response,
            "GET %s on %s answered %d (healthy: at most %d)"
            % (
                path,
                socket_path,
                response["status"],
                max_status,
            ),
        )
    return summary, response, None


def wait_for(
    stats_address,
    *,
    expect_running=None,
    replaced_pids=(),
    socket=None,
    path="/",
    host="localhost",
    max_status=499,
    timeout=30.0,
    interval=0.5,
    fail_fast=FAIL_FAST,
    clock=time.monotonic,
    sleep=time.sleep,
):
    """Poll until uWSGI serves: stats readable, enough workers, no replaced pid left, all accepting, probe <= max_status.

    ``replaced_pids`` are the worker pids seen before a graceful reload; the
    reload is over once none of them runs any more and every new one accepts.
    ``timeout`` 0 makes one attempt; ``clock`` and ``sleep`` are injectable for
    tests. Returns (summary, response or None, elapsed seconds); raises
    UwsgiError naming the condition that still failed and the last state seen,
    at once after ``fail_fast`` answers of 500 in a row (0: wait the whole
    ``timeout``; see _http_status.FAIL_FAST).
    """
    replaced = {int(pid) for pid in replaced_pids}
    start = clock()
    attempts = 0
    errors = 0
    while True:
        attempts += 1
        elapsed = clock() - start
        # One attempt (timeout 0) still gives a busy master the usual 5 s to answer.
        io_timeout = 5.0 if timeout <= 0 else max(1.0, min(5.0, timeout - elapsed))
        summary, response, problem = _check(stats_address, expect_running, replaced, socket, path, host, io_timeout, max_status)
        elapsed = clock() - start
        if problem is None:
            return summary, response, round(elapsed, 3)
        errors = errors + 1 if response and response.get("status") == 500 else 0
        if fail_fast and errors >= fail_fast:
            raise UwsgiError(
                "uWSGI at %s: %s, %d times in a row on new workers after %.1fs: the app fails, it is not starting"
                % (stats_address, problem, errors, elapsed)
            )
        if elapsed >= timeout:
            state = "; last state: %s" % _describe(summary) if summary is not None else ""
            raise UwsgiError(
                "uWSGI at %s not ready after %.1fs (%d attempt%s): %s%s"
                % (stats_address, elapsed, attempts, "" if attempts == 1 else "s", problem, state)
            )
        sleep(max(0.0, min(interval, timeout - elapsed)))
