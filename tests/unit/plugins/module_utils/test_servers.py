# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import json

import pytest

from ansible_collections.pyweb.stack.plugins.module_utils._retire import known_apps, plan
from ansible_collections.pyweb.stack.plugins.module_utils._servers import (
    RUNTIMES,
    artifacts,
    host_paths,
    paths,
    retirement,
    runtime_of,
)

DIRS = {"run_dir": "/run/pyweb", "config_dir": "/etc/pyweb"}
STACK = {"base": "/srv/pyweb", "run": "/run/pyweb", "config": "/etc/pyweb", "log": "/var/log/pyweb", "state": "/var/lib/pyweb"}


@pytest.mark.parametrize(
    "server, mode, runtime",
    [
        ("gunicorn", None, "gunicorn"),
        ("uvicorn", None, "gunicorn"),
        ("uwsgi", "emperor", "uwsgi_emperor"),
        ("uwsgi", "instances", "uwsgi_instances"),
    ],
)
def test_runtime_of(server, mode, runtime):
    assert runtime_of(server, mode) == runtime


def test_an_unknown_server_has_no_runtime():
    with pytest.raises(KeyError):
        runtime_of("hypercorn")


def test_granian_has_units_of_its_own():
    found = paths("granian", "my_shop", DIRS)
    assert found["service"] == "pyweb-my-shop.granian" and found["socket"] == "/run/pyweb/my_shop-granian.sock"
    assert runtime_of("granian") == "granian"
    gone = retirement("my_shop", DIRS, keep="gunicorn")
    assert gone["granian"]["units"] == ["pyweb-my-shop.granian.socket", "pyweb-my-shop.granian.service"]
    assert "/etc/pyweb/my_shop/granian.env" in gone["granian"]["files"]


def test_every_runtime_has_its_own_socket():
    sockets = [paths(runtime, "shop", DIRS)["socket"] for runtime in RUNTIMES]
    assert len(set(sockets)) == len(RUNTIMES)
    assert paths("gunicorn", "shop", DIRS)["socket"] == "/run/pyweb/shop.sock"


def test_instances_are_a_template():
    found = paths("uwsgi_instances", "my_shop", DIRS)
    assert found["service"] == "pyweb-my-shop@" and found["socket"] == "/run/pyweb/my_shop@%i.sock"
    assert found["measure"] == {"name": "my_shop", "pattern": "^pyweb-my-shop@[0-9]+ uWSGI"}


def test_retirement_keeps_what_the_kept_runtime_uses():
    gone = retirement("shop", DIRS, keep="uwsgi_instances")
    assert set(gone) == {"gunicorn", "uwsgi_emperor", "granian"}
    # both uWSGI modes use the candidate, reload files and tmpfiles entry
    assert "/etc/pyweb/shop/uwsgi.ini.candidate" not in gone["uwsgi_emperor"]["files"]
    assert gone["uwsgi_emperor"]["vassals"] == ["/etc/pyweb/uwsgi/vassals/shop.ini"]
    assert gone["uwsgi_emperor"]["dirs"] == []  # the private run dir stays for the instances' stats
    everything = retirement("shop", DIRS)
    assert "/etc/pyweb/shop/uwsgi.ini.candidate" in everything["uwsgi_emperor"]["files"]
    # sockets stop before services
    assert everything["gunicorn"]["units"] == ["pyweb-shop.socket", "pyweb-shop.service"]


def test_host_paths():
    assert host_paths(DIRS)["uwsgi_emperor"] == {
        "service": "pyweb-uwsgi-emperor",
        "ini": "/etc/pyweb/uwsgi/emperor.ini",
        "vassals": "/etc/pyweb/uwsgi/vassals",
        "stats": "/run/pyweb/uwsgi-emperor.stats.sock",
    }


def _touch(root, path, text=""):
    full = root / path.lstrip("/")
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_text(text)


