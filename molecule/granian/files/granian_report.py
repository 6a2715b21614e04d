"""Reloads under load in the granian scenario (runs inside the instance, as root).

granian_report.py reloads STEP COUNT   paced GET and POST loads through nginx on
                                       every app (counted apart, per app), COUNT
                                       rounds of `systemctl reload` of every
                                       app's unit, each round waiting until
                                       every app serves on new workers only
granian_report.py load-start STEP      the same loads alone, detached
granian_report.py load-stop STEP       stops them and records what they got
granian_report.py show                 the report

Everything lands in /root/granian-report.json under "steps" -> STEP; the
verifier (tests/test_granian.py) holds the expectations.
"""

import json
import sys
import time
from pathlib import Path

from paced_load import PacedLoad, Report, run

REPORT = Report("/root/granian-report.json")
WORK = Path("/root/granian")
BODY = "granian=1&item=order"
CONNECTIONS = 4
MAX_SECONDS = 600
# app -> (Host header, unit, scheme): asgi.test is served over TLS only.
APPS = {
    "wsgi": (None, "pyweb-wsgi.granian.service", "http"),
    "asgi": ("asgi.test", "pyweb-asgi.granian.service", "https"),
    "uvi": ("uvi.test", "pyweb-uvi.service", "http"),
}
# Per scheme one load (wrk takes one URL); port given: the image has no
# /etc/services. asgi.test: wrk's TLS server name (side_effect maps it to
# 127.0.0.1); nginx's closed default site refuses any name no app claims.
LOADS = {
    scheme: PacedLoad(WORK, url, BODY, delay_ms=50, max_seconds=MAX_SECONDS, summary=True, other_at_max=20)
    for scheme, url in (("http", "http://127.0.0.1:80/io?ms=5"), ("https", "https://asgi.test:443/io?ms=5"))
}
WAIT_SECONDS = 90


def _serves(pid):
    """Not Python's resource tracker (beside Granian's spawned workers)."""
    try:
        return b"multiprocessing.resource_tracker" not in Path("/proc/%d/cmdline" % pid).read_bytes()
    except OSError:
        return False


def workers(unit):
    """The unit's main process and its workers now."""
    main = int(run("systemctl", "show", "-p", "MainPID", "--value", unit) or 0)
    children = Path("/proc/%d/task/%d/children" % (main, main))
    kids = sorted(int(pid) for pid in children.read_text().split()) if main and children.exists() else []
    return main, [pid for pid in kids if _serves(pid)]


def load_start(step):
    for scheme, load in LOADS.items():
        apps = {app: (host, CONNECTIONS) for app, (host, _unit, s) in APPS.items() if s == scheme}
        load.start("%s-%s" % (step, scheme), apps)


def load_stop(step):
    result = {"seconds": 0}
    for scheme, load in LOADS.items():
        seconds, apps = load.stop("%s-%s" % (step, scheme))
        result["seconds"] = max(result["seconds"], seconds)
        result.update(apps)
    REPORT.save(step, "load", result)
    return result


def reloads(step, count):
    load_start(step)
    time.sleep(3)
    rounds = []
    try:
        for _round in range(count):
            before = {app: workers(unit) for app, (_h, unit, _s) in APPS.items()}
            started = time.time()
            run("systemctl", "reload", *(unit for _h, unit, _s in APPS.values()))
            waited = {}
            for app, (_h, unit, _s) in APPS.items():
                old_main, old_kids = before[app]
                deadline = time.time() + WAIT_SECONDS
                while time.time() < deadline:
                    main, kids = workers(unit)
                    if kids and len(kids) >= len(old_kids) and not set(kids) & set(old_kids):
                        break
                    time.sleep(0.2)
                waited[app] = {
                    "seconds": round(time.time() - started, 1),
                    "same_main": main == old_main,
                    "old": old_kids,
                    "new": kids,
                    "replaced": bool(kids) and not set(kids) & set(old_kids),
                }
            rounds.append(waited)
        # the last requests to new workers, inside the window
        time.sleep(2)
    finally:
        result = load_stop(step)
    REPORT.save(step, "rounds", rounds)
    print(json.dumps({"load": result, "rounds": len(rounds)}, sort_keys=True))


def main(argv):
    command = argv[0] if argv else "show"
    if command == "reloads":
        reloads(argv[1], int(argv[2]))
    elif command == "load-start":
        load_start(argv[1])
    elif command == "load-stop":
        print(json.dumps(load_stop(argv[1]), sort_keys=True))
    elif command == "show":
        print(json.dumps(REPORT.load(), indent=2, sort_keys=True))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
