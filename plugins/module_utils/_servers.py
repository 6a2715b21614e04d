# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The server registry: every way an app can run, declared once.

Private to pyweb.stack. A *runtime* is one way of running an app: Gunicorn
(``server: gunicorn`` or ``uvicorn``), a uWSGI vassal of the emperor, N
uWSGI instances, or Granian. Each declares here what it leaves on a host: its systemd
units, its sockets, its files and the title its processes carry. The layout
(``_apps``) takes the paths the roles bind and proxy to from here, and
retiring (an app that switched server or mode, or left ``pyweb_apps``) stops
and removes exactly what is declared, so no role has to know another role's
names. A new server is one more entry.

Every path is a pattern filled from the app's name and the host's
directories: ``{name}``, ``{service}`` (the systemd name), ``{run_dir}``,
``{config_dir}`` (the app's own), ``{config_root}``, ``{private_run_dir}``.
``%i`` is systemd's instance specifier (one socket per uWSGI instance); a
``*`` in a unit or path is a glob over the instances that exist.
"""

from __future__ import annotations

import posixpath

__all__ = ["RUNTIMES", "artifacts", "host_artifacts", "host_paths", "paths", "retirement", "runtime_of", "service_name"]

RUNTIMES = {
    "gunicorn": {
        "servers": ("gunicorn", "uvicorn"),
        "socket": "{run_dir}/{name}.sock",
        # Stopped in this order: the socket first, so no new connection
        # starts the service again while it stops.
        "units": ("{service}.socket", "{service}.service"),
        "unit_files": ("{service}.socket", "{service}.service"),
        "sockets": ("{run_dir}/{name}.sock",),
        "files": (
            "{config_dir}/gunicorn.conf.py",
            "{config_dir}/gunicorn.conf.py.good",
            "{config_dir}/gunicorn.candidate.conf.py",
        ),
        # systemd owns the processes: stopping the unit stops them.
        "processes": None,
        "measure": {"unit": "{service}.service"},
    },
    "uwsgi_emperor": {
        "servers": ("uwsgi",),
        "uwsgi_mode": "emperor",
        # Not {name}.sock: an app switching from Gunicorn starts here while
        # Gunicorn still serves its own socket.
        "socket": "{run_dir}/{name}-uwsgi.sock",
        "stats_socket": "{private_run_dir}/stats.sock",
        # systemd holds the socket and a zerg server (a uWSGI master with no
        # workers) hands it to the vassal: it outlives emperor restarts. The
        # names carry a dot, which no app's service name has.
        "zerg": "{private_run_dir}/zerg.sock",
        "zerg_socket_unit": "{service}.uwsgi.socket",
        "zerg_service": "{service}.zerg.service",
        "units": ("{service}.uwsgi.socket", "{service}.zerg.service"),
        "unit_files": ("{service}.uwsgi.socket", "{service}.zerg.service"),
        # Removing the vassal's file makes the emperor stop it.
        "vassal": "{config_root}/uwsgi/vassals/{name}.ini",
        "sockets": ("{run_dir}/{name}-uwsgi.sock", "{private_run_dir}/stats.sock", "{private_run_dir}/zerg.sock"),
        "files": ("{config_dir}/uwsgi-emperor.ini.good",),
        "dirs": ("{private_run_dir}",),
        "processes": "^{service} uWSGI",
        "measure": {"pattern": "^{service} uWSGI"},
        # One emperor per host runs every vassal: retired with the last one.
        "host": {
            "service": "pyweb-uwsgi-emperor",
            "ini": "{config_root}/uwsgi/emperor.ini",
            "vassals": "{config_root}/uwsgi/vassals",
            "stats": "{run_dir}/uwsgi-emperor.stats.sock",
        },
    },
    "uwsgi_instances": {
        "servers": ("uwsgi",),
        "uwsgi_mode": "instances",
        "socket": "{run_dir}/{name}@%i.sock",
        "stats_socket": "{private_run_dir}/stats@%i.sock",
        "units": ("{service}@*.socket", "{service}@*.service"),
        "unit_files": ("{service}@.socket", "{service}@.service"),
        "sockets": ("{run_dir}/{name}@*.sock", "{private_run_dir}/stats@*.sock"),
        "files": ("{config_dir}/uwsgi.ini", "{config_dir}/uwsgi.ini.good"),
        "dirs": ("{private_run_dir}",),
        "processes": "^{service}@[0-9]+ uWSGI",
        "measure": {"pattern": "^{service}@[0-9]+ uWSGI"},
    },
    "granian": {
        "servers": ("granian",),
        # Its own names: an app switching from Gunicorn or uWSGI starts here
        # while the old server still serves its socket (make before break).
        # The dot: no app's service name has one.
        "service": "{service}.granian",
        "socket": "{run_dir}/{name}-granian.sock",
        # systemd holds the socket (Granian takes it over, see the granian
        # role's pyweb_granian.py): it outlives restarts, which then queue
        # connections instead of refusing them.
        "units": ("{service}.granian.socket", "{service}.granian.service"),
        "unit_files": ("{service}.granian.socket", "{service}.granian.service"),
        "sockets": ("{run_dir}/{name}-granian.sock",),
        "files": (
            "{config_dir}/granian.env",
            "{config_dir}/granian.env.good",
            "{config_dir}/granian.env.candidate",
        ),
        "processes": None,
        "measure": {"unit": "{service}.granian.service"},
    },
}
# Files every uWSGI runtime of an app uses (kept while either runs).
_UWSGI_SHARED = ("{config_dir}/uwsgi.ini.candidate", "{config_dir}/uwsgi.reload", "{config_dir}/uwsgi.chain-reload")
_UWSGI_TMPFILES = "/etc/tmpfiles.d/{service}.conf"


def service_name(name):
    """The systemd name of an app (``pyweb-<name>``, ``_`` as ``-``)."""
    return "pyweb-%s" % name.replace("_", "-")


def runtime_of(server, uwsgi_mode=None):
    """The runtime an app described with ``server`` (and ``uwsgi_mode``) runs on."""
    for runtime, spec in RUNTIMES.items():
        if server in spec["servers"] and spec.get("uwsgi_mode", uwsgi_mode) == uwsgi_mode:
            return runtime
    raise KeyError("no runtime runs server %r in mode %r" % (server, uwsgi_mode))


def _fill(pattern, values):
    return pattern.format(**values)


def _values(name, dirs):
    run_dir = dirs["run_dir"].rstrip("/")
    config_root = dirs["config_dir"].rstrip("/")
    return {
        "name": name,
        "service": service_name(name),
        "run_dir": run_dir,
        "config_root": config_root,
        "config_dir": "%s/%s" % (config_root, name),
        "private_run_dir": "%s/%s" % (run_dir, name),
    }


def paths(runtime, name, dirs):
    """What the layout of an app on ``runtime`` takes from the registry."""
    spec = RUNTIMES[runtime]
    values = _values(name, dirs)
    result = {
        "runtime": runtime,
        "socket": _fill(spec["socket"], values),
        "service": _fill(spec.get("service", "{service}"), values)
        + ("@" if spec["unit_files"] and "@" in spec["unit_files"][0] else ""),
        "measure": dict({"name": name}, **{k: _fill(v, values) for k, v in spec["measure"].items()}),
    }
    if spec["servers"] == ("uwsgi",):
        result["private_run_dir"] = values["private_run_dir"]
        result["stats_socket"] = _fill(spec["stats_socket"], values)
        result["uwsgi_mode"] = spec["uwsgi_mode"]
        result["vassal"] = _fill(spec.get("vassal", "{config_root}/uwsgi/vassals/{name}.ini"), values)
        for key in ("zerg", "zerg_socket_unit", "zerg_service"):
            if key in spec:
                result[key] = _fill(spec[key], values)
    return result


def artifacts(runtime, name, dirs, systemd_dir="/etc/systemd/system"):
    """Everything ``runtime`` leaves on a host for the app ``name``.

    ``units`` are unit names (globs for instances) in the order they stop;
    ``unit_files``, ``sockets`` and ``files`` are paths (globs allowed);
    ``vassals`` the emperor's files for the app (removing one stops it);
    ``processes`` a regular expression over process titles, or None.
    """
    spec = RUNTIMES[runtime]
    values = _values(name, dirs)
    files = [_fill(p, values) for p in spec["files"]]
    if spec["servers"] == ("uwsgi",):
        files += [_fill(p, values) for p in _UWSGI_SHARED] + [_fill(_UWSGI_TMPFILES, values)]
    return {
        "units": [_fill(p, values) for p in spec["units"]],
        "unit_files": [posixpath.join(systemd_dir, _fill(p, values)) for p in spec["unit_files"]],
        "sockets": [_fill(p, values) for p in spec["sockets"]],
        "files": files,
        # removed first: the emperor then stops the vassal (waited for)
        "vassals": [_fill(spec["vassal"], values)] if "vassal" in spec else [],
        # removed when empty
        "dirs": [_fill(p, values) for p in spec.get("dirs", ())],
        "processes": _fill(spec["processes"], values) if spec["processes"] else None,
    }


def retirement(name, dirs, keep=None, systemd_dir="/etc/systemd/system"):
    """What to stop and remove for app ``name``: every runtime but ``keep``.

    Paths the kept runtime uses too (uWSGI's files shared by both modes)
    are left alone. ``keep=None``: the app is gone, everything goes.
    """
    kinds = ("files", "sockets", "unit_files", "dirs", "vassals")
    kept = artifacts(keep, name, dirs, systemd_dir) if keep else {key: [] for key in kinds}
    result = {}
    for runtime in RUNTIMES:
        if runtime == keep:
            continue
        found = artifacts(runtime, name, dirs, systemd_dir)
        for key in kinds:
            found[key] = [p for p in found[key] if p not in kept[key]]
        result[runtime] = found
    return result


def host_paths(dirs):
    """Per runtime, what it keeps once per host (the uWSGI emperor), filled in."""
    values = _values("", dirs)
    return {
        runtime: {k: _fill(v, values) for k, v in spec["host"].items()} for runtime, spec in RUNTIMES.items() if "host" in spec
    }


def host_artifacts(runtime, dirs, systemd_dir="/etc/systemd/system"):
    """What ``runtime`` leaves once per host, in the shape of ``artifacts``; None when nothing."""
    host = host_paths(dirs).get(runtime)
    if not host:
        return None
    unit = host["service"] + ".service"
    return {
        "units": [unit],
        "unit_files": [posixpath.join(systemd_dir, unit)],
        "sockets": [host["stats"]],
        "files": [host["ini"]],
        "dirs": [host["vassals"]],
        "vassals": [],
        "processes": None,
    }
