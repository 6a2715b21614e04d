"""Paced wrk load through nginx inside a Molecule instance, and the JSON report file (runs as root).

Shared by the scenarios' report scripts (switch, releases): each playbook copies
this file next to its script, which imports it from there.

Report(path)                 the report file, {"steps": {STEP: {KEY: value}}}
PacedLoad(work, url, body)   start(step, apps): one wrk per app and method (GET and
                             POST apart), paced, bounded (max_seconds), detached;
                             stop(step): stops them (SIGINT: wrk prints its report)
                             and counts per app what each got, Gunicorn's worker
                             recycles in the window and what nginx logged failing,
                             near a recycle or not
"""

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

METHODS = ("get", "post")
# A failed request this close (seconds) to a Gunicorn worker's recycle is
# the recycle's (issue 15), not the scenario's.
RECYCLE_SECONDS = 2


def run(*argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True).stdout.strip()


class Report:
    """The JSON report file: what each step recorded, under "steps" -> STEP -> KEY."""

    def __init__(self, path):
        self.path = Path(path)

    def load(self):
        return json.loads(self.path.read_text()) if self.path.exists() else {"steps": {}}

    def save(self, step, key, value):
        report = self.load()
        report["steps"].setdefault(step, {})[key] = value
        self.path.write_text(json.dumps(report, indent=2, sort_keys=True))


def wrk_script(method, host, body, delay_ms):
    """wrk's Lua script for one method: Host header `host` (None: wrk's own), POST
    sends the form `body`, each connection waits `delay_ms` between requests."""
    # Fresh connections: a keep-alive connection nginx closes on its reload
    # while wrk sends on it is the client's race, not a request the change lost.
    lines = [] if host is None else ['wrk.headers["Host"] = "%s"' % host]
    lines.append('wrk.headers["Connection"] = "close"')
    if method == "post":
        lines += [
            'wrk.method = "POST"',
            'wrk.body = "%s"' % body,
            'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"',
        ]
    lines.append("function delay() return %d end" % delay_ms)
    return "\n".join(lines) + "\n"


def wrk_counts(text):
    """What a wrk report (as printed on SIGINT or at its end) counts."""

    def number(pattern):
        match = re.search(pattern, text)
        return int(match.group(1)) if match else 0

    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non_2xx = number(r"Non-2xx or 3xx responses: (\d+)")
    socket_errors = sum(int(g) for g in errors.groups()) if errors else 0
    return {
        "requests": number(r"(\d+) requests in"),
        "non_2xx": non_2xx,
        "socket_errors": socket_errors,
        "failed": non_2xx + socket_errors,
        "complete": "requests in" in text,
    }


def recycle_times(app, since):
    """When Gunicorn retired a worker of `app` after max_requests (issue 15), epoch seconds."""
    out = run(
        "journalctl",
        "--unit",
        "pyweb-%s.service" % app,
        "--since",
        "@%d" % int(since),
        "--output",
        "short-unix",
        "--no-pager",
        check=False,
    )
    return [float(line.split()[0]) for line in out.splitlines() if "Autorestarting worker after current request" in line]


def failures(log, target, since, recycles, recycle_seconds=RECYCLE_SECONDS, summary=True, other_at_max=None):
    """The requests for `target` (path?query) nginx answered with an error in its
    access log `log` since `since`, per method: those within `recycle_seconds` of a
    Gunicorn worker recycle, and the others (the scenario's) with their times and
    statuses (at most `other_at_max` of them, None: all); `summary` adds the others'
    count per status and their first and last times."""
    counts = {m: {"recycle": 0, "other": 0, "other_at": []} for m in ("GET", "POST")}
    if summary:
        for found in counts.values():
            found.update(other_status={}, other_first=None, other_last=None)
    pattern = re.compile(r'\[([^]]+)\] "(GET|POST) %s [^"]*" (\d{3}) ' % re.escape(target))
    log = Path(log)
    for line in log.read_text().splitlines() if log.exists() else []:
        match = pattern.search(line)
        # 499: wrk itself closed the connection (stopped at the window's end)
        if not match or match.group(3).startswith("2") or match.group(3) == "499":
            continue
        when = datetime.strptime(match.group(1), "%d/%b/%Y:%H:%M:%S %z").timestamp()
        if when < int(since):
            continue
        found = counts[match.group(2)]
        # the log has whole seconds
        if any(-recycle_seconds <= when - r <= recycle_seconds + 1 for r in recycles):
            found["recycle"] += 1
            continue
        found["other"] += 1
        if summary:
            found["other_status"][match.group(3)] = found["other_status"].get(match.group(3), 0) + 1
            found["other_first"] = found["other_first"] or match.group(1)
            found["other_last"] = match.group(1)
        if other_at_max is None or len(found["other_at"]) < other_at_max:
            found["other_at"].append("%s %s" % (match.group(1), match.group(3)))
    return counts


