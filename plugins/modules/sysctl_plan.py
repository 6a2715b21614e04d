#!/usr/bin/python
# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sysctl_plan
short_description: Validate kernel settings and decide what to write and apply
version_added: 0.1.0
description:
  - Reads the live values under C(/proc/sys) and checks every requested key and
    value before anything is written. Unknown keys, values that are not integers
    where the kernel holds integers, and values out of range fail with a message
    naming each of them.
  - Ranges are checked for the keys whose limits are known
    (C(net.core.somaxconn), C(net.ipv4.tcp_max_syn_backlog),
    C(net.ipv4.ip_local_port_range), C(net.ipv4.tcp_tw_reuse),
    C(net.ipv4.tcp_syn_retries) 1..127, C(net.ipv4.tcp_synack_retries) 0..255,
    C(fs.file-max), C(fs.nr_open)); for any other key only the kernel knows its
    range, and the P(pyweb.stack.sysctl#role) role lets the kernel judge it live
    before the file is written.
  - Decides the value to write for each key. Capacity keys (C(net.core.somaxconn),
    C(net.ipv4.tcp_max_syn_backlog), C(fs.file-max), C(fs.nr_open)) are never
    lowered below the live value, and C(net.core.somaxconn) is raised to
    O(min_somaxconn).
  - Inside a container, only keys namespaced to it (C(net.*), IPC keys) that are
    writable there are marked for live application; host-wide keys are reported
    and left to the host.
  - Changes nothing; the P(pyweb.stack.sysctl#role) role applies the values live and
    then writes the file.
options:
  settings:
    description:
      - Keys (dotted or slashed) mapped to values. A value is an integer, a
        string of integers separated by spaces, a list of integers, or a string
        for keys the kernel holds as strings.
    type: dict
    required: true
  min_somaxconn:
    description:
      - The listen backlog the app servers need. C(net.core.somaxconn) and
        C(net.ipv4.tcp_max_syn_backlog) are raised to it; when it cannot be
        applied here and the live value is lower, the module fails.
    type: int
    default: 0
  conf_priority:
    description:
      - The two-digit prefix of the file under C(/etc/sysctl.d), which orders it
        among the other files there.
    type: int
    default: 90
extends_documentation_fragment:
  - pyweb.stack.read_only
author:
  - pyweb.stack developers (@pyweb)
"""

EXAMPLES = r"""
- name: Plan the web-serving kernel limits
  pyweb.stack.sysctl_plan:
    settings:
      net.core.somaxconn: 4096
      net.ipv4.ip_local_port_range: "10240 65535"
      fs.file-max: 2097152
    min_somaxconn: 8192
  register: plan
"""

RETURN = r"""
plan:
  description: The decision for every key.
  returned: success
  type: dict
  contains:
    path:
      description: The file to write.
      type: str
      sample: /etc/sysctl.d/90-pyweb.conf
    entries:
      description:
        - One item per key, sorted by key.
        - C(apply_live) says whether the key may be applied live here;
          C(changes_live) whether applying it changes the live value (C(live)
          is what the kernel held when planned, put back when a later key fails).
      type: list
      elements: dict
      sample:
        - key: net.core.somaxconn
          value: "8192"
          requested: "4096"
          live: "4096"
          apply_live: true
          changes_live: true
          scope: namespaced
          reason: "raised to 8192: the app servers listen with a backlog of 8192"
    values:
      description: Key to the value written.
      type: dict
    host_owned:
      description: Host-wide keys written to the file but not applied from inside a container.
      type: list
      elements: str
    not_writable:
      description: Namespaced keys that are read-only in this container.
      type: list
      elements: str
    notes:
      description: Sentences for the operator; also issued as warnings.
      type: list
      elements: str
    in_container:
      description: Whether the target runs in a container.
      type: bool
    container:
      description: The container kind (docker, podman, lxc ...), or null.
      type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pyweb.stack.plugins.module_utils._container import detect_container
from ansible_collections.pyweb.stack.plugins.module_utils._sysctl import SysctlError, plan_sysctl


def main():
    module = AnsibleModule(
        argument_spec=dict(
            settings=dict(type="dict", required=True),
            min_somaxconn=dict(type="int", default=0),
            conf_priority=dict(type="int", default=90),
        ),
        supports_check_mode=True,
    )
    priority = module.params["conf_priority"]
    if not 0 <= priority <= 99:
        module.fail_json(msg="conf_priority: %d is out of range (allowed 0..99)" % priority)
    in_container, container, _evidence = detect_container()
    try:
        plan = plan_sysctl(
            module.params["settings"],
            min_somaxconn=module.params["min_somaxconn"],
            in_container=in_container,
            container=container,
        )
    except SysctlError as exc:
        module.fail_json(msg=str(exc))
    plan["path"] = "/etc/sysctl.d/%02d-pyweb.conf" % priority
    for note in plan["notes"]:
        module.warn(note)
    module.exit_json(changed=False, plan=plan)


if __name__ == "__main__":
    main()
