# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: worker_sizing
short_description: Size an app server from the host's real capacity
version_added: 0.1.0
description:
  - Turns the host's capacity (effective CPUs, memory limit, somaxconn) and an
    app's workload into worker counts, threads, timeouts, backlogs and nginx
    numbers, with an C(explain) list saying which constraint decided.
  - Rules, in order. B(cpu) and B(mixed) profiles start from (2 x effective CPUs) + 1
    processes (mixed with 2 threads); B(io) uses about one process per CPU with 8
    threads; B(async) one event-loop process per CPU. The cgroup quota counts,
    not the host's cores.
  - Memory then caps the processes so that master + workers x per-worker memory
    (the threads' share included) fits the budget, (effective memory - reserve) x share.
  - The database caps concurrency so that workers x threads x
    O(db_connections_per_thread) x O(hosts_sharing_db) <= O(db_max_connections),
    taking threads first, then processes.
  - Explicit O(workers) / O(threads) win, and O(min_workers) raises the count. When such a
    number breaks the memory budget or the database limit, the filter refuses it with the
    numbers; with O(allow_over_budget) it is accepted with a warning in C(warnings) and
    C(explain), up to 150 % of the memory budget (above that it is still refused).
  - Without such numbers the rules always fit the budgets, except that a host too small for
    one worker still gets one, with a warning. A database limit that leaves less than one
    concurrent request per host is refused.
  - The backlog never exceeds C(net.core.somaxconn). nginx answers 504 at the app's timeout
    and the app server (Gunicorn's per-request limit, uWSGI harakiri) ends the request 3 s later,
    so nginx never answers 502 for a timed-out request and no other worker gets it. Granian has no per-request limit;
    a worker that does not stop C(workers_kill_timeout) (the same 3 s later) after being told to is killed.
  - Event-loop workers (Granian with O(interface=asgi) or V(rsgi), Uvicorn, Gunicorn's gevent for B(async)) serve many
    requests at once. Each gets C(connections_per_worker), 1000 unless nginx's share of the host holds fewer (nginx keeps
    two connections per proxied request, so at most worker_processes x worker_connections / 2 on the host, split by O(share)).
  - Granian gets its own numbers (C(blocking_threads), C(runtime_threads), C(backpressure), C(workers_lifetime),
    C(workers_max_rss), C(workers_kill_timeout)); docs/sizing.md explains each.
  - Bad input raises an error naming the argument and the allowed values.
positional: _input, server, profile
options:
  _input:
    description:
      - The host's capacity. Either C(ansible_facts) (with or without
        C(pyweb_capacity) from M(pyweb.stack.capacity_facts)) or
        C(ansible_facts.pyweb_capacity) itself. With plain facts the host's
        processor and memory facts are used, and C(explain) says so.
    type: dict
    required: true
  server:
    description: The app server.
    type: str
    choices: [gunicorn, uwsgi, granian, uvicorn]
    default: gunicorn
  profile:
    description:
      - The workload. V(cpu) computes in Python, V(io) mostly waits on the
        database or other services, V(mixed) does both, V(async) is written for an
        event loop (ASGI; gevent for Gunicorn).
    type: str
    choices: [cpu, io, mixed, async]
    default: mixed
  interface:
    description:
      - The app's calling convention. Default V(asgi) for O(server=uvicorn), V(wsgi) otherwise. Gunicorn and uWSGI serve
        V(wsgi), Uvicorn V(asgi), Granian all three.
      - Granian's V(asgi) and V(rsgi) run one event loop per worker (threads 1; O(threads) above 1 is refused), and
        its V(wsgi) refuses O(profile=async).
    type: str
    choices: [wsgi, asgi, rsgi]
  worker_rss_mb:
    description:
      - Memory of one worker in MiB. Default is a measurement from
        C(pyweb_capacity.measured[app]) when present, else 100.
    type: float
  memory_reserve_mb:
    description: Memory kept for everything else on the host. Default 10 % of the memory, between 256 and 1024 MiB.
    type: float
  share:
    description: The fraction of the host (CPU and memory) this app may use, above 0 and at most 1.
    type: float
    default: 1.0
  db_max_connections:
    description: The database's connection limit for this app, all hosts together; at least 1.
    type: int
  db_connections_per_thread:
    description: Database connections one thread holds.
    type: int
    default: 1
  hosts_sharing_db:
    description: How many hosts run this app against the same database.
    type: int
    default: 1
  min_workers:
    description: Never fewer processes than this.
    type: int
    default: 1
  max_workers:
    description: Never more processes than this.
    type: int
  threads:
    description: Threads per process, overriding the profile's choice.
    type: int
  workers:
    description: Processes, overriding every rule (refused when it breaks a budget, see O(allow_over_budget)).
    type: int
  timeout:
    description: The app's request timeout in seconds. Default 60 for cpu, 30 otherwise.
    type: int
  backlog:
    description: The listen backlog wanted; clamped to C(net.core.somaxconn). Default 2048.
    type: int
  uwsgi_mode:
    description:
      - uWSGI only. C(emperor) sizes one master with O(workers) processes; C(instances)
        sizes that many single-worker instances, each with its own master (counted in
        the memory budget), balanced by nginx.
    type: str
    choices: [emperor, instances]
    default: emperor
  allow_over_budget:
    description:
      - Accept O(workers), O(threads) or O(min_workers) that break a budget, with a warning
        instead of an error. Memory is still refused above 150 % of the budget.
    type: bool
    default: false
  app:
    description: The app's name, to find its measurement in C(pyweb_capacity.measured).
    type: str
author:
  - pyweb.stack developers (@pyweb)
"""

EXAMPLES = r"""
- name: Size Gunicorn for an I/O-bound app with a 100-connection database
  ansible.builtin.set_fact:
    sizing: >-
      {{ ansible_facts | pyweb.stack.worker_sizing('gunicorn', 'io',
           db_max_connections=100, hosts_sharing_db=2) }}

- name: Show why
  ansible.builtin.debug:
    var: sizing.explain

# A 2-CPU-quota / 4 GiB container on a 64-core host, mixed profile:
# workers 5, threads 2, worker_class gthread, binding cpu
"""

RETURN = r"""
_value:
  description: The numbers and why.
  type: dict
  contains:
    workers: {description: Worker processes., type: int}
    threads: {description: Threads per worker., type: int}
    interface: {description: "The app's calling convention: wsgi, asgi or rsgi.", type: str}
    concurrency: {description: "workers x threads: requests running Python code at once.", type: int}
    connections_per_worker:
      description:
        - "Event-loop workers only (Granian asgi/rsgi, Uvicorn, gevent): open requests one worker holds at once, 1000 or
          less so that all of them fit this app's share of nginx's worker_processes x worker_connections / 2."
        - "Granian's backpressure and Gunicorn's worker_connections for gevent; the Uvicorn worker does not enforce it."
      type: int
    open_requests: {description: "workers x connections_per_worker (event-loop workers only).", type: int}
    worker_class: {description: "Gunicorn worker class (sync, gthread, gevent, uvicorn_worker.UvicornWorker); gunicorn and uvicorn only.", type: str}
    max_requests: {description: Requests before a worker is recycled., type: int}
    max_requests_jitter: {description: About 10 % of max_requests., type: int}
    timeout: {description: "App request timeout (s): nginx answers 504 then.", type: int}
    request_limit: {description: "When the app server ends a request still running (s): timeout + 3; Gunicorn's timeout.", type: int}
    graceful_timeout: {description: Time given to workers to finish on reload (s)., type: int}
    keepalive: {description: Seconds an idle upstream keep-alive connection is held., type: int}
    backlog: {description: Listen backlog, at most net.core.somaxconn., type: int}
    backlog_wanted: {description: The backlog before clamping; what the sysctl role should allow., type: int}
    memory_budget_mb: {description: Memory this app may use., type: int}
    memory_reserve_mb: {description: Memory kept for the rest of the host., type: int}
    worker_rss_mb: {description: Memory of one single-threaded worker used in the sums., type: float}
    per_worker_mb: {description: Memory of one worker with its threads., type: float}
    expected_rss_mb: {description: "Master + workers x per_worker_mb (uWSGI instances: one master per worker).", type: int}
    binding: {description: "The constraint that decided: cpu, memory, db, max_workers, min_workers, override.", type: str}
    explain: {description: Sentences a person reads., type: list, elements: str}
    warnings:
      description: "Budgets broken: forced numbers accepted by allow_over_budget, or a host too small for one worker; the roles print them."
      type: list
      elements: str
    uwsgi_mode: {description: "uWSGI shape: emperor or instances (uwsgi only).", type: str}
    instances: {description: "uWSGI instances: 1 in emperor mode, the worker count in instances mode (uwsgi only).", type: int}
    processes: {description: uWSGI processes per instance (uwsgi only)., type: int}
    cheaper: {description: uWSGI minimum idle workers; 0 disables the cheaper subsystem (uwsgi only)., type: int}
    cheaper_initial: {description: uWSGI workers started at boot (uwsgi only)., type: int}
    cheaper_step: {description: uWSGI workers spawned at a time (uwsgi only)., type: int}
    cheaper_algo: {description: uWSGI cheaper algorithm (uwsgi only)., type: str}
    reload_on_rss_mb: {description: uWSGI reloads a worker above this RSS (uwsgi only)., type: int}
    harakiri: {description: "uWSGI's end of a request still running, request_limit (uwsgi only).", type: int}
    listen: {description: uWSGI listen queue (uwsgi only)., type: int}
    blocking_threads: {description: "Granian's Python threads per worker: threads for wsgi, 1 for asgi and rsgi (granian only).", type: int}
    runtime_threads: {description: "Granian's Rust I/O threads per worker, 1 (granian only).", type: int}
    backpressure:
      description:
        - "Granian's requests inside one worker at once (granian only): blocking_threads for wsgi (the rest wait in the
          shared socket queue, where any free worker takes them), connections_per_worker for asgi and rsgi."
      type: int
    workers_lifetime: {description: "Granian replaces a worker (the new one first) after this many seconds, 21600 (granian only).", type: int}
    workers_max_rss: {description: "Granian replaces a worker above this many MiB, 2 x per_worker_mb (granian only).", type: int}
    workers_kill_timeout: {description: "Granian kills a worker not stopped this long after being told to: request_limit, 1..1800 s (granian only).", type: int}
    worker_processes: {description: nginx worker processes (effective CPUs of the host)., type: int}
    worker_connections: {description: nginx connections per worker., type: int}
    worker_rlimit_nofile: {description: nginx open-files limit per worker., type: int}
    upstream_read_timeout:
      description: "nginx proxy/uwsgi read timeout, the app's timeout (s): nginx answers 504, before the app server ends the request."
      type: int
    upstream_retry_window: {description: "nginx retries a failed idempotent request only this many seconds into it (next_upstream_timeout).", type: int}
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.pyweb.stack.plugins.module_utils._sizing import APP_SIZING_KEYS, SizingError, size_workers


def worker_sizing(capacity, server="gunicorn", profile="mixed", **kwargs):
    allowed = set(APP_SIZING_KEYS) | {"memory_reserve_mb", "share", "app"}
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise AnsibleFilterError(
            "worker_sizing: unknown argument(s) %s; allowed: %s" % (", ".join(unknown), ", ".join(sorted(allowed)))
        )
    try:
        return size_workers(capacity, server, profile, **kwargs)
    except SizingError as exc:
        raise AnsibleFilterError("worker_sizing: %s" % exc) from None


class FilterModule:
    def filters(self):
        return {"worker_sizing": worker_sizing}
