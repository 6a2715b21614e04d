"""nginx -> uWSGI emperor -> one vassal per app, deployed by playbooks/site.yml."""

from __future__ import annotations

import hashlib
import json

import pytest
from pyweb_verify import (
    assert_no_request_lost,
    assert_unit_exposure,
    assert_uwsgi_slow_requests_end_with_their_worker,
    http,
    listen_backlog,
    uwsgi_stats,
)

SOCKET = "/run/pyweb/demo-uwsgi.sock"
STATS = "/run/pyweb/demo/stats.sock"
SECRET = 's3cr$(HOME)@(/etc/hostname)%(x) "q" \\'


@pytest.mark.parametrize("app", ["demo", "shop"])
def test_socket_path_type_mode_owner(host, app):
    sock = host.file("/run/pyweb/%s-uwsgi.sock" % app)
    assert sock.is_socket
    assert sock.mode == 0o660
    assert (sock.user, sock.group) == ("pyweb-%s" % app, "www-data")


def test_nginx_worker_can_connect_and_others_cannot(host):
    ok = host.run("runuser -u www-data -- python3 -c 'import socket; socket.socket(socket.AF_UNIX).connect(\"%s\")'", SOCKET)
    assert ok.rc == 0, ok.stderr
    refused = host.run("runuser -u nobody -- python3 -c 'import socket; socket.socket(socket.AF_UNIX).connect(\"%s\")'", SOCKET)
    assert refused.rc != 0 and "Permission denied" in refused.stderr


def test_only_the_emperor_is_root_and_it_holds_only_what_it_needs(host):
    rows = [row.split(None, 2) for row in host.check_output("ps -eo user:32,pid,args --no-headers").splitlines()]
    emperor = [r for r in rows if "emperor.ini" in r[2]]
    vassals = [r for r in rows if "uWSGI" in r[2] and r[2].startswith(("pyweb-demo", "pyweb-shop"))]
    assert len(emperor) == 1 and emperor[0][0] == "root"
    # every master and worker of every app runs as its app's user, no capabilities left
    assert len(vassals) >= 4
    for user, pid, args in vassals:
        assert user == args.split()[0], (user, args)
        assert host.check_output("grep CapEff /proc/%s/status", pid).split()[1] == "0000000000000000"
    bounding = host.check_output("grep CapBnd /proc/%s/status", emperor[0][1]).split()[1]
    # CAP_KILL (5), CAP_SETGID (6), CAP_SETUID (7)
    assert int(bounding, 16) == (1 << 5) | (1 << 6) | (1 << 7)


def test_emperor_stats_list_one_vassal_per_app(host):
    stats = uwsgi_stats(host, "/run/pyweb/uwsgi-emperor.stats.sock")
    vassals = {v["id"].rsplit("/", 1)[-1]: v for v in stats["vassals"]}
    assert set(vassals) == {"demo.ini", "shop.ini"}
    # "ready" is only set by a vassal's first start; accepting and loyal follow reloads
    assert all(v["pid"] > 0 and v["accepting"] == 1 and v["loyal"] == 1 for v in vassals.values())


def test_stats_server_shows_the_sized_workers(host):
    ini = host.file("/etc/pyweb/uwsgi/vassals/demo.ini").content_string
    processes = int(ini.split("\nprocesses = ", 1)[1].split()[0])
    # 2 CPUs shared half and half with shop: mixed -> (2 x 1) + 1, 2 threads
    assert processes == 3 and "\nthreads = 2\n" in ini
    stats = uwsgi_stats(host, STATS)
    assert len(stats["workers"]) == processes
    assert all(w["pid"] > 0 and w["accepting"] == 1 for w in stats["workers"])
    assert all(len(w["cores"]) == 2 for w in stats["workers"])
    shop = host.file("/etc/pyweb/uwsgi/vassals/shop.ini").content_string
    assert "\nprocesses = 1\n" in shop and "\nthreads = 8\n" in shop


def test_ini_is_tuned_from_the_sizing(host):
    ini = host.file("/etc/pyweb/uwsgi/vassals/demo.ini").content_string
    for line in (
        "strict = true", "master = true", "enable-threads = true", "thunder-lock = true", "need-app = true",
        "socket = /run/pyweb/demo-uwsgi.sock", "zerg = /run/pyweb/demo/zerg.sock", "uid = pyweb-demo",
        "die-on-term = true", "disable-logging = true", "log-4xx = true", "log-5xx = true", "harakiri-verbose = true",
        "max-requests = 1000", "max-requests-delta = 100", "buffer-size = 32768", "post-buffering = 65536",
        "stats = /run/pyweb/demo/stats.sock",
    ):  # fmt: skip
        assert "\n%s\n" % line in ini, line
    harakiri = int(ini.split("\nharakiri = ", 1)[1].split()[0])
    site = host.file("/etc/nginx/sites-available/pyweb-demo.conf").content_string
    read_timeout = int(site.split("uwsgi_read_timeout ", 1)[1].split("s;")[0])
    # nginx answers 504 at the app's timeout, harakiri ends the request after it
    assert read_timeout < harakiri
    assert "\n        uwsgi_next_upstream error;\n" in site
    assert int(site.split("uwsgi_next_upstream_timeout ", 1)[1].split("s;")[0]) < read_timeout
    assert "include uwsgi_params;" in site and "uwsgi_buffering on;" in site


