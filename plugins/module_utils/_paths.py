# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Directories, links and removals for a whole list of paths in one pass.

Private to pyweb.stack; the logic of the ``pyweb.stack.paths`` module. One
module call for a dozen paths instead of a loop of ``ansible.builtin.file``
tasks is one round trip through the connection instead of a dozen.

Every item is validated (absolute path, state, octal mode, owner and group
resolvable) before anything is touched. Items are then handled in order; a
directory is only created when its parent exists or was listed earlier, so a
typo fails instead of building a tree.

A symlink is never followed when owner or mode change: the directory is opened
with ``O_NOFOLLOW | O_DIRECTORY`` and changed through that descriptor, so a
link swapped in between the check and the change makes the open fail rather
than redirect the change.

In check mode nothing is written; what earlier items would have done is kept
in an overlay so later items (a child of a directory that would be created)
are judged against the state the real run would meet.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import stat

__all__ = ["STATES", "PathsError", "manage_paths", "normalize_items", "parse_mode", "replace_link"]

STATES = ("directory", "link", "absent")
KEYS = ("path", "state", "owner", "group", "mode", "src")
_OCTAL = re.compile(r"^[0-7]{1,5}$")
# How deep a chain of links is followed when judging a parent (the kernel's ELOOP limit).
_MAX_LINKS = 40


class PathsError(Exception):
    """A refusal. ``changes`` lists what was already changed before it."""

    def __init__(self, msg, changes=None):
        super().__init__(msg)
        self.changes = list(changes or [])


def parse_mode(value, path):
    """``"0750"``, ``"2750"``, ``"750"`` or an int (YAML's 0750) -> int; PathsError otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= 0o7777:
            return value
    elif isinstance(value, str) and _OCTAL.match(value.strip()):
        number = int(value.strip(), 8)
        if number <= 0o7777:
            return number
    raise PathsError("%s: mode %r is not an octal mode such as '0750' or '2750'" % (path, value))


def _numeric_id(value):
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _resolve(value, kind, path, check_mode, warnings):
    """A user or group name or number -> its id.

    A number is taken as is (an id need not have a name). An unknown name
    fails, except in check mode, where an earlier task (one that creates the
    user) has not run either: it is then a warning and the id stays unknown.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or (isinstance(value, str) and not value.strip()):
        raise PathsError("%s: %s %r is not a name or a numeric id" % (path, kind, value))
    number = _numeric_id(value)
    if number is not None:
        return number
    if isinstance(value, int):
        raise PathsError("%s: %s %r is not a valid id" % (path, kind, value))
    try:
        if kind == "owner":
            return pwd.getpwnam(value.strip()).pw_uid
        return grp.getgrnam(value.strip()).gr_gid
    except KeyError:
        what = "user" if kind == "owner" else "group"
        message = "%s: %s %s does not exist on this host" % (path, kind, value)
        if check_mode:
            warnings.append(message + " (check mode: a real run fails unless an earlier task creates the %s)" % what)
            return None
        raise PathsError("%s: %s %r: no such %s on this host" % (path, kind, value, what)) from None


