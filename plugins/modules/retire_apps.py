#!/usr/bin/python
# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: retire_apps
short_description: Stop and remove what apps no longer run on, and apps that left
version_added: 0.1.0
description:
  - Compares what the stack's contract wants (each present app and its
    runtime, from P(pyweb.stack.app_layout#filter)) with what the server
    registry says every runtime leaves on a host (systemd units, sockets,
    stats sockets, configuration files, the uWSGI emperor's vassal files),
    and stops and removes what exists and is no longer wanted.
  - An app that switched server or uWSGI mode loses what its old runtime
    left. Run it after nginx points at the new runtime (make before break).
  - An app marked O(absent) or deployed here earlier (C(pyweb-manage) knows
    it) but no longer in O(apps) loses its units and sockets; its code, data,
    logs and configuration stay unless its C(purge) in O(absent) is true. The nginx
    role removes its site.
  - Order - socket units stop first (no new connection starts a service again),
    vassal files go (the emperor stops those vassals, waited for), then the
    services stop gracefully; then links, unit files, sockets and files are
    removed, and systemd reloads. The uWSGI emperor itself is stopped and
    removed once no app runs under it.
  - In check mode, reports what it would do and changes nothing.
options:
  apps:
    description:
      - The present apps, each a dict with C(name) and C(runtime) (the layout's
        keys; other keys are ignored).
    type: list
    elements: dict
    required: true
  absent:
    description:
      - Apps marked C(state=absent), each C(name) and C(purge).
    type: list
    elements: dict
    default: []
  dirs:
    description:
      - The stack's directories (the contract's C(dirs)) - C(base), C(run),
        C(config), C(log), C(state).
    type: dict
    required: true
  timeout:
    description:
      - Seconds to wait for the processes of a removed vassal to exit.
    type: int
    default: 60
author:
  - pyweb.stack developers (@pyweb)
"""

EXAMPLES = r"""
- name: Retire what no app runs on any more
  pyweb.stack.retire_apps:
    apps: "{{ pyweb_contract.apps }}"
    absent: "{{ pyweb_contract.absent }}"
    dirs: "{{ pyweb_contract.dirs }}"
"""

RETURN = r"""
retired:
  description: What was (in check mode - would be) retired, one line per runtime or app.
  returned: always
  type: list
  elements: str
  sample: ["demo: gunicorn (now runs on uwsgi_instances): pyweb-demo.socket, pyweb-demo.service stopped; 5 paths removed"]
plan:
  description: The plan carried out - C(steps) per runtime, C(apps) removed, C(host) steps.
  returned: always
  type: dict
"""

import contextlib
import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pyweb.stack.plugins.module_utils._procmem import find_by_pattern
from ansible_collections.pyweb.stack.plugins.module_utils._retire import plan as retire_plan


def _systemctl(module, *args):
    rc, out, err = module.run_command(["systemctl", *list(args)])
    return rc, (out + err).strip()


def _wait_gone(module, patterns, timeout):
    deadline = time.monotonic() + timeout
    left = []
    while True:
        left = [p for p in patterns if any(find_by_pattern(p))]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.5)


def _describe(step):
    parts = []
    if step["units"]:
        parts.append("%s stopped" % ", ".join(step["units"]))
    if step["vassals"]:
        parts.append("vassal %s removed" % ", ".join(os.path.basename(v) for v in step["vassals"]))
    if step["remove"]:
        parts.append("%d paths removed" % len(step["remove"]))
    who = step["app"] or "host"
    return "%s: %s (%s): %s" % (who, step["runtime"], step["reason"], "; ".join(parts) or "nothing running")


def _remove(module, path):
    try:
        if os.path.islink(path) or os.path.isfile(path) or (os.path.exists(path) and not os.path.isdir(path)):
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        module.fail_json(msg="could not remove %s: %s" % (path, exc))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            apps=dict(type="list", elements="dict", required=True),
            absent=dict(type="list", elements="dict", default=[]),
            dirs=dict(type="dict", required=True),
            timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )
    params = module.params
    missing = [key for key in ("base", "run", "config", "log", "state") if not params["dirs"].get(key)]
    if missing:
        module.fail_json(msg="dirs: missing %s" % ", ".join(missing))
    wanted = {}
    for index, app in enumerate(params["apps"]):
        if not app.get("name") or not app.get("runtime"):
            module.fail_json(msg="apps[%d]: needs name and runtime (the layout's keys)" % index)
        wanted[app["name"]] = app["runtime"]
    absent = {item["name"]: bool(item.get("purge", False)) for item in params["absent"] if item.get("name")}
    todo = retire_plan(wanted, absent, params["dirs"])
    steps = todo["steps"] + todo["host"]
    retired = [_describe(step) for step in steps]
    for entry in todo["apps"]:
        retired.append(
            "%s: removed from pyweb_apps: %s"
            % (entry["app"], "purged (code, data, logs, configuration)" if entry["purge"] else "code and data kept")
        )
    changed = bool(steps or todo["apps"])
    if module.check_mode or not changed:
        module.exit_json(changed=changed, retired=retired, plan=todo)

    app_steps, host_steps = todo["steps"], todo["host"]
    # 1. No new connection reaches what goes: its sockets close first.
    sockets = [u for s in app_steps for u in s["units"] if u.endswith(".socket")]
    if sockets:
        _systemctl(module, "stop", *sockets)
    # 2. The emperor stops a vassal whose file went.
    for step in app_steps:
        for vassal in step["vassals"]:
            _remove(module, vassal)
    # 3. The services stop gracefully (their masters finish what is in flight).
    services = [u for s in app_steps for u in s["units"] if not u.endswith(".socket")]
    if services:
        # A unit that is not loaded is stopped already: what counts is that
        # none is still running afterwards.
        _systemctl(module, "stop", *services)
        rc, out = _systemctl(module, "list-units", "--no-legend", "--plain", "--state=active,deactivating,activating", *services)
        if out:
            module.fail_json(msg="still running after systemctl stop: %s" % out, retired=retired)
    left = _wait_gone(module, [s["processes"] for s in app_steps if s["processes"]], params["timeout"])
    if left:
        module.fail_json(
            msg="processes matching %s still run %ds after their vassal file went" % (", ".join(left), params["timeout"])
        )
    # 4. The emperor, once no vassal is left to it.
    host_units = [u for s in host_steps for u in s["units"]]
    if host_units:
        _systemctl(module, "stop", *host_units)
    # 5. Files, then directories when empty.
    for step in steps:
        for path in step["remove"]:
            _remove(module, path)
        for path in step["rmdir"]:
            with contextlib.suppress(OSError):
                os.rmdir(path)
    for entry in todo["apps"]:
        for path in entry["remove"]:
            _remove(module, path)
        for path in entry["purge_dirs"]:
            shutil.rmtree(path, ignore_errors=False)
        if entry["user"]:
            rc, out, err = module.run_command(["userdel", entry["user"]])
            # 6: no such user
            if rc not in (0, 6):
                module.fail_json(msg="userdel %s failed: %s" % (entry["user"], (out + err).strip()), retired=retired)
    if any(s["units"] for s in steps):
        _systemctl(module, "daemon-reload")
        _systemctl(module, "reset-failed", *[u for s in steps for u in s["units"]])
    module.exit_json(changed=True, retired=retired, plan=todo)


if __name__ == "__main__":
    main()
