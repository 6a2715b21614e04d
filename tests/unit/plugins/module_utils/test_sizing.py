"""The sizing rules, one by one, and their invariants over random inputs."""

from __future__ import annotations

import math
import os

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from ansible_collections.pyweb.stack.plugins.module_utils._sizing import (
    APP_SIZING_KEYS,
    DEFAULTS,
    INTERFACES,
    PROFILES,
    SERVERS,
    UWSGI_MODES,
    SizingError,
    normalise_capacity,
    plan_workers,
    size_workers,
)


def cap(cpus=4.0, memory_mb=8192, somaxconn=4096, nr_open=1048576, measured=None, cpus_host=None):
    return {
        "cpus": cpus,
        "cpus_host": cpus_host or int(math.ceil(cpus or 1)),
        "cpus_source": "cgroup2 cpu.max",
        "memory": {"effective_mb": memory_mb, "total_mb": memory_mb, "source": "cgroup2 memory.max"},
        "kernel": {"somaxconn": somaxconn, "nr_open": nr_open},
        "measured": measured or {},
    }


# --- capacity input


def test_accepts_ansible_facts_with_pyweb_capacity():
    facts = {"processor_nproc": 64, "memtotal_mb": 262144, "pyweb_capacity": cap(2.0, 4096)}
    assert normalise_capacity(facts)["cpus"] == 2.0
    assert normalise_capacity(facts)["memory_mb"] == 4096


def test_plain_facts_fall_back_and_say_so():
    result = size_workers({"ansible_processor_nproc": 4, "ansible_memtotal_mb": 8192}, "gunicorn", "cpu")
    assert result["cpus"] == 4.0
    assert result["workers"] == 9
    assert any("not a container's quota" in line for line in result["explain"])


def test_plain_facts_from_cores_and_count():
    host = normalise_capacity({"processor_cores": 4, "processor_count": 2, "processor_threads_per_core": 2, "memtotal_mb": 1000})
    assert host["cpus"] == 16.0


@pytest.mark.parametrize("garbage", [0, None, "NA", -4, "", float("nan"), True])
def test_garbage_cpu_fact_falls_back_to_one(garbage):
    result = size_workers({"processor_nproc": garbage, "processor_vcpus": garbage, "memtotal_mb": 4096}, "gunicorn", "cpu")
    assert result["cpus"] == 1.0
    assert result["workers"] == 3
    assert any("assumed 1 CPU" in line for line in result["explain"])


def test_garbage_cpus_in_pyweb_capacity_use_the_host_count():
    result = size_workers(cap(cpus="garbage", cpus_host=2), "gunicorn", "cpu")
    assert result["cpus"] == 2.0
    assert any("missing or invalid" in line for line in result["explain"])


@pytest.mark.parametrize("capacity", [{}, {"processor_nproc": 2}, {"pyweb_capacity": {"cpus": 2, "cpus_source": "host"}}])
def test_no_memory_information_is_an_error(capacity):
    with pytest.raises(SizingError, match="no memory information"):
        size_workers(capacity)


def test_capacity_must_be_a_dict():
    with pytest.raises(SizingError, match="capacity must be a dict"):
        size_workers([1, 2])


# --- the CPU rule


@pytest.mark.parametrize("profile, workers, threads", [("cpu", 9, 1), ("mixed", 9, 2), ("io", 4, 8), ("async", 4, 1)])
def test_profiles_on_four_cpus(profile, workers, threads):
    server = "uvicorn" if profile == "async" else "gunicorn"
    result = size_workers(cap(4.0, 65536), server, profile)
    assert (result["workers"], result["threads"], result["binding"]) == (workers, threads, "cpu")
    assert result["concurrency"] == workers * threads


def test_quota_counts_not_the_hosts_cores():
    # The Gunicorn tracker's case: a 1-CPU container on a 64-core host.
    result = size_workers(cap(cpus=1.0, memory_mb=2048, cpus_host=64), "gunicorn", "cpu")
    assert result["workers"] == 3


def test_fractional_quota():
    assert size_workers(cap(1.5, 65536), "gunicorn", "cpu")["workers"] == 4
    assert size_workers(cap(1.5, 65536), "gunicorn", "io")["workers"] == 2
    assert size_workers(cap(0.5, 65536), "gunicorn", "cpu")["workers"] == 2


@pytest.mark.parametrize(
    "server, profile, worker_class",
    [
        ("gunicorn", "cpu", "sync"),
        ("gunicorn", "mixed", "gthread"),
        ("gunicorn", "io", "gthread"),
        ("gunicorn", "async", "gevent"),
        ("uvicorn", "io", "uvicorn_worker.UvicornWorker"),
    ],
)
def test_worker_class(server, profile, worker_class):
    assert size_workers(cap(), server, profile)["worker_class"] == worker_class


def test_uvicorn_has_no_threads():
    result = size_workers(cap(), "uvicorn", "io")
    assert result["threads"] == 1
    assert any("no thread pool" in line for line in result["explain"])


def test_uwsgi_refuses_async():
    with pytest.raises(SizingError, match="profile 'async' needs an event-loop server"):
        size_workers(cap(), "uwsgi", "async")


# --- memory


def test_memory_caps_workers():
    # 1 GiB VPS: budget 1024 - 256 = 768 MiB; 200 MiB workers + 80 master -> 3
    result = size_workers(cap(4.0, 1024), "gunicorn", "cpu", worker_rss_mb=200)
    assert result["workers"] == 3
    assert result["binding"] == "memory"
    assert result["expected_rss_mb"] <= result["memory_budget_mb"] == 768


