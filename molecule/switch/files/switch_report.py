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

import json
import os
import pwd
import re
import stat
import sys
import urllib.error
import urllib.request
from pathlib import Path

from paced_load import PacedLoad, Report, run

REPORT = Report("/root/switch-report.json")
# The app under switch (its journal holds Gunicorn's recycles).
APP = "demo"
LOAD_MAX_SECONDS = 600
CONNECTIONS = 8
# nginx's failures apart from recycles: counted, with every time (no summary)
LOAD = PacedLoad(
    Path("/root/switch"),
    "http://127.0.0.1:80/io?ms=5",
    "switch=1&item=order",
    delay_ms=50,
    max_seconds=LOAD_MAX_SECONDS,
    summary=False,
)
RUN = Path("/run/pyweb")
SYSTEMD = Path("/etc/systemd/system")


def load_start(step):
    # the default server: wrk's own Host header
    LOAD.start(step, {APP: (None, CONNECTIONS)})


def load_stop(step):
    seconds, apps = LOAD.stop(step)
    result = {"seconds": seconds, **apps[APP]}
    REPORT.save(step, "load", result)
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
    REPORT.save(step, "state", result)
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
        report = REPORT.load()
        print(json.dumps({step: data.get("load") for step, data in report["steps"].items() if "load" in data}, sort_keys=True))
    else:
        raise SystemExit("unknown command %s" % command)


if __name__ == "__main__":
    main(sys.argv)
