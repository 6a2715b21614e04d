"""Load and state around each step of the switch scenario (runs inside the instance, as root).

switch_report.py load-start STEP    two paced wrk runs through nginx, GET and POST
                                    apart, bounded (LOAD_MAX_SECONDS), detached
switch_report.py load-stop STEP     stops them (SIGINT: wrk prints its report),
                                    counts what each got and Gunicorn's worker
                                    recycles of APP in the window
switch_report.py state STEP APP...  what runs and exists on the host now
switch_report.py show               the report

Everything lands in /root/switch-report.json under "steps" -> STEP; the
verifier (tests/test_switch.py) holds the expectations.
"""

import contextlib
import json
import os
import pwd
import re
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

REPORT = Path("/root/switch-report.json")
WORK = Path("/root/switch")
# The app under switch (its journal holds Gunicorn's recycles).
APP = "demo"
# the port too: wrk resolves a bare host through /etc/services, which the image lacks
URL = "http://127.0.0.1:80/io?ms=5"
LOAD_MAX_SECONDS = 600
CONNECTIONS = 8
# Paced: each connection waits this long between requests, so the load
# leaves the play room on 2 shared cores.
DELAY_MS = 50
# Fresh connections: a keep-alive connection nginx closes on its reload while
# wrk sends on it is the client's race, not a request the switch lost.
SCRIPTS = {
    "get": 'wrk.headers["Connection"] = "close"\nfunction delay() return %d end\n' % DELAY_MS,
    "post": (
        'wrk.method = "POST"\nwrk.body = "switch=1&item=order"\n'
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
        'wrk.headers["Connection"] = "close"\nfunction delay() return %d end\n' % DELAY_MS
    ),
}
RUN = Path("/run/pyweb")
ACCESS_LOG = Path("/var/log/nginx/pyweb-%s.access.log" % APP)
# A failed request this close (seconds) to a Gunicorn worker's recycle is
# the recycle's (issue 15), not the switch's.
RECYCLE_SECONDS = 2
SYSTEMD = Path("/etc/systemd/system")


def run(*argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True).stdout.strip()


def load_report():
    return json.loads(REPORT.read_text()) if REPORT.exists() else {"steps": {}}


def save(step, key, value):
    report = load_report()
    report["steps"].setdefault(step, {})[key] = value
    REPORT.write_text(json.dumps(report, indent=2, sort_keys=True))