class PacedLoad:
    """wrk on `url` (with the port: wrk resolves a bare host through
    /etc/services, which the image lacks) through nginx, GET and POST apart per
    app, POST sending the form `body`; its files in `work`.

    Paced: each connection waits `delay_ms` between requests, so the load leaves
    the play room on 2 shared cores. `summary` and `other_at_max`: see failures().
    """

    ACCESS_LOG = "/var/log/nginx/pyweb-%s.access.log"

    def __init__(
        self, work, url, body, delay_ms=50, max_seconds=600, recycle_seconds=RECYCLE_SECONDS, summary=True, other_at_max=None
    ):
        self.work = Path(work)
        self.url = url
        parts = urlsplit(url)
        self.target = parts.path + ("?" + parts.query if parts.query else "")
        self.body = body
        self.delay_ms = delay_ms
        self.max_seconds = max_seconds
        self.recycle_seconds = recycle_seconds
        self.summary = summary
        self.other_at_max = other_at_max
        self.access_log = self.ACCESS_LOG

    def report_file(self, step, app, method):
        return self.work / ("%s-%s-%s.txt" % (step, app, method))

    def start(self, step, apps):
        """`apps`: app -> (Host header or None for wrk's own, connections per method)."""
        self.work.mkdir(mode=0o700, exist_ok=True)
        jobs = {"start": time.time(), "pids": {}}
        for app, (host, connections) in apps.items():
            for method in METHODS:
                lua = self.work / ("%s-%s.lua" % (app, method))
                lua.write_text(wrk_script(method, host, self.body, self.delay_ms))
                with open(self.report_file(step, app, method), "w") as out:
                    proc = subprocess.Popen(
                        [
                            "wrk",
                            "--threads",
                            "1",
                            "--connections",
                            str(connections),
                            "--duration",
                            "%ds" % self.max_seconds,
                            "--timeout",
                            "10s",
                            "--script",
                            str(lua),
                            self.url,
                        ],
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                jobs["pids"]["%s/%s" % (app, method)] = proc.pid
        (self.work / ("%s.load.json" % step)).write_text(json.dumps(jobs))

    def failures(self, app, since, recycles):
        return failures(
            self.access_log % app,
            self.target,
            since,
            recycles,
            recycle_seconds=self.recycle_seconds,
            summary=self.summary,
            other_at_max=self.other_at_max,
        )

    def stop(self, step):
        """Seconds since start(step), and per app {"gunicorn_recycles": N, "get": counts, "post": counts}."""
        jobs = json.loads((self.work / ("%s.load.json" % step)).read_text())
        for pid in jobs["pids"].values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
        deadline = time.time() + 30
        while time.time() < deadline and any(Path("/proc/%d" % pid).exists() for pid in jobs["pids"].values()):
            # started by this process (one script that starts and stops): reap them,
            # or they stay in /proc as zombies
            for pid in jobs["pids"].values():
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
            time.sleep(0.2)
        seconds = round(time.time() - jobs["start"], 1)
        apps = {}
        for app in sorted({key.split("/")[0] for key in jobs["pids"]}):
            recycles = recycle_times(app, jobs["start"])
            failed = self.failures(app, jobs["start"], recycles)
            counted = {"gunicorn_recycles": len(recycles)}
            for method in METHODS:
                counted[method] = wrk_counts(self.report_file(step, app, method).read_text())
                counted[method]["nginx_failed"] = failed[method.upper()]
            apps[app] = counted
        return seconds, apps
