# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Gunicorn's settings as the controller can check them, before anything changes.

Gunicorn itself is asked too, on the host and as the app, before a new
configuration goes live (pyweb_appcheck.py: every name must be one of its
KNOWN_SETTINGS; `--check-config`; one worker booted). What can be decided
without it is decided here, in app_layout, before the first file is written:

- settings that pyweb.stack sets from the app's description, which
  server_settings would silently break (the socket systemd holds, the release
  directory, the foreground process systemd supervises, ...);
- a value of the wrong kind for a setting Gunicorn validates by kind (a whole
  number, a boolean, a string, a list of strings), with Gunicorn's own rules.

SETTING_KINDS is Gunicorn 23.0.0's (the version the gunicorn role pins),
generated from gunicorn.config.KNOWN_SETTINGS and held equal to it by a unit
test. A name it does not list is left to the host's check, which asks the
Gunicorn actually installed (another gunicorn_version may have more).
"""

from __future__ import annotations

GUNICORN_VERSION = "23.0.0"

_KINDS = {
    "int": (
        "backlog cert_reqs graceful_timeout keepalive limit_request_field_size limit_request_fields "
        "limit_request_line max_requests max_requests_jitter threads timeout umask worker_connections workers"
    ),
    "bool": (
        "capture_output casefold_http_method check_config daemon disable_redirect_access_to_syslog "
        "do_handshake_on_connect enable_stdio_inheritance initgroups permit_obsolete_folding "
        "permit_unconventional_http_method permit_unconventional_http_version preload_app print_config "
        "proxy_protocol reload reuse_port sendfile spew strip_header_spaces suppress_ragged_eofs syslog"
    ),
    "str": (
        "access_log_format accesslog ca_certs certfile ciphers config default_proc_name dogstatsd_tags errorlog "
        "keyfile logconfig logconfig_json loglevel paste pidfile proc_name pythonpath statsd_prefix syslog_addr "
        "syslog_facility syslog_prefix tmp_upload_dir worker_tmp_dir wsgi_app"
    ),
    "strlist": "bind raw_env raw_paste_global_conf",
    # validated by Gunicorn in ways of their own (callables, classes, users, addresses, ...)
    "other": (
        "chdir child_exit forwarded_allow_ips forwarder_headers group header_map logconfig_dict logger_class "
        "nworkers_changed on_exit on_reload on_starting post_fork post_request post_worker_init pre_exec "
        "pre_fork pre_request proxy_allow_ips reload_engine reload_extra_files secure_scheme_headers "
        "ssl_context ssl_version statsd_host user when_ready worker_abort worker_class worker_exit worker_int"
    ),
}
SETTING_KINDS = {name: kind for kind, names in _KINDS.items() for name in names.split()}

# What pyweb.stack writes from the app's description or needs as it is: set
# through server_settings, it would break the stack, not tune it.
OWNED = {
    "bind": "the socket is systemd's, from the app's description (its socket path)",
    "chdir": "Gunicorn works in the live release (current), which the releases switch",
    "wsgi_app": "the app's own key `module` names the callable",
    "raw_env": "the app's own key `env` (an environment file only the app reads)",
    "daemon": "systemd runs Gunicorn in the foreground and supervises it (Type=notify)",
    "user": "the service runs as the app's user (the app's own key `user`)",
    "group": "the service runs with the app's group",
    "worker_class": (
        "chosen by the sizing from the profile and server (async: gevent; server: uvicorn: Uvicorn workers); "
        "pyweb's worker classes drain retiring workers and end requests over the timeout"
    ),
    "check_config": "a command-line switch, not a setting (the role runs --check-config itself)",
    "print_config": "a command-line switch, not a setting",
    "config": "the role writes and names gunicorn.conf.py",
}


def _is_int(value):
    # Gunicorn's validate_pos_int (int(value, 0) of a string, then >= 0), except
    # that a boolean is refused: `keepalive: true` is a slip, not the number 1
    if isinstance(value, bool):
        return False
    if not isinstance(value, int):
        try:
            value = int(value, 0)
        except (TypeError, ValueError):
            return False
    return value >= 0


def _is_bool(value):
    # Gunicorn's validate_bool: None, a bool, or "true"/"false" in any case
    return value is None or isinstance(value, bool) or (isinstance(value, str) and value.strip().lower() in ("true", "false"))


def _is_str(value):
    return value is None or isinstance(value, str)


def _is_strlist(value):
    # Gunicorn's validate_list_string: empty, a string, or a list of strings
    if not value or isinstance(value, str):
        return True
    return isinstance(value, (list, tuple)) and all(_is_str(item) for item in value)


_CHECKS = {
    "int": (_is_int, "a whole number >= 0"),
    "bool": (_is_bool, "true or false"),
    "str": (_is_str, "a string"),
    "strlist": (_is_strlist, "a string or a list of strings"),
}


def setting_problem(name, value):
    """What is wrong with Gunicorn setting `name` = `value` (a sentence), or None."""
    if name in OWNED:
        return "set by pyweb.stack: %s" % OWNED[name]
    kind = SETTING_KINDS.get(name)
    if kind in _CHECKS:
        check, wanted = _CHECKS[kind]
        if not check(value):
            return "Gunicorn wants %s, got %r" % (wanted, value)
    return None
