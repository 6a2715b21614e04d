"""nginx -> N single-worker uWSGI instances of the demo app."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from pyweb_verify import (
    assert_no_request_lost,
    assert_unit_exposure,
    assert_uwsgi_slow_requests_end_with_their_worker,
    http,
    listen_backlog,
    uwsgi_stats,
)

SECRET = 's3cr$(HOME)@(/etc/hostname)%(x) "q" \\'
# 2 CPUs, mixed profile: (2 x 2) + 1 = 5 instances of 1 worker x 2 threads
INSTANCES = range(1, 6)


@pytest.mark.parametrize("i", INSTANCES)
def test_each_instance_has_its_socket(host, i):
    sock = host.file("/run/pyweb/demo@%d.sock" % i)
    assert sock.is_socket
    assert sock.mode == 0o660
    assert (sock.user, sock.group) == ("pyweb-demo", "www-data")
    assert host.service("pyweb-demo@%d.service" % i).is_running
    assert host.service("pyweb-demo@%d.socket" % i).is_enabled


def test_no_sixth_instance(host):
    assert not host.file("/run/pyweb/demo@6.sock").exists
    units = host.check_output("systemctl list-units --plain --no-legend 'pyweb-demo@*.service' | wc -l")
    assert int(units) == 5


def test_nginx_worker_can_connect_and_others_cannot(host):
    probe = "python3 -c 'import socket; socket.socket(socket.AF_UNIX).connect(\"/run/pyweb/demo@1.sock\")'"
    assert host.run("runuser -u www-data -- %s" % probe).rc == 0
    refused = host.run("runuser -u nobody -- %s" % probe)
    assert refused.rc != 0 and "Permission denied" in refused.stderr


def test_no_uwsgi_process_runs_as_root(host):
    rows = [row.split(None, 2) for row in host.check_output("ps -eo user:32,pid,args --no-headers").splitlines()]
    uwsgi = [r for r in rows if "uwsgi" in r[2].lower() and "ps -eo" not in r[2]]
    assert len(uwsgi) >= 10  # a master and a worker per instance
    assert {r[0] for r in uwsgi} == {"pyweb-demo"}, uwsgi


@pytest.mark.parametrize("i", INSTANCES)
def test_stats_server_shows_one_worker_per_instance(host, i):
    stats = uwsgi_stats(host, "/run/pyweb/demo/stats@%d.sock" % i)
    assert len(stats["workers"]) == 1
    worker = stats["workers"][0]
    assert worker["pid"] > 0 and worker["accepting"] == 1 and len(worker["cores"]) == 2
    assert stats["uid"] == int(host.check_output("id -u pyweb-demo"))


def test_nginx_balances_over_every_instance(host):
    site = host.file("/etc/nginx/sites-available/pyweb-demo.conf").content_string
    peers = re.findall(r"server unix:(\S+) max_fails=1", site)
    assert peers == ["/run/pyweb/demo@%d.sock" % i for i in INSTANCES]
    assert "keepalive" not in site.split("upstream", 1)[1].split("}", 1)[0]
    pids = {json.loads(http(host, "http://127.0.0.1/whoami")[2])["pid"] for _request in range(40)}
    assert len(pids) == 5


def test_units_run_unprivileged_and_hardened(host):
    unit = host.file("/etc/systemd/system/pyweb-demo@.service").content_string
    for directive in ("User=pyweb-demo", "KillSignal=SIGINT", "CapabilityBoundingSet=\n", "ProtectSystem=strict", "Type=notify"):
        assert directive in unit
    socket_unit = host.file("/etc/systemd/system/pyweb-demo@.socket").content_string
    assert "ListenStream=/run/pyweb/demo@%i.sock" in socket_unit and "SocketMode=0660" in socket_unit


@pytest.mark.parametrize("path", ["/", "/io?ms=5", "/cpu?n=1000", "/healthz", "/whoami"])
def test_every_endpoint_answers_through_nginx(host, path):
    status, headers, _body = http(host, "http://127.0.0.1" + path)
    assert status == 200 and headers["x-pyweb-app"] == "demo"


def test_environment_arrives_verbatim(host):
    who = json.loads(http(host, "http://127.0.0.1/whoami", headers=["X-Forwarded-Proto: https"])[2])
    assert who["secret_sha256"] == hashlib.sha256(SECRET.encode()).hexdigest()
    assert who["forwarded_proto"] == "http"


def test_static_is_served_by_nginx_from_disk(host):
    status, headers, body = http(host, "http://127.0.0.1/static/hello.txt")
    assert status == 200 and "x-pyweb-app" not in headers
    assert body.strip() == "static file served by nginx from disk"


def test_rolling_reload_kept_each_master_and_replaced_each_worker(host):
    before = json.loads(host.file("/root/instances-before.json").content_string)
    after = json.loads(host.file("/root/instances-after.json").content_string)
    assert len(before) == len(after) == 5
    for old, new in zip(before, after):
        assert old["pid"] == new["pid"]
        assert old["running_pids"] and not set(old["running_pids"]) & set(new["running_pids"])


def test_rolling_reload_under_load_lost_no_request(host):
    assert_no_request_lost(host, "/root/wrk-reload.txt")


def test_listen_above_somaxconn_was_clamped_before_uwsgi(host):
    somaxconn = int(host.file("/root/somaxconn.txt").content_string)
    ini = host.file("/etc/pyweb/demo/uwsgi.ini").content_string
    assert "\nlisten = %d\n" % somaxconn in ini
    # systemd's socket carries the same queue
    assert listen_backlog(host, "/run/pyweb/demo@1.sock") == somaxconn


def test_single_worker_instances_are_not_recycled_by_request_count(host):
    ini = host.file("/etc/pyweb/demo/uwsgi.ini").content_string
    assert "\nmax-requests" not in ini
    assert "\nreload-on-rss = " in ini and "\nlog-slow = 2000\n" in ini


@pytest.mark.parametrize("i", INSTANCES)
def test_instance_unit_exposure_at_most_2(host, i):
    assert_unit_exposure(host, "pyweb-demo@%d.service" % i, 2.0)


def test_slow_requests_answered_504_and_ended_under_load(host):
    assert_uwsgi_slow_requests_end_with_their_worker(host, "uwsgi_instances", "/etc/pyweb/demo/uwsgi.ini")
