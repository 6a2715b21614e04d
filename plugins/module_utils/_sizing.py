# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sizing engine: host capacity + app description -> concurrency numbers.

Private to pyweb.stack; the filters worker_sizing and worker_plan are thin
wrappers. Pure functions: no I/O, no Ansible imports, so the rules are unit-
and property-tested directly. docs/sizing.md explains every rule.
"""

from __future__ import annotations

import math

__all__ = [
    "APP_SIZING_KEYS",
    "DEFAULTS",
    "INTERFACES",
    "OVER_BUDGET_LIMIT",
    "PROFILES",
    "SERVERS",
    "UWSGI_MODES",
    "SizingError",
    "normalise_capacity",
    "plan_workers",
    "size_workers",
]

SERVERS = ("gunicorn", "uwsgi", "granian", "uvicorn")
PROFILES = ("cpu", "io", "mixed", "async")
# uWSGI's two shapes: one master with N workers per app (a vassal of the
# emperor), or N single-worker instances per app balanced by nginx.
UWSGI_MODES = ("emperor", "instances")
# The calling conventions each server speaks (rsgi: Granian's own); the first
# is the default. app_layout checks the same per app.
INTERFACES = {"gunicorn": ("wsgi",), "uwsgi": ("wsgi",), "granian": ("wsgi", "asgi", "rsgi"), "uvicorn": ("asgi",)}

DEFAULTS = {
    # A Django/Flask worker after warm-up; measure yours (capacity_facts
    # measure=...) or pass worker_rss_mb.
    "worker_rss_mb": 100.0,
    # Each extra thread in a worker holds its own request state and stack.
    "thread_share": 0.05,
    # The master/arbiter process, as a fraction of a worker.
    "master_share": 0.4,
    "io_threads": 8,
    "mixed_threads": 2,
    "backlog": 2048,
    "max_requests": 1000,
    "timeout": {"cpu": 60, "io": 30, "mixed": 30, "async": 30},
    # nginx answers 504 at the app's timeout; the app server ends a request
    # still running this much later (Gunicorn's per-request limit, uWSGI's
    # harakiri, checked once a second). Ended first, a worker's closed
    # connection would be nginx's 502, and a threaded worker's other requests
    # would go with it.
    "kill_margin": 3,
    # nginx retries a failed idempotent request only this early in it (never
    # after a timeout): a reload's reset comes at once, a request that failed
    # later had been running and is not sent to a second worker.
    "retry_window": 5,
    "keepalive": 5,
    "worker_connections": 4096,
    # Open requests one event-loop worker (Granian asgi/rsgi, Uvicorn, gevent)
    # holds at once, unless nginx's share of the host allows fewer (Gunicorn's
    # gevent default). Most of them wait (on I/O, a stream, a WebSocket): a
    # worker past it stops accepting, and the socket's queue holds the rest.
    "connections_per_worker": 1000,
    # Granian recycles by age (it has no max_requests): a slow leak is bounded
    # by a few hours, not by a count of requests.
    "workers_lifetime": 6 * 3600,
    # Granian's bounds for workers_kill_timeout.
    "kill_timeout_range": (1, 1800),
}


class SizingError(ValueError):
    """Bad input; the message names the argument and what is allowed."""


# ---------------------------------------------------------------- capacity


def _number(value):
    """A positive finite float, or None for missing/zero/garbage."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(number) or math.isinf(number) or number <= 0:
        return None
    return number


def _fact(facts, name):
    if name in facts:
        return facts[name]
    return facts.get("ansible_" + name)


