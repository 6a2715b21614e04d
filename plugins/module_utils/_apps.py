# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One description per app, everything else derived from it.

Private to pyweb.stack. ``app_layout`` validates ``pyweb_apps`` and fills in
every path and name the roles use, so the socket nginx proxies to and the
socket the app server binds come from the same place and are never typed
twice.
"""

from __future__ import annotations

import posixpath
import re

from ansible_collections.pyweb.stack.plugins.module_utils._granian_settings import setting_problem as granian_problem
from ansible_collections.pyweb.stack.plugins.module_utils._gunicorn_settings import setting_problem
from ansible_collections.pyweb.stack.plugins.module_utils._nginx import NginxError, check_headers
from ansible_collections.pyweb.stack.plugins.module_utils._servers import paths as runtime_paths
from ansible_collections.pyweb.stack.plugins.module_utils._servers import runtime_of, service_name
from ansible_collections.pyweb.stack.plugins.module_utils._sizing import APP_SIZING_KEYS, PROFILES, UWSGI_MODES

__all__ = [
    "DEPLOYABLE_SERVERS",
    "DJANGO_KEYS",
    "FRAMEWORK_KEYS",
    "INTERFACES",
    "WEBSOCKET_INTERFACES",
    "AppError",
    "absent_apps",
    "app_layout",
]

# The servers a role deploys: an app may only name one that something will
# actually install and run.
DEPLOYABLE_SERVERS = ("gunicorn", "uvicorn", "uwsgi", "granian")
# The calling conventions each server speaks (rsgi: Granian's own).
INTERFACES = {"gunicorn": ("wsgi",), "uvicorn": ("asgi",), "uwsgi": ("wsgi",), "granian": ("wsgi", "asgi", "rsgi")}
# A health check asks the app. Where the user named the path, it must answer
# 2xx/3xx; the default "/" only has to prove the app is up (a stock Django
# project answers 404 there), so anything below 500 counts.
HEALTH_MAX_STATUS_GIVEN = 399
HEALTH_MAX_STATUS_DEFAULT = 499
DJANGO_KEYS = ("collectstatic", "migrate", "settings")
# What the framework on the host may answer, per app (see app_layout).
FRAMEWORK_KEYS = ("media_dir", "media_url", "static_dir", "static_hashed", "static_url")

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*(:[A-Za-z_][A-Za-z0-9_.()]*)?$")
_DOMAIN = re.compile(r"^(_|localhost|(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)$")
_URL_PREFIX = re.compile(r"^/[A-Za-z0-9_./-]*/$")
_SIZE = re.compile(r"^[0-9]+[kKmMgG]?$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
# An absolute URL (or a protocol-relative one): the files are served elsewhere.
_ABSOLUTE_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*:)?//")

KNOWN_KEYS = {
    "name", "server", "interface", "module", "profile", "source", "domains", "static_url", "media_url",
    "static_dir", "media_dir", "client_max_body_size", "tls", "env", "django", "weight", "preload_app",
    "python_requirements", "health_path", "user", "default_server", "static_source", "server_settings",
    "static_hashed", "state", "purge", "keep_releases", "headers", "websocket_paths", "streaming_paths",
    "stream_timeout",
} | set(APP_SIZING_KEYS)  # fmt: skip
TLS_KEYS = ("certificate", "enabled", "key", "self_signed")
_SOURCE_TYPES = {"path": ("path",), "git": ("repo",), "pip": ("requirement",)}
# A URL path prefix written as an nginx location, unquoted: nothing nginx's
# configuration would read (space, quote, brace, semicolon, $, #) and no %: a
# location matches the decoded URI, so an escape would never match.
_LOCATION_PATH = re.compile(r"^/[A-Za-z0-9._~@:+,=!/-]*$")
# The interfaces that carry a WebSocket (WSGI has no way to take over the connection).
WEBSOCKET_INTERFACES = ("asgi", "rsgi")
STREAM_TIMEOUT_DEFAULT = 3600
STREAM_TIMEOUT_MAX = 86400


# What the sizing engine writes into each server's configuration: through
# server_settings these would bypass the memory and database budgets.
_SIZED_SETTINGS = {
    "gunicorn": ("workers", "threads", "timeout", "backlog"),
    "uvicorn": ("workers", "threads", "timeout", "backlog"),
    # harakiri: the app's `timeout` decides it, with nginx's read timeout
    # (nginx answers 504 first, harakiri ends the request after it).
    "uwsgi": ("processes", "workers", "threads", "harakiri"),
    "granian": (
        "workers", "blocking_threads", "runtime_threads", "backpressure", "backlog",
        "workers_lifetime", "workers_max_rss",
    ),
}  # fmt: skip


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


def _location_paths(app, key, raw):
    """A list of URL path prefixes nginx gets a location of its own for (duplicates dropped)."""
    paths = _str_list(app, key, raw if raw is not None else [])
    for path in paths:
        if not _LOCATION_PATH.match(path) or ".." in path or "//" in path:
            _fail(
                app,
                key,
                "%r is not a URL path prefix nginx can match; allowed: '/' first, then letters, digits and "
                "._~@:+,=!/- (no space, quote, brace, semicolon, %%, '..' or '//')" % (path,),
            )
        if path == "/":
            _fail(app, key, "'/' is the whole site (location /); name the paths below it, like /ws/")
    return list(dict.fromkeys(paths))


def _long_lived(app, raw, server, interface, urls):
    """websocket_paths, streaming_paths and stream_timeout checked (see the nginx site)."""
    websocket = _location_paths(app, "websocket_paths", raw.get("websocket_paths"))
    streaming = _location_paths(app, "streaming_paths", raw.get("streaming_paths"))
    if websocket and interface not in WEBSOCKET_INTERFACES:
        _fail(
            app,
            "websocket_paths",
            "the app's interface is %s, which cannot carry a WebSocket; an asgi or rsgi app can "
            "(server uvicorn, or granian with interface asgi or rsgi)" % interface,
        )
    if websocket and server == "granian" and (raw.get("server_settings") or {}).get("websockets") is False:
        _fail(app, "websocket_paths", "server_settings.websockets is false: Granian would refuse every upgrade")
    both = [path for path in websocket if path in streaming]
    if both:
        _fail(app, "streaming_paths", "%s is in websocket_paths too; a path is one or the other" % both[0])
    for key, paths in (("websocket_paths", websocket), ("streaming_paths", streaming)):
        for path in paths:
            for url_key in ("static_url", "media_url"):
                if path == urls[url_key]:
                    _fail(app, key, "%s is the app's %s, served from files by nginx" % (path, url_key))
    timeout = raw.get("stream_timeout", STREAM_TIMEOUT_DEFAULT)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= STREAM_TIMEOUT_MAX:
        _fail(
            app,
            "stream_timeout",
            "must be a whole number of seconds from 1 to %d (how long a WebSocket or stream may stay "
            "idle), got %r" % (STREAM_TIMEOUT_MAX, timeout),
        )
    if "stream_timeout" in raw and not (websocket or streaming):
        _fail(app, "stream_timeout", "only with websocket_paths or streaming_paths (it is their idle timeout)")
    return {"websocket_paths": websocket, "streaming_paths": streaming, "stream_timeout": timeout}


def _django(app, raw):
    """The django key, every sub-key filled in; {} when the app is not Django."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        _fail(app, "django", "must be a dict (%s), got %r" % (", ".join(DJANGO_KEYS), raw))
    for key in sorted(raw, key=str):
        if key not in DJANGO_KEYS:
            _fail(app, "django.%s" % key, "unknown key (known: %s)" % ", ".join(DJANGO_KEYS))
    settings = raw.get("settings")
    if settings is None:
        _fail(app, "django.settings", "is required when django is given (the settings module, like 'mysite.settings')")
    if not isinstance(settings, str) or not _DOTTED.match(settings):
        _fail(app, "django.settings", "must be a dotted module path like 'mysite.settings', got %r" % (settings,))
    result = {"settings": settings}
    for key, default in (("collectstatic", True), ("migrate", False)):
        value = raw.get(key, default)
        if not isinstance(value, bool):
            _fail(app, "django.%s" % key, "must be true or false, got %r" % (value,))
        result[key] = value
    return result


