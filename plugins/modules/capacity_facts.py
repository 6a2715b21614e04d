#!/usr/bin/python
# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: capacity_facts
short_description: What the host really has for web serving (CPU quota, memory limit, kernel limits)
version_added: 0.1.0
description:
  - Returns C(ansible_facts.pyweb_capacity), the input of the
    P(pyweb.stack.worker_sizing#filter) and P(pyweb.stack.worker_plan#filter) filters.
  - B(CPUs) are the effective count as a float, the smallest of the host's online
    CPUs, this process's CPU affinity, the cgroup cpuset and the cgroup CPU quota
    (v2 C(cpu.max), v1 C(cpu.cfs_quota_us)/C(cpu.cfs_period_us)), read on the
    process's own cgroup and every ancestor. C(cpus_source) names the one that decided.
  - B(Memory) is MemTotal, MemAvailable, the cgroup limit (v2 C(memory.max), v1
    C(memory.limit_in_bytes); "max" and the huge v1 sentinel mean no limit) and the
    effective limit, the smaller of MemTotal and the cgroup limit, in MiB.
  - B(Kernel) limits are C(net.core.somaxconn), C(net.ipv4.tcp_max_syn_backlog),
    C(fs.file-max), C(fs.nr_open), this process's open-files limit and the one
    systemd gives services (C(DefaultLimitNOFILE)).
  - With O(measure), also the memory per worker of app servers already running,
    telling the master from its workers.
  - Changes nothing.
options:
  measure:
    description:
      - App servers to measure. Each item is a dict with C(name) (the key in
        C(pyweb_capacity.measured); use the app's name so the sizing filters find
        it) and either C(unit) (a systemd unit; its main PID is the master, every
        process below it a worker) or C(pattern) (a regular expression on the
        command line; matching processes whose parent also matches are workers).
      - A plain string is a unit when it ends in C(.service), a pattern otherwise.
    type: list
    elements: raw
    default: []
extends_documentation_fragment:
  - pyweb.stack.read_only
attributes:
  facts:
    support: full
    description: Sets C(pyweb_capacity).
author:
  - pyweb.stack developers (@pyweb)
"""

EXAMPLES = r"""
- name: Read the host's capacity
  pyweb.stack.capacity_facts:

- name: Size from it
  ansible.builtin.debug:
    msg: "{{ ansible_facts.pyweb_capacity | pyweb.stack.worker_sizing('gunicorn', 'mixed') }}"

# What app_layout gives as each app's measure: the unit of a Gunicorn app,
# the process title of a uWSGI app in emperor mode.
- name: Also measure the running workers of two apps
  pyweb.stack.capacity_facts:
    measure:
      - {name: shop, unit: pyweb-shop.service}
      - {name: admin, pattern: "^pyweb-admin uWSGI"}

- name: Measure every app of the layout
  pyweb.stack.capacity_facts:
    measure: "{{ python_app_layout | map(attribute='measure') | list }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts set.
  returned: always
  type: dict
  contains:
    pyweb_capacity:
      description: What the host has.
      type: dict
      contains:
        cpus: {description: Effective CPUs (float)., type: float, sample: 1.5}
        cpus_host: {description: Online CPUs of the host., type: int, sample: 64}
        cpus_source: {description: "What decided C(cpus): host, affinity, cgroup1/cgroup2 cpuset, cgroup1 cpu.cfs_quota_us, cgroup2 cpu.max.", type: str}
        cpu_quota: {description: "CPUs allowed by the cgroup quota, or null.", type: float}
        cpuset_cpus: {description: "CPUs in the cgroup cpuset, or null.", type: int}
        cpu_affinity: {description: CPUs this process may run on., type: int}
        cgroup_version: {description: "1, 2 or null.", type: int}
        memory:
          description: total_mb, available_mb, cgroup_limit_mb (null when none), effective_mb, source.
          type: dict
        kernel:
          description: somaxconn, tcp_max_syn_backlog, file_max, nr_open, nofile_soft, nofile_hard, service_nofile_soft, service_nofile_hard.
          type: dict
        network:
          description: C(ipv6) (bool) - the host has an IPv6 address, so nginx may listen on C([::]).
          type: dict
        os:
          description:
            - From C(/etc/os-release) - C(id) (debian), C(distribution) (Debian), C(major) (12),
              C(family) (Debian, RedHat or null), C(codename) (bookworm). The roles load their
              per-OS vars files by these, without a fact gathering.
          type: dict
        container:
          description: in_container (bool), kind (docker, podman, lxc ... or null), evidence.
          type: dict
        measured:
          description:
            - Per O(measure) name, C(master) (pid, rss_mb, pss_mb, uss_mb), C(workers)
              (count, pids, rss/pss/uss median and max in MiB) and C(source) (psutil or /proc).
          type: dict
        notes:
          description: Sentences about anything that fell back.
          type: list
          elements: str
"""

import os
import re
import resource

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pyweb.stack.plugins.module_utils._capacity import (
    cpu_capacity,
    kernel_limits,
    memory_capacity,
    network_capacity,
    os_release,
)
from ansible_collections.pyweb.stack.plugins.module_utils._container import detect_container
from ansible_collections.pyweb.stack.plugins.module_utils._procmem import find_by_pattern, measure_group
from ansible_collections.pyweb.stack.plugins.module_utils._procmem import workers as unit_workers


def _measure_items(module):
    items = []
    for index, raw in enumerate(module.params["measure"]):
        if isinstance(raw, str):
            item = {"name": raw, "unit": raw} if raw.endswith(".service") else {"name": raw, "pattern": raw}
        elif isinstance(raw, dict):
            item = dict(raw)
        else:
            module.fail_json(msg="measure[%d]: expected a dict with name and unit or pattern, or a string; got %r" % (index, raw))
        unknown = set(item) - {"name", "unit", "pattern"}
        if unknown:
            module.fail_json(
                msg="measure[%d]: unknown key(s) %s (allowed: name, unit, pattern)" % (index, ", ".join(sorted(unknown)))
            )
        if bool(item.get("unit")) == bool(item.get("pattern")):
            module.fail_json(msg="measure[%d]: give exactly one of unit or pattern" % index)
        item.setdefault("name", item.get("unit") or item.get("pattern"))
        items.append(item)
    return items


def _service_nofile(module):
    systemctl = module.get_bin_path("systemctl")
    if not systemctl:
        return None, None
    rc, out, _err = module.run_command([systemctl, "show", "--property=DefaultLimitNOFILE,DefaultLimitNOFILESoft"])
    if rc != 0:
        return None, None
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def parse(text):
        return int(text) if text and text.isdigit() else None

    return parse(values.get("DefaultLimitNOFILESoft")), parse(values.get("DefaultLimitNOFILE"))


def _measure(module, item, notes):
    if item.get("pattern"):
        try:
            re.compile(item["pattern"])
        except re.error as exc:
            module.fail_json(msg="measure %s: pattern %r is not a regular expression: %s" % (item["name"], item["pattern"], exc))
        masters, workers = find_by_pattern(item["pattern"])
        if len(masters) > 1:
            notes.append("measure %s: %d masters match; measured the first (pid %d)" % (item["name"], len(masters), masters[0]))
    else:
        systemctl = module.get_bin_path("systemctl")
        if not systemctl:
            module.fail_json(msg="measure %s: unit %s given but systemctl is not on this host" % (item["name"], item["unit"]))
        rc, out, _err = module.run_command([systemctl, "show", "--property=MainPID", "--value", item["unit"]])
        pid = int(out.strip()) if rc == 0 and out.strip().isdigit() else 0
        if pid == 0:
            notes.append("measure %s: unit %s is not running; nothing measured" % (item["name"], item["unit"]))
            masters, workers = [], []
        else:
            masters, workers = [pid], unit_workers(pid)
    result = measure_group(masters, workers)
    result.update({key: item[key] for key in ("unit", "pattern") if item.get(key)})
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(measure=dict(type="list", elements="raw", default=[])),
        supports_check_mode=True,
    )
    items = _measure_items(module)
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    cpu = cpu_capacity("/", affinity=affinity, cpu_count=os.cpu_count())
    notes = cpu.pop("notes")
    if cpu["cpus"] is None:
        module.fail_json(msg="no CPU information readable on this host (/sys/devices/system/cpu/online, os.cpu_count)")
    memory = memory_capacity("/")
    if memory["effective_mb"] is None:
        module.fail_json(msg="no memory information readable on this host (/proc/meminfo)")
    kernel = kernel_limits("/", nofile=resource.getrlimit(resource.RLIMIT_NOFILE))
    kernel["service_nofile_soft"], kernel["service_nofile_hard"] = _service_nofile(module)
    in_container, kind, evidence = detect_container("/")
    capacity = dict(cpu)
    capacity.update(
        {
            "memory": memory,
            "kernel": kernel,
            "network": network_capacity("/"),
            "os": os_release("/"),
            "container": {"in_container": in_container, "kind": kind, "evidence": evidence},
            "measured": {},
            "notes": notes,
        }
    )
    for item in items:
        capacity["measured"][item["name"]] = _measure(module, item, notes)
    module.exit_json(changed=False, ansible_facts={"pyweb_capacity": capacity})


if __name__ == "__main__":
    main()
