#!/usr/bin/python
# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: http_status
short_description: Wait until an HTTP app server on a unix socket serves, on new workers only
version_added: 0.1.0
description:
  - For app servers that speak HTTP on a unix socket under a systemd unit
    (Gunicorn; Granian). Reads the unit's main process and its workers (the
    main process's descendants) and returns them, see RV(workers).
  - Polls twice a second, up to O(timeout), until every condition holds - the
    unit has a main process with at least O(expect_workers) workers; none of
    O(replaced_pids) runs any more, so a graceful reload has retired every old
    worker and no old code answers; a GET of O(path) with C(Host) O(host) over
    O(socket) is answered with a status up to O(max_status).
  - Fails naming the condition that still did not hold.
  - Changes nothing.
options:
  unit:
    description: The systemd service, like V(pyweb-shop.service).
    type: str
    required: true
  socket:
    description: The unix socket the server listens on (the app layout's C(socket)).
    type: path
    required: true
  path:
    description: Path and query string of the probe request.
    type: str
    default: /
  host:
    description: C(Host) header of the probe (a strict C(ALLOWED_HOSTS) answers 400 to another name).
    type: str
    default: localhost
  max_status:
    description: The highest status that counts as healthy.
    type: int
    default: 499
  replaced_pids:
    description:
      - Worker pids read before a graceful reload (RV(workers) of an earlier call); wait until none runs.
    type: list
    elements: int
    default: []
  expect_workers:
    description: Wait until at least this many workers run.
    type: int
    default: 1
  timeout:
    description: Seconds to wait for all conditions. V(0) makes one attempt.
    type: float
    default: 30
extends_documentation_fragment:
  - pyweb.stack.read_only
  - pyweb.stack.fail_fast
notes:
  - Run it with C(become) - the sockets are 0660, owned by the app user and the web server's group.
author:
  - pyweb.stack developers (@pyweb)
"""

EXAMPLES = r"""
# The paths are the ones pyweb.stack.app_layout gives an app named shop on Gunicorn.
- name: The workers before the reload
  pyweb.stack.http_status:
    unit: pyweb-shop.service
    socket: /run/pyweb/shop.sock
    timeout: 0
  register: shop_before

- name: Reload gracefully
  ansible.builtin.systemd_service:
    name: pyweb-shop.service
    state: reloaded

- name: Wait until no old worker is left and /healthz answers
  pyweb.stack.http_status:
    unit: pyweb-shop.service
    socket: /run/pyweb/shop.sock
    host: shop.example.com
    path: /healthz
    max_status: 399
    replaced_pids: "{{ shop_before.workers }}"
    timeout: 60
"""

RETURN = r"""
main_pid:
  description: The unit's main process.
  returned: success
  type: int
  sample: 4120
workers:
  description: Its workers (descendant pids) when the conditions held.
  returned: success
  type: list
  elements: int
  sample: [4122, 4123]
status:
  description: HTTP status of the probe.
  returned: success
  type: int
  sample: 200
elapsed:
  description: Seconds spent waiting.
  returned: success
  type: float
  sample: 1.52
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pyweb.stack.plugins.module_utils._http_status import HttpStatusError, wait_for


def main():
    module = AnsibleModule(
        argument_spec=dict(
            unit=dict(type="str", required=True),
            socket=dict(type="path", required=True),
            path=dict(type="str", default="/"),
            host=dict(type="str", default="localhost"),
            max_status=dict(type="int", default=499),
            replaced_pids=dict(type="list", elements="int", default=[]),
            expect_workers=dict(type="int", default=1),
            timeout=dict(type="float", default=30),
            fail_fast=dict(type="int", default=3),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if not params["path"].startswith("/"):
        module.fail_json(msg="path must start with /, got %r" % params["path"])
    systemctl = module.get_bin_path("systemctl", required=True)

    def main_pid():
        rc, out, _err = module.run_command([systemctl, "show", "--property=MainPID", "--value", params["unit"]])
        return int(out.strip() or 0) if rc == 0 and out.strip().isdigit() else 0

    try:
        result = wait_for(
            main_pid,
            params["socket"],
            path=params["path"],
            host=params["host"],
            max_status=params["max_status"],
            replaced_pids=params["replaced_pids"],
            expect_workers=params["expect_workers"] if params["timeout"] > 0 else 0,
            timeout=params["timeout"],
            fail_fast=params["fail_fast"],
        )
    except HttpStatusError as exc:
        module.fail_json(msg="%s: %s" % (params["unit"], exc))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