def normalise_capacity(capacity):
    """Accept pyweb_capacity, or ansible_facts with or without it.

    Returns ``{cpus, memory_mb, somaxconn, nr_open, measured, notes}``.
    A missing, zero or garbage CPU count falls back to 1 CPU and says so;
    no memory information at all is an error.
    """
    if not isinstance(capacity, dict):
        raise SizingError(
            "capacity must be a dict: ansible_facts, or ansible_facts.pyweb_capacity from "
            "pyweb.stack.capacity_facts; got %s" % type(capacity).__name__
        )
    notes = []
    cap = capacity.get("pyweb_capacity") if isinstance(capacity.get("pyweb_capacity"), dict) else None
    if cap is None and "cpus_source" in capacity:
        cap = capacity

    if cap is not None:
        memory = cap.get("memory") or {}
        kernel = cap.get("kernel") or {}
        cpus = _number(cap.get("cpus"))
        if cpus is None:
            fallback = _number(cap.get("cpus_host"))
            notes.append(
                "CPU count from capacity_facts is missing or invalid (%r): %s"
                % (cap.get("cpus"), "used the host's %g" % fallback if fallback else "assumed 1 CPU")
            )
            cpus = fallback or 1.0
        else:
            notes.append("%g effective CPUs (decided by %s)" % (cpus, cap.get("cpus_source") or "capacity_facts"))
        memory_mb = _number(memory.get("effective_mb")) or _number(memory.get("total_mb"))
        if memory_mb is not None:
            notes.append("%d MiB of memory (decided by %s)" % (memory_mb, memory.get("source") or "capacity_facts"))
        somaxconn = _number(kernel.get("somaxconn"))
        nr_open = _number(kernel.get("nr_open"))
        measured = cap.get("measured") or {}
    else:
        cpus = None
        for name in ("processor_nproc", "processor_vcpus"):
            cpus = _number(_fact(capacity, name))
            if cpus is not None:
                break
        if cpus is None:
            cores = _number(_fact(capacity, "processor_cores"))
            count = _number(_fact(capacity, "processor_count"))
            threads = _number(_fact(capacity, "processor_threads_per_core")) or 1.0
            if cores and count:
                cpus = cores * count * threads
        memory_mb = _number(_fact(capacity, "memtotal_mb"))
        if cpus is None:
            notes.append("no usable CPU count in the facts (missing, zero or garbage, as seen on some ARM hosts): assumed 1 CPU")
            cpus = 1.0
        else:
            notes.append(
                "%g CPUs from Ansible's processor facts: the host's cores, not a container's quota "
                "(run pyweb.stack.capacity_facts for the real limits)" % cpus
            )
        if memory_mb is not None:
            notes.append("%d MiB from Ansible's memtotal_mb: the host's RAM, not a cgroup limit" % memory_mb)
        somaxconn = None
        nr_open = None
        measured = {}
    if memory_mb is None:
        raise SizingError(
            "capacity has no memory information (no pyweb_capacity.memory.effective_mb nor memtotal_mb): "
            "pass ansible_facts after gathering facts, or the result of pyweb.stack.capacity_facts"
        )
    return {
        "cpus": cpus,
        "memory_mb": memory_mb,
        "somaxconn": int(somaxconn) if somaxconn else None,
        "nr_open": int(nr_open) if nr_open else None,
        "measured": measured if isinstance(measured, dict) else {},
        "notes": notes,
    }


# ---------------------------------------------------------------- arguments


def _choice(name, value, allowed):
    if value not in allowed:
        raise SizingError("%s must be one of %s, got %r" % (name, ", ".join(allowed), value))
    return value


def _optional_number(name, value, minimum=0.0, integer=False, above=False):
    if value is None:
        return None
    if isinstance(value, bool):
        raise SizingError("%s must be a number, got %r" % (name, value))
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SizingError("%s must be a number, got %r" % (name, value)) from None
    if math.isnan(number) or math.isinf(number):
        raise SizingError("%s must be a finite number, got %r" % (name, value))
    if integer and number != int(number):
        raise SizingError("%s must be a whole number, got %r" % (name, value))
    if number < minimum or (above and number == minimum):
        raise SizingError("%s must be %s %g, got %r" % (name, "above" if above else "at least", minimum, value))
    return int(number) if integer else number


def _default_reserve(memory_mb):
    # The OS, sshd, nginx, a log shipper: 10 % of the memory, 256..1024 MiB.
    return float(min(1024.0, max(256.0, 0.10 * memory_mb)))


