"""demo (Gunicorn) and emp (uWSGI emperor) deployed as releases: a good one,
one failing at import, one answering 500 on its health path, rollback.yml
back and forth, pruning, a rerun that changes nothing.

side_effect.yml records each step in /root/releases-report.json (sources,
load, /version answers, release directories, runs; files/releases_report.py);
the expectations live here. No release id is written here: each comes from
the source built for the step (build_source.py packs it as python_app does)
or from the host.
"""

from __future__ import annotations

import json
import os
import re

import pytest
from pyweb_verify import remote_json

BASE = "/srv/pyweb"
APPS = ("demo", "emp")
KEEP = 3
# Step -> the VERSION each app must serve after it.
SERVING = {
    "converged": {"demo": "v1", "emp": "v1"},
    "good": {"demo": "v2", "emp": "v2"},
    "import-broken": {"demo": "v2", "emp": "v2"},
    "health500": {"demo": "v2", "emp": "v2"},
    "rollback-previous": {"demo": "v1", "emp": "v2"},
    "rollback-named": {"demo": "v2", "emp": "v2"},
    "prune-v5": {"demo": "v5", "emp": "v2"},
    "prune-v6": {"demo": "v6", "emp": "v2"},
    "prune-v7": {"demo": "v7", "emp": "v2"},
    "no-change": {"demo": "v7", "emp": "v2"},
}
STEP_APPS = [(step, app) for step in SERVING for app in APPS]
# Load windows that must lose nothing (health500 is counted, not held to 0:
# its bad release was live for a moment on purpose).
LOSSLESS = ["good", "import-broken", "health500-after", "rollback-previous", "rollback-named", "prune-v7"]
# Enough requests to have spanned the change (paced: ~130/s per method on demo, ~30/s on emp).
MIN_REQUESTS = {"demo": 300, "emp": 50}
# Steps run with rollback.yml (never build nor delete a release).
ROLLBACKS = ["rollback-previous", "rollback-named"]


@pytest.fixture(scope="module")
def report(host):
    return remote_json(host, "/root/releases-report.json")["steps"]


@pytest.fixture(scope="module")
def ids(report):
    """{app: {version: release id}} from the sources each step built."""
    found = {app: {} for app in APPS}
    for step in report.values():
        for app, source in step.get("sources", {}).items():
            found[app][source["version"]] = source["id"]
    return found


def apps_state(report, step):
    return report[step]["state"]["apps"]


def failure_text(report, step):
    """What the run said failed, whitespace folded (the YAML result format wraps long messages)."""
    return " ".join(" ".join(report[step]["run"]["failure_lines"]).split())


def test_each_version_is_its_own_release(ids):
    """Different code, different id (and the same id for the same code: converge's v1 was rebuilt once)."""
    for app, versions in ids.items():
        assert len(set(versions.values())) == len(versions), "%s: ids per version %s" % (app, versions)
    assert set(ids["demo"]) == {"v1", "v2", "v3", "v4", "v5", "v6", "v7"}, ids
    assert set(ids["emp"]) == {"v1", "v2"}, ids


@pytest.mark.parametrize(("step", "app"), STEP_APPS)
def test_every_answer_comes_from_the_serving_release(report, step, app):
    """GET /version through nginx, sequentially: every worker imported the
    release `current` names (a master that resolved `current` once, or a
    worker left from before, would answer the old one)."""
    answers = report[step]["versions"][app]
    want = SERVING[step][app]
    assert answers["failed"] == {}, "%s after %s: %d GETs of /version failed (status: count) %s; answered %s" % (
        app,
        step,
        sum(answers["failed"].values()),
        answers["failed"],
        answers["releases"],
    )
    assert answers["releases"] == {want: answers["gets"]}, "%s after %s: %d GETs of /version answered %s, want all %s" % (
        app,
        step,
        answers["gets"],
        answers["releases"],
        want,
    )


@pytest.mark.parametrize(("step", "app"), STEP_APPS)
def test_every_worker_runs_the_code_current_names(report, step, app):
    answers = report[step]["versions"][app]
    current = apps_state(report, step)[app]["current"]
    want = "%s/%s/releases/%s/app" % (BASE, app, current)
    assert set(answers["code"]) == {want}, "%s after %s: /version answered from the code %s (GETs per path), current is %s" % (
        app,
        step,
        answers["code"],
        want,
    )