def load_start(step):
    WORK.mkdir(mode=0o700, exist_ok=True)
    jobs = {"start": time.time(), "pids": {}}
    for method, script in SCRIPTS.items():
        lua = WORK / ("%s.lua" % method)
        lua.write_text(script)
        with open(WORK / ("%s-%s.txt" % (step, method)), "w") as out:
            proc = subprocess.Popen(
                [
                    "wrk",
                    "--threads",
                    "1",
                    "--connections",
                    str(CONNECTIONS),
                    "--duration",
                    "%ds" % LOAD_MAX_SECONDS,
                    "--timeout",
                    "10s",
                    "--script",
                    str(lua),
                    URL,
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        jobs["pids"][method] = proc.pid
    (WORK / ("%s.load.json" % step)).write_text(json.dumps(jobs))


def wrk_counts(text):
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


def recycle_times(since):
    """When Gunicorn retired a worker of APP after max_requests (issue 15), epoch seconds."""
    out = run(
        "journalctl",
        "--unit",
        "pyweb-%s.service" % APP,
        "--since",
        "@%d" % int(since),
        "--output",
        "short-unix",
        "--no-pager",
        check=False,
    )
    return [float(line.split()[0]) for line in out.splitlines() if "Autorestarting worker after current request" in line]


def failures(since, recycles):
    """The load's requests nginx answered with an error since `since`, per method:
    those within RECYCLE_SECONDS of a Gunicorn worker recycle, and the others
    (the switch's), with their times."""
    counts = {m: {"recycle": 0, "other": 0, "other_at": []} for m in ("GET", "POST")}
    pattern = re.compile(r'\[([^]]+)\] "(GET|POST) /io\?ms=5 [^"]*" (\d{3}) ')
    for line in ACCESS_LOG.read_text().splitlines() if ACCESS_LOG.exists() else []:
        match = pattern.search(line)
        # 499: wrk itself closed the connection (stopped at the window's end)
        if not match or match.group(3).startswith("2") or match.group(3) == "499":
            continue
        when = datetime.strptime(match.group(1), "%d/%b/%Y:%H:%M:%S %z").timestamp()
        if when < int(since):
            continue
        # the log has whole seconds
        if any(-RECYCLE_SECONDS <= when - r <= RECYCLE_SECONDS + 1 for r in recycles):
            counts[match.group(2)]["recycle"] += 1
        else:
            counts[match.group(2)]["other"] += 1
            counts[match.group(2)]["other_at"].append("%s %s" % (match.group(1), match.group(3)))
    return counts


def load_stop(step):
    jobs = json.loads((WORK / ("%s.load.json" % step)).read_text())
    for pid in jobs["pids"].values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
    deadline = time.time() + 30
    while time.time() < deadline and any(Path("/proc/%d" % pid).exists() for pid in jobs["pids"].values()):
        time.sleep(0.2)
    seconds = round(time.time() - jobs["start"], 1)
    recycles = recycle_times(jobs["start"])
    result = {"seconds": seconds, "gunicorn_recycles": len(recycles)}
    failed = failures(jobs["start"], recycles)
    for method in jobs["pids"]:
        result[method] = wrk_counts((WORK / ("%s-%s.txt" % (step, method))).read_text())
        result[method]["nginx_failed"] = failed[method.upper()]
    save(step, "load", result)
    print(json.dumps(result, sort_keys=True))


def units():
    found = {}
    out = run("systemctl", "list-units", "pyweb-*", "--all", "--plain", "--no-legend", "--full")
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            found[fields[0]] = {"load": fields[1], "active": fields[2], "sub": fields[3]}
    return found


def unit_files():
    names = sorted(p.name for p in SYSTEMD.glob("pyweb-*"))
    links = sorted(str(p.relative_to(SYSTEMD)) for p in SYSTEMD.glob("*.wants/pyweb-*"))
    return {"files": names, "wants": links}


def run_dir():
    entries = {}
    if RUN.exists():
        for path in sorted(RUN.rglob("*")):
            mode = path.lstat().st_mode
            entries[str(path)] = "socket" if stat.S_ISSOCK(mode) else "dir" if stat.S_ISDIR(mode) else "file"
    return entries


def processes():
    """Every process of an app server: user and title."""
    found = []
    me = {os.getpid(), os.getppid()}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in me:
            continue
        try:
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            uid = proc.stat().st_uid
        except OSError:
            continue
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)
        if user.startswith("pyweb-") or re.search(r"uwsgi|gunicorn", title, re.IGNORECASE):
            found.append({"pid": int(proc.name), "user": user, "title": title})
    return sorted(found, key=lambda p: p["pid"])


def nginx_sites():
    sites = {}
    for folder in ("sites-enabled", "sites-available"):
        for path in sorted(Path("/etc/nginx", folder).glob("pyweb-*.conf")):
            text = path.read_text()
            sites["%s/%s" % (folder, path.name)] = sorted(set(re.findall(r"^\s*server unix:(\S+?)[;\s]", text, re.M)))
    return sites


def ask(host_header, method):
    request = urllib.request.Request(
        "http://127.0.0.1/healthz",
        method=method,
        data=b"a=1" if method == "POST" else None,
        headers={"Host": host_header},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return {"status": answer.status, "app": answer.headers.get("X-Pyweb-App")}
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "app": exc.headers.get("X-Pyweb-App")}
    except OSError as exc:
        return {"status": None, "error": str(exc)}


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def state(step, apps):
    result = {
        "system": run("systemctl", "is-system-running", check=False),
        "failed_units": run("systemctl", "list-units", "--failed", "--plain", "--no-legend", "--full", check=False).splitlines(),
        "units": units(),
        "unit_files": unit_files(),
        "run_dir": run_dir(),
        "processes": processes(),
        "nginx_sites": nginx_sites(),
        "vassals": sorted(p.name for p in Path("/etc/pyweb/uwsgi/vassals").glob("*"))
        if Path("/etc/pyweb/uwsgi/vassals").exists()
        else [],
        "emperor_ini": Path("/etc/pyweb/uwsgi/emperor.ini").exists(),
        "apps": {},
    }
    for app in apps:
        # the demo app is the default server; the others answer their own name
        host_header = "127.0.0.1" if app == APP else "%s.test" % app
        config = Path("/etc/pyweb", app)
        result["apps"][app] = {
            "http": {method: ask(host_header, method) for method in ("GET", "POST")},
            "dirs": {
                path: Path(path).is_dir()
                for path in ("/srv/pyweb/%s" % app, "/var/lib/pyweb/%s" % app, "/var/log/pyweb/%s" % app, str(config))
            },
            "config_files": sorted(p.name for p in config.iterdir()) if config.is_dir() else [],
            "user": user_exists("pyweb-%s" % app),
        }
    save(step, "state", result)
    print(json.dumps({"system": result["system"], "units": sorted(result["units"]), "apps": result["apps"]}, sort_keys=True))


def main(argv):
    command = argv[1]
    if command == "load-start":
        load_start(argv[2])
    elif command == "load-stop":
        load_stop(argv[2])
    elif command == "state":
        state(argv[2], argv[3:])
    elif command == "show":
        report = load_report()
        print(json.dumps({step: data.get("load") for step, data in report["steps"].items() if "load" in data}, sort_keys=True))
    else:
        raise SystemExit("unknown command %s" % command)


if __name__ == "__main__":
    main(sys.argv)
