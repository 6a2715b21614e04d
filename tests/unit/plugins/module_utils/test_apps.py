"""app_layout: one description per app, every path derived once."""

from __future__ import annotations

import os

import pytest

from ansible_collections.pyweb.stack.plugins.module_utils._apps import (
    DEPLOYABLE_SERVERS,
    KNOWN_KEYS,
    AppError,
    absent_apps,
    app_layout,
)

SOURCE = {"type": "path", "path": "/src/demo"}


def app(**overrides):
    base = {"name": "demo", "module": "pyweb_demo.app:application", "source": SOURCE}
    base.update(overrides)
    return base


def test_defaults_and_derived_paths():
    (result,) = app_layout([app()])
    assert result["server"] == "gunicorn" and result["interface"] == "wsgi" and result["profile"] == "mixed"
    assert result["user"] == result["group"] == "pyweb-demo"
    # the live release, through one symlink: code, virtualenv and static files
    assert result["current"] == "/srv/pyweb/demo/current"
    assert result["releases_dir"] == "/srv/pyweb/demo/releases"
    assert result["venvs_dir"] == "/srv/pyweb/demo/venvs"
    assert result["code_dir"] == "/srv/pyweb/demo/current/app"
    assert result["venv"] == "/srv/pyweb/demo/current/.venv"
    assert result["static_dir"] == "/srv/pyweb/demo/current/static"
    assert result["media_dir"] == "/srv/pyweb/demo/media"
    assert result["keep_releases"] is None
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
    # its own socket: an app switching from Gunicorn starts here beside it
    assert vassal["uwsgi_mode"] == "emperor" and vassal["socket"] == "/run/pyweb/demo-uwsgi.sock"
    assert vassal["stats_socket"] == "/run/pyweb/demo/stats.sock"
    assert vassal["vassal"] == "/etc/pyweb/uwsgi/vassals/demo.ini" and vassal["runtime"] == "uwsgi_emperor"
    assert vassal["service"] == "pyweb-demo" and vassal["measure"]["pattern"] == "^pyweb-demo uWSGI"
    # one pattern for systemd (%i) and for the nginx site
    assert spread["uwsgi_mode"] == "instances" and spread["socket"] == "/run/pyweb/shop@%i.sock"
    assert spread["stats_socket"] == "/run/pyweb/shop/stats@%i.sock" and spread["service"] == "pyweb-shop@"
    assert spread["runtime"] == "uwsgi_instances"
    # the host-wide default applies to apps without their own uwsgi_mode
    (default,) = app_layout([app(server="uwsgi")], uwsgi_mode="instances")
    assert default["uwsgi_mode"] == "instances"
    (other,) = app_layout([app()], uwsgi_mode="instances")
    assert "uwsgi_mode" not in other and other["socket"] == "/run/pyweb/demo.sock" and other["runtime"] == "gunicorn"


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
        ({"server": "apache"}, r"pyweb_apps\[demo\].server: must be one of gunicorn, uvicorn, uwsgi, granian, got 'apache'"),
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
        ({"server_settings": {"keepalive": 4, "workers": 50}}, r"\.server_settings\.workers: set by the sizing engine"),
        ({"server": "uwsgi", "server_settings": {"processes": 9}}, r"\.server_settings\.processes: set by the sizing engine"),
        ({"server": "uwsgi", "server_settings": {"harakiri": 5}}, r"\.server_settings\.harakiri: set by the sizing.*timeout"),
        ({"server_settings": {"keepalive": "many"}}, r"\.keepalive: Gunicorn wants a whole number >= 0, got 'many'"),
        ({"server_settings": {"max_requests": -1}}, r"\.server_settings\.max_requests: Gunicorn wants a whole number >= 0"),
        ({"server": "uvicorn", "interface": "asgi", "server_settings": {"bind": ":8000"}}, r"\.bind: set by pyweb"),
        ({"server_settings": {"daemon": True}}, r"\.server_settings\.daemon: set by pyweb\.stack: systemd runs"),
        ({"health_path": "healthz"}, r"\.health_path: must be a path starting with '/'"),
        ({"static_dir": "static"}, r"\.static_dir: must be an absolute path, got 'static'"),
        ({"media_dir": "/srv/../etc"}, r"\.media_dir: must be an absolute path"),
        ({"static_hashed": "yes"}, r"\.static_hashed: must be true or false, got 'yes'"),
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


