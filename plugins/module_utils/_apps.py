# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One description per app, everything else derived from it.

Private to pyweb.stack. ``app_layout`` validates ``pyweb_apps`` and fills in
every path and name the roles use, so the socket nginx proxies to and the
socket the app server binds come from the same place and are never typed
twice.
"""

from __future__ import annotations

import re

from ansible_collections.pyweb.stack.plugins.module_utils._sizing import APP_SIZING_KEYS, PROFILES, SERVERS, UWSGI_MODES

__all__ = ["AppError", "app_layout"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*(:[A-Za-z_][A-Za-z0-9_.()]*)?$")
_DOMAIN = re.compile(r"^(_|localhost|(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)$")
_URL_PREFIX = re.compile(r"^/[A-Za-z0-9_./-]*/$")
_SIZE = re.compile(r"^[0-9]+[kKmMgG]?$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

KNOWN_KEYS = {
    "name", "server", "interface", "module", "profile", "source", "domains", "static_url", "media_url",
    "static_dir", "media_dir", "client_max_body_size", "tls", "env", "django", "weight", "preload_app",
    "python_requirements", "health_path", "user", "default_server", "static_source", "server_settings",
} | set(APP_SIZING_KEYS)  # fmt: skip
_SOURCE_TYPES = {"path": ("path",), "git": ("repo",), "pip": ("requirement",)}


class AppError(ValueError):
    """A bad app description; the message names the app and the key."""


def _fail(app, key, message):
    raise AppError("pyweb_apps[%s].%s: %s" % (app, key, message))


def _str_list(app, key, value):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        _fail(app, key, "must be a list of non-empty strings, got %r" % (value,))
    return value


def _normalise(raw, index, base_dir, run_dir, config_dir, log_dir, web_group, uwsgi_mode):
    if not isinstance(raw, dict):
        raise AppError("pyweb_apps[%d]: must be a dict, got %r" % (index, raw))
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise AppError(
            "pyweb_apps[%d].name: %r is not a valid app name (lowercase letter first, then lowercase letters, "
            "digits or _, at most 31 characters)" % (index, name)
        )
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        _fail(name, unknown[0], "unknown key (known: %s)" % ", ".join(sorted(KNOWN_KEYS)))
    server = raw.get("server", "gunicorn")
    if server not in SERVERS:
        _fail(name, "server", "must be one of %s, got %r" % (", ".join(SERVERS), server))
    interface = raw.get("interface", "asgi" if server == "uvicorn" else "wsgi")
    if interface not in ("wsgi", "asgi"):
        _fail(name, "interface", "must be wsgi or asgi, got %r" % (interface,))
    if server == "uwsgi" and interface == "asgi":
        _fail(name, "interface", "uwsgi serves wsgi only; use granian or uvicorn for asgi")
    if "uwsgi_mode" in raw and server != "uwsgi":
        _fail(name, "uwsgi_mode", "only applies to server uwsgi (this app's server is %s)" % server)
    mode = raw.get("uwsgi_mode", uwsgi_mode)
    if server == "uwsgi" and mode not in UWSGI_MODES:
        _fail(name, "uwsgi_mode", "must be one of %s, got %r" % (", ".join(UWSGI_MODES), mode))
    if server == "gunicorn" and interface == "asgi":
        _fail(name, "interface", "gunicorn serves asgi through uvicorn workers: set server: uvicorn")
    profile = raw.get("profile", "async" if interface == "asgi" else "mixed")
    if profile not in PROFILES:
        _fail(name, "profile", "must be one of %s, got %r" % (", ".join(PROFILES), profile))
    module = raw.get("module")
    if not isinstance(module, str) or not _MODULE.match(module):
        _fail(name, "module", "must be the app's import path, like 'mysite.wsgi:application', got %r" % (module,))

    source = raw.get("source")
    if not isinstance(source, dict) or source.get("type") not in _SOURCE_TYPES:
        _fail(name, "source", "must be a dict with type path, git or pip, got %r" % (source,))
    for required in _SOURCE_TYPES[source["type"]]:
        if not isinstance(source.get(required), str) or not source[required]:
            _fail(name, "source." + required, "is required for a %s source" % source["type"])

    domains = _str_list(name, "domains", raw.get("domains", ["_"]))
    for domain in domains:
        if not _DOMAIN.match(domain):
            _fail(name, "domains", "%r is not a host name nginx can match" % domain)
    urls = {}
    for key, default in (("static_url", "/static/"), ("media_url", "/media/")):
        value = raw.get(key, default)
        if not isinstance(value, str) or not _URL_PREFIX.match(value) or ".." in value:
            _fail(name, key, "must be a path starting and ending with '/', got %r" % (value,))
        urls[key] = value
    if urls["static_url"] == urls["media_url"]:
        _fail(name, "media_url", "must differ from static_url")
    body = str(raw.get("client_max_body_size", "10m"))
    if not _SIZE.match(body):
        _fail(name, "client_max_body_size", "must be a size like 10m, got %r" % (body,))

    tls = raw.get("tls") or {}
    if not isinstance(tls, dict):
        _fail(name, "tls", "must be a dict, got %r" % (tls,))
    tls_enabled = bool(tls.get("enabled", bool(tls)))
    if tls_enabled and not tls.get("self_signed") and not (tls.get("certificate") and tls.get("key")):
        _fail(name, "tls", "needs certificate and key (paths on the host), or self_signed: true")

    env = raw.get("env") or {}
    if not isinstance(env, dict):
        _fail(name, "env", "must be a dict of environment variables")
    for key, value in env.items():
        if not isinstance(key, str) or not _ENV_KEY.match(key):
            _fail(name, "env", "%r is not an environment variable name" % (key,))
        if isinstance(value, (dict, list)) or "\n" in str(value):
            _fail(name, "env", "%s must be a single-line value" % key)

    django = raw.get("django") or {}
    if not isinstance(django, dict):
        _fail(name, "django", "must be a dict (settings, collectstatic)")
    requirements = _str_list(name, "python_requirements", raw.get("python_requirements", []))
    static_source = raw.get("static_source")
    if static_source is not None and (
        not isinstance(static_source, str) or static_source.startswith("/") or ".." in static_source.split("/")
    ):
        _fail(name, "static_source", "must be a path inside the app's code, like 'static', got %r" % (static_source,))
    server_settings = raw.get("server_settings") or {}
    if not isinstance(server_settings, dict) or not all(isinstance(k, str) and _ENV_KEY.match(k) for k in server_settings):
        _fail(name, "server_settings", "must be a dict of the app server's own setting names to values")
    health = raw.get("health_path", "/")
    if not isinstance(health, str) or not health.startswith("/"):
        _fail(name, "health_path", "must be a path starting with '/', got %r" % (health,))

    base = "%s/%s" % (base_dir.rstrip("/"), name)
    user = raw.get("user", "pyweb-" + name.replace("_", "-"))
    app = dict(raw)
    app.update(
        {
            "name": name,
            "server": server,
            "interface": interface,
            "profile": profile,
            "module": module,
            "source": source,
            "domains": domains,
            "default_server": bool(raw.get("default_server", "_" in domains)),
            # the name to ask for and to put in a certificate ("_" is no name)
            "host_name": domains[0] if domains[0] != "_" else "localhost",
            "static_url": urls["static_url"],
            "media_url": urls["media_url"],
            "client_max_body_size": body,
            "tls": {
                "enabled": tls_enabled,
                "self_signed": bool(tls.get("self_signed", False)),
                "certificate": tls.get("certificate") or ("/etc/ssl/pyweb/%s.crt" % name),
                "key": tls.get("key") or ("/etc/ssl/pyweb/%s.key" % name),
            },
            "env": {str(k): str(v) for k, v in env.items()},
            "django": django,
            "python_requirements": requirements,
            "health_path": health,
            "static_source": static_source,
            "server_settings": server_settings,
            "preload_app": bool(raw.get("preload_app", False)),
            "user": user,
            "group": user,
            "web_group": web_group,
            "base_dir": base,
            "code_dir": base + "/app",
            "venv": base + "/venv",
            "static_dir": raw.get("static_dir", base + "/static"),
            "media_dir": raw.get("media_dir", base + "/media"),
            "log_dir": "%s/%s" % (log_dir.rstrip("/"), name),
            "config_dir": "%s/%s" % (config_dir.rstrip("/"), name),
            "env_file": "%s/%s/env" % (config_dir.rstrip("/"), name),
            "socket": "%s/%s.sock" % (run_dir.rstrip("/"), name),
            "service": "pyweb-%s" % name.replace("_", "-"),
            # what capacity_facts' measure option takes to measure this app
            "measure": {"name": name, "unit": "pyweb-%s.service" % name.replace("_", "-")},
            "upstream": "pyweb_%s" % name,
        }
    )
    if server == "uwsgi":
        app.update(_uwsgi_paths(app, mode, run_dir))
    return app


def _uwsgi_paths(app, mode, run_dir):
    """Where a uWSGI app's sockets live; %i is the instance number.

    The same pattern is systemd's instance specifier in the socket unit and
    what the nginx site expands into one upstream peer per instance.
    """
    private = "%s/%s" % (run_dir.rstrip("/"), app["name"])
    paths = {
        "uwsgi_mode": mode,
        # stats sockets and the master FIFO: written by the app user
        "private_run_dir": private,
        "vassal": "%s.ini" % app["name"],
    }
    if mode == "instances":
        paths.update(
            {
                "socket": "%s/%s@%%i.sock" % (run_dir.rstrip("/"), app["name"]),
                "stats_socket": private + "/stats@%i.sock",
                "service": app["service"] + "@",
                "measure": {"name": app["name"], "pattern": "^%s@[0-9]+ uWSGI" % app["service"]},
            }
        )
    else:
        paths.update(
            {
                "stats_socket": private + "/stats.sock",
                "measure": {"name": app["name"], "pattern": "^%s uWSGI" % app["service"]},
            }
        )
    return paths


def app_layout(
    apps,
    base_dir="/srv/pyweb",
    run_dir="/run/pyweb",
    config_dir="/etc/pyweb",
    log_dir="/var/log/pyweb",
    web_group="www-data",
    uwsgi_mode="emperor",
):
    """Validate ``apps`` and return them with every derived path filled in."""
    if not isinstance(apps, list):
        raise AppError("pyweb_apps must be a list of app descriptions, got %s" % type(apps).__name__)
    result = []
    seen = {}
    for index, raw in enumerate(apps):
        app = _normalise(raw, index, base_dir, run_dir, config_dir, log_dir, web_group, uwsgi_mode)
        if app["name"] in seen:
            raise AppError("pyweb_apps[%d].name: %r is used twice" % (index, app["name"]))
        seen[app["name"]] = app
        result.append(app)
    defaults = [a["name"] for a in result if a["default_server"]]
    if len(defaults) > 1:
        raise AppError("pyweb_apps: more than one default server (domains '_' or default_server): %s" % ", ".join(defaults))
    owners = {}
    for app in result:
        for domain in app["domains"]:
            if domain != "_" and domain in owners:
                raise AppError("pyweb_apps: domain %s is served by both %s and %s" % (domain, owners[domain], app["name"]))
            owners[domain] = app["name"]
    return result