def test_memory_too_small_for_one_worker_forces_one_and_warns():
    result = size_workers(cap(2.0, 512), "gunicorn", "cpu", worker_rss_mb=400)
    assert result["workers"] == 1
    assert result["warnings"] and "above the memory budget" in result["warnings"][0]
    # asking for that one worker explicitly is no worse than the rules
    forced = size_workers(cap(2.0, 512), "gunicorn", "cpu", worker_rss_mb=400, workers=1, threads=1)
    assert (forced["workers"], forced["binding"]) == (1, "override")
    assert "too small for one worker" in forced["warnings"][0]


def test_forced_workers_above_the_memory_budget_are_refused_with_the_numbers():
    with pytest.raises(SizingError) as info:
        size_workers(cap(4.0, 8192), "gunicorn", "mixed", workers=10000)
    assert str(info.value) == (
        "workers = 10000 x 2 thread(s) need about 1050040 MiB, above the memory budget of 7372 MiB "
        "(host 8192 MiB - 819 MiB reserve); lower it, or set allow_over_budget: true to accept up to 150% of the budget"
    )
    with pytest.raises(SizingError, match=r"\(host 8192 MiB - 819 MiB reserve x 0\.50 share\)"):
        size_workers(cap(4.0, 8192), "gunicorn", "mixed", workers=10000, share=0.5)


def test_forced_threads_above_the_memory_budget_are_refused():
    # budget 100 MiB: one plain worker (40 + 100) is already over it and runs anyway;
    # 30 threads make that worker 40 + 245 MiB, which is the override's doing
    with pytest.raises(
        SizingError, match=r"^1 worker\(s\) x threads = 30 need about 285 MiB, above the memory budget of 100 MiB"
    ):
        size_workers(cap(4.0, 1024), "gunicorn", "cpu", worker_rss_mb=100, memory_reserve_mb=924, threads=30)


def test_allow_over_budget_accepts_up_to_half_again():
    # budget 768; master 40 + n x 100: 11 workers = 1140 (<= 1152) accepted, 12 = 1240 refused
    kwargs = {"worker_rss_mb": 100, "allow_over_budget": True}
    result = size_workers(cap(1.0, 1024), "gunicorn", "cpu", workers=11, **kwargs)
    assert (result["workers"], result["expected_rss_mb"], result["memory_budget_mb"]) == (11, 1140, 768)
    assert len(result["warnings"]) == 1 and "accepted by allow_over_budget (up to 1152 MiB)" in result["warnings"][0]
    assert "WARNING: " + result["warnings"][0] in result["explain"]
    with pytest.raises(SizingError) as info:
        size_workers(cap(1.0, 1024), "gunicorn", "cpu", workers=12, **kwargs)
    assert str(info.value) == (
        "workers = 12 x 1 thread(s) need about 1240 MiB, above 1152 MiB, the most allow_over_budget accepts "
        "(150% of the memory budget of 768 MiB (host 1024 MiB - 256 MiB reserve)); lower it"
    )
    with pytest.raises(SizingError, match="allow_over_budget must be true or false, got 'yes'"):
        size_workers(cap(), allow_over_budget="yes")


def test_plan_passes_allow_over_budget_and_names_the_app():
    apps = [{"name": "shop", "profile": "cpu", "workers": 40, "worker_rss_mb": 200}]
    with pytest.raises(SizingError, match=r"^app shop: workers = 40 x 1 thread\(s\) need about 8080 MiB"):
        plan_workers(apps, cap(4.0, 8192))
    apps[0]["allow_over_budget"] = True
    apps[0]["workers"] = 60  # 12080 MiB, above 1.5 x 7372
    with pytest.raises(SizingError, match="the most allow_over_budget accepts"):
        plan_workers(apps, cap(4.0, 8192))
    apps[0]["workers"] = 50
    apps[0]["worker_rss_mb"] = 150
    plan = plan_workers(apps, cap(4.0, 8192))
    assert plan["shop"]["workers"] == 50 and plan["shop"]["warnings"]


def test_threads_add_their_share_of_memory():
    result = size_workers(cap(4.0, 65536), "gunicorn", "io", worker_rss_mb=100)
    assert result["per_worker_mb"] == 135.0  # 100 x (1 + 0.05 x 7)


def test_reserve_default_and_explicit():
    assert size_workers(cap(memory_mb=1024))["memory_reserve_mb"] == 256
    assert size_workers(cap(memory_mb=4096))["memory_reserve_mb"] == 409
    assert size_workers(cap(memory_mb=65536))["memory_reserve_mb"] == 1024
    assert size_workers(cap(memory_mb=4096), memory_reserve_mb=96)["memory_budget_mb"] == 4000


def test_measured_worker_memory_is_used_for_the_named_app():
    measured = {"shop": {"workers": {"count": 4, "pss_median_mb": 240.0, "rss_median_mb": 300.0}}}
    result = size_workers(cap(4.0, 2048, measured=measured), "gunicorn", "cpu", app="shop")
    assert result["worker_rss_mb"] == 240.0
    assert any("measured median PSS of 4 running worker(s) of shop" in line for line in result["explain"])
    assert size_workers(cap(4.0, 2048, measured=measured), "gunicorn", "cpu", app="other")["worker_rss_mb"] == 100.0


# --- database


def test_db_takes_threads_first():
    result = size_workers(cap(4.0, 65536), "gunicorn", "io", db_max_connections=20)
    assert (result["workers"], result["threads"], result["binding"]) == (4, 5, "db")


