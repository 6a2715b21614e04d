# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lost requests per server, mode and action in the sandbox (issue 15).

    make loss                                  the app server the sandbox runs now
    make loss LOSS_ARGS="--configs all"        every server and mode, one after the other
    python3 tools/loss-matrix.py --configs gthread,instances --actions reload,kill9

Against the running sandbox container (`make demo`, `pyweb-sandbox`): for each
action, a paced GET load and a paced POST load through nginx inside the
container (molecule/_shared/files/paced_load.py: wrk per method, a fresh
connection per request, `/io?ms=5`), the action repeated a few times in the
middle, then a table of what wrk and nginx counted.

Actions, as the collection does them:
  reload        Gunicorn: systemctl reload (HUP); emperor: touch of the vassal
                ini; instances: systemctl reload of one instance after the
                other, each serving again before the next
  restart       Gunicorn: systemctl restart; emperor: systemctl restart of the
                emperor; instances: one instance after the other, as above
  restart-all   instances only: every instance restarted at once (what the
                collection does not do), for comparison (not by default)
  kill9         kill -9 of the Gunicorn master, the emperor, one instance's master
  kill9-vassal  emperor only: kill -9 of the app's vassal master
  recycle       the app redeployed (site.yml) with max_requests 100 through
                server_settings (uWSGI: and min-worker-lifetime 1, its
                default of 10 s holds a worker that long), then only the load
  play-restart  instances only: site.yml with a change to the instance unit
                (the app's timeout): the collection's own rolling restart,
                with every instance's state sampled
  play-socket   uWSGI: site.yml with a new listen queue (the app's backlog):
                new sockets, as the collection replaces them (not by default)

"In flight" (kill9 only): the failures nginx logged within a second of a kill,
and beside them what the dying processes held at that instant (connections
accepted on the app's socket, from ss). Each action run is bounded (--seconds,
at most 30); a run of every config takes about 15 minutes.

The same file runs inside the container (`inside`, copied there with
paced_load.py): the host part only deploys, copies, calls and prints.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

APP = "demo"
WORK = "/root/pyweb-loss"
URL = "http://127.0.0.1:80/io?ms=5"
BODY = "name=pyweb&text=" + "x" * 200
SECONDS_MAX = 30

# ------------------------------------------------------------- inside the container


def sh(*argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True).stdout.strip()


def unit_prop(unit, prop):
    return sh("systemctl", "show", "--property", prop, "--value", unit, check=False)


def uwsgi_stats(path, timeout=1.0):
    """uWSGI's stats server (JSON on a unix socket), or None."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(path)
            chunks = []
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return json.loads(b"".join(chunks))
    except (OSError, ValueError):
        return None


def serving(stats):
    """Worker pids that accept requests now (none: the instance answers nothing)."""
    if not stats:
        return []
    return [w["pid"] for w in stats.get("workers", []) if w.get("accepting") and w.get("pid")]


class Runtime:
    """What the sandbox runs for APP, read from its units and files."""

    def __init__(self, app=APP):
        self.app = app
        self.service = "pyweb-%s" % app
        conf = Path("/etc/pyweb/%s/gunicorn.conf.py" % app)
        self.instances = sorted(
            int(m.group(1))
            for line in sh(
                "systemctl", "list-units", "--plain", "--no-legend", "--state=active", "%s@*.service" % self.service
            ).splitlines()
            if (m := re.match(r"%s@(\d+)\.service" % re.escape(self.service), line.split()[0]))
        )
        granian = Path("/etc/pyweb/%s/granian.env" % app)
        if granian.exists() and unit_prop(self.service + ".granian.service", "ActiveState") == "active":
            options = dict(
                line.split("=", 1) for line in granian.read_text().splitlines() if line.startswith("GRANIAN_") and "=" in line
            )
            self.server, self.mode = "granian", options.get("GRANIAN_INTERFACE", "?")
            self.unit = self.service + ".granian.service"
            self.worker_class = "%s workers x %s blocking threads, backpressure %s" % (
                options.get("GRANIAN_WORKERS", "?"),
                options.get("GRANIAN_BLOCKING_THREADS", "?"),
                options.get("GRANIAN_BACKPRESSURE", "?"),
            )
            self.sockets = ["/run/pyweb/%s-granian.sock" % app]
        elif conf.exists() and unit_prop(self.service + ".service", "ActiveState") == "active":
            self.server, self.mode = "gunicorn", "-"
            self.unit = self.service + ".service"
            self.worker_class = self._worker_class(conf.read_text())
            if "uvicorn" in self.worker_class.lower():
                self.server = "uvicorn"
            self.sockets = ["/run/pyweb/%s.sock" % app]
        elif self.instances:
            self.server, self.mode = "uwsgi", "instances"
            self.worker_class = "1 process x %s threads" % self._uwsgi_threads("/etc/pyweb/%s/uwsgi.ini" % app)
            self.sockets = ["/run/pyweb/%s@%d.sock" % (app, i) for i in self.instances]
        elif Path("/etc/pyweb/uwsgi/vassals/%s.ini" % app).exists():
            self.server, self.mode = "uwsgi", "emperor"
            ini = "/etc/pyweb/uwsgi/vassals/%s.ini" % app
            self.worker_class = "%s processes x %s threads" % (self._ini(ini, "processes"), self._uwsgi_threads(ini))
            self.sockets = ["/run/pyweb/%s-uwsgi.sock" % app]
        else:
            raise SystemExit("loss-matrix: no Gunicorn, Granian, emperor vassal or instance of %s is running" % app)

    @staticmethod
    def _worker_class(text):
        found = re.search(r"^from (\S+) import (\S+) as worker_class", text, re.M)
        if found:
            klass = "%s.%s" % found.groups()
        else:
            found = re.search(r'^worker_class = "([^"]+)"', text, re.M)
            klass = found.group(1) if found else "sync"
        workers = re.search(r"^workers = (\d+)", text, re.M)
        threads = re.search(r"^threads = (\d+)", text, re.M)
        return "%s (%s x %s)" % (klass, workers.group(1) if workers else "?", threads.group(1) if threads else "?")

    @staticmethod
    def _ini(path, key):
        found = re.findall(r"^%s = (\S+)" % re.escape(key), Path(path).read_text(), re.M)
        return found[-1] if found else "?"

    def _uwsgi_threads(self, path):
        return self._ini(path, "threads")

    def stats_path(self, instance=None):
        if self.mode == "instances":
            return "/run/pyweb/%s/stats@%d.sock" % (self.app, instance)
        return "/run/pyweb/%s/stats.sock" % self.app

    def describe(self):
        return {"server": self.server, "mode": self.mode, "worker_class": self.worker_class}


def held_connections(sockets):
    """Connections the app's processes hold on `sockets` now: accepted ones
    (ESTAB with the socket's own address) less those still in the queue."""
    out = sh("ss", "-xan", check=False)
    held = 0
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[0] != "u_str" or fields[4] not in sockets:
            continue
        if fields[1] == "ESTAB":
            held += 1
        elif fields[1] == "LISTEN":
            held -= int(fields[2])
    return max(0, held)


def wait_until(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


class Actions:
    """One event of each action on a Runtime; each returns a note for the report."""

    def __init__(self, runtime):
        self.rt = runtime
        self.next_instance = 0

    def _main_pid(self, unit):
        return int(unit_prop(unit, "MainPID") or 0)

    def _instance_back(self, i, old_pids, seconds=30):
        """Instance i serves again on new workers (or on any, old_pids None)."""

        def ready():
            pids = serving(uwsgi_stats(self.rt.stats_path(i)))
            return bool(pids) and not (old_pids and set(pids) & set(old_pids))

        return wait_until(ready, seconds)

    def _each_instance(self, verb):
        for i in self.rt.instances:
            before = serving(uwsgi_stats(self.rt.stats_path(i)))
            sh("systemctl", verb, "%s@%d.service" % (self.rt.service, i))
            if not self._instance_back(i, before):
                return "instance %d not serving 30 s after %s" % (i, verb)
        return ""

    def reload(self):
        if self.rt.server in ("gunicorn", "uvicorn", "granian"):
            sh("systemctl", "reload", self.rt.unit)
            return ""
        if self.rt.mode == "emperor":
            before = serving(uwsgi_stats(self.rt.stats_path()))
            Path("/etc/pyweb/uwsgi/vassals/%s.ini" % self.rt.app).touch()
            ok = wait_until(lambda: set(serving(uwsgi_stats(self.rt.stats_path()))).isdisjoint(before), 30)
            return "" if ok else "vassal still on old workers 30 s after the touch"
        return self._each_instance("reload")

    def restart(self):
        if self.rt.server in ("gunicorn", "uvicorn", "granian"):
            sh("systemctl", "restart", self.rt.unit)
            return ""
        if self.rt.mode == "emperor":
            sh("systemctl", "restart", "pyweb-uwsgi-emperor.service")
            return ""
        return self._each_instance("restart")

    def restart_all(self):
        if self.rt.mode != "instances":
            raise SystemExit("restart-all: instances mode only")
        sh("systemctl", "restart", *("%s@%d.service" % (self.rt.service, i) for i in self.rt.instances))
        return ""

    def _kill(self, pid, sockets, back):
        """kill -9 of `pid`: what it held on `sockets` then, and how many seconds
        until `back()` says the app serves again (None: not within 30 s)."""
        held = held_connections(sockets)
        killed = time.monotonic()
        os.kill(pid, 9)
        served = wait_until(back, 30)
        return {"held": held, "back": round(time.monotonic() - killed, 1) if served else None}

    def _vassal_serves(self, old_pid):
        stats = uwsgi_stats(self.rt.stats_path())
        return bool(stats) and stats.get("pid") != old_pid and bool(serving(stats))

    def kill9(self):
        if self.rt.server in ("gunicorn", "uvicorn", "granian"):
            unit = self.rt.unit
            old = self._main_pid(unit)
            # a new master that told systemd it is ready, and its socket accepted from
            return self._kill(
                old, self.rt.sockets, lambda: self._main_pid(unit) not in (0, old) and unit_prop(unit, "ActiveState") == "active"
            )
        if self.rt.mode == "emperor":
            unit = "pyweb-uwsgi-emperor.service"
            old = self._main_pid(unit)
            vassal = (uwsgi_stats(self.rt.stats_path()) or {}).get("pid")
            return self._kill(old, self.rt.sockets, lambda: self._main_pid(unit) not in (0, old) and self._vassal_serves(vassal))
        # one instance, a different one each time
        i = self.rt.instances[self.next_instance % len(self.rt.instances)]
        self.next_instance += 1
        old = self._main_pid("%s@%d.service" % (self.rt.service, i))
        return self._kill(
            old,
            [self.rt.sockets[i - 1]],
            lambda: self._instance_back(i, None, 0.1) and self._main_pid("%s@%d.service" % (self.rt.service, i)) not in (0, old),
        )

    def kill9_vassal(self):
        if self.rt.mode != "emperor":
            raise SystemExit("kill9-vassal: emperor mode only")
        stats = uwsgi_stats(self.rt.stats_path())
        if not stats:
            return "no vassal to kill"
        return self._kill(int(stats["pid"]), self.rt.sockets, lambda: self._vassal_serves(stats["pid"]))


class Sampler(threading.Thread):
    """Instances mode, in the background every 0.1 s: when each instance served
    nothing (no accepting worker) and when its master changed (a restart)."""

    def __init__(self, runtime):
        super().__init__(daemon=True)
        self.rt = runtime
        self.halt = threading.Event()
        self.down_since = {}
        self.down = []
        self.masters = {}
        self.restarts = []
        self.max_down = 0
        self.samples = 0

    def run(self):
        while self.rt.mode == "instances" and not self.halt.is_set():
            now = time.time()
            self.samples += 1
            for i in self.rt.instances:
                stats = uwsgi_stats(self.rt.stats_path(i), timeout=0.3)
                up = bool(serving(stats))
                if not up and i not in self.down_since:
                    self.down_since[i] = now
                elif up and i in self.down_since:
                    self.down.append((i, self.down_since.pop(i), now))
                master = stats.get("pid") if stats else None
                if master and self.masters.get(i) not in (None, master):
                    self.restarts.append((i, now))
                if master:
                    self.masters[i] = master
            self.max_down = max(self.max_down, len(self.down_since))
            self.halt.wait(0.1)

    def report(self):
        self.halt.set()
        if self.rt.mode != "instances":
            return None
        self.join(timeout=5)
        now = time.time()
        spans = self.down + [(i, t, now) for i, t in self.down_since.items()]
        return {
            "samples": self.samples,
            "max_down_at_once": self.max_down,
            "down": [
                {"instance": i, "from": round(a, 2), "seconds": round(b - a, 2)} for i, a, b in sorted(spans, key=lambda s: s[1])
            ],
            "new_masters": [{"instance": i, "at": round(t, 2)} for i, t in self.restarts],
        }


ERROR_LINE = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[(\w+)\] \S+ \*\d+ (.*?), client: .*?request: \"(GET|POST) ")


def error_reasons(log, since):
    """What nginx's error log says went wrong since `since`, per method and reason
    (a GET nginx retried on another try shows here and not as a failure)."""
    reasons = {}
    path = Path(log)
    for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
        match = ERROR_LINE.match(line)
        if not match:
            continue
        when = datetime.strptime(match.group(1), "%Y/%m/%d %H:%M:%S").timestamp()
        if when < int(since):
            continue
        # addresses and pids out: the kind of failure stays
        reason = re.sub(r"\b\d+\b(?=\))", "N", re.sub(r'"[^"]*"|/\S+|\d+\.\d+\.\d+\.\d+(:\d+)?', "", match.group(3))).strip()
        key = "%s %s" % (match.group(4), reason[:90])
        reasons[key] = reasons.get(key, 0) + 1
    return reasons


def gunicorn_recycles(app, since):
    """Gunicorn workers retired at max_requests since `since` (Uvicorn's workers say it their own way)."""
    out = sh(
        "journalctl",
        "--unit",
        "pyweb-%s.service" % app,
        "--since",
        "@%d" % int(since),
        "--no-pager",
        "--output",
        "cat",
        check=False,
    )
    marks = ("Autorestarting worker after current request", "Maximum request limit of")
    return sum(1 for line in out.splitlines() if any(mark in line for mark in marks))


def uwsgi_respawns(since):
    """uWSGI worker respawns in the journal since `since` (recycling, reloads)."""
    out = sh("journalctl", "--since", "@%d" % int(since), "--no-pager", "--output", "cat", check=False)
    return sum(1 for line in out.splitlines() if "Respawned uWSGI worker" in line)


# When each action happens in a run of `seconds`: (first at, spacing).
SCHEDULE = {
    "reload": (3, 6),
    "restart": (4, 8),
    "restart-all": (5, 9),
    "kill9": (4, 6),
    "kill9-vassal": (4, 6),
    "recycle": None,
    "play-restart": None,
    "play-socket": None,
}


def inside(args):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import paced_load  # noqa: PLC0415 - copied next to this file by the host part

    rt = Runtime(args.app)
    sampler = Sampler(rt)
    actions = Actions(rt)
    load = paced_load.PacedLoad(
        Path(WORK) / "work", URL, BODY, delay_ms=args.delay_ms, max_seconds=args.seconds + 60, summary=True, other_at_max=20
    )
    step = "%s-%d" % (args.action, int(time.time()))
    load.start(step, {rt.app: (None, args.connections)})
    sampler.start()
    started = time.time()
    events, notes = [], []
    schedule = SCHEDULE[args.action]
    next_at = schedule[0] if schedule else None
    done_file = Path(WORK) / "play.done"
    while True:
        elapsed = time.time() - started
        if args.action.startswith("play-"):
            if done_file.exists() or elapsed > args.seconds:
                break
        elif elapsed >= args.seconds:
            break
        if next_at is not None and elapsed >= next_at and elapsed < args.seconds - 3:
            at = time.time()
            result = getattr(actions, args.action.replace("-", "_"))()
            event = {"at": round(at, 2), "offset": round(at - started, 1), "held": None}
            if isinstance(result, dict):
                event.update(result)
            elif result:
                notes.append(result)
            events.append(event)
            # the next one only once the app serves again (a kill), and a moment after
            next_at = max(next_at + schedule[1], time.time() - started + 2)
        time.sleep(0.2)
    # the last requests of the action have their answers before the load stops
    time.sleep(2)
    seconds, counted = load.stop(step)
    got = counted[rt.app]
    kill_times = [e["at"] for e in events] if args.action.startswith("kill9") else []
    in_flight = paced_load.failures(load.access_log % rt.app, load.target, started, kill_times, recycle_seconds=1)
    result = dict(
        rt.describe(),
        action=args.action,
        seconds=seconds,
        events=events,
        notes=notes,
        gunicorn_recycles=gunicorn_recycles(rt.app, started) if rt.server != "uwsgi" else None,
        uwsgi_respawns=uwsgi_respawns(started) if rt.server == "uwsgi" else None,
        instances=sampler.report(),
        reasons=error_reasons("/var/log/nginx/pyweb-%s.error.log" % rt.app, started),
    )
    for method in ("get", "post"):
        report = load.report_file(step, rt.app, method).read_text()
        timeouts = re.search(r"timeout (\d+)", report)
        result[method] = {
            "timeouts": int(timeouts.group(1)) if timeouts else 0,
            "requests": got[method]["requests"],
            "failed": got[method]["failed"],
            "nginx_failed": got[method]["nginx_failed"]["recycle"] + got[method]["nginx_failed"]["other"],
            "in_flight": in_flight[method.upper()]["recycle"] if kill_times else 0,
            "complete": got[method]["complete"],
            "failed_at": got[method]["nginx_failed"]["other_at"],
        }
    print(json.dumps(result))


# ------------------------------------------------------------------ on the host

ROOT = Path(__file__).resolve().parent.parent
PACED_LOAD = ROOT / "molecule/_shared/files/paced_load.py"
CACHE = ROOT / ".cache/loss-matrix"

# The sandbox's app (inventories/sandbox), and what each config changes in it.
BASE_APP = {
    "name": APP,
    "module": "pyweb_demo.app:application",
    "profile": "mixed",
    "source": {"type": "path", "path": str(ROOT / "playbooks/files/pyweb_demo")},
    "static_source": "static",
    "domains": ["_"],
    "health_path": "/healthz",
}
CONFIGS = {
    "gthread": {"server": "gunicorn"},
    "sync": {"server": "gunicorn", "profile": "cpu"},
    "gevent": {"server": "gunicorn", "profile": "async"},
    "uvicorn": {"server": "uvicorn", "interface": "asgi", "profile": "async", "module": "pyweb_asgi_demo:app"},
    "emperor": {"server": "uwsgi", "uwsgi_mode": "emperor"},
    "instances": {"server": "uwsgi", "uwsgi_mode": "instances"},
    "granian": {"server": "granian"},
    "granian-asgi": {"server": "granian", "interface": "asgi", "profile": "async", "module": "pyweb_asgi_demo:app"},
}
ACTIONS = {
    "gthread": ["reload", "restart", "kill9", "recycle"],
    "sync": ["reload", "restart", "kill9", "recycle"],
    "gevent": ["reload", "restart", "kill9", "recycle"],
    "uvicorn": ["reload", "restart", "kill9", "recycle"],
    "emperor": ["reload", "restart", "kill9", "kill9-vassal", "recycle"],
    "instances": ["reload", "restart", "play-restart", "kill9", "recycle"],
    # Granian recycles by age (60 s at least) and memory, respawning workers
    # the way a reload does.
    "granian": ["reload", "restart", "kill9"],
    "granian-asgi": ["reload", "restart", "kill9"],
}
RECYCLE = {
    "gunicorn": {"max_requests": 100, "max_requests_jitter": 20},
    "uwsgi": {"max_requests": 100, "max_requests_delta": 10, "min_worker_lifetime": 1},
}

# The ASGI app of the uvicorn config: the demo's /, /io and /healthz (the demo
# itself is WSGI), the request body read to its end.
ASGI_APP = '''"""The demo app's /, /io?ms=N and /healthz as a bare ASGI callable (tools/loss-matrix.py)."""

import asyncio
import json
import os
from urllib.parse import parse_qs

NAME = os.environ.get("PYWEB_APP_NAME", "demo")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    status, payload = 200, {"app": NAME}
    if scope["path"] == "/io":
        try:
            ms = max(0, min(10000, int(parse_qs(scope["query_string"].decode()).get("ms", ["20"])[0])))
        except ValueError:
            ms = 20
        await asyncio.sleep(ms / 1000.0)
        payload = {"slept_ms": ms}
    elif scope["path"] == "/healthz":
        payload = {"status": "ok"}
    elif scope["path"] != "/":
        status, payload = 404, {"error": "not found"}
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
'''


def log(message):
    print("loss-matrix: " + message, file=sys.stderr, flush=True)


def app_description(config, server_settings=None, timeout=None, backlog=None):
    app = dict(BASE_APP, **CONFIGS[config])
    if config in ("uvicorn", "granian-asgi"):
        source = CACHE / "asgi"
        (source / "pyweb_asgi_demo").mkdir(parents=True, exist_ok=True)
        (source / "pyweb_asgi_demo" / "__init__.py").write_text("")
        (source / "pyweb_asgi_demo" / "app.py").write_text(ASGI_APP)
        app["module"] = "pyweb_asgi_demo.app:app"
        app["source"] = {"type": "path", "path": str(source)}
        app.pop("static_source")
    if server_settings:
        app["server_settings"] = server_settings
    if timeout:
        app["timeout"] = timeout
    if backlog:
        app["backlog"] = backlog
    return app


def deploy(args, config, server_settings=None, timeout=None, tags=None, backlog=None):
    """site.yml on the sandbox with the app as `config` describes it (only the
    layers `tags` names, when given); seconds taken."""
    app = app_description(config, server_settings, timeout, backlog)
    extra = {
        "pyweb_demo_server": app["server"],
        "uwsgi_mode": app.get("uwsgi_mode", "emperor"),
        "pyweb_apps": [app],
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    extra_file = CACHE / "extra-vars.json"
    extra_file.write_text(json.dumps(extra))
    log(
        "deploy %s%s%s"
        % (config, " with %s" % server_settings if server_settings else "", " timeout %s" % timeout if timeout else "")
    )
    started = time.time()
    out = CACHE / ("deploy-%s.log" % config)
    with open(out, "w") as handle:
        done = subprocess.run(
            ["ansible-playbook", "-i", args.inventory, "playbooks/site.yml", "-e", "@%s" % extra_file]
            + (["--tags", tags] if tags else []),
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            timeout=600,
            check=False,
        )
    if done.returncode:
        raise SystemExit("loss-matrix: site.yml failed for %s, see %s" % (config, out))
    if args.proposed and app["server"] in ("gunicorn", "uvicorn"):
        apply_proposed(args, app["server"])
    return round(time.time() - started, 1)


# --proposed: the Gunicorn changes this measurement proposes, put in place by
# hand in the sandbox container (the gunicorn role does not write them yet):
# KillMode=control-group, keepalive 0 for every worker class (gthread and
# Uvicorn have it already), pyweb_uvicorn for Uvicorn workers (named already).
PROPOSED_DROP_IN = "/etc/systemd/system/pyweb-%s.service.d/zz-loss-matrix-proposed.conf" % APP
PROPOSED_CONF = (
    r"s/^from pyweb_asgi import UvicornWorker as worker_class/from pyweb_uvicorn import UvicornWorker as worker_class/;"
    r" s/^keepalive = [0-9]*$/keepalive = 0/"
)


def apply_proposed(args, server):
    log(
        "  proposed changes put in by hand: KillMode=control-group, keepalive 0%s"
        % (", pyweb_uvicorn" if server == "uvicorn" else "")
    )
    script = "mkdir -p %s && printf '[Service]\\nKillMode=control-group\\n' > %s" % (
        os.path.dirname(PROPOSED_DROP_IN),
        PROPOSED_DROP_IN,
    )
    script += " && sed -i '%s' /etc/pyweb/%s/gunicorn.conf.py" % (PROPOSED_CONF, APP)
    script += " && systemctl daemon-reload && systemctl restart pyweb-%s.service && sleep 3" % APP
    done = docker(args, "sh", "-c", script)
    if done.returncode:
        raise SystemExit("loss-matrix: --proposed: %s" % done.stderr)


def remove_proposed(args):
    docker(args, "sh", "-c", "rm -f %s && systemctl daemon-reload" % PROPOSED_DROP_IN)


def docker(args, *argv, **kwargs):
    return subprocess.run(["docker", "exec", args.container, *argv], capture_output=True, text=True, check=False, **kwargs)


def copy_in(args):
    docker(args, "mkdir", "-p", WORK)
    for source, name in ((Path(__file__).resolve(), "loss_matrix.py"), (PACED_LOAD, "paced_load.py")):
        subprocess.run(["docker", "cp", str(source), "%s:%s/%s" % (args.container, WORK, name)], check=True)
    # wrk, as tools/demo-report.sh installs it
    docker(args, "sh", "-c", "command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }")


def inside_argv(args, action, seconds):
    return [
        "python3", WORK + "/loss_matrix.py", "inside", "--action", action, "--seconds", str(seconds),
        "--connections", str(args.connections), "--delay-ms", str(args.delay_ms),
    ]  # fmt: skip


def parse_result(done, action):
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise SystemExit("loss-matrix: %s failed inside the container:\n%s%s" % (action, done.stdout, done.stderr))
    return json.loads(lines[-1])


def run_action(args, action):
    log("  %s (%d s of load)" % (action, args.seconds))
    done = docker(args, *inside_argv(args, action, args.seconds), timeout=args.seconds + 120)
    return parse_result(done, action)


def run_play(args, config, action):
    """site.yml under load: play-restart with a changed unit (the collection's own
    restart of instances), play-socket with a changed listen queue."""
    log("  %s (site.yml with a %s change, load until it ends)" % (action, "unit" if action == "play-restart" else "socket"))
    docker(args, "rm", "-f", WORK + "/play.done")
    load = subprocess.Popen(
        ["docker", "exec", args.container, *inside_argv(args, action, 240)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4)
    try:
        # TimeoutStopSec= in the instance unit follows the app's timeout; Backlog=
        # and listen the app's backlog
        if action == "play-restart":
            took = deploy(args, config, timeout=args.play_timeout)
        else:
            took = deploy(args, config, backlog=args.play_backlog)
    finally:
        docker(args, "touch", WORK + "/play.done")
    out, err = load.communicate(timeout=300)
    result = parse_result(subprocess.CompletedProcess(load.args, load.returncode, out, err), action)
    result["notes"].append("site.yml took %s s" % took)
    return result


def matrix(args):
    configs = list(CONFIGS) if args.configs == "all" else [c for c in args.configs.split(",") if c]
    results = []
    copy_in(args)
    for config in configs:
        if config != "current":
            if config not in CONFIGS:
                raise SystemExit("loss-matrix: unknown config %r (one of %s, all, current)" % (config, ", ".join(CONFIGS)))
            deploy(args, config)
            copy_in(args)
        wanted = args.actions.split(",") if args.actions else ACTIONS.get(config) or ["reload", "restart", "kill9"]
        runtime = json.loads(docker(args, "python3", WORK + "/loss_matrix.py", "describe").stdout or "{}")
        if config == "current" and args.proposed and runtime.get("server") in ("gunicorn", "uvicorn"):
            apply_proposed(args, runtime["server"])
            runtime = json.loads(docker(args, "python3", WORK + "/loss_matrix.py", "describe").stdout or "{}")
        for action in wanted:
            if action in ("restart-all", "play-restart") and runtime.get("mode") != "instances":
                continue
            if action == "play-socket" and runtime.get("server") != "uwsgi":
                continue
            if action == "kill9-vassal" and runtime.get("mode") != "emperor":
                continue
            if action == "recycle":
                if config == "current":
                    log("  recycle needs a config name (it redeploys the app): skipped")
                    continue
                # only the app server's layer changes (site.yml's tags)
                deploy(
                    args,
                    config,
                    server_settings=RECYCLE["uwsgi" if runtime["mode"] != "-" else "gunicorn"],
                    tags="gunicorn,uwsgi",
                )
                result = run_action(args, action)
            elif action.startswith("play-"):
                if config == "current":
                    log("  %s needs a config name (it redeploys the app): skipped" % action)
                    continue
                result = run_play(args, config, action)
            else:
                result = run_action(args, action)
            result["config"] = config
            result["proposed"] = args.proposed and result["server"] in ("gunicorn", "uvicorn")
            results.append(result)
            print_row(result)
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=1))
    if args.proposed:
        remove_proposed(args)
    if args.restore and configs != ["current"]:
        deploy(args, "gthread")
    return results


COLUMNS = (
    "server",
    "mode",
    "worker class",
    "action",
    "events",
    "GET req",
    "GET failed",
    "POST req",
    "POST failed",
    "in flight",
    "notes",
)


def row(result):
    def held():
        return "/".join(str(e["held"]) for e in result["events"] if e.get("held") is not None)

    def back():
        return "/".join("%s" % e["back"] if e.get("back") is not None else "?" for e in result["events"])

    flight = ""
    if result["action"].startswith("kill9"):
        flight = "GET %d, POST %d (held %s; serving again after %s s)" % (
            result["get"]["in_flight"],
            result["post"]["in_flight"],
            held() or "?",
            back() or "?",
        )
    notes = (["with the proposed changes"] if result.get("proposed") else []) + list(result["notes"])
    if result.get("gunicorn_recycles"):
        notes.append("%d worker recycles" % result["gunicorn_recycles"])
    if result.get("uwsgi_respawns"):
        notes.append("%d worker respawns" % result["uwsgi_respawns"])
    if result.get("instances"):
        sampled = result["instances"]
        notes.append("at most %d instance(s) down at once" % sampled["max_down_at_once"])
        if sampled["new_masters"]:
            first = sampled["new_masters"][0]["at"]
            notes.append(
                "new masters: " + ", ".join("@%d +%.1f s" % (m["instance"], m["at"] - first) for m in sampled["new_masters"])
            )
    for method in ("get", "post"):
        if result[method].get("timeouts"):
            notes.append("%d %ss waited over 10 s (wrk gave up)" % (result[method]["timeouts"], method.upper()))
        if result[method]["nginx_failed"] != result[method]["failed"] - result[method].get("timeouts", 0):
            notes.append("nginx logged %d failed %ss" % (result[method]["nginx_failed"], method.upper()))
    return [
        result["server"], result["mode"], result["worker_class"], result["action"], str(len(result["events"]) or "-"),
        "{:,}".format(result["get"]["requests"]), str(result["get"]["failed"]),
        "{:,}".format(result["post"]["requests"]), str(result["post"]["failed"]),
        flight or "-", "; ".join(notes),
    ]  # fmt: skip


def print_row(result):
    print("| " + " | ".join(row(result)) + " |", flush=True)
    for reason, count in sorted(result["reasons"].items(), key=lambda kv: -kv[1])[:4]:
        print("|   nginx error log: %d x %s" % (count, reason), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    here = sub.add_parser("inside", help="(in the container) one action under load, JSON on stdout")
    here.add_argument("--action", required=True, choices=sorted(SCHEDULE))
    here.add_argument("--seconds", type=int, default=20)
    here.add_argument("--app", default=APP)
    here.add_argument("--connections", type=int, default=8)
    here.add_argument("--delay-ms", type=int, default=50)
    sub.add_parser("describe", help="(in the container) what runs the app, JSON")
    parser.add_argument("--container", default="pyweb-sandbox")
    parser.add_argument("--inventory", default="inventories/sandbox")
    parser.add_argument("--configs", default="current", help="comma list of %s; all; current (default)" % ", ".join(CONFIGS))
    parser.add_argument("--actions", default="", help="comma list (default: every action of each config)")
    parser.add_argument("--seconds", type=int, default=20, help="load per action, at most %d" % SECONDS_MAX)
    parser.add_argument("--connections", type=int, default=8, help="wrk connections per method")
    parser.add_argument("--delay-ms", type=int, default=50, help="pause per connection between requests")
    parser.add_argument("--play-timeout", type=int, default=29, help="play-restart: the app timeout that changes the unit")
    parser.add_argument("--play-backlog", type=int, default=1024, help="play-socket: the app backlog that changes the socket")
    parser.add_argument("--json", default=str(CACHE / "results.json"), help="results file")
    parser.add_argument(
        "--proposed",
        action="store_true",
        help="Gunicorn and Uvicorn: measure with the changes this tool's findings propose, put in by hand in the container",
    )
    parser.add_argument("--no-restore", dest="restore", action="store_false", help="leave the last config deployed")
    args = parser.parse_args()
    if args.command == "inside":
        if not args.action.startswith("play-") and not 5 <= args.seconds <= SECONDS_MAX:
            raise SystemExit("--seconds: 5 to %d" % SECONDS_MAX)
        inside(args)
        return
    if args.command == "describe":
        print(json.dumps(Runtime(APP).describe()))
        return
    if not 5 <= args.seconds <= SECONDS_MAX:
        raise SystemExit("--seconds: 5 to %d" % SECONDS_MAX)
    started = time.time()
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + " --- |" * len(COLUMNS))
    with contextlib.suppress(KeyboardInterrupt):
        matrix(args)
    log("%d s in all" % (time.time() - started))


if __name__ == "__main__":
    main()