# --- issue 9: real apps on the first try


def test_empty_domains_are_refused_by_name():
    with pytest.raises(AppError) as info:
        app_layout([app(domains=[])])
    assert str(info.value) == ("pyweb_apps[demo].domains: must list at least one host name (or '_' for the default server)")


def test_django_is_filled_in_or_empty():
    (plain,) = app_layout([app()])
    assert plain["django"] == {}
    (django,) = app_layout([app(django={"settings": "mysite.settings"})])
    assert django["django"] == {"settings": "mysite.settings", "collectstatic": True, "migrate": False}
    (django,) = app_layout([app(django={"settings": "settings", "collectstatic": False, "migrate": True})])
    assert django["django"] == {"settings": "settings", "collectstatic": False, "migrate": True}


@pytest.mark.parametrize(
    "django, message",
    [
        (
            {"settings": "mysite.settings", "colectstatic": True},
            r"^pyweb_apps\[demo\]\.django\.colectstatic: unknown key \(known: collectstatic, migrate, settings\)$",
        ),
        ({"collectstatic": True}, r"^pyweb_apps\[demo\]\.django\.settings: is required when django is given"),
        ({}, r"^pyweb_apps\[demo\]\.django\.settings: is required when django is given"),
        ({"settings": "my site/settings.py"}, r"^pyweb_apps\[demo\]\.django\.settings: must be a dotted module path"),
        ({"settings": 3}, r"^pyweb_apps\[demo\]\.django\.settings: must be a dotted module path"),
        (
            {"settings": "mysite.settings", "collectstatic": "no"},
            r"^pyweb_apps\[demo\]\.django\.collectstatic: must be true or false, got 'no'",
        ),
        ({"settings": "mysite.settings", "migrate": 1}, r"^pyweb_apps\[demo\]\.django\.migrate: must be true or false, got 1"),
        ("mysite.settings", r"^pyweb_apps\[demo\]\.django: must be a dict \(collectstatic, migrate, settings\)"),
    ],
)
def test_django_keys_are_checked(django, message):
    with pytest.raises(AppError, match=message):
        app_layout([app(django=django)])


def test_state_dir_is_per_app_and_follows_the_keyword():
    (result,) = app_layout([app()])
    assert result["state_dir"] == "/var/lib/pyweb/demo"
    (result,) = app_layout([app(name="shop")], state_dir="/data/state/")
    assert result["state_dir"] == "/data/state/shop"


def test_static_hashed_defaults_to_false():
    (result,) = app_layout([app()])
    assert result["static_hashed"] is False
    (result,) = app_layout([app(static_hashed=True)])
    assert result["static_hashed"] is True


def test_health_status_limit_depends_on_whether_the_path_was_named():
    (default,) = app_layout([app()])
    assert (default["health_path"], default["health_max_status"]) == ("/", 499)
    (named,) = app_layout([app(health_path="/healthz")])
    assert (named["health_path"], named["health_max_status"]) == ("/healthz", 399)
    # naming "/" explicitly asks for a real answer there
    (root,) = app_layout([app(health_path="/")])
    assert root["health_max_status"] == 399


def test_without_framework_answers_nothing_is_recorded():
    (result,) = app_layout([app()])
    assert result["framework"] == {}
    (result,) = app_layout([app()], framework={"demo": {}, "other": {"static_dir": "/x"}})
    assert result["framework"] == {}
    assert result["static_dir"] == "/srv/pyweb/demo/current/static"