def test_db_shared_by_hosts_and_connections_per_thread():
    result = size_workers(
        cap(4.0, 65536), "gunicorn", "cpu", db_max_connections=100, hosts_sharing_db=5, db_connections_per_thread=4
    )
    # 100 / (4 x 5) = 5 concurrent requests per host
    assert (result["workers"], result["threads"], result["binding"]) == (5, 1, "db")


def test_db_override_breaking_the_budget_is_refused_with_the_numbers():
    with pytest.raises(SizingError) as info:
        size_workers(cap(), "gunicorn", "io", db_max_connections=10, workers=4, threads=8)
    assert str(info.value) == (
        "workers = 4 x threads = 8 x 1 connection(s) x 1 host(s) = 32 database connections, above "
        "db_max_connections = 10; lower it, or set allow_over_budget: true to accept it"
    )


def test_db_override_breaking_the_budget_warns_when_allowed():
    result = size_workers(cap(), "gunicorn", "io", db_max_connections=10, workers=4, threads=8, allow_over_budget=True)
    assert (result["workers"], result["threads"], result["binding"]) == (4, 8, "override")
    assert any("above db_max_connections = 10; accepted by allow_over_budget" in w for w in result["warnings"])
    assert any(line.startswith("WARNING: workers = 4 x threads = 8") for line in result["explain"])


def test_db_threads_override_and_min_workers_are_refused_too():
    # threads = 8 alone is more than 5 connections per host: one worker is already too many
    with pytest.raises(SizingError, match=r"^1 worker\(s\) x threads = 8 x 1 connection\(s\) x 2 host\(s\) = 16 "):
        size_workers(cap(), "gunicorn", "io", db_max_connections=10, hosts_sharing_db=2, threads=8)
    with pytest.raises(SizingError, match=r"^min_workers = 6 x 1 thread\(s\) x 1 connection\(s\) x 1 host\(s\) = 6 "):
        size_workers(cap(), "gunicorn", "cpu", db_max_connections=5, min_workers=6)


def test_db_that_allows_no_request_per_host_is_refused():
    with pytest.raises(SizingError) as info:
        size_workers(cap(), "gunicorn", "io", db_max_connections=1, hosts_sharing_db=2)
    assert str(info.value) == (
        "db_max_connections = 1 over hosts_sharing_db = 2 host(s) at db_connections_per_thread = 1 allows 0 "
        "concurrent requests per host; raise db_max_connections or lower the others"
    )
    with pytest.raises(SizingError, match="allows 0 concurrent requests per host"):
        size_workers(cap(), "gunicorn", "io", db_max_connections=3, db_connections_per_thread=4, allow_over_budget=True)
    # one request per host is enough to run
    result = size_workers(cap(), "gunicorn", "io", db_max_connections=2, hosts_sharing_db=2)
    assert (result["workers"], result["threads"], result["binding"], result["warnings"]) == (1, 1, "db", [])


@pytest.mark.parametrize("db", [0, -3])
def test_db_max_connections_zero_is_not_no_limit(db):
    with pytest.raises(SizingError, match="db_max_connections must be at least 1, got %d" % db):
        size_workers(cap(), db_max_connections=db)


# --- bounds and overrides


def test_max_and_min_workers():
    assert size_workers(cap(8.0, 65536), "gunicorn", "cpu", max_workers=6)["binding"] == "max_workers"
    # budget 768 MiB: 120 MiB master + 2 x 300 fit; 4 x 300 is 1320 MiB, above even 150 % (1152)
    with pytest.raises(SizingError, match=r"^min_workers = 4 x 1 thread\(s\) need about 1320 MiB, above 1152 MiB, the most"):
        size_workers(cap(1.0, 1024), "gunicorn", "cpu", worker_rss_mb=300, min_workers=4, allow_over_budget=True)
    result = size_workers(cap(1.0, 1024), "gunicorn", "cpu", worker_rss_mb=300, min_workers=3, allow_over_budget=True)
    assert (result["workers"], result["binding"], result["expected_rss_mb"]) == (3, "min_workers", 1020)
    assert result["warnings"] == [
        "min_workers = 3 x 1 thread(s) need about 1020 MiB, above the memory budget of 768 MiB "
        "(host 1024 MiB - 256 MiB reserve); accepted by allow_over_budget (up to 1152 MiB)"
    ]
    # a min_workers the budget holds changes nothing else
    result = size_workers(cap(1.0, 1024), "gunicorn", "cpu", worker_rss_mb=300, min_workers=2)
    assert (result["workers"], result["binding"], result["warnings"]) == (2, "memory", [])


def test_overrides_win():
    result = size_workers(cap(2.0, 65536), "gunicorn", "cpu", workers=12, threads=3)
    assert (result["workers"], result["threads"], result["binding"], result["worker_class"]) == (12, 3, "override", "gthread")
    assert result["warnings"] == []


# --- timeouts, recycling, queues, per-server keys


def test_timeouts_and_recycling():
    result = size_workers(cap(), "uwsgi", "cpu")
    assert result["max_requests_jitter"] == 100 == result["max_requests"] // 10
    assert result["timeout"] == result["upstream_read_timeout"] == result["graceful_timeout"] == 60
    # nginx answers 504 first; the worker is ended after it, so nginx never sees its close
    assert result["harakiri"] == result["request_limit"] == 63
    assert result["upstream_retry_window"] == 5


@pytest.mark.parametrize(("timeout", "window"), [(1, 1), (2, 1), (5, 2), (9, 4), (10, 5), (300, 5)])
def test_retry_window_ends_before_the_timeout(timeout, window):
    result = size_workers(cap(), "gunicorn", "io", timeout=timeout)
    assert result["upstream_retry_window"] == window
    assert result["request_limit"] == timeout + 3
    assert any(line.startswith("timeout %d s: nginx answers 504" % timeout) for line in result["explain"])


