#!/usr/bin/python
# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: uwsgi_status
short_description: Read a running uWSGI's stats and wait until it serves
version_added: 0.1.0
description:
  - Reads the JSON of a uWSGI stats server (C(--stats)) or of an emperor's
    (C(--emperor-stats-server)) and returns a summary, see RV(stats).
  - Polls twice a second, up to O(timeout), until every condition holds. The stats
    socket answers. At least O(expect_running) workers run (for an emperor, vassals).
    None of the running workers is one of O(replaced_pids), so a graceful reload has
    replaced every old worker. Every running worker accepts requests (with
    C(lazy-apps) a new worker runs a while before its app is loaded; for an emperor,
    every vassal told it its workers accept). With O(socket), a request sent over
    the uwsgi protocol, the way nginx sends it, is answered with a status below 500.
  - Wait for this before a graceful reload too, not only after it. A uWSGI 2.0 worker
    still loading its app ignores the master's C(SIGHUP); the reload then waits
    C(worker-reload-mercy) (60 seconds by default) and kills it.
  - Fails naming the condition that still did not hold and the last state seen.
  - A cheaped worker (C(cheaper) subsystem) keeps its slot with pid 0 and status
    C(cheap); it is not counted as running.
  - Changes nothing.
options:
  stats:
    description:
      - The stats server, as uWSGI's C(stats) option names it, a unix socket path
        (starting with V(/)), V(@name) for an abstract socket, or V(host:port).
      - The plain stats server only; one started with C(stats-http) is not read.
    type: str
    required: true
  socket:
    description:
      - The app's uwsgi-protocol socket (uWSGI's C(socket) option, what nginx's
        C(uwsgi_pass) points to), a unix socket path or V(host:port).
      - When given, a request for O(path) must be answered with a status up to O(max_status).
    type: path
  path:
    description: Path and query string of the probe request.
    type: str
    default: /
  host:
    description: C(Host) header and C(SERVER_NAME) of the probe request.
    type: str
    default: localhost
  max_status:
    description:
      - The highest status that counts as healthy, 499 (the app answered, no
        5xx) for a default path, 399 for a health path the user named.
    type: int
    default: 499
  expect_running:
    description:
      - Wait until at least this many workers run (for an emperor, vassals).
    type: int
  replaced_pids:
    description:
      - Worker pids read before a graceful reload (C(running_pids) in RV(stats) of an earlier
        call); wait until none of them runs any more.
    type: list
    elements: int
    default: []
  timeout:
    description:
      - Seconds to wait for all conditions. V(0) makes one attempt.
    type: float
    default: 30
extends_documentation_fragment:
  - pyweb.stack.read_only
  - pyweb.stack.fail_fast
notes:
  - The user running the module needs access to the sockets; pyweb.stack makes them
    0660, owned by the app user and the nginx group, so run it with C(become).
author:
  - pyweb.stack developers (@pyweb)
"""

EXAMPLES = r"""
# The paths are the ones pyweb.stack.app_layout gives an app named shop,
# served by uWSGI in instances mode (instance 1 of N).
- name: Note the worker of instance 1 before the reload
  pyweb.stack.uwsgi_status:
    stats: /run/pyweb/shop/stats@1.sock
    timeout: 0
  register: shop_before

- name: Reload it gracefully
  ansible.builtin.systemd_service:
    name: pyweb-shop@1.service
    state: reloaded

- name: Wait until its old worker is replaced and /healthz answers
  pyweb.stack.uwsgi_status:
    stats: /run/pyweb/shop/stats@1.sock
    socket: /run/pyweb/shop@1.sock
    path: /healthz
    host: shop.example.com
    expect_running: "{{ shop_before.stats.worker_count }}"
    replaced_pids: "{{ shop_before.stats.running_pids }}"
    timeout: 60

- name: List the vassals of the emperor (uwsgi_emperor_stats of the uwsgi role)
  pyweb.stack.uwsgi_status:
    stats: /run/pyweb/uwsgi-emperor.stats.sock
  register: emperor

- name: Show them
  ansible.builtin.debug:
    msg: "{{ emperor.stats.vassals | map(attribute='id') | list }}"
"""

RETURN = r"""
stats:
  description:
    - Summary of the stats the last attempt read.
    - For an app server C(emperor=false), C(version), C(pid) (the master), C(listen_queue),
      C(listen_queue_errors), C(workers), C(worker_count), C(running_pids) and C(running_count)
      (workers with a process, cheaped ones are not), C(accepting_pids) and C(accepting_count)
      (running ones that accept requests), C(busy_count), C(threads) (per worker) and C(sockets)
      (name, proto, queue, max_queue).
    - Each worker has C(id), C(pid), C(status) (V(idle), V(busy), V(cheap), V(pause) or C(sig)
      followed by the signal number), C(accepting), C(requests), C(exceptions), C(harakiri_count),
      C(rss_mb) (null unless uWSGI runs with C(memory-report)), C(respawn_count) and C(last_spawn) (epoch).
    - For an emperor C(emperor=true), C(version), C(pid), C(monitors), C(throttle_level), C(vassals),
      C(vassal_count), C(running_pids) and C(running_count) (vassals with a process), C(accepting_pids)
      and C(accepting_count) (those whose workers accept requests) and C(blacklist) (id, attempt,
      throttle_level, first_attempt, last_attempt).
    - Each vassal has C(id) (the file name, for example V(shop.ini)), C(pid) (its master), C(uid), C(gid),
      C(respawns), C(ready), C(accepting), C(loyal), C(born), C(last_mod), C(last_ready) (epochs),
      C(cursed), C(on_demand) (socket or null) and C(monitor).
  returned: success
  type: dict
  sample:
    emperor: false
    version: 2.0.31
    pid: 4120
    listen_queue: 0
    listen_queue_errors: 0
    worker_count: 1
    running_pids: [4122]
    running_count: 1
    accepting_pids: [4122]
    accepting_count: 1
    busy_count: 0
    threads: 2
    sockets: [{name: /run/pyweb/shop@1.sock, proto: uwsgi, queue: 0, max_queue: 0}]
    workers:
      - {id: 1, pid: 4122, status: idle, accepting: true, requests: 17, exceptions: 0, harakiri_count: 0,
         rss_mb: null, respawn_count: 1, last_spawn: 1795289090}
status:
  description: HTTP status of the probe request, null without O(socket).
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

from ansible_collections.pyweb.stack.plugins.module_utils._uwsgi import UwsgiError, wait_for


def main():
    module = AnsibleModule(
        argument_spec=dict(
            stats=dict(type="str", required=True),
            socket=dict(type="path"),
            path=dict(type="str", default="/"),
            host=dict(type="str", default="localhost"),
            max_status=dict(type="int", default=499),
            expect_running=dict(type="int"),
            replaced_pids=dict(type="list", elements="int", default=[]),
            timeout=dict(type="float", default=30),
            fail_fast=dict(type="int", default=3),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["timeout"] < 0:
        module.fail_json(msg="timeout must be 0 (one attempt) or more seconds, got %s" % params["timeout"])
    if not params["path"].startswith("/"):
        module.fail_json(msg="path must start with /, got %r" % params["path"])
    try:
        summary, response, elapsed = wait_for(
            params["stats"],
            expect_running=params["expect_running"],
            replaced_pids=params["replaced_pids"],
            socket=params["socket"],
            path=params["path"],
            host=params["host"],
            max_status=params["max_status"],
            timeout=params["timeout"],
            fail_fast=params["fail_fast"],
        )
    except UwsgiError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, stats=summary, status=response["status"] if response else None, elapsed=elapsed)


if __name__ == "__main__":
    main()