@pytest.mark.parametrize(("step", "app"), STEP_APPS)
def test_current_is_a_relative_link_to_that_release(report, ids, step, app):
    state = apps_state(report, step)[app]
    version = SERVING[step][app]
    want = ids[app][version]
    assert state["current_kind"] == "symlink", "%s after %s: %s/%s/current is a %s, not a symlink" % (
        app,
        step,
        BASE,
        app,
        state["current_kind"],
    )
    link = state["current_link"]
    assert not link.startswith("/") and os.path.normpath(link) == "releases/%s" % want, (
        "%s after %s: current -> %s, want releases/%s (%s)" % (app, step, link, want, version)
    )
    assert state["current_version"] == version, "%s after %s: current/app/VERSION is %r, want %r" % (
        app,
        step,
        state["current_version"],
        version,
    )


@pytest.mark.parametrize(("step", "app"), STEP_APPS)
def test_only_complete_releases_with_their_virtualenv(report, step, app):
    """Nothing half built or refused is left in releases/; every release's
    .venv points into ../../venvs/ at a virtualenv that is there (pruning kept
    what a release uses)."""
    state = apps_state(report, step)[app]
    incomplete = [name for name in state["entries"] if name not in state["complete"]]
    assert not incomplete, "%s after %s: releases/ holds %d entries without %s: %s (complete: %s)" % (
        app,
        step,
        len(incomplete),
        ".pyweb-release.json",
        incomplete,
        state["complete"],
    )
    broken = {
        name: (info["venv_link"], info["venv_python"])
        for name, info in state["releases"].items()
        if not (info["venv_link"] or "").startswith("../../venvs/") or not info["venv_python"]
    }
    assert not broken, "%s after %s: releases whose .venv is not ../../venvs/<key> with a python: %s" % (app, step, broken)


@pytest.mark.parametrize("step", list(SERVING))
def test_systemd_is_running_not_degraded(report, step):
    state = report[step]["state"]
    assert state["failed_units"] == [], "after %s: %d failed units %s" % (step, len(state["failed_units"]), state["failed_units"])
    assert state["system"] == "running", "after %s: systemd is %s" % (step, state["system"])


@pytest.mark.parametrize("app", APPS)
def test_converge_made_one_release(report, ids, app):
    complete = apps_state(report, "converged")[app]["complete"]
    assert complete == [ids[app]["v1"]], "%s after converge: releases %s, want only v1's %s" % (app, complete, ids[app]["v1"])


@pytest.mark.parametrize("app", APPS)
def test_good_release_adds_one_and_publishes_the_fact(report, ids, app):
    v1, v2 = ids[app]["v1"], ids[app]["v2"]
    complete = apps_state(report, "good")[app]["complete"]
    assert sorted(complete) == sorted([v1, v2]), "%s after the good release: releases %s, want v2's %s and v1's %s" % (
        app,
        complete,
        v2,
        v1,
    )
    fact = report["good"]["fact"]
    assert isinstance(fact, dict) and app in fact, "pyweb_releases after the good release: %s" % (fact,)
    published = {key: fact[app].get(key) for key in ("current", "previous", "releases")}
    assert published == {"current": v2, "previous": v1, "releases": [v2, v1]}, (
        "pyweb_releases[%s] after the good release: %s, want current %s (v2), previous %s (v1), releases [v2, v1]"
        % (app, fact[app], v2, v1)
    )