def test_backlog_clamped_to_somaxconn():
    result = size_workers(cap(somaxconn=1024), "uwsgi", "mixed")
    assert result["backlog"] == result["listen"] == 1024
    assert result["backlog_wanted"] == 2048
    assert any("clamped to net.core.somaxconn" in line for line in result["explain"])


def test_uwsgi_cheaper():
    result = size_workers(cap(4.0, 65536), "uwsgi", "cpu")
    assert (result["processes"], result["cheaper"], result["cheaper_initial"], result["cheaper_step"]) == (9, 2, 5, 2)
    assert result["cheaper"] < result["cheaper_initial"] <= result["processes"]
    small = size_workers(cap(1.0, 65536), "uwsgi", "cpu")
    assert (small["processes"], small["cheaper"]) == (3, 0)
    assert result["reload_on_rss_mb"] >= 2 * result["worker_rss_mb"]


def test_uwsgi_instances_are_single_worker_and_pay_a_master_each():
    emperor = size_workers(cap(2.0, 65536), "uwsgi", "mixed")
    spread = size_workers(cap(2.0, 65536), "uwsgi", "mixed", uwsgi_mode="instances")
    assert (emperor["instances"], emperor["processes"], emperor["uwsgi_mode"]) == (1, 5, "emperor")
    assert (spread["instances"], spread["processes"], spread["cheaper"], spread["uwsgi_mode"]) == (5, 1, 0, "instances")
    assert spread["threads"] == emperor["threads"] == 2
    # five masters instead of one: 4 x 0.4 x 100 MiB more
    assert spread["expected_rss_mb"] - emperor["expected_rss_mb"] == 160
    # memory-bound, instances fit fewer workers than one shared master
    tight = {"worker_rss_mb": 200, "memory_reserve_mb": 0}
    assert size_workers(cap(8.0, 1000), "uwsgi", "cpu", **tight)["workers"] == 4
    small = size_workers(cap(8.0, 1000), "uwsgi", "cpu", uwsgi_mode="instances", **tight)
    assert (small["instances"], small["binding"]) == (3, "memory")
    with pytest.raises(SizingError, match="uwsgi_mode must be one of emperor, instances, got 'swarm'"):
        size_workers(cap(), "uwsgi", "mixed", uwsgi_mode="swarm")


def test_granian_keys():
    wsgi = size_workers(cap(2.0, 65536), "granian", "io")
    assert (wsgi["workers"], wsgi["blocking_threads"], wsgi["backpressure"]) == (2, 8, 8)
    asgi = size_workers(cap(2.0, 65536), "granian", "async", interface="asgi")
    assert (asgi["blocking_threads"], asgi["backpressure"]) == (1, 1000)


# --- interfaces, Granian and event loops

CONTAINER = {"cpus": 2.0, "memory_mb": 4096, "cpus_host": 64}


@pytest.mark.parametrize("server, interface", [("gunicorn", "wsgi"), ("uwsgi", "wsgi"), ("granian", "wsgi"), ("uvicorn", "asgi")])
def test_interface_defaults_by_server(server, interface):
    assert size_workers(cap(), server, "io")["interface"] == interface


@pytest.mark.parametrize(
    "server, interface, message",
    [
        ("granian", "grpc", "interface must be one of wsgi, asgi, rsgi, got 'grpc'"),
        ("granian", "", "interface must be one of wsgi, asgi, rsgi, got ''"),
        ("gunicorn", "asgi", "interface asgi: gunicorn serves wsgi only"),
        ("uwsgi", "rsgi", "interface rsgi: uwsgi serves wsgi only"),
        ("uvicorn", "wsgi", "interface wsgi: uvicorn serves asgi only"),
    ],
)
def test_bad_interface_names_itself(server, interface, message):
    with pytest.raises(SizingError, match=message):
        size_workers(cap(), server, "io", interface=interface)


def test_granian_wsgi_refuses_the_async_profile():
    with pytest.raises(SizingError, match=r"profile 'async' with granian's wsgi interface: .* use interface asgi or rsgi"):
        size_workers(cap(), "granian", "async")


@pytest.mark.parametrize("interface", ["asgi", "rsgi"])
def test_granian_event_loop_refuses_threads(interface):
    with pytest.raises(
        SizingError,
        match="threads = 4 with granian's %s interface: .* refuses blocking threads > 1 for asgi and rsgi" % interface,
    ):
        size_workers(cap(), "granian", "async", interface=interface, threads=4)
    assert size_workers(cap(), "granian", "async", interface=interface, threads=1)["blocking_threads"] == 1


@pytest.mark.parametrize("interface", ["asgi", "rsgi"])
def test_granian_event_loop_has_one_thread_whatever_the_profile(interface):
    result = size_workers(cap(**CONTAINER), "granian", "mixed", interface=interface)
    assert (result["workers"], result["threads"], result["blocking_threads"]) == (5, 1, 1)
    assert (
        "granian %s runs one event loop per worker: threads = 1 (Granian refuses blocking threads > 1 for asgi and rsgi)"
        % interface
    ) in result["explain"]
    assert result["backpressure"] == result["connections_per_worker"] == 819  # 4096 proxied requests / 5 workers