def test_framework_answers_replace_the_derived_values():
    answers = {
        "static_dir": "/srv/pyweb/demo/app/staticfiles/",
        "static_url": "assets/",
        "media_dir": None,
        "media_url": "",
        "static_hashed": True,
    }
    (result,) = app_layout([app()], framework={"demo": answers})
    assert result["static_dir"] == "/srv/pyweb/demo/app/staticfiles"
    assert result["static_url"] == "/assets/"
    assert result["media_dir"] == "/srv/pyweb/demo/media" and result["media_url"] == "/media/"
    assert result["static_hashed"] is True
    assert result["framework"] == {
        "static_dir": "/srv/pyweb/demo/app/staticfiles",
        "static_url": "/assets/",
        "static_hashed": True,
    }


def test_framework_absolute_url_keeps_the_derived_one_and_records_it():
    answers = {"static_url": "https://cdn.example.com/static/", "media_url": "/uploads"}
    (result,) = app_layout([app()], framework={"demo": answers})
    assert result["static_url"] == "/static/"
    assert result["media_url"] == "/uploads/"
    assert result["framework"] == {"static_url": "https://cdn.example.com/static/", "media_url": "/uploads/"}


def test_framework_false_is_an_answer():
    (result,) = app_layout([app(static_hashed=True)], framework={"demo": {"static_hashed": False}})
    assert result["static_hashed"] is False and result["framework"] == {"static_hashed": False}


def test_framework_agreeing_with_an_explicit_dir_is_fine():
    (result,) = app_layout([app(static_dir="/var/www/demo/")], framework={"demo": {"static_dir": "/var/www/demo"}})
    assert result["static_dir"] == "/var/www/demo"


def test_framework_contradicting_an_explicit_dir_names_both_paths():
    with pytest.raises(AppError) as info:
        app_layout([app(static_dir="/a")], framework={"demo": {"static_dir": "/b"}})
    assert str(info.value) == (
        "pyweb_apps[demo].static_dir: /a, but Django's STATIC_ROOT is /b; remove static_dir or make them agree"
    )
    with pytest.raises(AppError, match=r"^pyweb_apps\[demo\]\.media_dir: /m, but Django's MEDIA_ROOT is /n;"):
        app_layout([app(media_dir="/m")], framework={"demo": {"media_dir": "/n"}})


@pytest.mark.parametrize(
    "framework, message",
    [
        ({"demo": {"static_root": "/x"}}, r"^framework\[demo\]\.static_root: unknown key \(known: media_dir, media_url"),
        ({"demo": "/x"}, r"^framework\[demo\]: must be a dict"),
        (["demo"], r"^framework must be a dict"),
        ({"demo": {"static_dir": "staticfiles"}}, r"\.static_dir: Django's STATIC_ROOT is 'staticfiles', not an absolute path"),
        ({"demo": {"static_url": "/a b/"}}, r"\.static_url: Django's STATIC_URL is '/a b/': not a URL path nginx can serve"),
        ({"demo": {"static_hashed": "yes"}}, r"\.static_hashed: the framework's answer must be true or false"),
        ({"demo": {"static_url": "media/"}}, r"\.media_url: must differ from static_url"),
    ],
)
def test_bad_framework_answers_are_refused(framework, message):
    with pytest.raises(AppError, match=message):
        app_layout([app()], framework=framework)


def test_every_output_key_is_documented():
    doc = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "docs", "app_layout.md")
    with open(doc) as handle:
        text = handle.read()
    (result,) = app_layout([app(server="uwsgi")])
    for key in sorted(set(result) | KNOWN_KEYS):
        assert "| `%s` |" % key in text, key


