"""Load, answers and releases around each step of the releases scenario (runs inside the instance, as root).

releases_report.py source STEP JSON            the sources built for STEP (build_source.py's answers)
releases_report.py load-start STEP APP...      paced wrk runs through nginx on each APP, GET and
                                               POST apart, bounded (LOAD_MAX_SECONDS), detached
releases_report.py load-stop STEP              stops them (SIGINT: wrk prints its report), counts
                                               what each got, and what nginx logged failing
releases_report.py versions STEP APP...        VERSION_GETS sequential GET /version through nginx
                                               per APP: which release answered, from which code
releases_report.py state STEP APP...           current, the release directories, systemd
releases_report.py fact STEP JSON              the pyweb_releases fact after a successful run
releases_report.py run STEP FILE RC DELTA      an ansible-playbook run from the controller: its
                                               rc, seconds, recap, failure and change lines
releases_report.py get STEP KEY...             one recorded value (JSON)
releases_report.py show                        the numbers of the closing note

Everything lands in /root/releases-report.json under "steps" -> STEP; the
verifier (tests/test_releases.py) holds the expectations.
"""

import json
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

from paced_load import PacedLoad, Report, run

REPORT = Report("/root/releases-report.json")
BASE = Path("/srv/pyweb")
# The app answering for any Host (domains: [_]); every other app answers <name>.test.
DEFAULT_APP = "demo"
LOAD_MAX_SECONDS = 600
# Per method: the default app carries the load that matters; the others a
# small one that shows they are left alone.
CONNECTIONS = {DEFAULT_APP: 8}
OTHER_CONNECTIONS = 2
# nginx's failures apart from recycles: per status, first and last, the first 10 times
LOAD = PacedLoad(
    Path("/root/releases"),
    "http://127.0.0.1:80/io?ms=5",
    "release=1&item=order",
    delay_ms=50,
    max_seconds=LOAD_MAX_SECONDS,
    other_at_max=10,
)
VERSION_GETS = 200
MARKER = ".pyweb-release.json"
# The runs' lines that say what failed (the default callback, no colour).
FAILURE_START = re.compile(r"^(fatal|failed): |^\[?ERROR\]?|^ERROR!|^An exception occurred")
RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)\s+ignored=(?P<ignored>\d+)",
    re.M,
)


def host_header(app):
    return "127.0.0.1" if app == DEFAULT_APP else "%s.test" % app


def load_start(step, apps):
    LOAD.start(step, {app: (host_header(app), CONNECTIONS.get(app, OTHER_CONNECTIONS)) for app in apps})


def load_stop(step):
    seconds, apps = LOAD.stop(step)
    result = {"seconds": seconds, "apps": apps}
    REPORT.save(step, "load", result)
    print(json.dumps(result, sort_keys=True))


def get_version(app):
    request = urllib.request.Request("http://127.0.0.1/version", headers={"Host": host_header(app)})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read().decode())
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (OSError, ValueError) as exc:
        return str(exc), None


def versions(step, apps):
    result = {}
    for app in apps:
        releases, codes, pids, failed = {}, {}, set(), {}
        for _attempt in range(VERSION_GETS):
            status, body = get_version(app)
            if status != 200 or not isinstance(body, dict):
                failed[str(status)] = failed.get(str(status), 0) + 1
                continue
            release = str(body.get("release"))
            releases[release] = releases.get(release, 0) + 1
            codes[str(body.get("code"))] = codes.get(str(body.get("code")), 0) + 1
            pids.add(body.get("pid"))
        result[app] = {"gets": VERSION_GETS, "releases": releases, "code": codes, "pids": len(pids), "failed": failed}
    REPORT.save(step, "versions", result)
    print(json.dumps(result, sort_keys=True))


def read_text(path):
    try:
        return path.read_text().strip()
    except OSError:
        return None


def release_state(app):
    base = BASE / app
    releases_dir = base / "releases"
    current = base / "current"
    entries = sorted(p.name for p in releases_dir.iterdir()) if releases_dir.is_dir() else []
    releases = {}
    for name in entries:
        path = releases_dir / name
        venv = path / ".venv"
        releases[name] = {
            "complete": (path / MARKER).is_file(),
            "version": read_text(path / "app" / "VERSION"),
            "venv_link": os.readlink(venv) if venv.is_symlink() else None,
            "venv_python": (venv / "bin" / "python").exists(),
            "marker": read_text(path / MARKER),
        }
    target = os.readlink(current) if current.is_symlink() else None
    return {
        "current_link": target,
        "current_kind": "symlink" if target is not None else "dir" if current.is_dir() else "missing",
        "current": os.path.basename(target.rstrip("/")) if target else None,
        "current_resolved": str(current.resolve()) if current.exists() else None,
        "current_version": read_text(current / "app" / "VERSION"),
        "entries": entries,
        "complete": [name for name in entries if releases[name]["complete"]],
        "releases": releases,
    }


