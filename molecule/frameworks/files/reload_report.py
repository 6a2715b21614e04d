"""State around the reload under load, and its report (runs inside the instance).

`reload_report.py before SECONDS` keeps the state before the load in
/root/reload-before.json; `reload_report.py after` compares, parses the two
wrk reports and writes /root/reload-report.json (printed too).
"""

import json
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

BEFORE = Path("/root/reload-before.json")
REPORT = Path("/root/reload-report.json")
ORDERS = Path("/var/lib/pyweb/flaskapp/orders.log")
FLASK_ACCESS_LOG = Path("/var/log/nginx/pyweb-flaskapp.access.log")
# A failed POST within this many seconds after flaskapp's reload or restart
# counts as lost to it; any other one to a worker retiring by itself
# (max_requests).
RELOAD_SECONDS = 3


def run(*argv):
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


def orders():
    return len(ORDERS.read_text().splitlines()) if ORDERS.exists() else 0


def master_and_workers(app):
    master = run("systemctl", "show", "-p", "MainPID", "--value", "pyweb-%s.service" % app)
    workers = subprocess.run(["pgrep", "-P", master], capture_output=True, text=True, check=False).stdout.split()
    return master, sorted(workers)


def changes(app, since):
    """When the app's running service took a change: a reload (HUP to the
    master) or a new master (restart), from the journal, in seconds."""
    out = run("journalctl", "-u", "pyweb-%s.service" % app, "-o", "short-unix", "--since", "@%d" % since, "--no-pager")
    events = []
    for line in out.splitlines():
        for kind, text in (("reload", "handling signal: hup"), ("restart", "starting gunicorn")):
            if text in line.lower():
                events.append({"time": float(line.split()[0]), "kind": kind})
    return events


def failed_posts(since):
    """Times of the POSTs nginx answered with 5xx for flaskapp since `since`."""
    times = []
    for line in FLASK_ACCESS_LOG.read_text().splitlines():
        match = re.search(r'\[([^]]+)\] "POST [^"]*" (5\d\d) ', line)
        if match:
            when = datetime.strptime(match.group(1), "%d/%b/%Y:%H:%M:%S %z").timestamp()
            if when >= int(since):
                times.append(when)
    return times


def wrk(path):
    text = Path(path).read_text()

    def number(pattern):
        match = re.search(pattern, text)
        return int(match.group(1)) if match else 0

    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "requests": number(r"(\d+) requests in"),
        "non_2xx_3xx": number(r"Non-2xx or 3xx responses: (\d+)"),
        "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
    }


def main(step):
    if step == "before":
        master, workers = master_and_workers("mysite")
        state = {"time": time.time(), "load_seconds": int(sys.argv[2]), "orders": orders(), "master": master, "workers": workers}
        BEFORE.write_text(json.dumps(state))
        return
    before = json.loads(BEFORE.read_text())
    master, workers = master_and_workers("mysite")
    post = wrk("/root/wrk-reload-post.txt")
    handled = orders() - before["orders"]
    applied = {app: changes(app, int(before["time"])) for app in ("mysite", "flaskapp")}
    failed_at = failed_posts(before["time"])
    at_reload = [t for t in failed_at if any(0 <= t - int(e["time"]) <= RELOAD_SECONDS for e in applied["flaskapp"])]
    report = {
        "load_started": before["time"],
        "load_seconds": before["load_seconds"],
        "get": wrk("/root/wrk-reload-get.txt"),
        "post": dict(
            post,
            failed=post["non_2xx_3xx"] + post["socket_errors"],
            # POSTs flaskapp wrote down: more than wrk counted as answered means
            # some were handled but their answer was lost on the way back.
            handled_by_app=handled,
            # from nginx's log: when flaskapp reloaded, and any other time
            failed_at_reload=len(at_reload),
            failed_elsewhere=len(failed_at) - len(at_reload),
        ),
        "mysite_master": {"before": before["master"], "after": master},
        "mysite_workers": {"before": before["workers"], "after": workers},
        "changes": applied,
    }
    REPORT.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main(sys.argv[1])
