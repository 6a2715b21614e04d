"""A stock Django project, a Flask app and a FastAPI app, deployed as docs/deploying-apps.md says."""

from __future__ import annotations

import itertools
import json
import re
import shlex

import pytest
from pyweb_verify import assert_no_request_lost, assert_slow_requests_end_in_time, http, remote_json
from scenario import app, group_vars

APPS = ("mysite", "flaskapp", "fastapiapp")
DOMAINS = {"mysite": "mysite.test", "flaskapp": "flask.test", "fastapiapp": "fastapi.test"}


def user(name):
    return "pyweb-" + name


def quote(argv):
    return " ".join(shlex.quote(str(part)) for part in argv)


def manage(host, *args):
    """pyweb-manage mysite ARGS, as a user of the guide would run it."""
    return host.check_output(quote(["pyweb-manage", "mysite", *args]))


def gunicorn_conf(host, name):
    conf = host.file("/etc/pyweb/%s/gunicorn.conf.py" % name).content_string
    values = {}
    for key in ("workers", "threads"):
        match = re.search(r"^%s = (.+)$" % key, conf, re.MULTILINE)
        values[key] = json.loads(match.group(1))
    # Gunicorn's own class by name, or pyweb's subclass imported from its tools
    named = re.search(r"^worker_class = (.+)$", conf, re.MULTILINE)
    imported = re.search(r"^from (\w+) import (\w+) as worker_class", conf, re.MULTILINE)
    values["worker_class"] = json.loads(named.group(1)) if named else "%s.%s" % imported.groups()
    return values


def env_file(host, name):
    values = {}
    for line in host.file("/etc/pyweb/%s/env" % name).content_string.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            values[key.strip()] = value.strip().strip('"')
    return values


# --- Django: admin, static files, migrations, superuser


def test_admin_login_with_csrf_through_nginx(host):
    jar = "/root/verify-cookies.txt"
    host.run("rm -f %s", jar)
    curl = ["curl", "--silent", "--show-error", "--max-time", "10", "--cookie", jar, "--cookie-jar", jar]
    curl += ["--header", "Host: mysite.test"]
    form = host.check_output(quote([*curl, "http://127.0.0.1/admin/login/?next=/admin/"]))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    assert "csrftoken" in host.file(jar).content_string
    answer = host.check_output(
        quote(
            [
                *curl,
                "--output",
                "/dev/null",
                "--write-out",
                "%{http_code} %header{location}",
                "--data-urlencode",
                "csrfmiddlewaretoken=" + token,
                "--data-urlencode",
                "username=admin",
                "--data-urlencode",
                "password=" + group_vars()["mysite_admin_password"],
                "--data-urlencode",
                "next=/admin/",
                "http://127.0.0.1/admin/login/?next=/admin/",
            ]
        )
    )
    assert answer == "302 /admin/"
    assert re.search(r"\tsessionid\t\S+", host.file(jar).content_string)
    index = host.run(quote([*curl, "--write-out", "\n%{http_code}", "http://127.0.0.1/admin/"]))
    body, _sep, status = index.stdout.rpartition("\n")
    assert status == "200"
    assert "<strong>admin</strong>" in body and "Site administration" in body


def test_admin_css_is_served_by_nginx_from_djangos_static_root(host):
    static_root = manage(host, "shell", "--verbosity", "0", "-c", "from django.conf import settings; print(settings.STATIC_ROOT)")
    static_root = static_root.splitlines()[-1].strip()
    on_disk = host.file(static_root + "/admin/css/base.css")
    assert on_disk.is_file
    status, headers, body = http(host, "http://127.0.0.1/static/admin/css/base.css", headers=["Host: mysite.test"])
    assert status == 200
    assert headers["content-type"].startswith("text/css")
    # nginx's answer from disk (byte ranges, its static Cache-Control), not Django's;
    # nginx's security headers are on static files too
    assert headers["accept-ranges"] == "bytes" and headers["cache-control"].startswith("public, max-age=")
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    assert body.strip() == on_disk.content_string.strip()


def test_debug_is_off_and_only_the_apps_domains_are_allowed(host):
    status, headers, body = http(host, "http://127.0.0.1/no-such-page/", headers=["Host: mysite.test"])
    assert status == 404
    assert "URLconf" not in body  # DEBUG's page names the URL patterns
    assert headers["x-frame-options"] == "DENY"  # Django answered
    sock = "/run/pyweb/mysite.sock"
    status, _headers, _body = http(host, "http://localhost/admin/login/", headers=["Host: evil.test"], unix_socket=sock)
    assert status == 400  # DisallowedHost


