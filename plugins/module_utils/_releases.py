# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An app's code releases on a host: build, mark, switch, roll back, prune.

Private to pyweb.stack; the logic of the ``pyweb.stack.app_release`` module.
Under an app's base directory ``APP``::

    APP/releases/<id>/                      one release (app/, static/)
    APP/releases/<id>/.venv                 -> ../../venvs/<key>
    APP/releases/<id>/.pyweb-release.json   the marker: the release is complete
    APP/venvs/<key>/                        virtualenvs shared by releases
    APP/current                             -> releases/<id>, the live release
    APP/release-history                     "<epoch> <id>" per switch, appended

A release directory without its marker is a build that stopped half way:
it is never switched to, and pruning removes it. The marker is written last
(after code, static files and virtualenv are in place) and removed first when
a release goes, so an interrupted removal leaves an incomplete release, never
a complete-looking broken one; a virtualenv is renamed out of its key before
it is removed, so a half-removed one is never reused by a later build.

Every state is computed on a model of the tree read once (``_scan``): a run
changes the disk and the model the same way, and check mode changes only the
model, so its answer is the one a real run gives.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import sys
import time

from ansible_collections.pyweb.stack.plugins.module_utils._paths import replace_link

__all__ = [
    "HISTORY",
    "MARKER",
    "RESERVED",
    "ReleaseError",
    "describe_os_error",
    "mark",
    "prune",
    "query",
    "remove",
    "status",
    "switch",
    "venv_key",
]

RELEASE_ID = re.compile(r"\A[a-z0-9][a-z0-9._-]{0,63}\Z")
VENV_KEY = re.compile(r"\A[a-z0-9]{1,64}\Z")
MARKER = ".pyweb-release.json"
HISTORY = "release-history"
# What lives directly under APP and is the releases' own (or the app's data).
RESERVED = ("releases", "venvs", "current", HISTORY, "media")
# A virtualenv being removed: renamed first, so its key is free at once.
_TRASH = re.compile(r"\A\.([a-z0-9]{1,64})\.removing(\.\d+)?\Z")


class ReleaseError(ValueError):
    """Bad input or a state the request cannot be carried out from; the message names the option."""


# --- validation -------------------------------------------------------------------


def _check_path(path, must_exist):
    if not isinstance(path, str) or not os.path.isabs(path):
        raise ReleaseError("path: %r is not an absolute path" % (path,))
    path = os.path.normpath(path)
    if must_exist and not os.path.isdir(path):
        what = "is not a directory" if os.path.lexists(path) else "does not exist"
        raise ReleaseError("path: %r %s" % (path, what))
    return path


def _check_id(release):
    if not isinstance(release, str) or not RELEASE_ID.match(release):
        raise ReleaseError(
            "release: %r is not a release id (lowercase letters, digits, . _ -; starting with a letter or digit; at most 64)"
            % (release,)
        )
    return release


def _check_venv(venv):
    if not isinstance(venv, str) or not VENV_KEY.match(venv):
        raise ReleaseError("venv: %r is not a venv key (lowercase letters and digits; at most 64)" % (venv,))
    return venv


# --- reading the tree -------------------------------------------------------------