def _tls(app, raw):
    """The tls key checked: a dict of TLS_KEYS ({} when not given)."""
    tls = raw or {}
    if not isinstance(tls, dict):
        _fail(app, "tls", "must be a dict (%s), got %r" % (", ".join(TLS_KEYS), tls))
    for key in sorted(tls, key=str):
        if key == "profile":
            # nginx before 1.29.2 picks the protocol before it knows which
            # site the client asked for (SNI), so a site's own ssl_protocols
            # would be ignored: a "modern" app would still speak TLS 1.2.
            _fail(
                app,
                "tls.profile",
                "the TLS profile is the host's (nginx_tls_profile): nginx chooses the TLS version "
                "before it knows which site the client asked for",
            )
        if key not in TLS_KEYS:
            _fail(app, "tls.%s" % key, "unknown key (known: %s)" % ", ".join(TLS_KEYS))
    for key in ("enabled", "self_signed"):
        if key in tls and not isinstance(tls[key], bool):
            _fail(app, "tls.%s" % key, "must be true or false, got %r" % (tls[key],))
    for key in ("certificate", "key"):
        value = tls.get(key)
        if value is not None and (not isinstance(value, str) or not value.startswith("/") or "\n" in value):
            _fail(app, "tls.%s" % key, "must be an absolute path on the host, got %r" % (value,))
    return tls