def state(step, apps):
    result = {
        "system": run("systemctl", "is-system-running", check=False),
        "failed_units": run("systemctl", "list-units", "--failed", "--plain", "--no-legend", "--full", check=False).splitlines(),
        "apps": {app: release_state(app) for app in apps},
    }
    REPORT.save(step, "state", result)
    print(json.dumps({app: {k: v[k] for k in ("current", "current_version", "complete")} for app, v in result["apps"].items()}))


def parse_seconds(delta):
    """Ansible's command delta, H:MM:SS.ffffff, in seconds."""
    hours, minutes, seconds = delta.split(":")
    return round(int(hours) * 3600 + int(minutes) * 60 + float(seconds), 1)


def run_record(step, output, rc, delta):
    # Molecule forces colour on the runs it starts: the escapes would hide the lines.
    text = re.sub(r"\x1b\[[0-9;]*m", "", Path(output).read_text())
    lines = text.splitlines()
    failure, block = [], False
    changed_tasks, task = [], None
    for line in lines:
        if line.startswith("TASK ["):
            task = line
        if line.startswith("changed:"):
            changed_tasks.append(task)
        if FAILURE_START.search(line):
            block = True
            if task:
                failure.append(task)
            failure.append(line)
        elif block and line.startswith((" ", "\t")):
            failure.append(line)
        else:
            block = False
    recaps = [{k: (v if k == "host" else int(v)) for k, v in m.groupdict().items()} for m in RECAP.finditer(text)]
    result = {
        "rc": int(rc),
        "seconds": parse_seconds(delta),
        "recap": recaps[-1] if recaps else None,
        "failure_lines": failure[-200:],
        "changed_tasks": changed_tasks,
        "tail": lines[-40:],
    }
    REPORT.save(step, "run", result)
    print(json.dumps({k: result[k] for k in ("rc", "seconds", "recap")}, sort_keys=True))


def summary(report):
    """What the closing note gives, from the recorded steps."""
    steps = report["steps"]

    def load_numbers(step, app):
        load = steps.get(step, {}).get("load", {}).get("apps", {}).get(app)
        if not load:
            return None
        return {
            "seconds": steps[step]["load"]["seconds"],
            "requests": load["get"]["requests"] + load["post"]["requests"],
            "failed_get": load["get"]["failed"],
            "failed_post": load["post"]["failed"],
            "at_gunicorn_recycles": load["get"]["nginx_failed"]["recycle"] + load["post"]["nginx_failed"]["recycle"],
        }

    def serving(step, app):
        answers = steps.get(step, {}).get("versions", {}).get(app, {})
        current = steps.get(step, {}).get("state", {}).get("apps", {}).get(app, {})
        return {"answers": answers.get("releases"), "current": current.get("current"), "version": current.get("current_version")}

    def ran(step):
        record = steps.get(step, {}).get("run")
        return None if record is None else {"rc": record["rc"], "seconds": record["seconds"]}

    notes = {}
    for step in ("good", "import-broken", "health500", "health500-after", "rollback-previous", "rollback-named"):
        if step in steps:
            notes[step] = {
                "run": ran(step),
                "load": {app: load_numbers(step, app) for app in ("demo", "emp")},
                "serving_at_end": serving(step, "demo"),
            }
    if "no-change" in steps:
        notes["no-change"] = {"run": ran("no-change"), "recap": steps["no-change"].get("run", {}).get("recap")}
    if "prune-v6" in steps:
        notes["prune"] = {"complete": steps["prune-v6"]["state"]["apps"]["demo"]["complete"]}
    return notes


def main(argv):
    command = argv[1]
    if command == "source":
        REPORT.save(argv[2], "sources", json.loads(argv[3]))
    elif command == "load-start":
        load_start(argv[2], argv[3:])
    elif command == "load-stop":
        load_stop(argv[2])
    elif command == "versions":
        versions(argv[2], argv[3:])
    elif command == "state":
        state(argv[2], argv[3:])
    elif command == "fact":
        REPORT.save(argv[2], "fact", json.loads(argv[3]))
    elif command == "run":
        run_record(argv[2], argv[3], argv[4], argv[5])
    elif command == "get":
        value = REPORT.load()["steps"][argv[2]]
        for key in argv[3:]:
            value = value[key]
        print(json.dumps(value))
    elif command == "show":
        print(json.dumps(summary(REPORT.load()), sort_keys=True))
    else:
        raise SystemExit("unknown command %s" % command)


if __name__ == "__main__":
    main(sys.argv)