def _read_marker(release_dir, release):
    """The marker as a dict, or None (no marker, or one that is not this release's)."""
    marker_path = os.path.join(release_dir, MARKER)
    try:
        with open(marker_path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as exc:
        return None, "%s is unreadable (%s): the release counts as incomplete" % (marker_path, exc)
    if not isinstance(data, dict) or data.get("id") != release:
        return None, "%s is not the marker of release %r: the release counts as incomplete" % (marker_path, release)
    created = data.get("created")
    return {
        "id": release,
        "created": created if isinstance(created, int) and not isinstance(created, bool) else 0,
        "source": str(data.get("source") or ""),
        "venv": str(data.get("venv") or ""),
    }, None


def _read_link(path):
    try:
        return os.readlink(path)
    except OSError:
        return None


def _read_history(path):
    """[(epoch, id)] from release-history, and the file's text ('' when missing)."""
    try:
        with open(os.path.join(path, HISTORY)) as handle:
            text = handle.read()
    except FileNotFoundError:
        return [], "", None
    entries = []
    bad = 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and RELEASE_ID.match(parts[1]):
            entries.append((int(parts[0]), parts[1]))
        elif line.strip():
            bad += 1
    warning = "%s: %d malformed line(s) ignored" % (os.path.join(path, HISTORY), bad) if bad else None
    return entries, text, warning


def _current_id(path, target):
    """The release id APP/current's target names, or None (foreign link)."""
    full = os.path.normpath(target if os.path.isabs(target) else os.path.join(path, target))
    releases_dir = os.path.join(path, "releases")
    name = os.path.basename(full)
    if not RELEASE_ID.match(name):
        return None
    parent = os.path.dirname(full)
    if parent == releases_dir or os.path.realpath(parent) == os.path.realpath(releases_dir):
        return name
    return None


def _scan(path):
    """The model of APP: releases, venvs, history, current."""
    model = {
        "path": path,
        "releases": {},
        "venvs": [],
        "trash": [],
        "history": [],
        "history_text": "",
        "current": None,
        "current_target": None,
        "current_kind": None,
        "current_warning": None,
        "warnings": [],
    }
    if not os.path.isdir(path):
        return model
    releases_dir = os.path.join(path, "releases")
    for name in _listdir(releases_dir):
        full = os.path.join(releases_dir, name)
        if not RELEASE_ID.match(name) or os.path.islink(full) or not os.path.isdir(full):
            model["warnings"].append("%s is not a release directory: ignored" % full)
            continue
        marker, problem = _read_marker(full, name)
        if problem:
            model["warnings"].append(problem)
        model["releases"][name] = {"marker": marker, "venv_link": _read_link(os.path.join(full, ".venv"))}
    venvs_dir = os.path.join(path, "venvs")
    for name in _listdir(venvs_dir):
        full = os.path.join(venvs_dir, name)
        if os.path.islink(full) or not os.path.isdir(full):
            continue
        if VENV_KEY.match(name):
            model["venvs"].append(name)
        elif _TRASH.match(name):
            model["trash"].append(name)
    model["history"], model["history_text"], problem = _read_history(path)
    if problem:
        model["warnings"].append(problem)
    link = os.path.join(path, "current")
    if os.path.islink(link):
        model["current_kind"] = "link"
        target = os.readlink(link)
        model["current_target"] = target
        release = _current_id(path, target)
        if release is None:
            model["current_warning"] = "%s points to %r, not to a release under %s" % (link, target, releases_dir)
        elif release not in model["releases"]:
            model["current_warning"] = "%s points to %r, which is not a release directory (dangling)" % (link, target)
        else:
            model["current"] = release
            if model["releases"][release]["marker"] is None:
                model["current_warning"] = "%s points to release %r, which is incomplete (no %s)" % (link, release, MARKER)
    elif os.path.lexists(link):
        model["current_kind"] = "other"
        model["current_warning"] = "%s is not a symlink: no current release" % link
    return model


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise ReleaseError("path: %s is not a directory" % path) from None


# --- status -----------------------------------------------------------------------


def _order(model):
    """Complete releases: current, then by last switch (latest first), then never switched by created."""
    releases = model["releases"]
    complete = [rid for rid, info in releases.items() if info["marker"] is not None]
    last = {rid: index for index, (_epoch, rid) in enumerate(model["history"])}
    current = model["current"]
    switched = sorted((r for r in complete if r in last and r != current), key=lambda r: last[r], reverse=True)
    never = sorted(
        (r for r in complete if r not in last and r != current),
        key=lambda r: (releases[r]["marker"]["created"], r),
        reverse=True,
    )
    head = [current] if current in complete else []
    return head, switched, never


def _status(model):
    releases = model["releases"]
    current = model["current"]
    head, switched, never = _order(model)
    order = head + switched + never
    complete = set(order)
    previous = next((rid for _epoch, rid in reversed(model["history"]) if rid != current and rid in complete), None)
    venv = None
    if current is not None and releases[current]["venv_link"]:
        venv = os.path.basename(os.path.normpath(releases[current]["venv_link"]))
    info = [dict(releases[rid]["marker"], current=rid == current) for rid in order]
    warnings = list(model["warnings"])
    if model["current_warning"]:
        warnings.append(model["current_warning"])
    return {
        "current": current,
        "previous": previous,
        "releases": order,
        "venv": venv,
        "releases_info": info,
        "warnings": warnings,
    }


def status(path):
    """The releases of the app at ``path``; a missing ``path`` has none."""
    return _status(_scan(_check_path(path, must_exist=False)))


def venv_key(path, release, requirements=(), version=None):
    """The key of the virtualenv release ``release`` needs, or None without its app/ directory.

    The first 16 hex digits of the SHA-1 of: app/requirements.txt (empty when
    missing), NUL, each of ``requirements`` in the order given and
    newline-terminated, NUL, ``py<major>.<minor>`` of ``version`` (a string
    "3.11" or a (major, minor, ...) tuple; this interpreter's by default).
    """
    path = _check_path(path, must_exist=False)
    _check_id(release)
    for package in requirements:
        if not isinstance(package, str) or not package.strip() or "\n" in package or "\0" in package:
            raise ReleaseError("requirements: %r is not one requirement line" % (package,))
    app = os.path.join(path, "releases", release, "app")
    if not os.path.isdir(app):
        return None
    requirements_txt = os.path.join(app, "requirements.txt")
    try:
        with open(requirements_txt, "rb") as handle:
            content = handle.read()
    except FileNotFoundError:
        content = b""
    except OSError as exc:
        raise ReleaseError("release: %r: cannot read %s: %s" % (release, requirements_txt, exc)) from None
    if version is None:
        version = sys.version_info
    if not isinstance(version, str):
        version = "%d.%d" % (version[0], version[1])
    text = b"".join(
        [
            content,
            b"\0",
            "".join(package + "\n" for package in requirements).encode("utf-8"),
            b"\0",
            ("py" + version).encode("utf-8"),
        ]
    )
    return hashlib.sha1(text).hexdigest()[:16]


def query(path, release=None, requirements=(), version=None):
    """``status``, and with ``release`` its ``release_exists``, ``release_complete`` and ``venv_key``."""
    path = _check_path(path, must_exist=False)
    model = _scan(path)
    result = dict(_status(model), changed=False)
    if release is not None:
        _check_id(release)
        info = model["releases"].get(release)
        result["release_exists"] = info is not None
        result["release_complete"] = info is not None and info["marker"] is not None
        result["venv_key"] = venv_key(path, release, requirements, version)
    return result


# --- changing the tree ------------------------------------------------------------


def _write_atomically(target, text, mode=0o644):
    name = os.path.basename(target)
    temp = os.path.join(os.path.dirname(target), "%s%s.%d.tmp" % ("" if name.startswith(".") else ".", name, os.getpid()))
    try:
        with open(temp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        if os.path.lexists(temp):
            os.unlink(temp)
        raise


def _remove_release(path, release):
    release_dir = os.path.join(path, "releases", release)
    # The marker first: a removal cut short leaves an incomplete release.
    marker = os.path.join(release_dir, MARKER)
    if os.path.lexists(marker):
        os.unlink(marker)
    shutil.rmtree(release_dir)


def _remove_venv(path, name):
    venvs_dir = os.path.join(path, "venvs")
    if _TRASH.match(name):
        shutil.rmtree(os.path.join(venvs_dir, name))
        return
    # Renamed first: a half-removed virtualenv never sits under a key a build would reuse.
    trash = os.path.join(venvs_dir, ".%s.removing.%d" % (name, os.getpid()))
    os.rename(os.path.join(venvs_dir, name), trash)
    shutil.rmtree(trash)


def _orphans(model):
    """Virtualenvs (and leftovers of removed ones) no release in the model links to."""
    linked = {os.path.basename(os.path.normpath(info["venv_link"])) for info in model["releases"].values() if info["venv_link"]}
    orphans = [name for name in model["venvs"] if name not in linked] + list(model["trash"])
    model["venvs"] = [name for name in model["venvs"] if name in linked]
    model["trash"] = []
    return orphans


def _result(model, changed, **extra):
    result = _status(model)
    result["changed"] = changed
    result.update(extra)
    return result


def mark(path, release, source, venv, check=False, now=None):
    """Write the marker of ``release`` (state present): it is complete, on virtualenv ``venv``."""
    path = _check_path(path, must_exist=True)
    _check_id(release)
    _check_venv(venv)
    if not isinstance(source, str):
        raise ReleaseError("source: %r is not a string" % (source,))
    model = _scan(path)
    release_dir = os.path.join(path, "releases", release)
    if release not in model["releases"]:
        raise ReleaseError("release: %r has no release directory %s (build it first)" % (release, release_dir))
    missing = []
    wanted = "../../venvs/" + venv
    link_path = os.path.join(release_dir, ".venv")
    link = model["releases"][release]["venv_link"]
    if link is None:
        missing.append("%s is missing (a symlink to %s)" % (link_path, wanted))
    elif os.path.normpath(link) != wanted:
        missing.append("%s points to %r, not to %s" % (link_path, link, wanted))
    venv_dir = os.path.join(path, "venvs", venv)
    if venv not in model["venvs"]:
        missing.append("venv: %r has no virtualenv directory %s" % (venv, venv_dir))
    if missing:
        raise ReleaseError("release: %r is not ready to be marked complete: %s" % (release, "; ".join(missing)))
    marker = model["releases"][release]["marker"]
    if marker is not None and marker["venv"] == venv:
        return _result(model, False)
    marker = {"id": release, "created": int(time.time()) if now is None else int(now), "source": source, "venv": venv}
    if not check:
        _write_atomically(os.path.join(release_dir, MARKER), json.dumps(marker, sort_keys=True) + "\n")
    model["releases"][release]["marker"] = marker
    return _result(model, True)


def switch(path, release=None, check=False, clear=False, now=None):
    """Point APP/current at ``release`` atomically (state switch); ``clear`` removes it instead."""
    path = _check_path(path, must_exist=True)
    model = _scan(path)
    link = os.path.join(path, "current")
    before = model["current"]
    if model["current_kind"] == "other":
        raise ReleaseError("path: %s is not a symlink; move it away before releases can switch it" % link)
    if clear:
        if release:
            raise ReleaseError("clear: true removes %s and takes no release (release: %r)" % (link, release))
        changed = model["current_kind"] is not None
        if changed and not check:
            os.unlink(link)
        model.update(current=None, current_target=None, current_kind=None, current_warning=None)
        return _result(model, changed, switched_from=before)
    if not release:
        raise ReleaseError("release: required with state=switch (or clear: true to remove %s)" % link)
    _check_id(release)
    info = model["releases"].get(release)
    if info is None or info["marker"] is None:
        head, switched, never = _order(model)
        complete = head + switched + never
        raise ReleaseError(
            "release: %r is not a complete release under %s (%s); complete releases: %s"
            % (
                release,
                os.path.join(path, "releases"),
                "no directory" if info is None else "no %s" % MARKER,
                ", ".join(complete) or "none",
            )
        )
    target = "releases/" + release
    if model["current_target"] == target:
        return _result(model, False, switched_from=None)
    moment = int(time.time()) if now is None else int(now)
    if not check:
        # rename(2) swaps the link in one step: a reader sees the old
        # release or the new one, never no current at all.
        replace_link(link, target)
        if before != release:
            fd = os.open(os.path.join(path, HISTORY), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, ("%d %s\n" % (moment, release)).encode("ascii"))
                os.fsync(fd)
            finally:
                os.close(fd)
    if before != release:
        model["history"].append((moment, release))
    model.update(current=release, current_target=target, current_kind="link", current_warning=None)
    return _result(model, True, switched_from=before if before != release else None)


def remove(path, release, check=False):
    """Remove ``release`` (state absent), then every virtualenv no remaining release links to."""
    path = _check_path(path, must_exist=True)
    _check_id(release)
    model = _scan(path)
    if release == model["current"]:
        raise ReleaseError(
            "release: %r is the current release (%s); switch to another one first" % (release, os.path.join(path, "current"))
        )
    removed = []
    gone = []
    if release in model["releases"]:
        gone.append(release)
        del model["releases"][release]
        removed.append(os.path.join(path, "releases", release))
    orphans = _orphans(model)
    removed.extend(os.path.join(path, "venvs", name) for name in orphans)
    if not check:
        for name in gone:
            _remove_release(path, name)
        for name in orphans:
            _remove_venv(path, name)
    return _result(model, bool(removed), removed=removed)


def _legacy_path(path, entry):
    if not isinstance(entry, str) or not entry.strip():
        raise ReleaseError("legacy: %r is not a path" % (entry,))
    full = os.path.normpath(entry if os.path.isabs(entry) else os.path.join(path, entry))
    name = os.path.basename(full)
    if os.path.dirname(full) != path or name in ("", ".", ".."):
        raise ReleaseError("legacy: %r is not directly under path (%s)" % (entry, path))
    if name in RESERVED:
        raise ReleaseError("legacy: %r is %s, which is not legacy (never removed: %s)" % (entry, full, ", ".join(RESERVED)))
    return full


def prune(path, keep=5, legacy=(), check=False):
    """Keep current and the ``keep``-1 releases switched away from most recently; remove the rest.

    Then virtualenvs no remaining release links to, then the ``legacy`` paths
    (real directories directly under ``path``), and release-history keeps
    only the lines of remaining releases.
    """
    path = _check_path(path, must_exist=True)
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 2:
        raise ReleaseError("keep: %r is not an integer of at least 2 (current and the one to roll back to)" % (keep,))
    # Every entry is checked before anything is removed.
    legacy_paths = []
    for entry in legacy:
        full = _legacy_path(path, entry)
        if full not in legacy_paths:
            legacy_paths.append(full)
    model = _scan(path)
    current = model["current"]
    _head, switched, _never = _order(model)
    kept = [current] if current is not None else []
    kept += switched[: keep - len(kept)]
    gone = [rid for rid in sorted(model["releases"]) if rid not in kept]
    removed = [os.path.join(path, "releases", rid) for rid in gone]
    for rid in gone:
        del model["releases"][rid]
    orphans = _orphans(model)
    removed.extend(os.path.join(path, "venvs", name) for name in orphans)
    legacy_gone = []
    for full in legacy_paths:
        if os.path.islink(full) or (os.path.lexists(full) and not os.path.isdir(full)):
            model["warnings"].append("legacy: %s is not a directory (a symlink or a file): left as it is" % full)
        elif os.path.isdir(full):
            legacy_gone.append(full)
    removed.extend(legacy_gone)
    model["history"] = [(epoch, rid) for epoch, rid in model["history"] if rid in model["releases"]]
    history_text = "".join("%d %s\n" % entry for entry in model["history"])
    history_changed = history_text != model["history_text"]
    if not check:
        for rid in gone:
            _remove_release(path, rid)
        for name in orphans:
            _remove_venv(path, name)
        for full in legacy_gone:
            shutil.rmtree(full)
        if history_changed:
            _write_atomically(os.path.join(path, HISTORY), history_text)
    model["history_text"] = history_text
    return _result(model, bool(removed) or history_changed, removed=removed)


def describe_os_error(exc):
    """An OSError as one line naming the file."""
    name = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or errno.errorcode.get(exc.errno, str(exc))
    return "%s: %s" % (name, reason) if name else str(reason)
