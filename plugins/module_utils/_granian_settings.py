# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Granian's options as the controller can check them, before anything changes.

Granian reads every command-line option from an environment variable too
(``GRANIAN_`` and the option's name in capitals); the granian role writes the
options into one environment file per app, so a ``server_settings`` key is an
option's name with underscores (``http1_keep_alive``, ``log_level``).

Granian is asked as well, on the host and as the app, before a new
configuration goes live (pyweb_granian.py check: every GRANIAN_ variable must
be an option, click converts every value; then one worker boots and
answers). What can be decided without it is decided here, in app_layout:
the names, the kind and range of each value, and the options pyweb.stack
sets itself.

OPTIONS is Granian 2.8.7's (the version the granian role pins), from
granian.cli's click parameters, and held equal to them by a unit test.
"""

from __future__ import annotations

import re

GRANIAN_VERSION = "2.8.7"

_KINDS = {
    "str": (
        "host log_access_fmt ssl_keyfile_password url_path_prefix static_path_route static_path_dir_to_file "
        "metrics_address reload_ignore_dirs reload_ignore_patterns process_name"
    ),
    "int": (
        "port workers blocking_threads runtime_threads runtime_blocking_threads backlog backpressure http1_buffer_size "
        "http1_header_read_timeout http2_initial_connection_window_size http2_initial_stream_window_size "
        "http2_keep_alive_interval http2_max_concurrent_streams http2_max_frame_size http2_max_headers_size "
        "http2_max_send_buffer_size rss_samples workers_max_rss metrics_port reload_tick"
    ),
    "path": (
        "uds log_config ssl_certificate ssl_keyfile ssl_ca ssl_crl working_dir env_files static_path_mount reload_paths "
        "reload_ignore_paths pid_file"
    ),
    "octal": "uds_permissions",
    "bool": (
        "websockets http1_keep_alive http1_pipeline_flush http2_adaptive_window log_enabled log_access_enabled "
        "ssl_client_verify respawn_failed_workers factory metrics_enabled reload reload_ignore_worker_failure"
    ),
    # whole seconds (Granian also takes "1h30m"; checked on the host)
    "duration": (
        "blocking_threads_idle_timeout http2_keep_alive_timeout rss_sample_interval workers_lifetime "
        "workers_kill_timeout static_path_expires metrics_scrape_interval"
    ),
    "float": "respawn_interval",
}
CHOICES = {
    "interface": ("asgi", "asginl", "rsgi", "wsgi"),
    "http": ("auto", "1", "2"),
    "runtime_mode": ("auto", "mt", "st"),
    "loop": ("auto", "asyncio", "rloop", "uvloop", "winloop"),
    "task_impl": ("asyncio", "rust"),
    "log_level": ("critical", "error", "warning", "warn", "info", "debug", "notset"),
    "ssl_protocol_min": ("tls1.2", "tls1.3"),
}
OPTIONS = dict({name: kind for kind, names in _KINDS.items() for name in names.split()}, **dict.fromkeys(CHOICES, "choice"))
# (minimum, maximum) where Granian has one; None: no bound.
RANGES = {
    "workers": (1, None), "blocking_threads": (1, None), "blocking_threads_idle_timeout": (5, 600),
    "runtime_threads": (1, None), "runtime_blocking_threads": (1, None), "backlog": (128, None),
    "backpressure": (1, None), "http1_buffer_size": (8192, None), "http1_header_read_timeout": (1, 60000),
    "http2_initial_connection_window_size": (1024, None), "http2_initial_stream_window_size": (1024, None),
    "http2_keep_alive_interval": (1, 60000), "http2_keep_alive_timeout": (1, None),
    "http2_max_concurrent_streams": (10, None), "http2_max_frame_size": (1024, None), "http2_max_headers_size": (1, None),
    "http2_max_send_buffer_size": (1024, None), "rss_sample_interval": (1, 300), "rss_samples": (1, None),
    "workers_lifetime": (60, None), "workers_max_rss": (1, None), "workers_kill_timeout": (1, 1800),
    "static_path_expires": (0, None), "metrics_scrape_interval": (1, 60), "reload_tick": (50, 5000),
}  # fmt: skip

# What pyweb.stack sets from the app's description or its own variables, or
# needs as it is: through server_settings it would break the stack.
OWNED = {
    "uds": "the socket is systemd's, from the app's description (Granian takes it over)",
    "uds_permissions": "systemd creates the socket 0660, owned by the app's user and nginx's group",
    "host": "Granian serves the unix socket nginx proxies to, never a TCP port",
    "port": "Granian serves the unix socket nginx proxies to, never a TCP port",
    "interface": "the app's own key `interface` (wsgi, asgi or rsgi)",
    "working_dir": "Granian works in the live release (current), which the releases switch",
    "env_files": "the app's own key `env` (an environment file only the app reads)",
    "pid_file": "systemd supervises the main process",
    "reload": "a reload is the collection's (HUP, after the new code was checked), not a file watcher's",
    "reload_paths": "a reload is the collection's (HUP, after the new code was checked), not a file watcher's",
    "reload_ignore_dirs": "a reload is the collection's, not a file watcher's",
    "reload_ignore_patterns": "a reload is the collection's, not a file watcher's",
    "reload_ignore_paths": "a reload is the collection's, not a file watcher's",
    "reload_tick": "a reload is the collection's, not a file watcher's",
    "reload_ignore_worker_failure": "a reload is the collection's, not a file watcher's",
    "respawn_failed_workers": "always on: a worker that dies is replaced",
    "metrics_enabled": "the granian role's granian_metrics_port turns the metrics endpoint on",
    "metrics_port": "the granian role's granian_metrics_port",
    "metrics_address": "the metrics endpoint listens on 127.0.0.1 only",
    "log_access_enabled": "the granian role's granian_access_log",
    "ssl_certificate": "nginx terminates TLS (the app's key `tls`)",
    "ssl_keyfile": "nginx terminates TLS (the app's key `tls`)",
    "ssl_keyfile_password": "nginx terminates TLS (the app's key `tls`)",
    "ssl_ca": "nginx terminates TLS (the app's key `tls`)",
    "ssl_crl": "nginx terminates TLS (the app's key `tls`)",
    "ssl_client_verify": "nginx terminates TLS (the app's key `tls`)",
    "ssl_protocol_min": "nginx terminates TLS (the app's key `tls`)",
    "static_path_route": "nginx serves the static files (the app's static_url and static_dir)",
    "static_path_mount": "nginx serves the static files (the app's static_url and static_dir)",
    "process_name": "needs the granian[pname] extra, which the role does not install",
}

_DURATION = re.compile(r"^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s?)?$")


def env_name(option):
    """The environment variable Granian reads ``option`` from."""
    return "GRANIAN_" + option.upper()


def setting_problem(name, value):
    """Why ``server_settings[name] = value`` cannot work with Granian, or None."""
    if name not in OPTIONS:
        close = sorted(o for o in OPTIONS if o.split("_")[0] == name.split("_")[0])
        return "not a Granian %s option%s" % (
            GRANIAN_VERSION,
            " (options starting alike: %s)" % ", ".join(close) if close else "",
        )
    if name in OWNED:
        return "set by pyweb.stack: %s" % OWNED[name]
    kind = OPTIONS[name]
    if isinstance(value, (dict, list)) or (isinstance(value, str) and "\n" in value):
        return "must be a single value, got %r" % (value,)
    if kind == "bool":
        if not isinstance(value, bool):
            return "must be true or false, got %r" % (value,)
        return None
    if kind in ("int", "duration"):
        if isinstance(value, bool) or not (
            isinstance(value, int) or (kind == "duration" and isinstance(value, str) and value and _DURATION.match(value))
        ):
            return "must be a whole number%s, got %r" % (" of seconds (or like 1h30m)" if kind == "duration" else "", value)
        low, high = RANGES.get(name, (None, None))
        if isinstance(value, int) and ((low is not None and value < low) or (high is not None and value > high)):
            return "must be %s, got %d" % (
                "between %d and %d" % (low, high) if high is not None else "at least %d" % low,
                value,
            )
        return None
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            return "must be a number of seconds, got %r" % (value,)
        return None
    if kind == "choice":
        if str(value) not in CHOICES[name]:
            return "must be one of %s, got %r" % (", ".join(CHOICES[name]), value)
        return None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool) or str(value) == "":
        return "must be a non-empty string, got %r" % (value,)
    return None


def env_value(value):
    """A setting's value as Granian's environment variable takes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