def test_granian_wsgi_numbers_and_why():
    result = size_workers(cap(**CONTAINER), "granian", "mixed")
    assert (result["workers"], result["threads"], result["concurrency"]) == (5, 2, 10)
    assert (result["blocking_threads"], result["runtime_threads"], result["backpressure"]) == (2, 1, 2)
    assert (result["workers_lifetime"], result["workers_max_rss"], result["workers_kill_timeout"]) == (21600, 210, 33)
    assert "connections_per_worker" not in result
    explain = result["explain"]
    assert (
        "granian wsgi: backpressure = blocking_threads = 2: a worker takes only the requests it has threads for; "
        "the rest wait in the socket's shared accept queue, where any free worker takes them, not inside one busy worker"
    ) in explain
    assert (
        "granian: runtime_threads = 1: the Rust threads only move bytes (Python runs in the blocking threads), one per "
        "worker keeps up behind nginx, and Granian warns above the CPU count"
    ) in explain
    assert (
        "granian: a worker is replaced (the new one first) after workers_lifetime = 21600 s (6 h: Granian has no "
        "max_requests, so age bounds a slow leak) or above workers_max_rss = 210 MiB (2 x 105 MiB per worker), "
        "sampled every 30 s"
    ) in explain
    assert (
        "granian: a worker still running workers_kill_timeout = 33 s after it was told to stop (timeout 30 s + 3 s) "
        "is killed, and its stuck requests end with it"
    ) in explain
    timeout_line = next(line for line in explain if line.startswith("timeout "))
    assert "Granian has no per-request limit" in timeout_line and "killed 33 s after" in timeout_line
    assert explain[-1] == "result: 5 process(es) x 2 thread(s), decided by cpu"


def test_granian_max_rss_follows_the_worker():
    assert size_workers(cap(), "granian", "io", worker_rss_mb=250)["workers_max_rss"] == 675  # 2 x 250 x 1.35
    assert size_workers(cap(), "granian", "async", interface="asgi", worker_rss_mb=80.2)["workers_max_rss"] == 161


@pytest.mark.parametrize("timeout, kill", [(1, 4), (30, 33), (1797, 1800), (5000, 1800)])
def test_granian_kill_timeout_is_the_request_limit_within_granians_range(timeout, kill):
    result = size_workers(cap(), "granian", "io", timeout=timeout)
    assert result["workers_kill_timeout"] == kill
    assert result["request_limit"] == timeout + 3


def test_granian_asgi_open_requests_fit_nginx():
    result = size_workers(cap(**CONTAINER), "granian", "async", interface="asgi")
    assert (result["workers"], result["threads"], result["concurrency"]) == (2, 1, 2)
    assert (result["connections_per_worker"], result["open_requests"], result["backpressure"]) == (1000, 2000, 1000)
    assert (
        "granian asgi: at most 1000 open requests per worker (Granian's backpressure: the rest wait in the socket's "
        "queue); 2 x 1000 = 2000 fits nginx's 2 worker(s) x 4096 connections / 2 = 4096"
    ) in result["explain"]
    assert result["explain"][-1] == "result: 2 process(es) x 1 thread(s), decided by cpu"


@pytest.mark.parametrize(
    "server, profile, knob",
    [
        ("uvicorn", "async", "not enforced by the worker: uvicorn-worker 0.4.0 passes no limit_concurrency to Uvicorn"),
        ("gunicorn", "async", "Gunicorn's worker_connections: the rest wait in the socket's queue"),
    ],
)
def test_uvicorn_and_gevent_get_a_connection_limit(server, profile, knob):
    result = size_workers(cap(**CONTAINER), server, profile)
    assert (result["connections_per_worker"], result["open_requests"]) == (1000, 2000)
    label = "uvicorn" if server == "uvicorn" else "gunicorn gevent"
    assert (
        "%s: at most 1000 open requests per worker (%s); 2 x 1000 = 2000 fits nginx's 2 worker(s) x 4096 connections / 2 = 4096"
        % (label, knob)
    ) in result["explain"]


@pytest.mark.parametrize("server, profile", [("gunicorn", "cpu"), ("gunicorn", "io"), ("uwsgi", "mixed"), ("granian", "io")])
def test_threaded_servers_have_no_connection_limit(server, profile):
    result = size_workers(cap(), server, profile)
    assert "connections_per_worker" not in result and "open_requests" not in result
    assert not any("open request" in line for line in result["explain"])


def test_nginx_capacity_cuts_the_connection_limit():
    # fs.nr_open 4096: 2048 connections per nginx worker, 2 x 2048 / 2 = 2048 proxied requests
    result = size_workers(cap(2.0, 65536, nr_open=4096), "granian", "async", interface="rsgi", workers=4)
    assert (result["connections_per_worker"], result["open_requests"], result["backpressure"]) == (512, 2048, 512)
    explain = result["explain"]
    assert (
        "granian rsgi: at most 512 open requests per worker (Granian's backpressure: the rest wait in the socket's "
        "queue), below 1000 so that 4 x 512 = 2048 fits nginx's 2 worker(s) x 2048 connections / 2 = 2048"
    ) in explain
    # nginx's numbers come first: the limit is made of them
    lowered = explain.index("nginx worker_connections lowered to 2048 by fs.nr_open = 4096")
    assert lowered < next(i for i, line in enumerate(explain) if "open requests per worker" in line)
    assert explain[-1].startswith("result: ")


def test_connection_limit_takes_the_apps_share_of_nginx():
    # fs.nr_open 1024: 512 connections, 1 nginx worker: 256 proxied requests; half of them for this app
    result = size_workers(cap(1.0, 65536, nr_open=1024), "uvicorn", "async", share=0.5)
    assert (result["workers"], result["connections_per_worker"]) == (1, 128)
    assert (
        "uvicorn: at most 128 open requests per worker (not enforced by the worker: uvicorn-worker 0.4.0 passes no "
        "limit_concurrency to Uvicorn), below 1000 so that 1 x 128 = 128 fits this app's 50% (128) of nginx's "
        "1 worker(s) x 512 connections / 2 = 256"
    ) in result["explain"]


