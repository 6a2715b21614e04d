"""Verify helpers shared by every Molecule scenario (testinfra).

Each scenario's tests/conftest.py puts this folder on sys.path.
"""

from __future__ import annotations

import json
import re


def sysctl_conf(host, path):
    """Parse a sysctl.d file into {key: value}, values whitespace-folded."""
    values = {}
    for raw in host.file(path).content_string.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, _sep, value = line.partition("=")
        assert key.strip() not in values, "key %s appears twice in %s" % (key.strip(), path)
        values[key.strip()] = " ".join(value.split())
    return values


def sysctl_comments(host, path):
    """{key: the comment line right above it}."""
    comments = {}
    last = None
    for raw in host.file(path).content_string.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            last = line.lstrip("# ")
        elif "=" in line:
            comments[line.partition("=")[0].strip()] = last
            last = None
    return comments


def live_sysctl(host, key):
    """The live value inside the instance, whitespace-folded."""
    out = host.check_output("sysctl -n %s", key)
    return " ".join(out.split())


def remote_json(host, path):
    return json.loads(host.file(path).content_string)


_CURL_CHECKED = set()


def ensure_curl(host):
    """curl inside the instance, installed when missing.

    The test image has none and the roles need not leave one behind; a check
    that expects curl to fail must not pass because curl is not there (127).
    """
    if id(host) in _CURL_CHECKED:
        return
    if host.run("command -v curl").rc != 0:
        host.check_output(
            "export DEBIAN_FRONTEND=noninteractive;"
            " apt-get install -y -q curl || { apt-get update -q && apt-get install -y -q curl; }"
        )
    _CURL_CHECKED.add(id(host))


def http(host, url, *, headers=(), unix_socket=None, as_user=None, body=True):
    """(status, headers dict lower-cased, body) of a GET made inside the instance.

    body=False discards the body (a compressed one is not text).
    """
    ensure_curl(host)
    cmd = ["curl", "--silent", "--show-error", "--max-time", "10", "--insecure"]
    cmd += ["--include"] if body else ["--output", "/dev/null", "--dump-header", "-"]
    for header in headers:
        cmd += ["--header", header]
    if unix_socket:
        cmd += ["--unix-socket", unix_socket]
    cmd.append(url)
    if as_user:
        cmd = ["runuser", "-u", as_user, "--", *cmd]
    out = host.check_output(" ".join("'%s'" % part.replace("'", "'\\''") for part in cmd))
    head, _sep, body = out.replace("\r\n", "\n").partition("\n\n")
    lines = head.splitlines()
    status = int(lines[0].split()[1])
    fields = {}
    for line in lines[1:]:
        name, _colon, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return status, fields, body


def wrk_report(text):
    """Requests, non-2xx/3xx, socket errors, req/s and p99 (ms) from a wrk --latency report."""

    def number(pattern, default=0.0):
        match = re.search(pattern, text)
        return float(match.group(1)) if match else default

    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", text)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "requests": int(number(r"(\d+) requests in")),
        "non_2xx_3xx": int(number(r"Non-2xx or 3xx responses: (\d+)")),
        "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
        "rps": number(r"Requests/sec:\s+([\d.]+)"),
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else None,
    }


def assert_no_request_lost(host, path):
    """The wrk report at `path` on the instance: real load, not one request failed."""
    report = wrk_report(host.file(path).content_string)
    assert report["requests"] > 500, report
    assert report["non_2xx_3xx"] == 0, report
    assert report["socket_errors"] == 0, report
    return report


def probe_counts(host, path):
    """{"GET": {"200": n, ...}, "POST": {...}} from the "METHOD CODE" lines a probe loop wrote."""
    counts = {}
    for line in host.file(path).content_string.splitlines():
        method, _sep, code = line.partition(" ")
        counts.setdefault(method, {}).setdefault(code, 0)
        counts[method][code] += 1
    return counts


def gunicorn_recycles(host, unit, since):
    """How many workers of `unit` Gunicorn retired after max_requests since the epoch second `since`."""
    out = host.check_output("journalctl --unit %s --since @%s --output cat --no-pager", unit, since)
    return out.count("Autorestarting worker after current request")


