"""One slow GET and one slow POST through nginx under a paced load (runs inside the instance, as root).

slow_report.py STEP APP HOST TIMEOUT UNIT KILL_PATTERN

Starts a paced GET and POST load on APP through nginx (paced_load.py, fresh
connection per request, /io?ms=5), then sends one GET and one POST whose
request sleeps past the app server's limit (TIMEOUT + 3 s + a margin), with
Host HOST, each answered or not within 3 x TIMEOUT. Waits until the app
server has had time to end them, stops the load and records under STEP in
/root/slow-report.json:

- per slow request: status and seconds;
- nginx: how many times its error log says the upstream timed out for the slow
  path (once per slow request when nothing retried it), and its error lines for
  the slow path that say anything else (a 502: a worker ended before nginx);
- the app server: the journal lines of UNIT (a systemd unit, globs allowed)
  that match KILL_PATTERN (a regex: the server ending a request or a worker)
  since the start, and how many;
- the load: what each method got (wrk and nginx's failures).

The verifier (the scenario's tests) holds the expectations.
"""

import os
import re
import sys
import time
import urllib.error
import urllib.request

from paced_load import PacedLoad, Report, run

REPORT = Report("/root/slow-report.json")
# The app server ends a request this long after the app's timeout (the sizing's kill margin).
KILL_MARGIN = 3
ERROR_LOG = "/var/log/nginx/pyweb-%s.error.log"


def slow_request(method, url, host, wait):
    data = b"slow=1" if method == "POST" else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Host": host, "Connection": "close"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=wait) as answer:
            status = answer.status
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, OSError) as error:
        status = "no answer: %s" % error
    return {"status": status, "seconds": round(time.monotonic() - started, 2)}


def nginx_errors(app, target, since_size):
    """nginx's error lines for `target` written after byte `since_size` of the app's error log."""
    with open(ERROR_LOG % app, "rb") as log:
        log.seek(since_size)
        lines = log.read().decode(errors="replace").splitlines()
    mine = [line for line in lines if ' request: "' in line and target in line]
    timed_out = [line for line in mine if "upstream timed out" in line]
    return {"timed_out": len(timed_out), "other": [line for line in mine if line not in timed_out]}


def main(step, app, host, timeout, unit, kill_pattern):
    timeout = int(timeout)
    # Past the app server's limit, so it has to end the request itself.
    sleep_ms = (timeout + KILL_MARGIN + 2) * 1000
    target = "/io?ms=%d" % sleep_ms
    url = "http://127.0.0.1:80" + target
    load = PacedLoad("/root/slow", "http://127.0.0.1:80/io?ms=5", "slow=0&item=order", delay_ms=50, max_seconds=120)
    log_size = os.path.getsize(ERROR_LOG % app)
    since = time.time()
    load.start(step, {app: (host, 4)})
    time.sleep(2)
    answers = {}
    for method in ("GET", "POST"):
        answers[method.lower()] = slow_request(method, url, host, 3 * timeout)
    # The second request's kill: the margin after its timeout, once-a-second checks, a respawn.
    time.sleep(KILL_MARGIN + 4)
    seconds, counted = load.stop(step)
    journal = run("journalctl", "--unit", unit, "--since", "@%d" % int(since), "--no-pager", "--output", "cat", check=False)
    kills = [line for line in journal.splitlines() if re.search(kill_pattern, line)]
    result = {
        "timeout": timeout,
        "slow_ms": sleep_ms,
        "answers": answers,
        "nginx": nginx_errors(app, target, log_size),
        "kills": len(kills),
        "kill_lines": kills[:10],
        "load_seconds": seconds,
        "load": counted[app],
    }
    REPORT.save(step, "slow", result)
    print(result)


if __name__ == "__main__":
    main(*sys.argv[1:])