def test_more_workers_than_nginx_can_feed_get_one_open_request_each_and_it_is_said():
    result = size_workers(cap(1.0, 65536, nr_open=1024), "gunicorn", "async", workers=300, worker_rss_mb=10)
    assert (result["connections_per_worker"], result["open_requests"]) == (1, 300)
    assert (
        "gunicorn gevent: 1 open request(s) per worker (Gunicorn's worker_connections: the rest wait in the socket's "
        "queue); 300 x 1 = 300 is above nginx's 1 worker(s) x 512 connections / 2 = 256: raise fs.nr_open or lower the "
        "workers"
    ) in result["explain"]


def test_plan_passes_the_interface():
    assert "interface" in APP_SIZING_KEYS
    apps = [
        {"name": "api", "server": "granian", "interface": "asgi", "profile": "async"},
        {"name": "site", "server": "granian", "profile": "mixed"},
    ]
    plan = plan_workers(apps, cap(**CONTAINER))
    assert (plan["api"]["interface"], plan["api"]["blocking_threads"], plan["api"]["workers"]) == ("asgi", 1, 1)
    # half of nginx's 4096 proxied requests, one worker: the default 1000 fits
    assert plan["api"]["backpressure"] == plan["api"]["connections_per_worker"] == 1000
    assert any("fits this app's 50% (2048) of nginx's" in line for line in plan["api"]["explain"])
    assert (plan["site"]["interface"], plan["site"]["blocking_threads"], plan["site"]["backpressure"]) == ("wsgi", 2, 2)
    with pytest.raises(SizingError, match="app api: threads = 2 with granian's asgi interface"):
        plan_workers([dict(apps[0], threads=2)], cap())
    with pytest.raises(SizingError, match="app api: interface must be one of wsgi, asgi, rsgi, got 'http'"):
        plan_workers([dict(apps[0], interface="http")], cap())


DOC = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "docs", "sizing.md")


def _doc_section(title):
    with open(DOC) as handle:
        return handle.read().split(title, 1)[1].split("\n## ", 1)[0]


def test_docs_granian_and_async_table_matches_the_code():
    section = _doc_section("### Granian and async on the 2-CPU quota / 4 GiB container")
    rows = [line.strip("| ").split(" | ") for line in section.splitlines() if line.startswith("| granian |")]
    rows += [line.strip("| ").split(" | ") for line in section.splitlines() if line.startswith(("| uvicorn |", "| gunicorn |"))]
    assert len(rows) == 6
    keys = (
        "blocking_threads",
        "backpressure",
        "connections_per_worker",
        "open_requests",
        "workers_max_rss",
        "workers_kill_timeout",
    )
    for server, interface, profile, counts, *numbers in rows:
        result = size_workers(cap(**CONTAINER), server, profile, interface=interface)
        assert "%d x %d" % (result["workers"], result["threads"]) == counts, (server, interface, profile)
        assert [str(result.get(key, "-")) for key in keys] == numbers, (server, interface, profile)


def test_docs_granian_and_async_explain_blocks_are_the_codes():
    section = _doc_section("### Granian and async on the 2-CPU quota / 4 GiB container")
    blocks = section.split("```\n")[1::2]
    assert len(blocks) == 4
    results = [
        size_workers(cap(**CONTAINER), "granian", "async", interface="asgi"),
        size_workers(cap(**CONTAINER), "granian", "mixed", interface="wsgi"),
        size_workers(cap(**CONTAINER), "uvicorn", "async"),
        size_workers(cap(2.0, 65536, nr_open=4096), "granian", "async", interface="rsgi", workers=4),
    ]
    for block, result in zip(blocks, results):
        for line in block.splitlines():
            assert line in result["explain"], line


def test_nginx_numbers_follow_the_whole_host():
    result = size_workers(cap(2.5, 65536), "gunicorn", "io", share=0.5)
    assert result["worker_processes"] == 3
    assert result["worker_rlimit_nofile"] == 2 * result["worker_connections"]
    limited = size_workers(cap(2.0, 65536, nr_open=4096))
    assert limited["worker_rlimit_nofile"] == 4096 and limited["worker_connections"] == 2048


def test_explain_ends_with_the_decision():
    assert size_workers(cap(4.0, 1024), "gunicorn", "cpu", worker_rss_mb=200)["explain"][-1] == (
        "result: 3 process(es) x 1 thread(s), decided by memory"
    )


# --- bad input


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"server": "apache"}, "server must be one of gunicorn, uwsgi, granian, uvicorn, got 'apache'"),
        ({"profile": "web"}, "profile must be one of cpu, io, mixed, async, got 'web'"),
        ({"worker_rss_mb": -5}, "worker_rss_mb must be above 0"),
        ({"worker_rss_mb": "big"}, "worker_rss_mb must be a number, got 'big'"),
        ({"share": 0}, "share must be above 0"),
        ({"share": 1.5}, "share must be above 0 and at most 1"),
        ({"db_max_connections": -1}, "db_max_connections must be at least 1"),
        ({"db_max_connections": 10.5}, "db_max_connections must be a whole number"),
        ({"hosts_sharing_db": 0}, "hosts_sharing_db must be at least 1"),
        ({"workers": 0}, "workers must be at least 1"),
        ({"threads": True}, "threads must be a number"),
        ({"min_workers": 5, "max_workers": 2}, r"max_workers \(2\) is below min_workers \(5\)"),
        ({"memory_reserve_mb": float("inf")}, "memory_reserve_mb must be a finite number"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, message):
    with pytest.raises(SizingError, match=message):
        size_workers(cap(), **kwargs)


