"""nginx -> Granian (WSGI and ASGI) and Gunicorn + Uvicorn workers, deployed by playbooks/site.yml."""

from __future__ import annotations

import json
import time

import pytest
from pyweb_verify import assert_unit_exposure, http, remote_json

# app -> (socket, unit, base URL, Host header)
APPS = {
    "wsgi": ("/run/pyweb/wsgi-granian.sock", "pyweb-wsgi.granian.service", "http://127.0.0.1", "localhost"),
    "asgi": ("/run/pyweb/asgi-granian.sock", "pyweb-asgi.granian.service", "https://asgi.test", "asgi.test"),
    "uvi": ("/run/pyweb/uvi.sock", "pyweb-uvi.service", "http://127.0.0.1", "uvi.test"),
}
GRANIAN = ("wsgi", "asgi")


@pytest.mark.parametrize("app", APPS)
def test_socket_path_type_mode_owner(host, app):
    sock = host.file(APPS[app][0])
    assert sock.is_socket
    assert sock.mode == 0o660
    assert sock.user == "pyweb-%s" % app
    assert sock.group == "www-data"


@pytest.mark.parametrize("app", APPS)
def test_nginx_worker_user_can_connect_and_nobody_cannot(host, app):
    socket = APPS[app][0]
    status, headers, _body = http(host, "http://localhost/healthz", unix_socket=socket, as_user="www-data")
    assert status == 200
    assert headers["x-pyweb-app"] == app
    denied = host.run("runuser -u nobody -- curl --silent --show-error --unix-socket %s http://localhost/healthz", socket)
    assert denied.rc == 7, denied.stderr  # curl: could not connect


@pytest.mark.parametrize("app", APPS)
def test_no_process_of_the_app_server_runs_as_root(host, app):
    unit = APPS[app][1]
    pids = host.check_output("systemctl show -p MainPID --value %s", unit)
    main = int(pids)
    assert main > 0
    users = host.check_output("ps -o user= --pid %s --ppid %s", str(main), str(main)).split()
    assert len(users) >= 2, users  # the master and at least one worker
    assert set(users) == {"pyweb-%s" % app}, users


@pytest.mark.parametrize("app", GRANIAN)
def test_granian_runs_as_sized_and_takes_the_systemd_socket(host, app):
    size = json.loads(host.check_output("cat /root/granian-plan.json"))[app]
    options = dict(
        line.split("=", 1) for line in host.file("/etc/pyweb/%s/granian.env" % app).content_string.splitlines() if "=" in line
    )
    assert options["GRANIAN_INTERFACE"] == ("wsgi" if app == "wsgi" else "asgi")
    # the launcher the master runs: a new one changes this file, so restarts it
    launcher = host.check_output("sha256sum /usr/local/lib/pyweb/pyweb_granian.py").split()[0]
    assert options["PYWEB_LAUNCHER_SHA256"] == launcher
    assert int(options["GRANIAN_WORKERS"]) == size["workers"]
    assert int(options["GRANIAN_BLOCKING_THREADS"]) == size["blocking_threads"]
    assert int(options["GRANIAN_BACKPRESSURE"]) == size["backpressure"]
    main = int(host.check_output("systemctl show -p MainPID --value %s", APPS[app][1]))
    children = [line.split(None, 1) for line in host.check_output("ps -o pid=,args= --ppid %s", str(main)).splitlines()]
    # Spawned workers (pyweb_granian.py) and Python's resource tracker beside them.
    helpers = [pid for pid, args in children if "multiprocessing.resource_tracker" in args]
    workers = [pid for pid, args in children if "multiprocessing.spawn" in args]
    assert len(helpers) == 1 and len(workers) == size["workers"] == len(children) - 1, children
    # systemd's socket is the one listening (its unit active): the master and
    # every worker hold that very socket as fd 3 (read as the app: root here
    # lacks CAP_SYS_PTRACE, so ss -p cannot name them).
    assert host.service("pyweb-%s.granian.socket" % app).is_running
    listening = [line.split() for line in host.check_output("ss -Hxl").splitlines() if APPS[app][0] in line]
    assert len(listening) == 1, listening
    inode = listening[0][listening[0].index(APPS[app][0]) + 1]
    for pid in [str(main), *workers]:
        held = host.check_output("runuser -u pyweb-%s -- readlink /proc/%s/fd/3", app, pid)
        assert held == "socket:[%s]" % inode, (pid, held)
    journal = host.check_output("journalctl -u %s --no-pager -o cat", APPS[app][1])
    assert "(systemd's)" in journal


@pytest.mark.parametrize(
    "app, path",
    [(app, path) for app in APPS for path in ("/", "/io?ms=5", "/cpu?n=100", "/whoami", "/healthz", "/version")],
)
def test_every_endpoint_answers_through_nginx(host, app, path):
    _socket, _unit, base, name = APPS[app]
    status, headers, body = http(host, base + path, headers=["Host: %s" % name])
    assert status == 200, body
    assert headers["x-pyweb-app"] == app
    if path == "/whoami":
        answer = json.loads(body)
        assert answer["forwarded_proto"] == base.split(":")[0]