def _deploy(root, runtime, name, manage=True):
    found = artifacts(runtime, name, DIRS)
    for path in found["unit_files"] + found["files"] + found["vassals"]:
        _touch(root, path)
    for path in found["sockets"]:
        _touch(root, path.replace("*", "1"))
    for unit in found["units"]:
        _touch(root, "/etc/systemd/system/multi-user.target.wants/" + unit.replace("*", "1"))
    if manage:
        _touch(root, "/etc/pyweb/manage.d/%s.json" % name, json.dumps({"name": name, "user": "pyweb-" + name}))


def test_a_switch_retires_the_old_runtime_only(tmp_path):
    _deploy(tmp_path, "gunicorn", "shop")
    _deploy(tmp_path, "uwsgi_emperor", "shop")
    todo = plan({"shop": "uwsgi_emperor"}, {}, STACK, root=str(tmp_path))
    (step,) = todo["steps"]
    assert step["runtime"] == "gunicorn" and step["reason"] == "now runs on uwsgi_emperor"
    assert step["units"] == ["pyweb-shop.socket", "pyweb-shop.service"]
    assert "/etc/systemd/system/pyweb-shop.service" in step["remove"] and "/run/pyweb/shop.sock" in step["remove"]
    assert not any("uwsgi" in path for path in step["remove"])
    assert todo["apps"] == [] and todo["host"] == []


def test_the_emperor_goes_with_its_last_vassal(tmp_path):
    _deploy(tmp_path, "uwsgi_emperor", "shop")
    _touch(tmp_path, "/etc/systemd/system/pyweb-uwsgi-emperor.service")
    _touch(tmp_path, "/etc/pyweb/uwsgi/emperor.ini")
    todo = plan({"shop": "uwsgi_instances"}, {}, STACK, root=str(tmp_path))
    (step,) = todo["steps"]
    assert step["vassals"] == ["/etc/pyweb/uwsgi/vassals/shop.ini"] and step["processes"] == "^pyweb-shop uWSGI"
    (host,) = todo["host"]
    assert host["units"] == ["pyweb-uwsgi-emperor.service"] and "/etc/pyweb/uwsgi/emperor.ini" in host["remove"]
    # an app still on the emperor keeps it
    assert plan({"shop": "uwsgi_emperor"}, {}, STACK, root=str(tmp_path))["host"] == []


def test_a_removed_app_loses_its_units_and_keeps_its_code_unless_purged(tmp_path):
    _deploy(tmp_path, "gunicorn", "old")
    _touch(tmp_path, "/srv/pyweb/old/app/main.py")
    todo = plan({}, {}, STACK, root=str(tmp_path))
    (step,) = todo["steps"]
    assert step["app"] == "old" and step["reason"] == "removed"
    (entry,) = todo["apps"]
    assert entry == {"app": "old", "purge": False, "remove": ["/etc/pyweb/manage.d/old.json"], "purge_dirs": [], "user": None}
    _touch(tmp_path, "/etc/passwd", "root:x:0:0::/root:/bin/sh\npyweb-old:x:999:999::/srv/pyweb/old:/usr/sbin/nologin\n")
    purged = plan({}, {"old": True}, STACK, root=str(tmp_path))["apps"][0]
    assert purged["purge_dirs"] == ["/srv/pyweb/old", "/etc/pyweb/old"] and purged["user"] == "pyweb-old"


def test_a_purged_app_leaves_nothing_to_do(tmp_path):
    _touch(tmp_path, "/etc/passwd", "root:x:0:0::/root:/bin/sh\n")
    assert plan({"keep": "gunicorn"}, {"demo": True}, STACK, root=str(tmp_path)) == {"steps": [], "apps": [], "host": []}


def test_nothing_to_do_on_a_clean_host(tmp_path):
    _deploy(tmp_path, "gunicorn", "shop")
    assert plan({"shop": "gunicorn"}, {}, STACK, root=str(tmp_path)) == {"steps": [], "apps": [], "host": []}
    assert known_apps("/etc/pyweb", str(tmp_path)) == {"shop": {"name": "shop", "user": "pyweb-shop"}}