def normalize_items(items, check_mode=False, warnings=None):
    """Validate every item before anything changes; return them normalized.

    Each result has path (normalized), state, owner/group (the values given,
    for messages), uid/gid (ids or None), mode (int or None), src.
    """
    if warnings is None:
        warnings = []
    if not isinstance(items, list):
        raise PathsError("paths must be a list of dicts, got %s" % type(items).__name__)
    result = []
    seen = {}
    for index, raw in enumerate(items):
        if not isinstance(raw, dict):
            raise PathsError("paths[%d]: expected a dict with path (and state, owner, group, mode, src), got %r" % (index, raw))
        unknown = sorted(set(raw) - set(KEYS))
        if unknown:
            raise PathsError("paths[%d]: unknown key(s) %s (allowed: %s)" % (index, ", ".join(unknown), ", ".join(KEYS)))
        path = raw.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise PathsError("paths[%d]: path %r is not an absolute path" % (index, path))
        path = os.path.normpath(path)
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        if path in seen:
            raise PathsError("%s: listed twice (paths[%d] and paths[%d])" % (path, seen[path], index))
        seen[path] = index
        state = raw.get("state") or "directory"
        if state not in STATES:
            raise PathsError("%s: state %r is not one of %s" % (path, state, ", ".join(STATES)))
        src = raw.get("src")
        if state == "link":
            if not isinstance(src, str) or not src:
                raise PathsError("%s: state link needs src, the path the link points to" % path)
        elif src is not None:
            raise PathsError("%s: src is only for state link (state is %s)" % (path, state))
        mode = raw.get("mode")
        if mode is not None:
            if state != "directory":
                raise PathsError("%s: mode is only for state directory (state is %s)" % (path, state))
            mode = parse_mode(mode, path)
        if state == "absent" and (raw.get("owner") is not None or raw.get("group") is not None):
            raise PathsError("%s: owner and group mean nothing for state absent" % path)
        if path == "/" and state != "directory":
            raise PathsError("/: refusing state %s on the root directory" % state)
        result.append(
            {
                "path": path,
                "state": state,
                "owner": raw.get("owner"),
                "group": raw.get("group"),
                "uid": _resolve(raw.get("owner"), "owner", path, check_mode, warnings),
                "gid": _resolve(raw.get("group"), "group", path, check_mode, warnings),
                "mode": mode,
                "src": src,
            }
        )
    return result


def _kind(st_mode):
    if stat.S_ISLNK(st_mode):
        return "link"
    if stat.S_ISDIR(st_mode):
        return "directory"
    if stat.S_ISREG(st_mode):
        return "file"
    for test, name in (
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISCHR, "character device"),
    ):
        if test(st_mode):
            return name
    return "special file"


_MISSING = {"kind": "missing"}