@pytest.mark.parametrize("app", APPS)
def test_a_post_reaches_the_app(host, app):
    _socket, _unit, base, name = APPS[app]
    out = host.check_output("curl -sk -o /dev/null -w '%%{http_code}' -X POST --data 'a=1' -H 'Host: %s' %s/", name, base)
    assert out == "200"


def ws_probe(host, mode, url, app, *extra):
    """ws_probe.py (ws or sse) inside the instance through nginx, with the app's Host: its result."""
    out = host.run(
        "python3 /root/granian/ws_probe.py %s --url %s --host-header %s" + " %s" * len(extra), mode, url, APPS[app][3], *extra
    )
    assert out.rc == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "app, url",
    [("asgi", "wss://127.0.0.1/ws"), ("uvi", "ws://127.0.0.1/ws")],
)
def test_a_websocket_client_exchanges_messages_through_nginx(host, app, url):
    result = ws_probe(host, "ws", url, app, "--messages", "20")
    assert result["ok"] and result["status"] == 101
    assert result["echoed"] == result["messages"] == 20


@pytest.mark.parametrize(
    "app, url",
    [("asgi", "https://127.0.0.1/sse?n=5&ms=300"), ("uvi", "http://127.0.0.1/sse?n=5&ms=300")],
)
def test_server_sent_events_arrive_unbuffered(host, app, url):
    result = ws_probe(host, "sse", url, app)
    assert result["events"] == 5
    # one every 300 ms, not one burst at the end
    assert result["spread_s"] >= 0.6 * 4 * 0.3, result
    assert result["first_s"] < 1.0, result


def test_the_websocket_path_is_not_retried_or_buffered(host):
    site = host.file("/etc/nginx/sites-available/pyweb-asgi.conf").content_string
    ws = site.split("location /ws")[1].split("}")[0]
    assert "proxy_set_header Upgrade $http_upgrade;" in ws
    assert "proxy_set_header Connection $pyweb_connection_upgrade;" in ws
    sse = site.split("location /sse")[1].split("}")[0]
    assert "proxy_buffering off;" in sse


def test_ten_reloads_under_load_lost_no_request(host):
    step = remote_json(host, "/root/granian-report.json")["steps"]["reload"]
    assert len(step["rounds"]) == 10
    for number, rounds in enumerate(step["rounds"]):
        for app in APPS:
            # Granian and Gunicorn keep the master and replace every worker
            assert rounds[app]["replaced"] and rounds[app]["same_main"], (number, app, rounds[app])
    for app in APPS:
        counted = step["load"][app]
        for method in ("get", "post"):
            assert counted[method]["complete"], (app, method, counted)
            assert counted[method]["requests"] > 200, (app, method, counted)
        # GETs: none lost (nginx retries a failed connection). POSTs, counted
        # apart: a Granian ASGI worker that stops on HUP lost 1 of ~5,000 in
        # one run (a 502, not retried); at most 2 in ten reloads are accepted
        # there, none elsewhere (docs/operations.md, Granian).
        allowed = 2 if app == "asgi" else 0
        assert counted["get"]["failed"] == 0 and counted["get"]["nginx_failed"]["other"] == 0, (app, counted)
        assert counted["post"]["failed"] <= allowed, (app, counted)


def test_an_option_change_restarts_granian_on_the_kept_socket_losing_nothing(host):
    restart = remote_json(host, "/root/granian-restart.json")
    assert restart["before"] != restart["after"]  # a new master
    assert "GRANIAN_HTTP1_HEADER_READ_TIMEOUT=20000" in host.file("/etc/pyweb/wsgi/granian.env").content_string
    for app in APPS:
        counted = restart["load"][app]
        for method in ("get", "post"):
            assert counted[method]["requests"] > 20, (app, method, counted)
            assert counted[method]["failed"] == 0, (app, method, counted)


def test_metrics_endpoint_only_where_asked_and_only_on_loopback(host):
    out = host.check_output("curl -s http://127.0.0.1:9090/metrics")
    assert "granian_" in out
    listening = host.check_output("ss -Hltn")
    assert "127.0.0.1:9090" in listening
    assert "0.0.0.0:9090" not in listening and "*:9090" not in listening
    assert "GRANIAN_METRICS" not in host.file("/etc/pyweb/asgi/granian.env").content_string


def test_access_log_goes_to_the_journal(host):
    def logged():
        out = host.check_output("journalctl -u pyweb-wsgi.granian.service --no-pager -o cat")
        return out.count('"GET /version HTTP/1.1" 200')

    before = logged()
    host.check_output("curl -s -o /dev/null -H 'Host: localhost' http://127.0.0.1/version")
    for _attempt in range(50):
        if logged() > before:
            break
        time.sleep(0.1)
    assert logged() == before + 1


def test_the_refused_changes_left_the_live_options(host):
    assert not host.file("/etc/pyweb/wsgi/granian.env.candidate").exists
    assert "BLOCKING_THREADS_IDLE_TIMEOUT" not in host.file("/etc/pyweb/wsgi/granian.env").content_string


@pytest.mark.parametrize("app", GRANIAN)
def test_granian_unit_exposure_at_most_2(host, app):
    assert_unit_exposure(host, APPS[app][1], 2.0)