def test_migrations_applied_in_the_play(host):
    out = manage(host, "showmigrations")
    assert "[X] 0001_initial" in out
    assert "[ ]" not in out


def test_superuser_created_through_pyweb_manage(host):
    out = host.check_output(
        "runuser -u postgres -- psql -d mysite -tAc \"SELECT is_superuser, is_staff FROM auth_user WHERE username = 'admin'\""
    )
    assert out == "t|t"


def test_environment_of_the_django_site(host):
    env = env_file(host, "mysite")
    assert env["PYWEB_APP_NAME"] == "mysite"
    assert env["PYWEB_STATE_DIR"] == "/var/lib/pyweb/mysite"
    assert env["PYWEB_LOG_DIR"] == "/var/log/pyweb/mysite"
    assert env["DJANGO_SETTINGS_MODULE"] == "mysite.settings"
    assert env["STATIC_ROOT"] and env["MEDIA_ROOT"]
    assert env["ALLOWED_HOSTS"] == "mysite.test"
    assert env["PYWEB_RELEASE"]  # the side effect's change


# --- isolation between the apps


def test_each_app_has_its_own_user(host):
    uids = {name: host.user(user(name)).uid for name in APPS}
    assert len(set(uids.values())) == len(APPS)
    for name in APPS:
        assert host.user(user(name)).shell == "/usr/sbin/nologin"


@pytest.mark.parametrize("name", APPS)
def test_socket_and_environment_file_modes(host, name):
    sock = host.file("/run/pyweb/%s.sock" % name)
    assert sock.is_socket
    assert (sock.mode, sock.user, sock.group) == (0o660, user(name), "www-data")
    env = host.file("/etc/pyweb/%s/env" % name)
    # readable by the app itself (its master re-reads it on a reload), by no other
    assert (env.mode, env.user, env.group) == (0o640, "root", user(name))


@pytest.mark.parametrize(("reader", "owner"), list(itertools.permutations(APPS, 2)))
def test_one_app_cannot_read_anothers_env_or_code(host, reader, owner):
    assert host.run("runuser -u %s -- cat /etc/pyweb/%s/env", user(reader), owner).rc != 0
    assert host.run("runuser -u %s -- ls /srv/pyweb/%s/current/app/", user(reader), owner).rc != 0
    # its own code it can read
    assert host.run("runuser -u %s -- ls /srv/pyweb/%s/current/app/", user(owner), owner).rc == 0


@pytest.mark.parametrize("name", APPS)
def test_every_process_of_an_app_runs_as_its_user(host, name):
    master = host.check_output("systemctl show -p MainPID --value pyweb-%s.service", name)
    assert int(master) > 0
    users = host.check_output("ps -o user:32= --pid %s --ppid %s", master, master).split()
    assert len(users) >= 2  # a master and its workers
    assert set(users) == {user(name)}


@pytest.mark.parametrize("name", APPS)
def test_state_dir_is_the_apps_and_never_served(host, name):
    state = host.file("/var/lib/pyweb/%s" % name)
    assert state.is_directory and state.user == user(name)
    assert host.run("grep -rl /var/lib/pyweb /etc/nginx/").stdout == ""


# --- Flask and FastAPI


def test_flask_answers_as_its_user(host):
    status, headers, body = http(host, "http://127.0.0.1/", headers=["Host: flask.test"])
    assert status == 200 and headers["content-type"] == "application/json"
    answer = json.loads(body)
    assert answer["app"] == "flaskapp"
    assert answer["uid"] == host.user("pyweb-flaskapp").uid


def test_flask_wrote_the_posts_to_its_state_dir(host):
    orders = host.file("/var/lib/pyweb/flaskapp/orders.log")
    assert orders.user == "pyweb-flaskapp"
    assert orders.content_string.count("reload ") > 100


