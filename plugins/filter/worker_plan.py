# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: worker_plan
short_description: Size every app of one host together
version_added: 0.1.0
description:
  - Sizes all apps of one host with P(pyweb.stack.worker_sizing#filter) at once,
    giving each app a share of the CPUs and of the memory budget in proportion to
    its C(weight), so two apps on one host are never each sized to the whole box.
  - Each app description takes C(name) (required), C(server), C(profile),
    C(weight) (default 1) and any of worker_sizing's arguments
    (C(interface), C(worker_rss_mb), C(db_max_connections), C(db_connections_per_thread),
    C(hosts_sharing_db), C(min_workers), C(max_workers), C(threads), C(workers),
    C(timeout), C(backlog), C(uwsgi_mode), C(allow_over_budget)); other keys (domains, static paths ...) are ignored.
  - An event-loop app's C(connections_per_worker) fits its share (C(weight)) of nginx's connections, as its CPUs and memory do.
  - The memory reserve is taken once for the host, not once per app.
  - Running workers measured by M(pyweb.stack.capacity_facts) under the app's
    name give its per-worker memory when C(worker_rss_mb) is not set.
positional: _input, capacity
options:
  _input:
    description: The apps (C(pyweb_apps)), a list of dicts; a dict keyed by name is accepted too.
    type: list
    elements: dict
    required: true
  capacity:
    description: C(ansible_facts) or C(ansible_facts.pyweb_capacity), as for worker_sizing.
    type: dict
    required: true
  memory_reserve_mb:
    description: Memory kept for the rest of the host. Default 10 % of the memory, between 256 and 1024 MiB.
    type: float
author:
  - pyweb.stack developers (@pyweb)
"""

EXAMPLES = r"""
- name: Size both apps of the host
  ansible.builtin.set_fact:
    plan: "{{ pyweb_apps | pyweb.stack.worker_plan(ansible_facts) }}"
  vars:
    pyweb_apps:
      - {name: shop, server: gunicorn, profile: io, weight: 3, db_max_connections: 60}
      - {name: admin, server: uwsgi, profile: mixed, weight: 1}

- name: Workers of the shop
  ansible.builtin.debug:
    msg: "{{ plan.shop.workers }} x {{ plan.shop.threads }} ({{ plan.shop.binding }})"
"""

RETURN = r"""
_value:
  description: App name to its worker_sizing result, plus C(share), the fraction of the host it was given.
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.pyweb.stack.plugins.module_utils._sizing import SizingError, plan_workers


def worker_plan(apps, capacity, memory_reserve_mb=None):
    try:
        return plan_workers(apps, capacity, memory_reserve_mb=memory_reserve_mb)
    except SizingError as exc:
        raise AnsibleFilterError("worker_plan: %s" % exc) from None


class FilterModule:
    def filters(self):
        return {"worker_plan": worker_plan}