def _measured_rss(measured, app):
    """Per-worker memory measured by capacity_facts for this app, if any."""
    if not app or app not in measured or not isinstance(measured[app], dict):
        return None, None
    entry = measured[app]
    workers = entry.get("workers") or {}
    for key, label in (("pss_median_mb", "PSS"), ("rss_median_mb", "RSS")):
        value = _number(workers.get(key))
        if value:
            return value, "measured median %s of %d running worker(s) of %s" % (label, workers.get("count") or 0, app)
    return None, None


# ---------------------------------------------------------------- sizing


def _flag(name, value):
    if value is None:
        return False
    if not isinstance(value, bool):
        raise SizingError("%s must be true or false, got %r" % (name, value))
    return value


# allow_over_budget accepts forced numbers up to this multiple of the memory budget.
OVER_BUDGET_LIMIT = 1.5


def size_workers(
    capacity,
    server="gunicorn",
    profile="mixed",
    *,
    worker_rss_mb=None,
    memory_reserve_mb=None,
    share=1.0,
    db_max_connections=None,
    db_connections_per_thread=1,
    hosts_sharing_db=1,
    min_workers=1,
    max_workers=None,
    threads=None,
    workers=None,
    timeout=None,
    backlog=None,
    uwsgi_mode="emperor",
    allow_over_budget=False,
    app=None,
    interface=None,
    _host=None,
):
    """Size one app server on one host. See docs/sizing.md for the rules."""
    server = _choice("server", server, SERVERS)
    profile = _choice("profile", profile, PROFILES)
    if interface is None:
        interface = INTERFACES[server][0]
    if interface not in ("wsgi", "asgi", "rsgi"):
        raise SizingError("interface must be one of wsgi, asgi, rsgi, got %r" % (interface,))
    if interface not in INTERFACES[server]:
        raise SizingError("interface %s: %s serves %s only" % (interface, server, " and ".join(INTERFACES[server])))
    if server == "uwsgi" and profile == "async":
        raise SizingError(
            "profile 'async' needs an event-loop server: use server granian or uvicorn "
            "(or gunicorn, which runs gevent workers); uwsgi serves WSGI with processes and threads"
        )
    if server == "granian" and interface == "wsgi" and profile == "async":
        raise SizingError(
            "profile 'async' with granian's wsgi interface: Granian runs a WSGI app in blocking threads, one request "
            "per thread, so an event-loop profile would queue its requests behind one thread; use interface asgi or "
            "rsgi for an async app, or profile io (threads) for a WSGI one"
        )
    # One event loop per worker serves many requests at once: their number is
    # bounded per worker, inside what nginx can hold.
    event_loop = (
        server == "uvicorn" or (server == "granian" and interface != "wsgi") or (server == "gunicorn" and profile == "async")
    )
    uwsgi_mode = _choice("uwsgi_mode", uwsgi_mode, UWSGI_MODES)
    instances = server == "uwsgi" and uwsgi_mode == "instances"
    host = _host or normalise_capacity(capacity)
    worker_rss = _optional_number("worker_rss_mb", worker_rss_mb, above=True)
    reserve = _optional_number("memory_reserve_mb", memory_reserve_mb)
    share = _optional_number("share", share, above=True)
    if share > 1:
        raise SizingError("share must be above 0 and at most 1, got %r" % share)
    # 0 is not "no limit": a database that takes no connection serves nothing.
    db_max = _optional_number("db_max_connections", db_max_connections, minimum=1, integer=True)
    per_thread = _optional_number("db_connections_per_thread", db_connections_per_thread, minimum=1, integer=True) or 1
    sharing = _optional_number("hosts_sharing_db", hosts_sharing_db, minimum=1, integer=True) or 1
    min_w = _optional_number("min_workers", min_workers, minimum=1, integer=True)
    max_w = _optional_number("max_workers", max_workers, minimum=1, integer=True)
    threads_override = _optional_number("threads", threads, minimum=1, integer=True)
    if server == "granian" and interface != "wsgi" and threads_override is not None and threads_override > 1:
        raise SizingError(
            "threads = %d with granian's %s interface: Granian runs an %s app on one event loop per worker and refuses "
            "blocking threads > 1 for asgi and rsgi; leave threads unset (or 1), and raise workers for more cores"
            % (threads_override, interface, interface)
        )
    workers_override = _optional_number("workers", workers, minimum=1, integer=True)
    timeout = _optional_number("timeout", timeout, minimum=1, integer=True)
    backlog_wanted = _optional_number("backlog", backlog, minimum=1, integer=True)
    over_budget = _flag("allow_over_budget", allow_over_budget)
    if max_w is not None and min_w is not None and max_w < min_w:
        raise SizingError("max_workers (%d) is below min_workers (%d)" % (max_w, min_w))
    if db_max is not None and db_max // (per_thread * sharing) < 1:
        raise SizingError(
            "db_max_connections = %d over hosts_sharing_db = %d host(s) at db_connections_per_thread = %d "
            "allows %d concurrent requests per host; raise db_max_connections or lower the others"
            % (db_max, sharing, per_thread, db_max // (per_thread * sharing))
        )

    explain = list(host["notes"])
    warnings = []

    # --- CPU: the starting point
    cpus = host["cpus"] * share
    whole_cpus = max(1, int(math.ceil(cpus - 1e-9)))
    if share < 1:
        explain.append("this app gets %.0f%% of the host: %.3g CPUs" % (share * 100, cpus))
    if profile in ("cpu", "mixed"):
        cpu_n = int(math.floor(2 * cpus)) + 1
        explain.append("%s profile: (2 x %.3g CPUs) + 1 = %d processes" % (profile, cpus, cpu_n))
        cpu_t = DEFAULTS["mixed_threads"] if profile == "mixed" else 1
    elif profile == "io":
        cpu_n = whole_cpus
        cpu_t = DEFAULTS["io_threads"]
        explain.append(
            "io profile: about one process per CPU (%d) with %d threads each: waiting on I/O costs threads, not cores"
            % (cpu_n, cpu_t)
        )
    else:
        cpu_n = whole_cpus
        cpu_t = 1
        explain.append("async profile: one event-loop process per CPU (%d)" % cpu_n)
    if server == "uvicorn" and cpu_t != 1:
        explain.append("uvicorn workers run one event loop and no thread pool: threads = 1")
        cpu_t = 1
    if server == "granian" and interface != "wsgi":
        explain.append(
            "granian %s runs one event loop per worker: threads = 1 (Granian refuses blocking threads > 1 for asgi and rsgi)"
            % interface
        )
        cpu_t = 1

    # --- memory
    if worker_rss is None:
        worker_rss, source = _measured_rss(host["measured"], app)
        if worker_rss is None:
            worker_rss = DEFAULTS["worker_rss_mb"]
            source = "assumed (pass worker_rss_mb, or measure running workers with capacity_facts)"
    else:
        source = "given"
    if reserve is None:
        reserve = _default_reserve(host["memory_mb"])
    # Whole MiB, as reported: the fit, the warning and memory_budget_mb all
    # compare against the same number.
    budget = float(max(0, int(math.floor((host["memory_mb"] - reserve) * share))))
    master_mb = DEFAULTS["master_share"] * worker_rss
    share_text = " x %.2f share" % share if share < 1 else ""

    def per_worker(thread_count):
        return worker_rss * (1 + DEFAULTS["thread_share"] * (thread_count - 1))

    # One master per app, or (uWSGI instances) one master per worker.
    def cost(count, thread_count):
        if instances:
            return count * (master_mb + per_worker(thread_count))
        return master_mb + count * per_worker(thread_count)

    def decide(threads_override, workers_override, min_w, say):
        """The rules after the CPU start, in order; ``say`` takes the explain lines."""
        n, t, binding = cpu_n, cpu_t, "cpu"
        if threads_override is not None:
            t = threads_override
            say("threads = %d (override)" % t)
        if max_w is not None and n > max_w:
            n = max_w
            binding = "max_workers"
            say("capped at max_workers = %d" % max_w)
        say(
            "memory budget %d MiB = (%d MiB - %d MiB reserve)%s; %g MiB per worker, %s"
            % (budget, host["memory_mb"], reserve, share_text, worker_rss, source)
        )
        if instances:
            say("uwsgi instances: each worker is its own instance with its own master")
            fit = int(math.floor(budget / (master_mb + per_worker(t))))
        else:
            fit = int(math.floor((budget - master_mb) / per_worker(t))) if budget > master_mb else 0
        if fit < n:
            n = max(1, fit)
            binding = "memory"
            say("memory fits %d worker(s) of %d MiB with %d thread(s): %d process(es)" % (fit, per_worker(t), t, n))
        # --- database connections
        if db_max is not None:
            allowed = int(db_max // (per_thread * sharing))
            if n * t > allowed:
                if threads_override is None and t > 1:
                    t = max(1, allowed // n)
                if n * t > allowed:
                    n = max(1, allowed // t)
                binding = "db"
                say(
                    "database allows %d connections over %d host(s) at %d per thread: %d concurrent requests per host, "
                    "so %d process(es) x %d thread(s)" % (db_max, sharing, per_thread, allowed, n, t)
                )
        # --- explicit workers, lower bound
        if workers_override is not None:
            n = workers_override
            binding = "override"
            say("workers = %d (override)" % n)
        elif min_w is not None and n < min_w:
            n = min_w
            binding = "min_workers"
            say("raised to min_workers = %d" % min_w)
        return n, t, binding

    n, t, binding = decide(threads_override, workers_override, min_w, explain.append)

    # --- what it costs, and whether a number the user forced breaks a budget
    forced = workers_override is not None or threads_override is not None or binding == "min_workers"
    if workers_override is not None:
        counts = "workers = %d" % n
    elif binding == "min_workers":
        counts = "min_workers = %d" % n
    else:
        counts = "%d worker(s)" % n
    counts += " x threads = %d" % t if threads_override is not None else " x %d thread(s)" % t
    expected = cost(n, t)
    budget_text = "the memory budget of %d MiB (host %d MiB - %d MiB reserve%s)" % (
        budget,
        host["memory_mb"],
        reserve,
        share_text,
    )
    if expected > budget:
        # The automatic rules alone never go above the budget, except for the
        # one worker every app gets on a host too small for it: a forced number
        # is refused only when it asks for more than that.
        auto_n, auto_t = decide(None, None, None, lambda line: None)[:2]
        if forced and expected > cost(auto_n, auto_t):
            if not over_budget:
                raise SizingError(
                    "%s need about %d MiB, above %s; lower it, or set allow_over_budget: true to accept up to %d%% "
                    "of the budget" % (counts, math.ceil(expected), budget_text, OVER_BUDGET_LIMIT * 100)
                )
            if expected > OVER_BUDGET_LIMIT * budget:
                raise SizingError(
                    "%s need about %d MiB, above %d MiB, the most allow_over_budget accepts (%d%% of %s); lower it"
                    % (
                        counts,
                        math.ceil(expected),
                        math.floor(OVER_BUDGET_LIMIT * budget),
                        OVER_BUDGET_LIMIT * 100,
                        budget_text,
                    )
                )
            warnings.append(
                "%s need about %d MiB, above %s; accepted by allow_over_budget (up to %d MiB)"
                % (counts, math.ceil(expected), budget_text, math.floor(OVER_BUDGET_LIMIT * budget))
            )
        else:
            warnings.append(
                "%d worker(s) x %d thread(s) need about %d MiB, above the memory budget of %d MiB: "
                "the host is too small for one worker, which runs anyway" % (n, t, math.ceil(expected), budget)
            )
    if db_max is not None and n * t * per_thread * sharing > db_max:
        # Only forced numbers get here: the database rule itself always fits.
        over = "%s x %d connection(s) x %d host(s) = %d database connections, above db_max_connections = %d" % (
            counts,
            per_thread,
            sharing,
            n * t * per_thread * sharing,
            db_max,
        )
        if not over_budget:
            raise SizingError(over + "; lower it, or set allow_over_budget: true to accept it")
        warnings.append(over + "; accepted by allow_over_budget")
    explain.append("result: %d process(es) x %d thread(s), decided by %s" % (n, t, binding))
    explain.extend("WARNING: " + w for w in warnings)

    # --- timeouts, recycling, queues
    timeout = timeout or DEFAULTS["timeout"][profile]
    max_requests = DEFAULTS["max_requests"]
    jitter = max(1, int(round(max_requests * 0.1)))
    if server in ("gunicorn", "uvicorn") and n == 1:
        # The arbiter replaces a retiring worker only once it has exited, and
        # it first finishes what it holds: the app answered nothing meanwhile
        # (8 requests queued 5 s behind a slow one, a Uvicorn worker's recycle).
        max_requests = jitter = 0
    backlog_wanted = backlog_wanted or DEFAULTS["backlog"]
    backlog_value = backlog_wanted
    if host["somaxconn"] is not None and backlog_value > host["somaxconn"]:
        backlog_value = host["somaxconn"]
        explain.append(
            "backlog %d clamped to net.core.somaxconn = %d (raise it with the sysctl role's sysctl_min_somaxconn)"
            % (backlog_wanted, backlog_value)
        )
    elif host["somaxconn"] is None:
        explain.append("net.core.somaxconn unknown: backlog %d must be allowed by the kernel" % backlog_value)
    upstream_read_timeout = timeout
    request_limit = timeout + DEFAULTS["kill_margin"]
    retry_window = max(1, min(DEFAULTS["retry_window"], timeout // 2))
    # Before the decision, which stays the last line (warnings apart).
    decision = next(i for i, line in enumerate(explain) if line.startswith("result: "))
    before = []
    if server == "granian":
        # Granian has no per-request limit: a stuck request ends with its worker.
        kill_low, kill_high = DEFAULTS["kill_timeout_range"]
        kill_timeout = max(kill_low, min(kill_high, request_limit))
        before.append(
            "timeout %d s: nginx answers 504 at %d s and does not retry it; Granian has no per-request limit, so a request "
            "still running runs on until its worker stops (killed %d s after a reload or recycling tells it to); "
            "a failed idempotent request is retried only in its first %d s"
            % (timeout, upstream_read_timeout, kill_timeout, retry_window)
        )
    else:
        before.append(
            "timeout %d s: nginx answers 504 at %d s and does not retry it; the app server ends the request at %d s "
            "(one worker at most); a failed idempotent request is retried only in its first %d s"
            % (timeout, upstream_read_timeout, request_limit, retry_window)
        )
    if max_requests == 0:
        before.append(
            "one worker: no recycling by request count (while a lone worker retires the app answers nothing); "
            "server_settings.max_requests turns it on"
        )

    # --- nginx in front: the whole host, not this app's share
    nginx_workers = max(1, int(math.ceil(host["cpus"] - 1e-9)))
    connections = DEFAULTS["worker_connections"]
    # Each proxied request holds two descriptors (client and upstream).
    rlimit = connections * 2
    if host["nr_open"] is not None and rlimit > host["nr_open"]:
        rlimit = host["nr_open"]
        connections = max(512, rlimit // 2)
        before.append("nginx worker_connections lowered to %d by fs.nr_open = %d" % (connections, host["nr_open"]))

    # --- event-loop workers: open requests per worker, inside nginx's share
    per_loop = None
    if event_loop:
        # nginx holds two connections per proxied request (client, upstream):
        # at most workers x connections / 2 such requests on the host at once,
        # WebSockets and streams included; this app gets its share of them.
        proxied = nginx_workers * connections // 2
        app_proxied = int(math.floor(proxied * share + 1e-9))
        per_loop = max(1, min(DEFAULTS["connections_per_worker"], app_proxied // n))
        if server == "granian":
            label, knob = "granian %s" % interface, "Granian's backpressure: the rest wait in the socket's queue"
        elif server == "gunicorn":
            label, knob = "gunicorn gevent", "Gunicorn's worker_connections: the rest wait in the socket's queue"
        else:
            label, knob = "uvicorn", "not enforced by the worker: uvicorn-worker 0.4.0 passes no limit_concurrency to Uvicorn"
        room = "%snginx's %d worker(s) x %d connections / 2 = %d" % (
            "this app's %.0f%% (%d) of " % (share * 100, app_proxied) if share < 1 else "",
            nginx_workers,
            connections,
            proxied,
        )
        if n * per_loop > app_proxied:
            before.append(
                "%s: %d open request(s) per worker (%s); %d x %d = %d is above %s: raise fs.nr_open or lower the workers"
                % (label, per_loop, knob, n, per_loop, n * per_loop, room)
            )
        elif per_loop < DEFAULTS["connections_per_worker"]:
            before.append(
                "%s: at most %d open requests per worker (%s), below %d so that %d x %d = %d fits %s"
                % (label, per_loop, knob, DEFAULTS["connections_per_worker"], n, per_loop, n * per_loop, room)
            )
        else:
            before.append(
                "%s: at most %d open requests per worker (%s); %d x %d = %d fits %s"
                % (label, per_loop, knob, n, per_loop, n * per_loop, room)
            )

    # --- Granian's own numbers
    if server == "granian":
        blocking = t
        backpressure = per_loop if per_loop is not None else blocking
        workers_max_rss = int(math.ceil(per_worker(t) * 2))
        if per_loop is None:
            before.append(
                "granian wsgi: backpressure = blocking_threads = %d: a worker takes only the requests it has threads for; "
                "the rest wait in the socket's shared accept queue, where any free worker takes them, not inside one busy "
                "worker" % blocking
            )
        before.append(
            "granian: runtime_threads = 1: the Rust threads only move bytes (Python runs in the %s), one per worker keeps "
            "up behind nginx, and Granian warns above the CPU count"
            % ("blocking threads" if interface == "wsgi" else "event loop")
        )
        before.append(
            "granian: a worker is replaced (the new one first) after workers_lifetime = %d s (%g h: Granian has no "
            "max_requests, so age bounds a slow leak) or above workers_max_rss = %d MiB (2 x %g MiB per worker), "
            "sampled every 30 s"
            % (DEFAULTS["workers_lifetime"], DEFAULTS["workers_lifetime"] / 3600.0, workers_max_rss, round(per_worker(t), 1))
        )
        before.append(
            "granian: a worker still running workers_kill_timeout = %d s after it was told to stop (timeout %d s + %d s) "
            "is killed, and its stuck requests end with it" % (kill_timeout, timeout, DEFAULTS["kill_margin"])
        )
    explain[decision:decision] = before

    result = {
        "server": server,
        "profile": profile,
        "interface": interface,
        "cpus": round(cpus, 3),
        "workers": n,
        "threads": t,
        "concurrency": n * t,
        "max_requests": max_requests,
        "max_requests_jitter": jitter,
        "timeout": timeout,
        "request_limit": request_limit,
        "graceful_timeout": timeout,
        "keepalive": DEFAULTS["keepalive"],
        "backlog": backlog_value,
        "backlog_wanted": backlog_wanted,
        "memory_budget_mb": int(budget),
        "memory_reserve_mb": int(reserve),
        "worker_rss_mb": round(worker_rss, 1),
        "per_worker_mb": round(per_worker(t), 1),
        "expected_rss_mb": int(math.ceil(expected)),
        "binding": binding,
        "explain": explain,
        "warnings": warnings,
    }
    if server in ("gunicorn", "uvicorn"):
        if server == "uvicorn":
            worker_class = "uvicorn_worker.UvicornWorker"
        elif profile == "async":
            worker_class = "gevent"
        else:
            worker_class = "gthread" if t > 1 else "sync"
        result["worker_class"] = worker_class
    if server == "uwsgi":
        # instances: n single-worker instances, nothing for cheaper to do.
        processes = 1 if instances else n
        cheaper = processes // 4 if processes >= 4 else 0
        result.update(
            {
                "uwsgi_mode": uwsgi_mode,
                "instances": n if instances else 1,
                "processes": processes,
                "cheaper": cheaper,
                "cheaper_initial": max(cheaper, int(math.ceil(processes / 2.0))) if cheaper else processes,
                "cheaper_step": max(1, processes // 4),
                "cheaper_algo": "spare",
                "reload_on_rss_mb": int(math.ceil(per_worker(t) * 2)),
                "harakiri": request_limit,
                "listen": backlog_value,
            }
        )
    if per_loop is not None:
        result.update({"connections_per_worker": per_loop, "open_requests": n * per_loop})
    if server == "granian":
        result.update(
            {
                "blocking_threads": blocking,
                "runtime_threads": 1,
                "backpressure": backpressure,
                "workers_lifetime": DEFAULTS["workers_lifetime"],
                "workers_max_rss": workers_max_rss,
                "workers_kill_timeout": kill_timeout,
            }
        )
    result.update(
        {
            "worker_processes": nginx_workers,
            "worker_connections": connections,
            "worker_rlimit_nofile": rlimit,
            "upstream_read_timeout": upstream_read_timeout,
            "upstream_retry_window": retry_window,
        }
    )
    return result


# The per-app sizing arguments: what an app description may carry, and (with
# memory_reserve_mb, share and app) what worker_sizing accepts.
APP_SIZING_KEYS = (
    "worker_rss_mb",
    "db_max_connections",
    "db_connections_per_thread",
    "hosts_sharing_db",
    "min_workers",
    "max_workers",
    "threads",
    "workers",
    "timeout",
    "backlog",
    "uwsgi_mode",
    "allow_over_budget",
    "interface",
)


def plan_workers(apps, capacity, memory_reserve_mb=None):
    """Size every app of one host together, splitting CPU and memory by weight.

    ``apps`` is a list of app descriptions (name, server, profile, weight and
    any worker_sizing argument); returns {name: worker_sizing result}.
    """
    if isinstance(apps, dict):
        apps = [dict(value, name=value.get("name", key)) for key, value in apps.items()]
    if not isinstance(apps, list) or not apps:
        raise SizingError("apps must be a non-empty list of app descriptions (each with a name)")
    host = normalise_capacity(capacity)
    weights = []
    names = set()
    for index, app_desc in enumerate(apps):
        if not isinstance(app_desc, dict) or not app_desc.get("name"):
            raise SizingError("apps[%d] must be a dict with a name, got %r" % (index, app_desc))
        name = app_desc["name"]
        if name in names:
            raise SizingError("apps: the name %r is used twice" % name)
        names.add(name)
        weights.append(_optional_number("apps[%s].weight" % name, app_desc.get("weight", 1), above=True))
    total = sum(weights)
    reserve = _optional_number("memory_reserve_mb", memory_reserve_mb)
    plan = {}
    for app_desc, weight in zip(apps, weights):
        name = app_desc["name"]
        kwargs = {key: app_desc[key] for key in APP_SIZING_KEYS if key in app_desc}
        try:
            result = size_workers(
                capacity,
                app_desc.get("server", "gunicorn"),
                app_desc.get("profile", "mixed"),
                share=weight / total,
                memory_reserve_mb=reserve,
                app=name,
                _host=host,
                **kwargs,
            )
        except SizingError as exc:
            raise SizingError("app %s: %s" % (name, exc)) from None
        result["share"] = round(weight / total, 4)
        result["explain"].insert(0, "%s: weight %g of %g" % (name, weight, total))
        plan[name] = result
    return plan