@pytest.mark.parametrize(("step", "app"), [(s, a) for s in LOSSLESS for a in APPS])
def test_the_load_loses_nothing(report, step, app):
    """Every request answered, GET and POST apart (nginx retries GETs: the
    POSTs are the ones a reset would show). Gunicorn's workers also retire
    at max_requests during the window (recorded as recycles): a retiring
    worker serves what it accepted (pyweb_gthread), so none may fail there
    either."""
    load = report[step]["load"]["apps"][app]
    print(step, app, json.dumps(load, sort_keys=True))
    for method in ("get", "post"):
        got = load[method]
        assert got["complete"], "%s %s %s: wrk gave no report: %s" % (step, app, method, got)
        assert got["requests"] >= MIN_REQUESTS[app], "%s %s %s: only %d requests in %s s" % (
            step,
            app,
            method,
            got["requests"],
            report[step]["load"]["seconds"],
        )
        nginx = got["nginx_failed"]
        assert nginx["other"] == 0, "%s %s %s: %d of %d requests failed (status: count %s), first %s, last %s, at %s" % (
            step,
            app,
            method.upper(),
            nginx["other"],
            got["requests"],
            nginx["other_status"],
            nginx["other_first"],
            nginx["other_last"],
            nginx["other_at"],
        )
        assert (got["failed"], nginx["recycle"]) == (0, 0), (
            "%s %s %s: wrk saw %d of %d fail (%d non-2xx, %d socket errors), %d of them at a Gunicorn worker recycle"
            % (step, app, method.upper(), got["failed"], got["requests"], got["non_2xx"], got["socket_errors"], nginx["recycle"])
        )


def test_import_broken_release_is_refused(report, ids):
    run = report["import-broken"]["run"]
    refused = ids["demo"]["v3"]
    text = failure_text(report, "import-broken")
    assert run["rc"] != 0, "site.yml with a release failing at import ended rc %d; recap %s" % (run["rc"], run["recap"])
    assert refused in text, "the failure does not name the refused release %s:\n%s" % (refused, text[-4000:])
    assert re.search(r"serv(es|ing)", text, re.IGNORECASE), (
        "the failure does not say the running release still serves:\n%s" % (text[-4000:])
    )
    before, after = apps_state(report, "good")["demo"], apps_state(report, "import-broken")["demo"]
    assert after["current"] == before["current"], "current moved from %s to %s" % (before["current"], after["current"])
    assert refused not in after["entries"], "the refused release %s is still in releases/: %s" % (refused, after["entries"])
    assert after["entries"] == before["entries"], "releases/ changed from %s to %s" % (before["entries"], after["entries"])


def test_health500_release_is_switched_back(report, ids):
    run = report["health500"]["run"]
    bad, good = ids["demo"]["v4"], ids["demo"]["v2"]
    text = failure_text(report, "health500")
    assert run["rc"] != 0, "site.yml with a release answering 500 ended rc %d; recap %s" % (run["rc"], run["recap"])
    assert bad in text and good in text, "the failure does not name both the bad release %s and the serving %s:\n%s" % (
        bad,
        good,
        text[-4000:],
    )
    before, after = apps_state(report, "good")["demo"], apps_state(report, "health500")["demo"]
    assert after["current"] == good, "current is %s, want v2's %s" % (after["current"], good)
    assert bad not in after["entries"], "the bad release %s is still in releases/: %s" % (bad, after["entries"])
    assert after["entries"] == before["entries"], "releases/ changed from %s to %s" % (before["entries"], after["entries"])


def test_health500_failures_are_counted(report):
    """While the bad release was live its answers were 500: counted, not held
    to 0 (the window after the rollback is, in test_the_load_loses_nothing)."""
    load = report["health500"]["load"]["apps"]
    demo = load["demo"]
    print("health500 window", json.dumps(load, sort_keys=True))
    for method in ("get", "post"):
        assert demo[method]["complete"] and demo[method]["requests"] >= MIN_REQUESTS["demo"], demo[method]
        # emp is not demo's: untouched by its bad release
        assert load["emp"][method]["failed"] == 0, "emp %s lost %d of %d during demo's bad release" % (
            method.upper(),
            load["emp"][method]["failed"],
            load["emp"][method]["requests"],
        )


@pytest.mark.parametrize("step", ROLLBACKS)
def test_rollback_succeeds_without_building_or_deleting(report, step):
    run = report[step]["run"]
    assert run["rc"] == 0, "rollback.yml (%s) ended rc %d, recap %s:\n%s" % (
        step,
        run["rc"],
        run["recap"],
        "\n".join(run["failure_lines"] or run["tail"])[-4000:],
    )
    assert run["recap"] and run["recap"]["failed"] == 0, run["recap"]
    for app in APPS:
        before, after = apps_state(report, "good")[app], apps_state(report, step)[app]
        assert after["entries"] == before["entries"], "%s after %s: releases/ changed from %s to %s" % (
            app,
            step,
            before["entries"],
            after["entries"],
        )