def test_fastapi_answers_json_through_uvicorn_workers(host):
    # Uvicorn's worker with pyweb's per-request limit and drain (pyweb_asgi.py, pyweb_uvicorn.py)
    assert gunicorn_conf(host, "fastapiapp")["worker_class"] == "pyweb_uvicorn.UvicornWorker"
    status, headers, body = http(host, "http://127.0.0.1/", headers=["Host: fastapi.test"])
    assert status == 200 and headers["content-type"] == "application/json"
    answer = json.loads(body)
    assert answer["app"] == "fastapiapp"
    assert answer["uid"] == host.user("pyweb-fastapiapp").uid


def test_the_same_fastapi_app_answers_through_granian(host):
    options = host.file("/etc/pyweb/fastgranian/granian.env").content_string
    assert "GRANIAN_INTERFACE=asgi" in options
    status, headers, body = http(host, "http://127.0.0.1/", headers=["Host: fastgranian.test"])
    assert status == 200 and headers["content-type"] == "application/json"
    answer = json.loads(body)
    assert answer["app"] == "fastgranian"
    assert answer["uid"] == host.user("pyweb-fastgranian").uid
    main = int(host.check_output("systemctl show -p MainPID --value pyweb-fastgranian.granian.service"))
    assert answer["pid"] in [int(pid) for pid in host.check_output("ps -o pid= --ppid %s", str(main)).split()]


# --- nginx


def test_unknown_host_gets_no_answer(host):
    result = host.run("curl --silent --max-time 5 --output /dev/null --header 'Host: unknown.test' http://127.0.0.1/")
    assert result.rc == 52  # empty reply: nginx closed the connection (444)


@pytest.mark.parametrize(("name", "request_line"), [("mysite", "GET /admin/ "), ("flaskapp", "POST /orders ")])
def test_per_app_access_logs(host, name, request_line):
    log = host.file("/var/log/nginx/pyweb-%s.access.log" % name)
    assert request_line in log.content_string


def test_gixy_finds_nothing_in_the_nginx_configuration(host):
    assert remote_json(host, "/root/gixy.json") == []


# --- under load


def test_postgresql_connections_under_load_stay_within_the_sizing(host):
    sampled = remote_json(host, "/root/pg-connections.json")
    conf = gunicorn_conf(host, "mysite")
    concurrency = conf["workers"] * conf["threads"]
    budget = app("mysite")["db_max_connections"]
    assert len(sampled["samples"]) >= 20
    assert 0 < sampled["max"] <= concurrency <= budget, (sampled, conf, budget)
    assert_no_request_lost(host, "/root/wrk-pg.txt")


def test_reload_under_load_answered_every_get(host):
    assert_no_request_lost(host, "/root/wrk-reload-get.txt")


def test_reload_happened_while_the_load_ran(host):
    report = remote_json(host, "/root/reload-report.json")
    start, end = report["load_started"], report["load_started"] + report["load_seconds"]
    for name in ("mysite", "flaskapp"):
        events = report["changes"][name]
        assert len(events) == 1, report  # one reload (or restart) per changed app
        assert start < events[0]["time"] < end, report
    before, after = set(report["mysite_workers"]["before"]), set(report["mysite_workers"]["after"])
    assert before and after and not before & after


# A changed environment reaches the new workers on a reload: gunicorn.conf.py
# reads the app's environment file (raw_env) each time the master loads it.
# Asked through the app itself: /proc/<pid>/environ shows only what a process
# was exec'd with, not what Gunicorn's master set before forking its workers.
def test_new_variable_reached_the_flask_app(host):
    _status, _headers, body = http(host, "http://127.0.0.1/", headers=["Host: flask.test"])
    assert json.loads(body)["release"] == env_file(host, "flaskapp")["PYWEB_RELEASE"]


def test_reload_posts_are_counted(host):
    # Not asserted to be zero lost: a retiring Gunicorn worker can drop a POST
    # (tracked on its own); the numbers are in the report and printed here.
    post = remote_json(host, "/root/reload-report.json")["post"]
    print("POSTs during the reload: %s" % post)
    assert post["requests"] > 100
    assert post["handled_by_app"] >= post["requests"] - post["non_2xx_3xx"]


def test_slow_requests_to_fastapi_answered_504_and_ended_under_load(host):
    # Uvicorn workers: the request is cancelled at 8 s (timeout 5 s + 3), its worker goes on
    report = assert_slow_requests_end_in_time(host, "uvicorn")
    assert all("over the 8s limit" in line and "the worker goes on" in line for line in report["kill_lines"]), report
    assert "WORKER TIMEOUT" not in " ".join(report["kill_lines"])