def _framework_url(app, key, setting, value):
    """Django's STATIC_URL/MEDIA_URL as nginx matches it, or the absolute URL as given."""
    if _ABSOLUTE_URL.match(value):
        return value
    url = "/" + value.strip("/") + "/" if value.strip("/") else "/"
    if not _URL_PREFIX.match(url) or ".." in url:
        _fail(app, key, "Django's %s is %r: not a URL path nginx can serve" % (setting, value))
    return url


def _framework(app, answers, raw, derived):
    """Apply what the framework answered over the derived values.

    Returns the values to replace and the dict as applied (only what was
    given, normalised): an explicit static_dir/media_dir the framework
    contradicts is an error, because collectstatic and nginx would disagree.
    """
    if answers is None:
        return {}, {}
    if not isinstance(answers, dict):
        raise AppError("framework[%s]: must be a dict (%s), got %r" % (app, ", ".join(FRAMEWORK_KEYS), answers))
    for key in sorted(answers, key=str):
        if key not in FRAMEWORK_KEYS:
            raise AppError("framework[%s].%s: unknown key (known: %s)" % (app, key, ", ".join(FRAMEWORK_KEYS)))
    replace = {}
    applied = {}
    for key, setting in (("static_dir", "STATIC_ROOT"), ("media_dir", "MEDIA_ROOT")):
        value = answers.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str) or not value.startswith("/"):
            _fail(app, key, "Django's %s is %r, not an absolute path; set it to one" % (setting, value))
        value = posixpath.normpath(value)
        given = raw.get(key)
        if given is not None and posixpath.normpath(str(given)) != value:
            _fail(app, key, "%s, but Django's %s is %s; remove %s or make them agree" % (given, setting, value, key))
        replace[key] = applied[key] = value
    for key, setting in (("static_url", "STATIC_URL"), ("media_url", "MEDIA_URL")):
        value = answers.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            _fail(app, key, "Django's %s must be a string, got %r" % (setting, value))
        applied[key] = _framework_url(app, key, setting, value)
        if not _ABSOLUTE_URL.match(applied[key]):
            replace[key] = applied[key]
    hashed = answers.get("static_hashed")
    if hashed is not None:
        if not isinstance(hashed, bool):
            _fail(app, "static_hashed", "the framework's answer must be true or false, got %r" % (hashed,))
        replace["static_hashed"] = applied["static_hashed"] = hashed
    if replace.get("static_url", derived["static_url"]) == replace.get("media_url", derived["media_url"]):
        _fail(
            app,
            "media_url",
            "must differ from static_url (Django's STATIC_URL and MEDIA_URL are both %s)"
            % (replace.get("static_url", derived["static_url"])),
        )
    return replace, applied


