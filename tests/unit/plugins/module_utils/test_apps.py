"""app_layout: one description per app, every path derived once."""

from __future__ import annotations

import pytest

from ansible_collections.pyweb.stack.plugins.module_utils._apps import AppError, app_layout

SOURCE = {"type": "path", "path": "/src/demo"}


def app(**overrides):
    base = {"name": "demo", "module": "pyweb_demo.app:application", "source": SOURCE}
    base.update(overrides)
    return base


def test_defaults_and_derived_paths():
    (result,) = app_layout([app()])
    assert result["server"] == "gunicorn" and result["interface"] == "wsgi" and result["profile"] == "mixed"
    assert result["user"] == result["group"] == "pyweb-demo"
    assert result["code_dir"] == "/srv/pyweb/demo/app"
    assert result["venv"] == "/srv/pyweb/demo/venv"
    assert result["static_dir"] == "/srv/pyweb/demo/static"
    assert result["socket"] == "/run/pyweb/demo.sock"
    assert result["env_file"] == "/etc/pyweb/demo/env"
    assert result["service"] == "pyweb-demo"
    assert result["measure"] == {"name": "demo", "unit": "pyweb-demo.service"}
    assert result["domains"] == ["_"] and result["default_server"] is True
    assert result["host_name"] == "localhost"
    assert result["tls"]["enabled"] is False


def test_the_socket_follows_the_run_dir_for_every_consumer():
    (result,) = app_layout([app(name="shop_api")], run_dir="/run/web", web_group="nginx")
    assert result["socket"] == "/run/web/shop_api.sock"
    assert result["service"] == "pyweb-shop-api"
    assert result["web_group"] == "nginx"


def test_uwsgi_emperor_and_instances_paths():
    vassal, spread = app_layout(
        [app(server="uwsgi"), app(name="shop", server="uwsgi", uwsgi_mode="instances", domains=["shop.test"])],
        uwsgi_mode="emperor",
    )
    assert vassal["uwsgi_mode"] == "emperor" and vassal["socket"] == "/run/pyweb/demo.sock"
    assert vassal["stats_socket"] == "/run/pyweb/demo/stats.sock" and vassal["vassal"] == "demo.ini"
    assert vassal["service"] == "pyweb-demo" and vassal["measure"]["pattern"] == "^pyweb-demo uWSGI"
    # one pattern for systemd (%i) and for the nginx site
    assert spread["uwsgi_mode"] == "instances" and spread["socket"] == "/run/pyweb/shop@%i.sock"
    assert spread["stats_socket"] == "/run/pyweb/shop/stats@%i.sock" and spread["service"] == "pyweb-shop@"
    # the host-wide default applies to apps without their own uwsgi_mode
    (default,) = app_layout([app(server="uwsgi")], uwsgi_mode="instances")
    assert default["uwsgi_mode"] == "instances"
    (other,) = app_layout([app()], uwsgi_mode="instances")
    assert "uwsgi_mode" not in other and other["socket"] == "/run/pyweb/demo.sock"


def test_asgi_defaults():
    (result,) = app_layout([app(server="uvicorn")])
    assert (result["interface"], result["profile"]) == ("asgi", "async")


def test_tls_self_signed_and_given():
    (result,) = app_layout([app(tls={"self_signed": True}, domains=["a.example", "b.example"])])
    assert result["host_name"] == "a.example"
    assert result["tls"]["enabled"] and result["tls"]["certificate"] == "/etc/ssl/pyweb/demo.crt"
    (result,) = app_layout([app(tls={"certificate": "/c.pem", "key": "/k.pem"}, domains=["a.example"])])
    assert result["tls"]["certificate"] == "/c.pem"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"name": "Demo"}, r"pyweb_apps\[0\].name: 'Demo' is not a valid app name"),
        ({"colour": "red"}, r"pyweb_apps\[demo\].colour: unknown key"),
        ({"server": "apache"}, r"pyweb_apps\[demo\].server: must be one of gunicorn, uwsgi, granian, uvicorn"),
        ({"server": "uwsgi", "interface": "asgi"}, "uwsgi serves wsgi only"),
        ({"interface": "asgi"}, "set server: uvicorn"),
        ({"profile": "web"}, r"\.profile: must be one of cpu, io, mixed, async"),
        ({"module": "not a module"}, r"\.module: must be the app's import path"),
        ({"source": {"type": "svn"}}, r"\.source: must be a dict with type path, git or pip"),
        ({"source": {"type": "git"}}, r"\.source.repo: is required for a git source"),
        ({"domains": ["bad domain"]}, "is not a host name nginx can match"),
        ({"static_url": "static"}, r"\.static_url: must be a path starting and ending with '/'"),
        ({"media_url": "/static/"}, "must differ from static_url"),
        ({"client_max_body_size": "10 MB"}, r"\.client_max_body_size: must be a size like 10m"),
        ({"tls": {"enabled": True}}, r"\.tls: needs certificate and key"),
        ({"env": {"BAD-NAME": "x"}}, "is not an environment variable name"),
        ({"env": {"A": "two\nlines"}}, "must be a single-line value"),
        ({"static_source": "../etc"}, r"\.static_source: must be a path inside the app's code"),
        ({"server_settings": ["threads", 2]}, r"\.server_settings: must be a dict"),
        ({"health_path": "healthz"}, r"\.health_path: must be a path starting with '/'"),
        ({"uwsgi_mode": "instances"}, r"\.uwsgi_mode: only applies to server uwsgi \(this app's server is gunicorn\)"),
        ({"server": "uwsgi", "uwsgi_mode": "swarm"}, r"\.uwsgi_mode: must be one of emperor, instances, got 'swarm'"),
    ],
)
def test_bad_descriptions_name_the_app_and_key(overrides, message):
    with pytest.raises(AppError, match=message):
        app_layout([app(**overrides)])


def test_names_domains_and_default_servers_are_unique():
    with pytest.raises(AppError, match="'demo' is used twice"):
        app_layout([app(), app()])
    with pytest.raises(AppError, match=r"domain a\.example is served by both one and two"):
        app_layout([app(name="one", domains=["a.example"]), app(name="two", domains=["a.example"])])
    with pytest.raises(AppError, match="more than one default server"):
        app_layout([app(name="one"), app(name="two")])
    with pytest.raises(AppError, match="must be a list"):
        app_layout({"name": "demo"})