def test_absent_apps_leave_the_layout_with_their_name_and_purge():
    (present,) = app_layout([app(), {"name": "old", "state": "absent", "purge": True}, {"name": "gone", "state": "absent"}])
    assert present["name"] == "demo"
    assert absent_apps([app(), {"name": "old", "state": "absent", "purge": True}, {"name": "gone", "state": "absent"}]) == [
        {"name": "old", "purge": True},
        {"name": "gone", "purge": False},
    ]


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"state": "gone"}, "pyweb_apps[demo].state: must be present or absent, got 'gone'"),
        ({"purge": True}, "pyweb_apps[demo].purge: only with state: absent"),
    ],
)
def test_state_and_purge_are_checked(raw, message):
    with pytest.raises(AppError) as error:
        app_layout([app(**raw)])
    assert message in str(error.value)


def test_an_absent_app_still_takes_its_name():
    with pytest.raises(AppError, match="used twice"):
        app_layout([app(), {"name": "demo", "state": "absent"}])
    with pytest.raises(AppError, match="purge: must be true or false"):
        app_layout([{"name": "old", "state": "absent", "purge": "yes"}])


def test_keep_releases_is_at_least_two():
    (result,) = app_layout([app(keep_releases=3)])
    assert result["keep_releases"] == 3
    for bad in (1, 0, "5", True, 2.5):
        with pytest.raises(AppError, match=r"pyweb_apps\[demo\]\.keep_releases: must be a whole number of at least 2"):
            app_layout([app(keep_releases=bad)])


def test_granian_serves_every_interface_and_others_only_theirs():
    for interface in ("wsgi", "asgi", "rsgi"):
        (result,) = app_layout([app(server="granian", interface=interface)])
        assert result["interface"] == interface
    (result,) = app_layout([app(server="granian")])
    assert result["interface"] == "wsgi" and result["profile"] == "mixed"
    with pytest.raises(AppError, match=r"pyweb_apps\[demo\].interface: uvicorn serves asgi, not rsgi"):
        app_layout([app(server="uvicorn", interface="rsgi")])
    with pytest.raises(AppError, match=r"pyweb_apps\[demo\].interface: uwsgi serves wsgi only; use uvicorn or granian for rsgi"):
        app_layout([app(server="uwsgi", interface="rsgi")])
    for server in DEPLOYABLE_SERVERS:
        (result,) = app_layout([app(server=server)])
        assert result["server"] == server


def test_long_lived_paths_default_to_none():
    (result,) = app_layout([app()])
    assert result["websocket_paths"] == [] and result["streaming_paths"] == [] and result["stream_timeout"] == 3600


def test_websocket_and_streaming_paths_are_kept_as_nginx_prefixes():
    (result,) = app_layout(
        [app(server="uvicorn", websocket_paths="/ws", streaming_paths=["/events/", "/export/", "/events/"], stream_timeout=600)]
    )
    # one string is a list of one; a path named twice gets one location
    assert result["websocket_paths"] == ["/ws"]
    assert result["streaming_paths"] == ["/events/", "/export/"]
    assert result["stream_timeout"] == 600
    for interface in ("asgi", "rsgi"):
        (result,) = app_layout([app(server="granian", interface=interface, websocket_paths=["/cable/"])])
        assert result["websocket_paths"] == ["/cable/"]
    # streaming is for every server: a WSGI app streams a response too
    for server in ("gunicorn", "uwsgi", "granian"):
        (result,) = app_layout([app(server=server, streaming_paths=["/download/"], stream_timeout=86400)])
        assert result["streaming_paths"] == ["/download/"] and result["stream_timeout"] == 86400