def assert_answered_throughout(host, path, minimum=20, post_losses_allowed=0):
    """Enough GETs and POSTs of a probe loop, every GET answered 200, POSTs failed at most as allowed.

    GETs and POSTs are counted apart: nginx retries a GET on another peer and
    so hides a reset that turns a POST into a 502.
    """
    counts = probe_counts(host, path)
    for method in ("GET", "POST"):
        assert sum(counts.get(method, {}).values()) >= minimum, counts
    assert set(counts["GET"]) == {"200"}, counts
    post_failed = sum(n for code, n in counts["POST"].items() if code != "200")
    assert post_failed <= post_losses_allowed, counts
    return counts


_STATS = (
    "import json,socket,sys\n"
    "c=socket.socket(socket.AF_UNIX); c.connect(sys.argv[1])\n"
    "print(b''.join(iter(lambda: c.recv(65536), b'')).decode())\n"
)


def uwsgi_stats(host, path):
    """The JSON a uWSGI stats socket on the instance dumps (read as root)."""
    return json.loads(host.check_output("python3 -c %s %s", _STATS, path))


def listen_backlog(host, path):
    """The accept queue the kernel gives a listening unix socket (ss Send-Q)."""
    for line in host.check_output("ss -xlnH").splitlines():
        fields = line.split()
        if path in fields:
            return int(fields[3])
    raise AssertionError("%s is not a listening unix socket" % path)


_EXPOSURE = re.compile(r"Overall exposure level for (\S+): ([0-9]+(?:\.[0-9]+)?)")


def assert_unit_exposure(host, unit, max_score):
    """`systemd-analyze security` of a running unit scores at most max_score (0 best, 10 worst)."""
    out = host.check_output("systemd-analyze security --no-pager %s", unit)
    found = _EXPOSURE.findall(out.splitlines()[-1] if out else "")
    assert found, "no exposure level in the last line of systemd-analyze security %s:\n%s" % (unit, out[-2000:])
    score = float(found[-1][1])
    failing = [line.strip() for line in out.splitlines() if line.lstrip().startswith("✗")]
    assert score <= max_score, "%s scores %.1f > %.1f; open points:\n%s" % (unit, score, max_score, "\n".join(failing))
    return score


def assert_slow_requests_end_in_time(host, step, *, post_losses_per_kill=0):
    """../files/slow_report.py's record of `step`: each slow request answered 504 by
    nginx at the app's timeout (not after it, not earlier), never retried onto another
    worker (one timed-out line per request in nginx's error log, nothing else), ended
    by the app server (at most one kill line per slow request), and the load beside
    them answered: every GET, and every POST but `post_losses_per_kill` for each kill
    (a uWSGI worker killed by harakiri takes its other threads' requests with it)."""
    report = remote_json(host, "/root/slow-report.json")["steps"][step]["slow"]
    timeout = report["timeout"]
    for method in ("get", "post"):
        answer = report["answers"][method]
        assert answer["status"] == 504, report
        assert timeout - 0.1 <= answer["seconds"] <= timeout + 1.5, report
    assert report["nginx"]["timed_out"] == 2, report
    assert report["nginx"]["other"] == [], report
    assert 1 <= report["kills"] <= 2, report
    load = report["load"]
    for method in ("get", "post"):
        assert load[method]["complete"] and load[method]["requests"] > 50, report
    assert load["get"]["failed"] == 0, report
    assert load["post"]["failed"] <= post_losses_per_kill * report["kills"], report
    return report


def assert_uwsgi_slow_requests_end_with_their_worker(host, step, ini_path):
    """The slow requests of `step` against a uWSGI app with threads (demo: timeout 5 s,
    2 threads): nginx's 504 at 5 s, then at 8 s the worker retires gracefully through
    uwsgi_limit.py (harakiri is a per-worker timer that the other thread's requests
    clear), and the load beside it is answered, POSTs included."""
    ini = host.file(ini_path).content_string
    for line in (
        "harakiri = 8",
        "module = uwsgi_limit:application",
        "env = PYWEB_WSGI_APP=pyweb_demo.app:application",
        "env = PYWEB_REQUEST_LIMIT=8",
    ):
        assert "\n%s\n" % line in ini, line
    report = assert_slow_requests_end_in_time(host, step)
    assert all("over the 8s limit" in line and "retires" in line for line in report["kill_lines"]), report
    return report