def _normalise(raw, index, base_dir, run_dir, config_dir, log_dir, web_group, uwsgi_mode, state_dir, framework):
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
    state = raw.get("state", "present")
    if state not in ("present", "absent"):
        _fail(name, "state", "must be present or absent, got %r" % (state,))
    if "purge" in raw and (state != "absent" or not isinstance(raw["purge"], bool)):
        _fail(name, "purge", "only with state: absent, and true or false (got %r)" % (raw["purge"],))
    server = raw.get("server", "gunicorn")
    if server not in DEPLOYABLE_SERVERS:
        _fail(name, "server", "must be one of %s, got %r" % (", ".join(DEPLOYABLE_SERVERS), server))
    interface = raw.get("interface", "asgi" if server == "uvicorn" else "wsgi")
    if interface not in ("wsgi", "asgi", "rsgi"):
        _fail(name, "interface", "must be wsgi, asgi or rsgi, got %r" % (interface,))
    if server == "uwsgi" and interface != "wsgi":
        _fail(name, "interface", "uwsgi serves wsgi only; use uvicorn or granian for %s" % interface)
    if server == "gunicorn" and interface == "asgi":
        _fail(name, "interface", "gunicorn serves asgi through uvicorn workers: set server: uvicorn")
    if interface not in INTERFACES[server]:
        _fail(name, "interface", "%s serves %s, not %s" % (server, " and ".join(INTERFACES[server]), interface))
    if "uwsgi_mode" in raw and server != "uwsgi":
        _fail(name, "uwsgi_mode", "only applies to server uwsgi (this app's server is %s)" % server)
    mode = raw.get("uwsgi_mode", uwsgi_mode)
    if server == "uwsgi" and mode not in UWSGI_MODES:
        _fail(name, "uwsgi_mode", "must be one of %s, got %r" % (", ".join(UWSGI_MODES), mode))
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
    if not domains:
        _fail(name, "domains", "must list at least one host name (or '_' for the default server)")
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

    tls = _tls(name, raw.get("tls"))
    tls_enabled = bool(tls.get("enabled", bool(tls)))
    if tls_enabled and not tls.get("self_signed") and not (tls.get("certificate") and tls.get("key")):
        _fail(name, "tls", "needs certificate and key (paths on the host), or self_signed: true")
    try:
        headers = check_headers(raw.get("headers"), "pyweb_apps[%s].headers" % name)
    except NginxError as exc:
        raise AppError(str(exc)) from None

    env = raw.get("env") or {}
    if not isinstance(env, dict):
        _fail(name, "env", "must be a dict of environment variables")
    for key, value in env.items():
        if not isinstance(key, str) or not _ENV_KEY.match(key):
            _fail(name, "env", "%r is not an environment variable name" % (key,))
        if isinstance(value, (dict, list)) or "\n" in str(value):
            _fail(name, "env", "%s must be a single-line value" % key)

    django = _django(name, raw.get("django"))
    static_hashed = raw.get("static_hashed", False)
    if not isinstance(static_hashed, bool):
        _fail(name, "static_hashed", "must be true or false, got %r" % (static_hashed,))
    requirements = _str_list(name, "python_requirements", raw.get("python_requirements", []))
    static_source = raw.get("static_source")
    if static_source is not None and (
        not isinstance(static_source, str) or static_source.startswith("/") or ".." in static_source.split("/")
    ):
        _fail(name, "static_source", "must be a path inside the app's code, like 'static', got %r" % (static_source,))
    server_settings = raw.get("server_settings") or {}
    if not isinstance(server_settings, dict) or not all(isinstance(k, str) and _ENV_KEY.match(k) for k in server_settings):
        _fail(name, "server_settings", "must be a dict of the app server's own setting names to values")
    sized = sorted(set(server_settings) & set(_SIZED_SETTINGS.get(server, ())))
    if sized:
        _fail(
            name,
            "server_settings." + sized[0],
            "set by the sizing engine, which checks it against the host's memory and database budgets; "
            "use the app's own key (workers, threads, timeout, backlog) instead",
        )
    if server in ("gunicorn", "uvicorn"):
        for key in sorted(server_settings):
            problem = setting_problem(key, server_settings[key])
            if problem:
                _fail(name, "server_settings." + key, problem)
    if server == "granian":
        for key in sorted(server_settings):
            problem = granian_problem(key, server_settings[key])
            if problem:
                _fail(name, "server_settings." + key, problem)
    keep = raw.get("keep_releases")
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 2):
        _fail(
            name, "keep_releases", "must be a whole number of at least 2 (the previous release is the rollback), got %r" % (keep,)
        )
    health = raw.get("health_path", "/")
    if not isinstance(health, str) or not health.startswith("/"):
        _fail(name, "health_path", "must be a path starting with '/', got %r" % (health,))

    base = "%s/%s" % (base_dir.rstrip("/"), name)
    for key in ("static_dir", "media_dir"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not value.startswith("/") or ".." in value.split("/")):
            _fail(name, key, "must be an absolute path, got %r" % (value,))
    # The live release: code, virtualenv and static files switch together
    # through one symlink (releases/<id> holds app/, .venv and static/).
    current = base + "/current"
    derived = {
        "static_dir": raw.get("static_dir") or current + "/static",
        "media_dir": raw.get("media_dir") or base + "/media",
        "static_url": urls["static_url"],
        "media_url": urls["media_url"],
        "static_hashed": static_hashed,
    }
    replace, applied = _framework(name, framework, raw, derived)
    derived.update(replace)
    # After the framework's answers: a path must not be the static or media URL nginx serves.
    long_lived = _long_lived(name, raw, server, interface, derived)
    user = raw.get("user", service_name(name))
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
            "static_url": derived["static_url"],
            "media_url": derived["media_url"],
            "static_hashed": derived["static_hashed"],
            "client_max_body_size": body,
            "tls": {
                "enabled": tls_enabled,
                "self_signed": bool(tls.get("self_signed", False)),
                "certificate": tls.get("certificate") or ("/etc/ssl/pyweb/%s.crt" % name),
                "key": tls.get("key") or ("/etc/ssl/pyweb/%s.key" % name),
            },
            # over nginx_security_headers; None removes one
            "headers": headers,
            "env": {str(k): str(v) for k, v in env.items()},
            "django": django,
            "python_requirements": requirements,
            "health_path": health,
            "health_max_status": HEALTH_MAX_STATUS_GIVEN if "health_path" in raw else HEALTH_MAX_STATUS_DEFAULT,
            "framework": applied,
            "static_source": static_source,
            "server_settings": server_settings,
            "preload_app": bool(raw.get("preload_app", False)),
            "user": user,
            "group": user,
            "web_group": web_group,
            "base_dir": base,
            "releases_dir": base + "/releases",
            "venvs_dir": base + "/venvs",
            "current": current,
            "code_dir": current + "/app",
            "venv": current + "/.venv",
            "keep_releases": keep,
            "static_dir": derived["static_dir"],
            "media_dir": derived["media_dir"],
            # writable per-app state (a SQLite file ...), never served by nginx
            "state_dir": "%s/%s" % (state_dir.rstrip("/"), name),
            "log_dir": "%s/%s" % (log_dir.rstrip("/"), name),
            "config_dir": "%s/%s" % (config_dir.rstrip("/"), name),
            "env_file": "%s/%s/env" % (config_dir.rstrip("/"), name),
            "upstream": "pyweb_%s" % name,
        }
    )
    app.update(long_lived)
    # The runtime's own names (socket, unit, what capacity_facts measures):
    # declared once, in the server registry.
    # How a command runs as the app (the checks, pyweb-manage, collectstatic):
    # its user, environment and directory, and its service's filesystem view.
    app["sandbox"] = [
        "User=" + user,
        "Group=" + user,
        "EnvironmentFile=" + app["env_file"],
        "WorkingDirectory=" + app["code_dir"],
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "UMask=0027",
        "ReadWritePaths=" + " ".join(dict.fromkeys([app["media_dir"], app["state_dir"], app["log_dir"]])),
    ]
    dirs = {"run_dir": run_dir, "config_dir": config_dir}
    app.update(runtime_paths(runtime_of(server, mode if server == "uwsgi" else None), name, dirs))
    return app