@pytest.mark.parametrize(
    "raw, message",
    [
        (
            {"websocket_paths": ["/ws/"]},
            "pyweb_apps[demo].websocket_paths: the app's interface is wsgi, which cannot carry a WebSocket",
        ),
        (
            {"server": "granian", "interface": "wsgi", "websocket_paths": ["/ws/"]},
            "pyweb_apps[demo].websocket_paths: the app's interface is wsgi",
        ),
        ({"server": "uvicorn", "websocket_paths": ["ws/"]}, "pyweb_apps[demo].websocket_paths: 'ws/' is not a URL path prefix"),
        ({"streaming_paths": ["/a b/"]}, "pyweb_apps[demo].streaming_paths: '/a b/' is not a URL path prefix"),
        ({"streaming_paths": ["/x;return 200;"]}, "streaming_paths: '/x;return 200;' is not a URL path prefix"),
        ({"streaming_paths": ["/x{"]}, "streaming_paths: '/x{' is not a URL path prefix"),
        ({"streaming_paths": ['/"x"']}, "streaming_paths: '/\"x\"' is not a URL path prefix"),
        ({"streaming_paths": ["/static/../etc/"]}, "streaming_paths: '/static/../etc/' is not a URL path prefix"),
        ({"streaming_paths": ["/a//b/"]}, "streaming_paths: '/a//b/' is not a URL path prefix"),
        ({"streaming_paths": ["/caf%C3%A9/"]}, "streaming_paths: '/caf%C3%A9/' is not a URL path prefix"),
        ({"streaming_paths": ["/$uri"]}, "streaming_paths: '/$uri' is not a URL path prefix"),
        ({"streaming_paths": ["/"]}, "pyweb_apps[demo].streaming_paths: '/' is the whole site (location /)"),
        ({"streaming_paths": [""]}, "pyweb_apps[demo].streaming_paths: must be a list of non-empty strings"),
        ({"streaming_paths": {"/events/": True}}, "pyweb_apps[demo].streaming_paths: must be a list of non-empty strings"),
        (
            {"server": "uvicorn", "websocket_paths": ["/live/"], "streaming_paths": ["/live/"]},
            "pyweb_apps[demo].streaming_paths: /live/ is in websocket_paths too; a path is one or the other",
        ),
        ({"streaming_paths": ["/static/"]}, "pyweb_apps[demo].streaming_paths: /static/ is the app's static_url"),
        (
            {"server": "uvicorn", "media_url": "/files/", "websocket_paths": ["/files/"]},
            "pyweb_apps[demo].websocket_paths: /files/ is the app's media_url",
        ),
        ({"streaming_paths": ["/e/"], "stream_timeout": 0}, "pyweb_apps[demo].stream_timeout: must be a whole number of seconds"),
        (
            {"streaming_paths": ["/e/"], "stream_timeout": 86401},
            "stream_timeout: must be a whole number of seconds from 1 to 86400 ",
        ),
        ({"streaming_paths": ["/e/"], "stream_timeout": "600"}, "stream_timeout: must be a whole number of seconds"),
        ({"streaming_paths": ["/e/"], "stream_timeout": 60.5}, "stream_timeout: must be a whole number of seconds"),
        ({"streaming_paths": ["/e/"], "stream_timeout": True}, "stream_timeout: must be a whole number of seconds"),
        ({"stream_timeout": 600}, "pyweb_apps[demo].stream_timeout: only with websocket_paths or streaming_paths"),
        (
            {"server": "granian", "interface": "asgi", "websocket_paths": "/ws/", "server_settings": {"websockets": False}},
            "pyweb_apps[demo].websocket_paths: server_settings.websockets is false: Granian would refuse every upgrade",
        ),
    ],
)
def test_bad_long_lived_paths_are_refused_naming_the_app_and_the_key(raw, message):
    with pytest.raises(AppError) as error:
        app_layout([app(**raw)])
    assert message in str(error.value)


def test_a_long_lived_path_may_not_be_the_static_url_the_framework_answered():
    with pytest.raises(AppError, match=r"pyweb_apps\[demo\]\.streaming_paths: /assets/ is the app's static_url"):
        app_layout([app(streaming_paths=["/assets/"])], framework={"demo": {"static_url": "assets"}})
    # a CDN's absolute URL leaves the local path free
    (result,) = app_layout(
        [app(streaming_paths=["/static/"], static_url="/s/")], framework={"demo": {"static_url": "https://cdn.test/static/"}}
    )
    assert result["streaming_paths"] == ["/static/"]