def _snapshot(path):
    """What is at ``path`` without following a final symlink."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return _MISSING
    except NotADirectoryError:
        # A component of the path is a file: nothing can be at path.
        return _MISSING
    kind = _kind(st.st_mode)
    snap = {"kind": kind, "uid": st.st_uid, "gid": st.st_gid, "mode": stat.S_IMODE(st.st_mode)}
    if kind == "link":
        snap["target"] = os.readlink(path)
    return snap


def _user_name(uid, given=None):
    if uid is None:
        return str(given)
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid, given=None):
    if gid is None:
        return str(given)
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _mode_text(mode):
    return None if mode is None else "%04o" % mode


def _link_target(link_path, target):
    return os.path.normpath(os.path.join(os.path.dirname(link_path), target))


class _Host:
    """Reads the file system; in check mode, as earlier items would have left it."""

    def __init__(self, check_mode):
        self.check_mode = check_mode
        self.planned = {}

    def plan(self, path, snap):
        if self.check_mode:
            self.planned[path] = snap

    def look(self, path, _depth=0):
        if path in self.planned:
            return self.planned[path]
        # The nearest ancestor this run touched decides what lies below it.
        child = path
        ancestor = os.path.dirname(path)
        while True:
            if ancestor in self.planned:
                snap = self.planned[ancestor]
                if snap["kind"] == "missing" or snap.get("new"):
                    return _MISSING
                if snap["kind"] == "link":
                    if _depth >= _MAX_LINKS:
                        return _MISSING
                    return self.look(
                        os.path.join(_link_target(ancestor, snap["target"]), os.path.relpath(path, ancestor)), _depth + 1
                    )
                if snap["kind"] != "directory":
                    return _MISSING
                break
            if ancestor == child:
                break
            child, ancestor = ancestor, os.path.dirname(ancestor)
        return _snapshot(path)

    def is_directory(self, path):
        """Whether ``path`` is a directory, following links (a /srv -> /data/srv link is fine)."""
        for _hop in range(_MAX_LINKS):
            snap = self.look(path)
            if snap["kind"] != "link":
                return snap["kind"] == "directory"
            path = _link_target(path, snap["target"])
        return False

    def entries(self, path):
        """Names in directory ``path``, counting what earlier items would have created or removed."""
        snap = self.look(path)
        names = set()
        if not snap.get("new"):
            try:
                names = set(os.listdir(path))
            except OSError:
                names = set()
        for planned_path, planned in self.planned.items():
            if os.path.dirname(planned_path) == path and planned_path != path:
                name = os.path.basename(planned_path)
                if planned["kind"] == "missing":
                    names.discard(name)
                else:
                    names.add(name)
        return sorted(names)


def _describe(snap):
    if snap["kind"] == "link":
        return "a symlink (to %s)" % snap["target"]
    return "a %s" % snap["kind"]


def _diff_side(path, snap, uid=None, gid=None, owner=None, group=None):
    side = {"path": path, "state": "absent" if snap["kind"] == "missing" else snap["kind"]}
    if snap["kind"] == "missing":
        return side
    if snap["kind"] == "link":
        side["src"] = snap["target"]
    if "uid" in snap:
        side["owner"] = _user_name(snap["uid"], owner)
    elif owner is not None:
        side["owner"] = _user_name(uid, owner)
    if "gid" in snap:
        side["group"] = _group_name(snap["gid"], group)
    elif group is not None:
        side["group"] = _group_name(gid, group)
    if snap["kind"] == "directory" and snap.get("mode") is not None:
        side["mode"] = _mode_text(snap["mode"])
    return side


def _check_parent(host, item):
    parent = os.path.dirname(item["path"])
    if not host.is_directory(parent):
        raise PathsError(
            "%s: parent directory %s does not exist (list it before %s to create it)" % (item["path"], parent, item["path"])
        )


def _open_directory(path):
    # O_NOFOLLOW: a symlink put at path since it was checked fails the open
    # (ELOOP) instead of redirecting the chown/chmod to its target.
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))


def _directory(host, item):
    path = item["path"]
    before = host.look(path)
    what = []
    if before["kind"] == "missing":
        _check_parent(host, item)
        what.append("created")
        after = {"kind": "directory", "new": True}
        if not host.check_mode:
            # Private until owner and mode are set; umask does not decide a given mode.
            os.mkdir(path, 0o700 if item["mode"] is not None else 0o777)
            fd = _open_directory(path)
            try:
                _set_attributes(fd, item)
                st = os.fstat(fd)
            finally:
                os.close(fd)
            after.update(uid=st.st_uid, gid=st.st_gid, mode=stat.S_IMODE(st.st_mode))
        else:
            for key in ("uid", "gid", "mode"):
                if item[key] is not None:
                    after[key] = item[key]
    elif before["kind"] == "directory":
        if host.check_mode:
            after = dict(before)
            for key, label in (("uid", "owner"), ("gid", "group"), ("mode", "mode")):
                wanted_given = item[label] is not None
                if wanted_given and (item[key] is None or item[key] != before[key]):
                    what.append(label)
                    after[key] = item[key]
            if "owner" in what and item["uid"] is None:
                after.pop("uid")
            if "group" in what and item["gid"] is None:
                after.pop("gid")
        else:
            fd = _open_directory(path)
            try:
                what = _set_attributes(fd, item)
                st = os.fstat(fd)
            finally:
                os.close(fd)
            after = {"kind": "directory", "uid": st.st_uid, "gid": st.st_gid, "mode": stat.S_IMODE(st.st_mode)}
    else:
        raise PathsError("%s exists and is %s, not a directory; remove it or list it with state link" % (path, _describe(before)))
    host.plan(path, after)
    return what, before, after


def _set_attributes(fd, item):
    """chown, then chmod (a chown may clear set-id bits), through an open descriptor."""
    what = []
    st = os.fstat(fd)
    uid = item["uid"] if item["uid"] is not None and item["uid"] != st.st_uid else -1
    gid = item["gid"] if item["gid"] is not None and item["gid"] != st.st_gid else -1
    if uid != -1 or gid != -1:
        os.fchown(fd, uid, gid)
        what.extend(label for label, value in (("owner", uid), ("group", gid)) if value != -1)
        st = os.fstat(fd)
    if item["mode"] is not None and stat.S_IMODE(st.st_mode) != item["mode"]:
        os.fchmod(fd, item["mode"])
        what.append("mode")
    return what


def replace_link(path, src):
    """Create or atomically replace the symlink at ``path`` (a new link renamed
    over the old one: a reader sees the old target or the new one, never none)."""
    temporary = os.path.join(os.path.dirname(path), ".%s.pyweb-paths.%d" % (os.path.basename(path), os.getpid()))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    os.symlink(src, temporary)
    try:
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _link(host, item):
    path = item["path"]
    src = item["src"]
    before = host.look(path)
    what = []
    if before["kind"] == "link" and before["target"] == src:
        pass
    elif before["kind"] in ("link", "missing"):
        if before["kind"] == "missing":
            _check_parent(host, item)
        what.append("linked")
        if not host.check_mode:
            replace_link(path, src)
    elif before["kind"] == "directory":
        names = host.entries(path)
        if names:
            raise PathsError(
                "%s exists and is a directory that is not empty (%d entries: %s); only an empty directory is replaced by a link"
                % (path, len(names), ", ".join(names[:5]) + (", ..." if len(names) > 5 else ""))
            )
        what.extend(["removed", "linked"])
        if not host.check_mode:
            os.rmdir(path)
            replace_link(path, src)
    else:
        raise PathsError(
            "%s exists and is %s, not a symlink; remove it first (only an empty directory is replaced)"
            % (path, _describe(before))
        )

    # The link's own owner (lchown), never its target's. A link made or
    # replaced here is a new inode, owned by this process until changed.
    if not host.check_mode:
        st = os.lstat(path)
        uid, gid = st.st_uid, st.st_gid
    elif what:
        uid, gid = os.geteuid(), os.getegid()
    else:
        uid, gid = before["uid"], before["gid"]
    after = {"kind": "link", "target": src, "uid": uid, "gid": gid}
    chown = [-1, -1]
    for position, (key, label) in enumerate((("uid", "owner"), ("gid", "group"))):
        if item[label] is not None and (item[key] is None or item[key] != after[key]):
            what.append(label)
            chown[position] = item[key]
            if item[key] is None:
                after.pop(key)
            else:
                after[key] = item[key]
    if not host.check_mode and chown != [-1, -1]:
        os.lchown(path, chown[0], chown[1])
    host.plan(path, after)
    return what, before, after


def _absent(host, item):
    path = item["path"]
    before = host.look(path)
    if before["kind"] == "missing":
        return [], before, before
    if before["kind"] == "directory":
        names = host.entries(path)
        if names:
            raise PathsError(
                "%s is a directory that is not empty (%d entries: %s); refusing to remove it"
                % (path, len(names), ", ".join(names[:5]) + (", ..." if len(names) > 5 else ""))
            )
        if not host.check_mode:
            os.rmdir(path)
    elif not host.check_mode:
        os.unlink(path)
    host.plan(path, _MISSING)
    return ["removed"], before, _MISSING


_HANDLERS = {"directory": _directory, "link": _link, "absent": _absent}


def manage_paths(items, check_mode=False):
    """Bring every path to its state, in order.

    Returns ``{"changed", "changes": [{path, what}], "diff": [{before, after,
    before_header, after_header}], "warnings"}``. Raises PathsError naming the
    path; its ``changes`` are those made before the refusal (none when the
    input itself was refused).
    """
    warnings = []
    normalized = normalize_items(items, check_mode=check_mode, warnings=warnings)
    host = _Host(check_mode)
    changes = []
    diff = []
    for item in normalized:
        try:
            what, before, after = _HANDLERS[item["state"]](host, item)
        except PathsError as exc:
            raise PathsError(str(exc), changes) from None
        except OSError as exc:
            raise PathsError("%s: %s" % (item["path"], exc.strerror or exc), changes) from None
        if not what:
            continue
        changes.append({"path": item["path"], "what": what})
        diff.append(
            {
                "before_header": item["path"],
                "after_header": item["path"],
                "before": _diff_side(item["path"], before),
                "after": _diff_side(item["path"], after, item["uid"], item["gid"], item["owner"], item["group"]),
            }
        )
    return {"changed": bool(changes), "changes": changes, "diff": diff, "warnings": warnings}