@pytest.mark.parametrize("path", ["/", "/io?ms=5", "/cpu?n=1000", "/healthz", "/whoami"])
def test_every_endpoint_answers_through_nginx(host, path):
    status, headers, _body = http(host, "http://127.0.0.1" + path)
    assert status == 200
    assert headers["x-pyweb-app"] == "demo"


def test_app_runs_as_its_user_and_gets_its_environment_verbatim(host):
    _status, _headers, body = http(host, "http://127.0.0.1/whoami", headers=["X-Forwarded-Proto: https"])
    who = json.loads(body)
    assert who["uid"] == int(host.check_output("id -u pyweb-demo"))
    # nginx sets the scheme; the client's own header never reaches the app
    assert who["scheme"] == "http" and who["forwarded_proto"] == "http"
    assert who["secret_sha256"] == hashlib.sha256(SECRET.encode()).hexdigest()
    env = host.file("/etc/pyweb/demo/env")
    assert (env.user, env.group, env.mode) == ("root", "pyweb-demo", 0o640)


def test_second_vassal_serves_its_domain(host):
    _status, headers, body = http(host, "http://127.0.0.1/", headers=["Host: shop.test"])
    assert json.loads(body)["app"] == "shop" and headers["x-pyweb-app"] == "shop"


def test_static_is_served_by_nginx_from_disk(host):
    status, headers, body = http(host, "http://127.0.0.1/static/hello.txt")
    assert status == 200 and body.strip() == "static file served by nginx from disk"
    assert "x-pyweb-app" not in headers


def test_reload_replaced_demo_workers_only(host):
    saved = json.loads(host.file("/root/reload-stats.json").content_string)
    (demo_before, shop_before), (demo_after, shop_after) = saved["before"], saved["after"]
    assert demo_before["pid"] == demo_after["pid"]  # same master: a graceful reload
    assert demo_before["running_pids"] and not set(demo_before["running_pids"]) & set(demo_after["running_pids"])
    assert shop_before["pid"] == shop_after["pid"]
    assert shop_before["running_pids"] == shop_after["running_pids"]  # untouched
    chained = saved["chained"]
    assert chained["pid"] == demo_after["pid"]
    assert not set(demo_after["running_pids"]) & set(chained["running_pids"])


@pytest.mark.parametrize("report", ["/root/wrk-reload.txt", "/root/wrk-chain.txt"])
def test_reloads_under_load_lost_no_request(host, report):
    assert_no_request_lost(host, report)


@pytest.mark.parametrize("app", ["demo", "shop"])
def test_systemd_holds_each_socket_and_a_zerg_server_hands_it_over(host, app):
    for unit in ("pyweb-%s.uwsgi.socket" % app, "pyweb-%s.zerg.service" % app):
        assert host.service(unit).is_running and host.service(unit).is_enabled, unit
    # the zerg server runs as the app, with no workers
    args = host.check_output("ps -o user:32=,args= -p $(systemctl show -p MainPID --value pyweb-%s.zerg.service)", app)
    assert args.split()[0] == "pyweb-%s" % app and "--processes 0" in args and "--zerg-server" in args


@pytest.mark.parametrize("report", ["/root/wrk-emperor-get.txt", "/root/wrk-emperor-post.txt"])
def test_restarting_the_emperor_lost_no_request(host, report):
    """Two `systemctl restart` of the emperor under GET and POST load: the
    sockets stay with systemd, the vassals stop gracefully."""
    assert_no_request_lost(host, report)


def test_listen_above_somaxconn_was_clamped_before_uwsgi(host):
    somaxconn = int(host.file("/root/somaxconn.txt").content_string)
    ini = host.file("/etc/pyweb/uwsgi/vassals/demo.ini").content_string
    assert "\nlisten = %d\n" % somaxconn in ini
    assert "clamped to net.core.somaxconn" in ini
    assert listen_backlog(host, SOCKET) == somaxconn
    # and it still serves
    assert http(host, "http://127.0.0.1/healthz")[0] == 200


def test_emperor_unit_exposure(host):
    # 4.1 before the shared hardening block. Root with three capabilities: no
    # PrivateUsers=, @privileged stays allowed (the vassals change user).
    assert_unit_exposure(host, "pyweb-uwsgi-emperor.service", 2.3)
    # the zerg servers run as their app, like any app-server unit
    for app in ("demo", "shop"):
        assert_unit_exposure(host, "pyweb-%s.zerg.service" % app, 2.0)


def test_slow_requests_answered_504_and_ended_under_load(host):
    assert_uwsgi_slow_requests_end_with_their_worker(host, "uwsgi_emperor", "/etc/pyweb/uwsgi/vassals/demo.ini")