# --- worker_plan


def test_plan_splits_the_host_by_weight():
    apps = [
        {"name": "shop", "server": "gunicorn", "profile": "cpu", "weight": 3, "domains": ["shop.example"]},
        {"name": "admin", "server": "uwsgi", "profile": "cpu", "weight": 1},
    ]
    plan = plan_workers(apps, cap(4.0, 8192))
    assert plan["shop"]["share"] == 0.75 and plan["admin"]["share"] == 0.25
    assert plan["shop"]["cpus"] == 3.0 and plan["admin"]["cpus"] == 1.0
    assert (plan["shop"]["workers"], plan["admin"]["workers"]) == (7, 3)
    total_budget = 8192 - 819
    assert plan["shop"]["memory_budget_mb"] + plan["admin"]["memory_budget_mb"] <= total_budget
    alone = size_workers(cap(4.0, 8192), "gunicorn", "cpu")
    assert plan["shop"]["workers"] < alone["workers"]


def test_plan_accepts_a_mapping_and_names_the_bad_app():
    plan = plan_workers({"a": {"profile": "io"}, "b": {"profile": "io"}}, cap())
    assert set(plan) == {"a", "b"}
    with pytest.raises(SizingError, match="app b: profile must be one of"):
        plan_workers([{"name": "a"}, {"name": "b", "profile": "bogus"}], cap())
    with pytest.raises(SizingError, match="used twice"):
        plan_workers([{"name": "a"}, {"name": "a"}], cap())
    with pytest.raises(SizingError, match=r"apps\[0\] must be a dict with a name"):
        plan_workers([{"server": "uwsgi"}], cap())
    with pytest.raises(SizingError, match="non-empty list"):
        plan_workers([], cap())
    with pytest.raises(SizingError, match=r"apps\[a\].weight must be above 0"):
        plan_workers([{"name": "a", "weight": 0}], cap())


# --- invariants over random hosts and inputs