def _check_absent(raw, index):
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise AppError("pyweb_apps[%d].name: %r is not a valid app name" % (index, name))
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        _fail(name, unknown[0], "unknown key (known: %s)" % ", ".join(sorted(KNOWN_KEYS)))
    if not isinstance(raw.get("purge", False), bool):
        _fail(name, "purge", "must be true or false, got %r" % (raw["purge"],))


def absent_apps(apps):
    """The apps ``apps`` marks ``state: absent``: name and purge."""
    if not isinstance(apps, list):
        return []
    return [
        {"name": raw["name"], "purge": bool(raw.get("purge", False))}
        for raw in apps
        if isinstance(raw, dict) and raw.get("state") == "absent" and isinstance(raw.get("name"), str)
    ]


def app_layout(
    apps,
    base_dir="/srv/pyweb",
    run_dir="/run/pyweb",
    config_dir="/etc/pyweb",
    log_dir="/var/log/pyweb",
    web_group="www-data",
    uwsgi_mode="emperor",
    state_dir="/var/lib/pyweb",
    framework=None,
):
    """Validate ``apps`` and return them with every derived path filled in.

    ``framework`` maps app names to what the framework itself answered on the
    host (Django's STATIC_ROOT, STATIC_URL ...); a value given there replaces
    the derived one. Answers for apps not in ``apps`` are ignored (a role may
    lay out a subset).
    """
    if not isinstance(apps, list):
        raise AppError("pyweb_apps must be a list of app descriptions, got %s" % type(apps).__name__)
    if framework is None:
        framework = {}
    if not isinstance(framework, dict):
        raise AppError("framework must be a dict of app name to what the framework answered, got %r" % (framework,))
    result = []
    seen = {}
    for index, raw in enumerate(apps):
        if isinstance(raw, dict) and raw.get("state") == "absent":
            # Only its name matters: the server registry finds what it left.
            _check_absent(raw, index)
            if raw["name"] in seen:
                raise AppError("pyweb_apps[%d].name: %r is used twice" % (index, raw["name"]))
            seen[raw["name"]] = raw
            continue
        answers = framework.get(raw.get("name")) if isinstance(raw, dict) and isinstance(raw.get("name"), str) else None
        app = _normalise(raw, index, base_dir, run_dir, config_dir, log_dir, web_group, uwsgi_mode, state_dir, answers)
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
