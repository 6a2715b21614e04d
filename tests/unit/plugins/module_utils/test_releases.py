"""_releases (and the app_release module) on real temporary trees."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys

import pytest

from ansible_collections.pyweb.stack.plugins.module_utils import _releases
from ansible_collections.pyweb.stack.plugins.module_utils._releases import (
    MARKER,
    ReleaseError,
    mark,
    prune,
    query,
    remove,
    status,
    switch,
    venv_key,
)

# --- building trees -----------------------------------------------------------------


@pytest.fixture
def app(tmp_path):
    base = tmp_path / "demo"
    base.mkdir()
    return str(base)


def build(app, rid, venv="v1", complete=True, created=100, source="git@abc", requirements=None):
    """A release directory as a build leaves it; with its marker when complete."""
    release = os.path.join(app, "releases", rid)
    os.makedirs(os.path.join(release, "app"))
    os.makedirs(os.path.join(release, "static"))
    with open(os.path.join(release, "app", "wsgi.py"), "w") as handle:
        handle.write("application = None\n")
    if requirements is not None:
        with open(os.path.join(release, "app", "requirements.txt"), "w") as handle:
            handle.write(requirements)
    if venv:
        os.makedirs(os.path.join(app, "venvs", venv, "bin"), exist_ok=True)
        os.symlink("../../venvs/" + venv, os.path.join(release, ".venv"))
    if complete:
        with open(os.path.join(release, MARKER), "w") as handle:
            json.dump({"id": rid, "created": created, "source": source, "venv": venv}, handle)
    return release


def history(app, *ids, start=1000):
    with open(os.path.join(app, "release-history"), "w") as handle:
        for offset, rid in enumerate(ids):
            handle.write("%d %s\n" % (start + offset, rid))


def read_history(app):
    try:
        with open(os.path.join(app, "release-history")) as handle:
            return [line.split()[1] for line in handle]
    except FileNotFoundError:
        return []


def link_current(app, rid):
    os.symlink("releases/" + rid, os.path.join(app, "current"))


def listing(app, sub):
    try:
        return sorted(os.listdir(os.path.join(app, sub)))
    except FileNotFoundError:
        return []


def snapshot(root):
    """Every entry under root with its kind, size and link target: proof that nothing changed."""
    seen = {}
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(current, name)
            st = os.lstat(full)
            content = None
            if os.path.isfile(full) and not os.path.islink(full):
                with open(full, "rb") as handle:
                    content = handle.read()
            seen[full] = (st.st_mode, st.st_mtime_ns, os.readlink(full) if os.path.islink(full) else None, content)
    return seen


# --- ids and paths ------------------------------------------------------------------


@pytest.mark.parametrize("rid", ["a", "0", "20240501t120000", "v1.2.3", "build_7-rc.1", "a" * 64])
def test_good_release_ids(app, rid):
    build(app, rid)
    assert query(app, rid)["release_complete"] is True


@pytest.mark.parametrize("rid", ["Bad Id", "", "-a", ".a", "_a", "A", "a/b", "..", "a" * 65, "é", "a\n"])
def test_bad_release_ids_are_refused_naming_the_value(app, rid):
    calls = [lambda: query(app, rid), lambda: remove(app, rid), lambda: mark(app, rid, "", "v1")]
    if rid:
        calls.append(lambda: switch(app, rid))
    for call in calls:
        with pytest.raises(ReleaseError, match=r"^release: .* is not a release id") as caught:
            call()
        assert str(caught.value).startswith("release: %r is" % rid)


def test_path_must_be_absolute_and_exist_except_for_query(tmp_path):
    with pytest.raises(ReleaseError, match=r"^path: 'srv/demo' is not an absolute path"):
        status("srv/demo")
    missing = str(tmp_path / "nothing")
    assert status(missing) == {
        "current": None,
        "previous": None,
        "releases": [],
        "venv": None,
        "releases_info": [],
        "warnings": [],
    }
    found = query(missing, "a")
    assert (found["release_exists"], found["release_complete"], found["venv_key"]) == (False, False, None)
    for call in (
        lambda: switch(missing, "a"),
        lambda: mark(missing, "a", "", "v1"),
        lambda: remove(missing, "a"),
        lambda: prune(missing),
    ):
        with pytest.raises(ReleaseError, match=r"^path: '%s' does not exist" % missing):
            call()


# --- status ---------------------------------------------------------------------------


def test_status_orders_current_then_switched_then_never_switched(app):
    build(app, "a", created=10)
    build(app, "b", created=20, venv="v2")
    build(app, "c", created=30)
    build(app, "d", created=50, source="tarball")  # never switched
    build(app, "e", created=40)  # never switched
    build(app, "f", created=60, complete=False)  # incomplete: not listed
    history(app, "a", "b", "c", "a", "b")
    link_current(app, "b")
    found = status(app)
    assert found["current"] == "b"
    assert found["previous"] == "a"
    assert found["releases"] == ["b", "a", "c", "d", "e"]
    assert found["venv"] == "v2"
    assert found["warnings"] == []
    assert found["releases_info"][0] == {"id": "b", "created": 20, "source": "git@abc", "venv": "v2", "current": True}
    assert found["releases_info"][3] == {"id": "d", "created": 50, "source": "tarball", "venv": "v1", "current": False}
    assert [item["current"] for item in found["releases_info"]] == [True, False, False, False, False]


def test_previous_after_a_rollback_is_the_release_rolled_back_from(app):
    for rid in ("a", "b"):
        build(app, rid)
    history(app, "a", "b", "a")
    link_current(app, "a")
    found = status(app)
    assert (found["current"], found["previous"], found["releases"]) == ("a", "b", ["a", "b"])


def test_previous_skips_releases_gone_or_incomplete(app):
    build(app, "a")
    build(app, "b", complete=False)
    build(app, "d")
    history(app, "a", "b", "c", "d", "d")
    link_current(app, "d")
    assert status(app)["previous"] == "a"


def test_previous_is_null_without_another_release(app):
    build(app, "a")
    history(app, "a", "a")
    link_current(app, "a")
    assert (status(app)["previous"], status(app)["releases"]) == (None, ["a"])


def test_current_first_even_when_the_history_lost_it(app):
    build(app, "a", created=10)
    build(app, "b", created=20)
    build(app, "c", created=30)
    history(app, "b")
    link_current(app, "a")
    found = status(app)
    assert found["releases"] == ["a", "b", "c"]
    assert found["previous"] == "b"


def test_dangling_and_foreign_current_are_null_with_a_warning(app, tmp_path):
    build(app, "a")
    os.symlink("releases/gone", os.path.join(app, "current"))
    found = status(app)
    assert found["current"] is None
    assert found["venv"] is None
    assert "dangling" in found["warnings"][0]
    os.unlink(os.path.join(app, "current"))
    os.symlink(str(tmp_path), os.path.join(app, "current"))
    found = status(app)
    assert found["current"] is None
    assert "not to a release" in found["warnings"][0]


def test_an_absolute_current_link_to_a_release_is_recognized(app):
    build(app, "a")
    os.symlink(os.path.join(app, "releases", "a"), os.path.join(app, "current"))
    assert status(app)["current"] == "a"


def test_current_that_is_a_directory_is_not_a_release(app):
    build(app, "a")
    os.mkdir(os.path.join(app, "current"))
    found = status(app)
    assert found["current"] is None
    assert "is not a symlink" in found["warnings"][0]
    with pytest.raises(ReleaseError, match="is not a symlink"):
        switch(app, "a")


def test_odd_entries_are_ignored_with_a_warning(app):
    build(app, "a")
    os.makedirs(os.path.join(app, "releases", "Not An Id"))
    os.symlink("a", os.path.join(app, "releases", "b"))
    with open(os.path.join(app, "release-history"), "w") as handle:
        handle.write("garbage\n1000 a\n")
    found = status(app)
    assert found["releases"] == ["a"]
    assert len(found["warnings"]) == 3


def test_a_marker_of_another_release_is_incomplete(app):
    release = build(app, "b", complete=False)
    with open(os.path.join(release, MARKER), "w") as handle:
        json.dump({"id": "a", "created": 1, "source": "", "venv": "v1"}, handle)
    found = query(app, "b")
    assert (found["release_exists"], found["release_complete"], found["releases"]) == (True, False, [])
    assert "not the marker of release 'b'" in found["warnings"][0]


# --- present ----------------------------------------------------------------------------


def test_present_writes_the_marker_then_is_idempotent(app):
    release = build(app, "a", venv="k1", complete=False)
    result = mark(app, "a", "git@1", "k1", now=1234)
    assert result["changed"] is True
    assert result["releases"] == ["a"]
    with open(os.path.join(release, MARKER)) as handle:
        assert json.load(handle) == {"id": "a", "created": 1234, "source": "git@1", "venv": "k1"}
    assert oct(os.stat(os.path.join(release, MARKER)).st_mode & 0o777) == "0o644"
    before = snapshot(app)
    again = mark(app, "a", "git@other", "k1", now=9999)
    assert again["changed"] is False
    assert again["releases_info"][0]["created"] == 1234
    assert snapshot(app) == before
    assert [name for name in os.listdir(release) if name.endswith(".tmp")] == []


def test_present_with_another_venv_rewrites_the_marker(app):
    release = build(app, "a", venv="k1", created=5)
    os.makedirs(os.path.join(app, "venvs", "k2"))
    os.unlink(os.path.join(release, ".venv"))
    os.symlink("../../venvs/k2", os.path.join(release, ".venv"))
    result = mark(app, "a", "", "k2", now=77)
    assert result["changed"] is True
    assert result["releases_info"][0]["venv"] == "k2"
    assert result["releases_info"][0]["created"] == 77


def test_present_refuses_a_missing_release_directory(app):
    with pytest.raises(ReleaseError, match=r"^release: 'a' has no release directory .*/releases/a"):
        mark(app, "a", "", "k1")


def test_present_names_everything_missing(app):
    release = build(app, "a", venv=None, complete=False)
    with pytest.raises(ReleaseError) as caught:
        mark(app, "a", "", "k1")
    message = str(caught.value)
    assert message.startswith("release: 'a' is not ready")
    assert "%s/.venv is missing (a symlink to ../../venvs/k1)" % release in message
    assert "venv: 'k1' has no virtualenv directory %s/venvs/k1" % app in message
    os.symlink("../../venvs/k2", os.path.join(release, ".venv"))
    os.makedirs(os.path.join(app, "venvs", "k1"))
    with pytest.raises(ReleaseError, match=r"points to '../../venvs/k2', not to ../../venvs/k1"):
        mark(app, "a", "", "k1")
    assert not os.path.exists(os.path.join(release, MARKER))


@pytest.mark.parametrize("venv", ["K1", "", "a-b", "a" * 65, "../x"])
def test_present_refuses_a_bad_venv_key(app, venv):
    build(app, "a", complete=False)
    with pytest.raises(ReleaseError, match=r"^venv: .* is not a venv key"):
        mark(app, "a", "", venv)


# --- switch -----------------------------------------------------------------------------


def test_switch_replaces_current_atomically_with_a_relative_link(app, monkeypatch):
    build(app, "a")
    build(app, "b")
    link_current(app, "a")
    history(app, "a")
    replaced = []
    real_replace = os.replace

    def spy(src, dst):
        # The old link is still in place when the new one is renamed over it.
        replaced.append((src, dst, os.readlink(src), os.readlink(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(_releases.os, "replace", spy)
    result = switch(app, "b", now=2000)
    assert replaced == [
        (os.path.join(app, ".current.pyweb-paths.%d" % os.getpid()), os.path.join(app, "current"), "releases/b", "releases/a")
    ]
    assert os.readlink(os.path.join(app, "current")) == "releases/b"
    assert not os.path.lexists(replaced[0][0])
    assert result["changed"] is True
    assert result["switched_from"] == "a"
    assert (result["current"], result["previous"], result["releases"]) == ("b", "a", ["b", "a"])
    with open(os.path.join(app, "release-history")) as handle:
        assert handle.read() == "1000 a\n2000 b\n"


def test_switch_to_the_current_release_changes_nothing(app):
    build(app, "a")
    switch(app, "a", now=1)
    before = snapshot(app)
    result = switch(app, "a", now=2)
    assert (result["changed"], result["switched_from"], result["current"]) == (False, None, "a")
    assert snapshot(app) == before
    assert read_history(app) == ["a"]


def test_first_switch_creates_current_and_the_history(app):
    build(app, "a")
    result = switch(app, "a", now=5)
    assert (result["changed"], result["switched_from"], result["previous"]) == (True, None, None)
    assert os.readlink(os.path.join(app, "current")) == "releases/a"
    assert read_history(app) == ["a"]


def test_rollback_switches_to_previous(app):
    for rid in ("a", "b"):
        build(app, rid)
    switch(app, "a", now=1)
    switch(app, "b", now=2)
    result = switch(app, status(app)["previous"], now=3)
    assert (result["current"], result["previous"], result["switched_from"]) == ("a", "b", "b")
    assert read_history(app) == ["a", "b", "a"]


def test_an_absolute_current_link_is_rewritten_relative_without_a_history_line(app):
    build(app, "a")
    os.symlink(os.path.join(app, "releases", "a"), os.path.join(app, "current"))
    result = switch(app, "a")
    assert (result["changed"], result["switched_from"]) == (True, None)
    assert os.readlink(os.path.join(app, "current")) == "releases/a"
    assert read_history(app) == []


def test_switch_refuses_an_incomplete_or_missing_release_listing_the_complete_ones(app):
    build(app, "a")
    build(app, "c")
    build(app, "b", complete=False)
    with pytest.raises(ReleaseError, match=r"^release: 'b' is not a complete release .*no \.pyweb-release\.json.*: c, a$"):
        switch(app, "b")
    with pytest.raises(ReleaseError, match=r"^release: 'z' is not a complete release .*\(no directory\)"):
        switch(app, "z")
    assert not os.path.lexists(os.path.join(app, "current"))


def test_switch_needs_a_release_or_clear(app):
    build(app, "a")
    with pytest.raises(ReleaseError, match=r"^release: required with state=switch"):
        switch(app, None)
    with pytest.raises(ReleaseError, match=r"^clear: true .* takes no release \(release: 'a'\)"):
        switch(app, "a", clear=True)


def test_clear_removes_current(app):
    build(app, "a")
    switch(app, "a", now=1)
    result = switch(app, clear=True)
    assert (result["changed"], result["switched_from"], result["current"]) == (True, "a", None)
    assert not os.path.lexists(os.path.join(app, "current"))
    assert switch(app, clear=True)["changed"] is False


# --- absent -----------------------------------------------------------------------------


def test_absent_removes_the_release_and_its_unshared_venv(app):
    build(app, "a", venv="shared")
    build(app, "b", venv="shared")
    build(app, "c", venv="own", complete=False)
    link_current(app, "a")
    result = remove(app, "c")
    assert result["changed"] is True
    assert result["removed"] == [app + "/releases/c", app + "/venvs/own"]
    assert listing(app, "releases") == ["a", "b"]
    assert listing(app, "venvs") == ["shared"]
    result = remove(app, "b")
    assert result["removed"] == [app + "/releases/b"]
    assert listing(app, "venvs") == ["shared"]
    assert remove(app, "b") == dict(status(app), changed=False, removed=[])


def test_absent_refuses_the_current_release(app):
    build(app, "a")
    link_current(app, "a")
    with pytest.raises(ReleaseError, match=r"^release: 'a' is the current release"):
        remove(app, "a")
    assert listing(app, "releases") == ["a"]


def test_absent_removes_the_marker_first(app, monkeypatch):
    release = build(app, "b")
    real_rmtree = _releases.shutil.rmtree
    seen = []

    def spy(path, *args, **kwargs):
        seen.append((path, os.path.exists(os.path.join(path, MARKER))))
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(_releases.shutil, "rmtree", spy)
    remove(app, "b")
    assert seen[0] == (release, False)


def test_a_venv_is_renamed_away_before_it_is_removed_and_leftovers_go(app, monkeypatch):
    build(app, "a", venv="k1")
    os.makedirs(os.path.join(app, "venvs", "k2", "bin"))
    os.makedirs(os.path.join(app, "venvs", ".k3.removing.99", "lib"))
    link_current(app, "a")
    removed = []
    real_rmtree = _releases.shutil.rmtree

    def spy(path, *args, **kwargs):
        removed.append(os.path.basename(path))
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(_releases.shutil, "rmtree", spy)
    result = prune(app, 2)
    assert result["removed"] == [app + "/venvs/k2", app + "/venvs/.k3.removing.99"]
    assert sorted(removed) == sorted([".k2.removing.%d" % os.getpid(), ".k3.removing.99"])
    assert listing(app, "venvs") == ["k1"]


# --- prune ------------------------------------------------------------------------------


@pytest.fixture
def busy(app):
    """Releases a..f: a b c switched (b twice, a rollback), d current, e never switched, f incomplete."""
    build(app, "a", venv="shared", created=10)
    build(app, "b", venv="shared", created=20)
    build(app, "c", venv="vc", created=30)
    build(app, "d", venv="vd", created=40)
    build(app, "e", venv="ve", created=99)
    build(app, "f", venv="vf", created=0, complete=False)
    history(app, "a", "b", "c", "b", "d")
    link_current(app, "d")
    return app


def test_prune_keep_2_keeps_current_and_previous(busy):
    app = busy
    result = prune(app, 2)
    assert listing(app, "releases") == ["b", "d"]
    assert listing(app, "venvs") == ["shared", "vd"]
    assert result["removed"] == [app + "/releases/" + rid for rid in "acef"] + [app + "/venvs/" + v for v in ("vc", "ve", "vf")]
    assert (result["changed"], result["current"], result["previous"], result["releases"]) == (True, "d", "b", ["d", "b"])
    assert read_history(app) == ["b", "b", "d"]
    assert result == dict(status(app), changed=True, removed=result["removed"])
    assert prune(app, 2) == dict(status(app), changed=False, removed=[])


def test_prune_keep_3_keeps_the_next_switched_release(busy):
    app = busy
    result = prune(app, 3)
    assert listing(app, "releases") == ["b", "c", "d"]
    assert listing(app, "venvs") == ["shared", "vc", "vd"]
    assert result["releases"] == ["d", "b", "c"]
    assert read_history(app) == ["b", "c", "b", "d"]


def test_prune_never_keeps_never_switched_or_incomplete_releases(busy):
    app = busy
    result = prune(app, 10)
    assert listing(app, "releases") == ["a", "b", "c", "d"]
    assert result["removed"] == [app + "/releases/e", app + "/releases/f", app + "/venvs/ve", app + "/venvs/vf"]
    assert result["changed"] is True
    assert read_history(app) == ["a", "b", "c", "b", "d"]


def test_prune_keeps_a_shared_venv_of_a_kept_release(app):
    build(app, "a", venv="shared")
    build(app, "b", venv="shared")
    build(app, "c", venv="other")
    history(app, "c", "a", "b")
    link_current(app, "b")
    result = prune(app, 2)
    assert result["removed"] == [app + "/releases/c", app + "/venvs/other"]
    assert listing(app, "venvs") == ["shared"]


def test_prune_keeps_an_incomplete_current(app):
    build(app, "a")
    build(app, "b", complete=False)
    history(app, "a", "b")
    link_current(app, "b")
    result = prune(app, 2)
    assert listing(app, "releases") == ["a", "b"]
    assert result["removed"] == []
    assert "incomplete" in result["warnings"][0]


def test_prune_without_current_keeps_the_latest_switched(app):
    for rid in ("a", "b", "c"):
        build(app, rid)
    history(app, "a", "b", "c")
    result = prune(app, 2)
    assert listing(app, "releases") == ["b", "c"]
    assert result["releases"] == ["c", "b"]


def test_prune_drops_history_lines_of_releases_gone(app):
    build(app, "a")
    history(app, "x", "a", "y")
    link_current(app, "a")
    result = prune(app, 2)
    assert (result["changed"], result["removed"]) == (True, [])
    assert read_history(app) == ["a"]
    assert prune(app, 2)["changed"] is False


@pytest.mark.parametrize("keep", [1, 0, -3, True, "3"])
def test_prune_refuses_keep_below_2(app, keep):
    with pytest.raises(ReleaseError, match=r"^keep: .* is not an integer of at least 2"):
        prune(app, keep)


def test_prune_removes_legacy_directories(busy):
    app = busy
    os.makedirs(os.path.join(app, "app", "pkg"))
    os.makedirs(os.path.join(app, "venv", "bin"))
    os.symlink("current/app", os.path.join(app, "code"))
    result = prune(app, 2, legacy=[app + "/app", "venv/", "code", "absent-one"])
    assert not os.path.lexists(os.path.join(app, "app"))
    assert not os.path.lexists(os.path.join(app, "venv"))
    assert os.path.islink(os.path.join(app, "code"))
    assert result["removed"][-2:] == [app + "/app", app + "/venv"]
    assert any("code is not a directory" in warning for warning in result["warnings"])


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("releases", "never removed"),
        ("venvs", "never removed"),
        ("current", "never removed"),
        ("release-history", "never removed"),
        ("media", "never removed"),
        ("{app}/media/", "never removed"),
        ("app/inner", "not directly under path"),
        ("{app}/app/inner", "not directly under path"),
        ("/srv/other", "not directly under path"),
        ("..", "not directly under path"),
        ("../demo2", "not directly under path"),
        (".", "not directly under path"),
        ("{app}", "not directly under path"),
        ("", "is not a path"),
    ],
)
def test_prune_refuses_bad_legacy_entries_before_removing_anything(busy, entry, message):
    app = busy
    os.makedirs(os.path.join(app, "app", "inner"))
    before = snapshot(app)
    entry = entry.format(app=app)
    with pytest.raises(ReleaseError, match=r"^legacy: %s.*%s" % (re_quote(entry), message)):
        prune(app, 2, legacy=["app", entry])
    assert snapshot(app) == before


def re_quote(text):
    return re.escape(repr(text))


# --- check mode -------------------------------------------------------------------------


CHANGES = [
    ("present", lambda app, check: mark(app, "f", "src", "vf", check=check, now=500)),
    ("switch", lambda app, check: switch(app, "c", check=check, now=500)),
    ("clear", lambda app, check: switch(app, clear=True, check=check)),
    ("absent", lambda app, check: remove(app, "c", check=check)),
    ("prune", lambda app, check: prune(app, 2, legacy=["app"], check=check)),
]


@pytest.mark.parametrize(("name", "call"), CHANGES, ids=[name for name, _call in CHANGES])
def test_check_mode_changes_nothing_and_predicts_the_real_run(busy, name, call):
    app = busy
    os.makedirs(os.path.join(app, "app"))
    before = snapshot(app)
    predicted = call(app, True)
    assert snapshot(app) == before
    assert predicted["changed"] is True
    done = call(app, False)
    assert done == predicted
    after = status(app)
    assert {key: done[key] for key in after} == after


def test_query_changes_nothing(busy):
    before = snapshot(busy)
    result = query(busy, "c", ["gunicorn"])
    assert result["changed"] is False
    assert (result["release_exists"], result["release_complete"]) == (True, True)
    assert snapshot(busy) == before


# --- venv_key ---------------------------------------------------------------------------


def test_venv_key_is_the_documented_hash(app):
    build(app, "a", requirements="django==5.0\n")
    expected = hashlib.sha1(b"django==5.0\n\0gunicorn\nwhitenoise\n\0py3.11").hexdigest()[:16]
    assert venv_key(app, "a", ["gunicorn", "whitenoise"], (3, 11, 4, "final", 0)) == expected
    assert venv_key(app, "a", ["gunicorn", "whitenoise"], "3.11") == expected
    assert len(expected) == 16


def test_venv_key_is_stable_across_releases_with_the_same_inputs(app):
    build(app, "a", requirements="flask\n")
    build(app, "b", requirements="flask\n")
    assert venv_key(app, "a", ["gunicorn"], (3, 12)) == venv_key(app, "b", ["gunicorn"], (3, 12))
    assert venv_key(app, "a", ["gunicorn"], (3, 12)) == venv_key(app, "a", ["gunicorn"], (3, 12))


def test_venv_key_changes_with_each_input(app):
    build(app, "a", requirements="flask\n")
    build(app, "b", requirements="flask==3.0\n")
    build(app, "c")
    build(app, "d", requirements="")
    keys = {
        venv_key(app, "a", ["gunicorn"], (3, 11)),
        venv_key(app, "b", ["gunicorn"], (3, 11)),
        venv_key(app, "c", ["gunicorn"], (3, 11)),
        venv_key(app, "a", ["gunicorn", "uvicorn"], (3, 11)),
        venv_key(app, "a", ["uvicorn", "gunicorn"], (3, 11)),
        venv_key(app, "a", [], (3, 11)),
        venv_key(app, "a", ["gunicorn"], (3, 12)),
    }
    assert len(keys) == 7
    # No requirements.txt hashes like an empty one.
    assert venv_key(app, "c", [], (3, 11)) == venv_key(app, "d", [], (3, 11))


def test_venv_key_default_version_is_this_interpreter(app):
    build(app, "a")
    assert venv_key(app, "a") == venv_key(app, "a", [], sys.version_info[:2])


def test_venv_key_is_null_without_the_release_or_its_app(app):
    assert venv_key(app, "a", []) is None
    os.makedirs(os.path.join(app, "releases", "a"))
    assert venv_key(app, "a", []) is None
    result = query(app, "a")
    assert (result["release_exists"], result["release_complete"], result["venv_key"]) == (True, False, None)


def test_venv_key_refuses_a_requirement_with_a_newline(app):
    build(app, "a")
    with pytest.raises(ReleaseError, match=r"^requirements: 'a\\nb' is not one requirement line"):
        venv_key(app, "a", ["a\nb"])


# --- the module -------------------------------------------------------------------------


def run_module(args, capsys):
    from ansible.module_utils.testing import patch_module_args  # noqa: PLC0415 - ansible-core's test helper

    from ansible_collections.pyweb.stack.plugins.modules import app_release  # noqa: PLC0415

    with patch_module_args(args), pytest.raises(SystemExit) as caught:
        app_release.main()
    output = json.loads(capsys.readouterr().out)
    return caught.value.code, output


RETURN_KEYS = {"changed", "current", "previous", "releases", "venv", "releases_info"}


def test_module_build_mark_switch_prune(app, capsys):
    build(app, "r1", venv=None, complete=False, requirements="flask\n")
    code, result = run_module({"path": app, "release": "r1", "requirements": ["gunicorn"]}, capsys)
    assert code == 0
    assert set(result) - {"invocation", "warnings"} == RETURN_KEYS | {"release_exists", "release_complete", "venv_key"}
    key = result["venv_key"]
    assert (result["release_exists"], result["release_complete"], result["changed"]) == (True, False, False)
    os.makedirs(os.path.join(app, "venvs", key))
    os.symlink("../../venvs/" + key, os.path.join(app, "releases", "r1", ".venv"))
    code, result = run_module({"path": app, "state": "present", "release": "r1", "venv": key, "source": "git@1"}, capsys)
    assert (code, result["changed"], result["releases"]) == (0, True, ["r1"])
    code, result = run_module({"path": app, "state": "switch", "release": "r1", "_ansible_check_mode": True}, capsys)
    assert (code, result["changed"], result["current"]) == (0, True, "r1")
    assert not os.path.lexists(os.path.join(app, "current"))
    code, result = run_module({"path": app, "state": "switch", "release": "r1"}, capsys)
    assert set(result) - {"invocation", "warnings"} == RETURN_KEYS | {"switched_from"}
    assert (code, result["changed"], result["current"], result["venv"], result["switched_from"]) == (0, True, "r1", key, None)
    code, result = run_module({"path": app, "state": "prune", "keep": 2}, capsys)
    assert set(result) - {"invocation", "warnings"} == RETURN_KEYS | {"removed"}
    assert (code, result["changed"], result["removed"]) == (0, False, [])


def test_module_failures_name_the_option(app, capsys):
    code, result = run_module({"path": app, "state": "switch", "release": "Bad Id"}, capsys)
    assert code == 1
    assert result["msg"].startswith("release: 'Bad Id' is not a release id")
    code, result = run_module({"path": app, "state": "present", "release": "a"}, capsys)
    assert (code, "venv" in result["msg"]) == (1, True)
    code, result = run_module({"path": app, "state": "switch"}, capsys)
    assert result["msg"].startswith("release: required with state=switch")
    code, result = run_module({"path": app, "state": "prune", "clear": True}, capsys)
    assert result["msg"].startswith("clear: true is only for state=switch")
    code, result = run_module({"path": app, "state": "prune", "keep": 1}, capsys)
    assert result["msg"].startswith("keep: 1 is not an integer of at least 2")
    code, result = run_module({"path": "relative/app"}, capsys)
    assert result["msg"] == "path: 'relative/app' is not an absolute path"


def test_module_warns_about_a_dangling_current(app, capsys, monkeypatch):
    from ansible.module_utils.basic import AnsibleModule  # noqa: PLC0415

    # Where a warning ends up depends on whether controller code was imported
    # in this process; what counts is that the module raises it.
    warned = []
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, warning: warned.append(warning))
    os.symlink("releases/gone", os.path.join(app, "current"))
    code, result = run_module({"path": app}, capsys)
    assert code == 0
    assert result["current"] is None
    assert len(warned) == 1
    assert "dangling" in warned[0]