cpus_st = st.floats(min_value=0.1, max_value=128, allow_nan=False)
memory_st = st.integers(min_value=128, max_value=1024 * 1024)
rss_st = st.floats(min_value=10, max_value=2000, allow_nan=False)
# Every valid server, interface and profile (uWSGI and Granian's WSGI have no event-loop profile).
server_profile = st.sampled_from(
    [
        (s, i, p)
        for s in SERVERS
        for i in INTERFACES[s]
        for p in PROFILES
        if not (p == "async" and (s == "uwsgi" or (s == "granian" and i == "wsgi")))
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    cpus=cpus_st,
    memory=memory_st,
    sp=server_profile,
    rss=rss_st,
    somaxconn=st.integers(min_value=128, max_value=65535),
    db=st.one_of(st.none(), st.integers(min_value=1, max_value=2000)),
    per_thread=st.integers(min_value=1, max_value=4),
    hosts=st.integers(min_value=1, max_value=20),
    mode=st.sampled_from(UWSGI_MODES),
)
# Fractional budgets let the reported numbers disagree with the warning:
# 14 of 13 MiB warned (found by hypothesis), 2465 of 2464 MiB not warned.
@example(
    cpus=1.0, memory=269, sp=("gunicorn", "wsgi", "cpu"), rss=10.0, somaxconn=128, db=None, per_thread=1, hosts=1, mode="emperor"
)
@example(
    cpus=64.0,
    memory=2738,
    sp=("gunicorn", "wsgi", "cpu"),
    rss=333.0,
    somaxconn=128,
    db=None,
    per_thread=1,
    hosts=1,
    mode="emperor",
)
def test_budgets_hold_unless_forced(cpus, memory, sp, rss, somaxconn, db, per_thread, hosts, mode):
    server, interface, profile = sp
    kwargs = {
        "interface": interface,
        "worker_rss_mb": rss,
        "db_max_connections": db,
        "db_connections_per_thread": per_thread,
        "hosts_sharing_db": hosts,
        "uwsgi_mode": mode,
    }
    if db is not None and db < per_thread * hosts:
        # not one request per host: refused, whatever else
        with pytest.raises(SizingError, match="allows 0 concurrent requests per host"):
            size_workers(cap(cpus, memory, somaxconn=somaxconn), server, profile, **kwargs)
        return
    result = size_workers(cap(cpus, memory, somaxconn=somaxconn), server, profile, **kwargs)
    assert result["workers"] >= 1 and result["threads"] >= 1
    assert result["backlog"] <= somaxconn
    assert result["upstream_read_timeout"] == result["timeout"] < result["request_limit"]
    assert result["upstream_retry_window"] < result["timeout"] or result["timeout"] == 1
    memory_ok = result["expected_rss_mb"] <= result["memory_budget_mb"]
    db_ok = db is None or result["workers"] * result["threads"] * per_thread * hosts <= db
    if result["workers"] > 1:
        # more than the forced minimum of one: the budgets hold
        assert memory_ok and db_ok
    # a broken budget is always said
    assert (memory_ok and db_ok) or result["warnings"]
    assert not (memory_ok and db_ok) or not result["warnings"]
    if server == "uwsgi":
        assert result["listen"] <= somaxconn
        assert result["harakiri"] > result["upstream_read_timeout"]
        assert result["cheaper"] < result["processes"] or result["cheaper"] == 0
        assert result["instances"] * result["processes"] == result["workers"]
    if "connections_per_worker" in result:
        # an event loop's open requests fit nginx's share of the host, or it is said
        proxied = result["worker_processes"] * result["worker_connections"] // 2
        assert 1 <= result["connections_per_worker"] <= DEFAULTS["connections_per_worker"]
        assert result["open_requests"] <= proxied or any("is above" in line for line in result["explain"])
    if server == "granian":
        assert result["blocking_threads"] == (result["threads"] if interface == "wsgi" else 1)
        assert 1 <= result["workers_kill_timeout"] <= 1800
        assert result["workers_max_rss"] >= 2 * result["per_worker_mb"]


@settings(max_examples=300, deadline=None)
@given(
    cpus=cpus_st,
    memory=memory_st,
    sp=server_profile,
    rss=rss_st,
    db=st.one_of(st.none(), st.integers(min_value=1, max_value=2000)),
    workers=st.one_of(st.none(), st.integers(min_value=1, max_value=300)),
    threads=st.one_of(st.none(), st.integers(min_value=1, max_value=64)),
    min_workers=st.integers(min_value=1, max_value=300),
    allow=st.booleans(),
)
def test_forced_numbers_never_silently_break_a_budget(cpus, memory, sp, rss, db, workers, threads, min_workers, allow):
    server, interface, profile = sp
    if server == "granian" and interface != "wsgi" and threads and threads > 1:
        with pytest.raises(SizingError, match="refuses blocking threads > 1"):
            size_workers(cap(cpus, memory), server, profile, interface=interface, threads=threads)
        return
    try:
        result = size_workers(
            cap(cpus, memory),
            server,
            profile,
            interface=interface,
            worker_rss_mb=rss,
            db_max_connections=db,
            workers=workers,
            threads=threads,
            min_workers=min_workers,
            allow_over_budget=allow,
        )
    except SizingError as exc:
        assert "allow_over_budget" in str(exc)
        return
    budget = result["memory_budget_mb"]
    over_memory = result["expected_rss_mb"] > budget
    over_db = db is not None and result["concurrency"] > db
    if over_memory:
        automatic = size_workers(cap(cpus, memory), server, profile, interface=interface, worker_rss_mb=rss)
        if result["expected_rss_mb"] > automatic["expected_rss_mb"]:
            # only with the override, and only up to 150 %
            assert allow and result["expected_rss_mb"] <= math.floor(1.5 * budget) + 1
        assert result["warnings"]
    if over_db:
        assert allow and any("db_max_connections" in w for w in result["warnings"])
    if not (over_memory or over_db):
        assert result["warnings"] == []


@settings(max_examples=200, deadline=None)
@given(a=cpus_st, b=cpus_st, m1=memory_st, m2=memory_st, sp=server_profile, rss=rss_st)
def test_monotonic_in_cpus_and_memory(a, b, m1, m2, sp, rss):
    server, interface, profile = sp
    low_cpu, high_cpu = sorted((a, b))
    low_mem, high_mem = sorted((m1, m2))
    small = size_workers(cap(low_cpu, low_mem), server, profile, interface=interface, worker_rss_mb=rss)
    more_cpu = size_workers(cap(high_cpu, low_mem), server, profile, interface=interface, worker_rss_mb=rss)
    more_mem = size_workers(cap(low_cpu, high_mem), server, profile, interface=interface, worker_rss_mb=rss)
    assert more_cpu["workers"] >= small["workers"]
    assert more_mem["workers"] >= small["workers"]


@settings(max_examples=200, deadline=None)
@given(
    cpus=cpus_st,
    memory=st.integers(min_value=2048, max_value=1024 * 1024),
    weights=st.lists(st.integers(min_value=1, max_value=10), min_size=1, max_size=5),
    rss=st.floats(min_value=10, max_value=300, allow_nan=False),
)
def test_plan_totals_stay_within_the_host(cpus, memory, weights, rss):
    apps = [{"name": "app%d" % i, "profile": "mixed", "weight": w, "worker_rss_mb": rss} for i, w in enumerate(weights)]
    plan = plan_workers(apps, cap(cpus, memory))
    reserve = min(1024.0, max(256.0, 0.1 * memory))
    total_budget = memory - reserve
    assert sum(p["memory_budget_mb"] for p in plan.values()) <= total_budget
    forced = [p for p in plan.values() if p["warnings"]]
    if not forced:
        assert sum(p["expected_rss_mb"] for p in plan.values()) <= total_budget + len(plan)
    # CPU: never more processes than the rule allows for the whole host, plus one per app
    assert sum(p["workers"] for p in plan.values()) <= int(2 * cpus) + len(plan)
    assume(len(plan) > 1)
    alone = size_workers(cap(cpus, memory), "gunicorn", "mixed", worker_rss_mb=rss)
    assert all(p["workers"] <= alone["workers"] for p in plan.values())


@pytest.mark.parametrize("server", ["gunicorn", "uvicorn"])
def test_a_lone_gunicorn_worker_is_not_recycled_by_request_count(server):
    profile = "async" if server == "uvicorn" else "io"
    lone = size_workers(cap(1.0, 4096), server, profile)
    assert lone["workers"] == 1
    assert (lone["max_requests"], lone["max_requests_jitter"]) == (0, 0)
    assert any(line.startswith("one worker: no recycling") for line in lone["explain"])
    assert lone["explain"][-1].startswith("result: ")
    several = size_workers(cap(1.0, 4096), server, profile, workers=2)
    assert several["max_requests"] == 1000
    # uWSGI's vassal master forks a new worker at once: its lone worker keeps max-requests
    assert size_workers(cap(1.0, 4096), "uwsgi", "io")["max_requests"] == 1000