def test_releases_are_pruned_to_keep(report, ids):
    v5, v6 = ids["demo"]["v5"], ids["demo"]["v6"]
    after_v5 = apps_state(report, "prune-v5")["demo"]["complete"]
    assert sorted(after_v5) == sorted(apps_state(report, "good")["demo"]["complete"] + [v5]), (
        "after v5: %s, want v1, v2 and v5's %s (%d = keep, nothing to prune)" % (after_v5, v5, KEEP)
    )
    demo = apps_state(report, "prune-v6")["demo"]
    assert len(demo["complete"]) == KEEP, "after v6: %d releases %s, want %d" % (len(demo["complete"]), demo["complete"], KEEP)
    assert {v5, v6} <= set(demo["complete"]), "after v6: %s, want v6's %s and v5's %s among them" % (demo["complete"], v6, v5)
    fact = report["prune-v6"]["fact"]
    assert isinstance(fact, dict) and "demo" in fact, "pyweb_releases after v6: %s" % (fact,)
    assert fact["demo"]["current"] == v6 and fact["demo"]["previous"] == v5, (
        "pyweb_releases[demo] after v6: current %s, previous %s; want %s (v6), %s (v5)"
        % (fact["demo"]["current"], fact["demo"]["previous"], v6, v5)
    )
    assert fact["demo"]["releases"][:2] == [v6, v5] and sorted(fact["demo"]["releases"]) == sorted(demo["complete"]), (
        "pyweb_releases[demo].releases after v6: %s, want [v6, v5, one more] = what is on disk %s"
        % (fact["demo"]["releases"], demo["complete"])
    )
    emp_before, emp_after = apps_state(report, "good")["emp"], apps_state(report, "prune-v6")["emp"]
    assert emp_after["entries"] == emp_before["entries"], "emp's releases changed with demo's: %s -> %s" % (
        emp_before["entries"],
        emp_after["entries"],
    )


def test_a_rerun_changes_nothing_and_adds_no_release(report):
    run = report["no-change"]["run"]
    print("no-change rerun: %s s, recap %s" % (run["seconds"], run["recap"]))
    assert run["rc"] == 0 and run["recap"], "site.yml rerun ended rc %d:\n%s" % (run["rc"], "\n".join(run["tail"]))
    assert (run["recap"]["changed"], run["recap"]["failed"]) == (0, 0), "site.yml rerun: changed=%d failed=%d; changed: %s" % (
        run["recap"]["changed"],
        run["recap"]["failed"],
        run["changed_tasks"],
    )
    for app in APPS:
        before, after = apps_state(report, "prune-v7")[app], apps_state(report, "no-change")[app]
        assert (after["entries"], after["current"]) == (before["entries"], before["current"]), (
            "%s: the rerun changed releases/ or current: %s %s -> %s %s"
            % (app, before["entries"], before["current"], after["entries"], after["current"])
        )


def test_closing_note_numbers(report):
    """The numbers the closing note gives (printed; side_effect's last play shows the same)."""
    lines = []
    for step in ("good", "import-broken", "health500", "health500-after", "rollback-previous", "rollback-named"):
        load = report[step]["load"]["apps"]
        answers = report[step].get("versions", report.get(step.replace("-after", ""), {}).get("versions", {}))
        parts = []
        for app in APPS:
            got = load[app]
            parts.append(
                "%s %d requests, failed GET %d POST %d (at Gunicorn recycles %d)"
                % (
                    app,
                    got["get"]["requests"] + got["post"]["requests"],
                    got["get"]["failed"],
                    got["post"]["failed"],
                    got["get"]["nginx_failed"]["recycle"] + got["post"]["nginx_failed"]["recycle"],
                )
            )
        run = report[step].get("run")
        lines.append(
            "%s: %s; rc %s; demo serving %s"
            % (step, "; ".join(parts), run["rc"] if run else "-", answers.get("demo", {}).get("releases"))
        )
    lines.append("no-change rerun: %s s" % report["no-change"]["run"]["seconds"])
    print("\n".join(lines))
    assert len(lines) == 7
