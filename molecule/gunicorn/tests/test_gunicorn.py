"""nginx -> Gunicorn -> demo app, deployed by playbooks/site.yml."""

from __future__ import annotations

import json

import pytest
from pyweb_verify import assert_no_request_lost, http

SOCKET = "/run/pyweb/demo.sock"
USER = "pyweb-demo"


def test_socket_path_type_mode_owner(host):
    sock = host.file(SOCKET)
    assert sock.is_socket
    assert sock.mode == 0o660
    assert sock.user == USER
    assert sock.group == "www-data"


def test_nginx_worker_user_can_connect(host):
    status, headers, _body = http(host, "http://localhost/healthz", unix_socket=SOCKET, as_user="www-data")
    assert status == 200
    assert headers["x-pyweb-app"] == "demo"


def test_other_users_cannot_connect(host):
    result = host.run("runuser -u nobody -- curl --silent --unix-socket %s http://localhost/healthz", SOCKET)
    assert result.rc != 0


def test_app_user_has_no_login_shell(host):
    assert host.user(USER).shell == "/usr/sbin/nologin"


def test_gunicorn_never_runs_as_root(host):
    rows = host.check_output("ps -eo user:32,args --no-headers | grep '[b]in/gunicorn'").splitlines()
    assert len(rows) >= 4  # a master and workers per app
    users = {row.split()[0] for row in rows}
    assert users == {USER, "pyweb-shop"}, rows


def test_workers_match_the_sizing(host):
    conf = host.file("/etc/pyweb/demo/gunicorn.conf.py").content_string
    workers = int(conf.split("\nworkers = ", 1)[1].split()[0])
    master = host.check_output("systemctl show -p MainPID --value pyweb-demo.service")
    children = host.check_output("pgrep -P %s | wc -l", master)
    assert int(children) == workers
    # 2 CPUs, shared half and half with the shop app: mixed -> (2 x 1) + 1
    assert workers == 3
    assert "\nthreads = 2\n" in conf and '\nworker_class = "gthread"\n' in conf


def test_units_carry_hardening(host):
    unit = host.file("/etc/systemd/system/pyweb-demo.service").content_string
    for directive in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "CapabilityBoundingSet=\n", "Type=notify"):
        assert directive in unit
    assert "MemoryDenyWriteExecute" not in unit  # opt-in


def test_environment_file_is_private(host):
    env = host.file("/etc/pyweb/demo/env")
    assert (env.user, env.group, env.mode) == ("root", "root", 0o600)
    assert 'DEMO_SECRET="not-in-any-log"' in env.content_string


@pytest.mark.parametrize("path", ["/", "/io?ms=5", "/cpu?n=1000", "/healthz", "/whoami"])
def test_every_endpoint_answers_through_nginx(host, path):
    status, headers, _body = http(host, "http://127.0.0.1" + path)
    assert status == 200
    assert headers["x-pyweb-app"] == "demo"
    assert "server" in headers and headers["server"] == "nginx"  # server_tokens off: no version


def test_app_runs_as_its_user(host):
    _status, _headers, body = http(host, "http://127.0.0.1/whoami")
    uid = int(host.check_output("id -u %s", USER))
    assert json.loads(body)["uid"] == uid


def test_static_is_served_by_nginx_from_disk(host):
    status, headers, body = http(host, "http://127.0.0.1/static/hello.txt")
    assert status == 200
    assert body.strip() == "static file served by nginx from disk"
    # the app stamps every response; this one never reached Gunicorn
    assert "x-pyweb-app" not in headers
    assert headers["cache-control"] == "public, max-age=2592000, immutable"
    missing, headers, _body = http(host, "http://127.0.0.1/static/nope.txt")
    assert missing == 404 and "x-pyweb-app" not in headers


def test_gzip(host):
    _status, headers, _body = http(host, "http://127.0.0.1/static/lorem.txt", headers=["Accept-Encoding: gzip"], body=False)
    assert headers["content-encoding"] == "gzip"
    assert headers["vary"] == "Accept-Encoding"
    _status, headers, _body = http(host, "http://127.0.0.1/static/hello.txt", headers=["Accept-Encoding: gzip"], body=False)
    assert "content-encoding" not in headers  # below gzip_min_length


def test_reload_kept_the_master_and_replaced_the_workers(host):
    pids = json.loads(host.file("/root/reload-pids.json").content_string)
    master_before, workers_before = pids["before"][0], set(pids["before"][1].split())
    master_after, workers_after = pids["after"][0], set(pids["after"][1].split())
    assert master_before == master_after
    assert workers_before and workers_after
    assert not workers_before & workers_after
    assert "keepalive = 4" in host.file("/etc/pyweb/demo/gunicorn.conf.py").content_string


def test_reload_under_load_lost_no_request(host):
    assert_no_request_lost(host, "/root/wrk-reload.txt")


def test_second_app_side_by_side_with_its_own_user_and_socket(host):
    sock = host.file("/run/pyweb/shop.sock")
    assert sock.is_socket and sock.user == "pyweb-shop" and sock.group == "www-data"
    conf = host.file("/etc/pyweb/shop/gunicorn.conf.py").content_string
    # io profile on its half of the host (1 CPU): one process, 8 threads
    assert "\nworkers = 1\n" in conf and "\nthreads = 8\n" in conf
    assert "shop: weight 1 of 2" in conf


def test_tls_site_redirects_and_speaks_http2(host):
    status, headers, _body = http(host, "http://127.0.0.1/healthz", headers=["Host: shop.test"], body=False)
    assert status == 301
    assert headers["location"] == "https://shop.test/healthz"
    out = host.check_output(
        "curl --silent --insecure --http2 --resolve shop.test:443:127.0.0.1 -o /dev/null "
        "-w '%{http_code} %{http_version}' https://shop.test/healthz"
    )
    assert out == "200 2"
    key = host.file("/etc/ssl/pyweb/shop.key")
    assert (key.user, key.mode) == ("root", 0o600)


def test_default_site_stays_the_demo_app(host):
    _status, _headers, body = http(host, "http://127.0.0.1/", headers=["Host: unknown.test"])
    assert json.loads(body)["app"] == "demo"
