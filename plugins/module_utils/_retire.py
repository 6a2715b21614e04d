# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What to retire on a host: runtimes an app left, apps that left.

Private to pyweb.stack. ``plan`` compares what the contract wants (each
present app and its runtime) with what the server registry says each
runtime leaves on a host, and lists what exists and must go. It only reads
the file system (under ``root``, for the tests); the retire_apps module
carries the plan out.
"""

from __future__ import annotations

import glob
import json
import os
import posixpath

from ansible_collections.pyweb.stack.plugins.module_utils._servers import RUNTIMES, host_artifacts, retirement, service_name

__all__ = ["known_apps", "plan"]


def _under(root, path):
    return os.path.join(root, path.lstrip("/"))


def _existing(root, patterns):
    """The paths (globs expanded) that exist under root, as host paths."""
    found = []
    for pattern in patterns:
        for match in sorted(glob.glob(_under(root, pattern))):
            host = "/" + os.path.relpath(match, root) if root != "/" else match
            if host not in found:
                found.append(host)
    return found


def _user_exists(root, user):
    try:
        with open(_under(root, "/etc/passwd")) as handle:
            return any(line.split(":", 1)[0] == user for line in handle)
    except OSError:
        return False


def known_apps(config_root, root="/"):
    """Apps a run of pyweb.stack deployed here: name -> what pyweb-manage keeps of it."""
    apps = {}
    for path in sorted(glob.glob(_under(root, posixpath.join(config_root, "manage.d", "*.json")))):
        name = os.path.basename(path)[: -len(".json")]
        try:
            with open(path) as handle:
                apps[name] = json.load(handle)
        except (OSError, ValueError):
            apps[name] = {}
    return apps


def _wants_links(root, systemd_dir, units):
    return _existing(root, [posixpath.join(systemd_dir, "*.wants", unit) for unit in units])


def _step(root, systemd_dir, found, app, runtime, reason):
    """One runtime's leftovers that exist, or None."""
    unit_files = _existing(root, found["unit_files"])
    sockets = _existing(root, found["sockets"])
    files = _existing(root, found["files"])
    dirs = _existing(root, found["dirs"])
    links = _wants_links(root, systemd_dir, found["units"])
    vassal_files = _existing(root, found["vassals"])
    if not (unit_files or sockets or files or links or vassal_files):
        return None
    return {
        "app": app,
        "runtime": runtime,
        "reason": reason,
        # stopped sockets first: no new connection starts the service again
        "units": sorted(found["units"], key=lambda unit: not unit.endswith(".socket")) if (unit_files or links) else [],
        "vassals": vassal_files,
        "processes": found["processes"] if vassal_files else None,
        "remove": links + unit_files + sockets + files,
        "rmdir": dirs,
    }


def plan(apps, absent, dirs, root="/", systemd_dir="/etc/systemd/system"):
    """What to retire.

    ``apps`` maps each present app to its runtime; ``absent`` maps apps the
    user marked ``state: absent`` to whether to purge them; ``dirs`` has the
    stack's ``base``, ``run``, ``config``, ``log`` and ``state`` directories.
    An app deployed here (pyweb-manage knows it) that is in neither is gone
    too, without purge. Returns ``{"steps": [...], "apps": [...], "host": [...]}``:
    per-runtime steps, whole-app removals, and host-wide steps (the uWSGI
    emperor once no app runs under it).
    """
    registry_dirs = {"run_dir": dirs["run"], "config_dir": dirs["config"]}
    known = known_apps(dirs["config"], root)
    gone = dict(absent)
    for name in known:
        if name not in apps and name not in gone:
            gone[name] = False
    steps = []
    for name in sorted(set(apps) | set(gone)):
        keep = apps.get(name)
        for runtime, found in sorted(retirement(name, registry_dirs, keep=keep, systemd_dir=systemd_dir).items()):
            reason = "now runs on %s" % keep if keep else "removed"
            step = _step(root, systemd_dir, found, name, runtime, reason)
            if step:
                steps.append(step)
    removals = []
    for name, purge in sorted(gone.items()):
        if name in apps:
            continue
        config_dir = posixpath.join(dirs["config"], name)
        entry = {
            "app": name,
            "purge": bool(purge),
            "remove": _existing(root, [posixpath.join(dirs["config"], "manage.d", name + ".json")]),
            "purge_dirs": [],
            "user": None,
        }
        if purge:
            entry["purge_dirs"] = _existing(
                root, [posixpath.join(dirs[key], name) for key in ("base", "state", "log")] + [config_dir]
            )
            user = known.get(name, {}).get("user") or service_name(name)
            entry["user"] = user if _user_exists(root, user) else None
        # Nothing left of it: a second run changes nothing.
        if entry["remove"] or entry["purge_dirs"] or entry["user"]:
            removals.append(entry)
    host = []
    used = set(apps.values())
    for runtime in sorted(RUNTIMES):
        if runtime in used:
            continue
        found = host_artifacts(runtime, registry_dirs, systemd_dir)
        if found:
            step = _step(root, systemd_dir, found, None, runtime, "no app runs on %s" % runtime)
            if step:
                host.append(step)
    return {"steps": steps, "apps": removals, "host": host}
