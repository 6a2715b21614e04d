"""_paths (and the paths module) on a real temporary tree; chown needs root."""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat

import pytest

from ansible_collections.pyweb.stack.plugins.module_utils._paths import PathsError, manage_paths, parse_mode

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changes owners: runs as root")

NOBODY = pwd.getpwuid(65534).pw_name if 65534 in {p.pw_uid for p in pwd.getpwall()} else None
NOGROUP = grp.getgrgid(65534).gr_name if 65534 in {g.gr_gid for g in grp.getgrall()} else None


def attrs(path):
    st = os.lstat(path)
    return st.st_uid, st.st_gid, "%04o" % stat.S_IMODE(st.st_mode)


def tree_snapshot(root):
    """Every entry under root with its kind, owner and mode: proof that nothing changed."""
    seen = {}
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(current, name)
            st = os.lstat(full)
            seen[full] = (st.st_mode, st.st_uid, st.st_gid, os.readlink(full) if os.path.islink(full) else None)
    st = os.lstat(root)
    seen[root] = (st.st_mode, st.st_uid, st.st_gid, None)
    return seen


@pytest.fixture
def base(tmp_path):
    os.chmod(tmp_path, 0o755)
    return str(tmp_path)


def app_dirs(base):
    return [
        {"path": base + "/srv", "owner": "root", "group": "root", "mode": "0755"},
        {"path": base + "/srv/code", "owner": "root", "group": 65534, "mode": "0750"},
        {"path": base + "/srv/media", "owner": 65534, "group": "65534", "mode": "2750"},
        {"path": base + "/srv/tmp", "mode": "1777"},
    ]


# --- mode parsing ------------------------------------------------------------


@pytest.mark.parametrize(
    "given, expected",
    [("0750", 0o750), ("750", 0o750), ("2750", 0o2750), ("02750", 0o2750), ("1777", 0o1777), (0o750, 0o750), (0, 0)],
)
def test_parse_mode(given, expected):
    assert parse_mode(given, "/x") == expected


@pytest.mark.parametrize("given", ["u=rwx", "0758", "17777", "", "rwx", -1, 0o17777, True, 1.5, None])
def test_parse_mode_refuses_and_names_the_path(given):
    with pytest.raises(PathsError, match=r"^/srv/x: mode .* is not an octal mode"):
        parse_mode(given, "/srv/x")


# --- directories ---------------------------------------------------------------


def test_creates_then_is_idempotent(base):
    items = app_dirs(base)
    first = manage_paths(items)
    assert first["changed"] is True
    assert [c["path"] for c in first["changes"]] == [i["path"] for i in items]
    assert all(c["what"] == ["created"] for c in first["changes"])
    assert attrs(base + "/srv") == (0, 0, "0755")
    assert attrs(base + "/srv/code") == (0, 65534, "0750")
    assert attrs(base + "/srv/media") == (65534, 65534, "2750")
    assert stat.S_IMODE(os.lstat(base + "/srv/tmp").st_mode) == 0o1777
    assert os.lstat(base + "/srv/tmp").st_uid == os.geteuid()

    second = manage_paths(items)
    assert second == {"changed": False, "changes": [], "diff": [], "warnings": []}


def test_fixes_owner_group_and_mode_only_where_they_differ(base):
    manage_paths(app_dirs(base))
    os.chown(base + "/srv/code", 65534, 0)
    os.chmod(base + "/srv/media", 0o750)  # setgid lost
    result = manage_paths(app_dirs(base))
    assert result["changes"] == [
        {"path": base + "/srv/code", "what": ["owner", "group"]},
        {"path": base + "/srv/media", "what": ["mode"]},
    ]
    assert attrs(base + "/srv/code") == (0, 65534, "0750")
    assert attrs(base + "/srv/media") == (65534, 65534, "2750")
    assert manage_paths(app_dirs(base))["changed"] is False


def test_mode_is_exact_an_inherited_setgid_bit_is_cleared(base):
    manage_paths([{"path": base + "/shared", "mode": "2775"}])
    result = manage_paths([{"path": base + "/shared/plain", "mode": "0750"}, {"path": base + "/shared/inherits"}])
    assert attrs(base + "/shared/plain")[2] == "0750"
    # Without a mode the kernel's inheritance stands.
    assert stat.S_IMODE(os.lstat(base + "/shared/inherits").st_mode) & stat.S_ISGID
    assert result["changes"][1] == {"path": base + "/shared/inherits", "what": ["created"]}


def test_integer_mode_from_unquoted_yaml(base):
    manage_paths([{"path": base + "/d", "mode": 0o2750}])
    assert attrs(base + "/d")[2] == "2750"


def test_only_given_attributes_are_managed(base):
    os.mkdir(base + "/d", 0o700)
    os.chown(base + "/d", 65534, 65534)
    assert manage_paths([{"path": base + "/d"}])["changed"] is False
    assert manage_paths([{"path": base + "/d", "group": 0}])["changes"] == [{"path": base + "/d", "what": ["group"]}]
    assert attrs(base + "/d") == (65534, 0, "0700")


def test_names_resolve_like_numbers(base):
    if NOBODY is None or NOGROUP is None:
        pytest.skip("no user/group 65534 on this host")
    manage_paths([{"path": base + "/d", "owner": 65534, "group": 65534}])
    assert manage_paths([{"path": base + "/d", "owner": NOBODY, "group": NOGROUP}])["changed"] is False
    assert manage_paths([{"path": base + "/d", "owner": "65534", "group": "65534"}])["changed"] is False


def test_refuses_a_missing_parent_that_was_not_listed(base):
    with pytest.raises(PathsError) as caught:
        manage_paths([{"path": base + "/srv/code"}])
    assert str(
        caught.value
    ) == "%s/srv/code: parent directory %s/srv does not exist (list it before %s/srv/code to create it)" % (
        base,
        base,
        base,
    )
    assert not os.path.exists(base + "/srv")


def test_a_parent_listed_after_its_child_is_refused(base):
    with pytest.raises(PathsError, match="parent directory"):
        manage_paths([{"path": base + "/a/b"}, {"path": base + "/a"}])


def test_a_symlinked_parent_is_followed(base):
    os.mkdir(base + "/data")
    os.symlink(base + "/data", base + "/srv")
    manage_paths([{"path": base + "/srv/app", "mode": "0750"}])
    assert os.path.isdir(base + "/data/app")


@pytest.mark.parametrize("kind", ["file", "link-to-dir", "dangling-link"])
def test_directory_refuses_what_is_not_a_directory(base, kind):
    target = base + "/x"
    os.mkdir(base + "/elsewhere", 0o700)
    if kind == "file":
        open(target, "w").close()
        expected = "%s exists and is a file, not a directory" % target
    elif kind == "link-to-dir":
        os.symlink(base + "/elsewhere", target)
        expected = "%s exists and is a symlink (to %s/elsewhere), not a directory" % (target, base)
    else:
        os.symlink(base + "/nowhere", target)
        expected = "%s exists and is a symlink (to %s/nowhere), not a directory" % (target, base)
    with pytest.raises(PathsError) as caught:
        manage_paths([{"path": target, "owner": 65534, "mode": "0777"}])
    assert str(caught.value).startswith(expected)
    # The link's target was not touched through it.
    assert attrs(base + "/elsewhere") == (0, 0, "0700")


def test_a_refusal_reports_what_was_already_changed(base):
    open(base + "/file", "w").close()
    with pytest.raises(PathsError) as caught:
        manage_paths([{"path": base + "/new"}, {"path": base + "/file"}])
    assert caught.value.changes == [{"path": base + "/new", "what": ["created"]}]


def test_trailing_slash_and_dots_are_normalized(base):
    result = manage_paths([{"path": base + "/a/"}, {"path": base + "/a/./b/../b"}])
    assert [c["path"] for c in result["changes"]] == [base + "/a", base + "/a/b"]


# --- input refusals --------------------------------------------------------------


@pytest.mark.parametrize(
    "items, message",
    [
        ([{"path": "relative/dir"}], "paths[1]: path 'relative/dir' is not an absolute path"),
        ([{"mode": "0755"}], "paths[1]: path None is not an absolute path"),
        ([{"path": "/a"}, {"path": "/a/"}], "/a: listed twice (paths[1] and paths[2])"),
        ([{"path": "/a", "state": "file"}], "/a: state 'file' is not one of directory, link, absent"),
        ([{"path": "/a", "state": "link"}], "/a: state link needs src"),
        ([{"path": "/a", "src": "/b"}], "/a: src is only for state link (state is directory)"),
        ([{"path": "/a", "state": "link", "src": "/b", "mode": "0755"}], "/a: mode is only for state directory"),
        ([{"path": "/a", "state": "absent", "owner": "root"}], "/a: owner and group mean nothing for state absent"),
        ([{"path": "/a", "mode": "rwxr-x---"}], "/a: mode 'rwxr-x---' is not an octal mode"),
        ([{"path": "/a", "owner": "no-such-user-pyweb"}], "/a: owner 'no-such-user-pyweb': no such user on this host"),
        ([{"path": "/a", "group": "no-such-group-pyweb"}], "/a: group 'no-such-group-pyweb': no such group on this host"),
        ([{"path": "/a", "owner": -3}], "/a: owner -3 is not a valid id"),
        ([{"path": "/a", "owner": ["root"]}], "/a: owner ['root'] is not a name or a numeric id"),
        ([{"path": "/a", "size": 3}], "paths[1]: unknown key(s) size"),
        (["/a"], "paths[1]: expected a dict"),
        ([{"path": "/", "state": "absent"}], "/: refusing state absent on the root directory"),
    ],
)
def test_bad_input_is_refused_before_anything_changes(base, items, message):
    # A valid first item (paths[0]) proves nothing is done before the whole list is checked.
    with pytest.raises(PathsError) as caught:
        manage_paths([{"path": base + "/first"}, *items])
    assert str(caught.value).startswith(message)
    assert caught.value.changes == []
    assert not os.path.exists(base + "/first")


# --- links -----------------------------------------------------------------------


def test_link_created_then_idempotent(base):
    os.mkdir(base + "/static")
    items = [{"path": base + "/code"}, {"path": base + "/code/staticfiles", "state": "link", "src": base + "/static"}]
    assert manage_paths(items)["changes"][1] == {"path": base + "/code/staticfiles", "what": ["linked"]}
    assert os.readlink(base + "/code/staticfiles") == base + "/static"
    assert manage_paths(items)["changed"] is False


def test_a_wrong_link_is_replaced(base):
    os.symlink("/nowhere", base + "/l")
    result = manage_paths([{"path": base + "/l", "state": "link", "src": "../static"}])
    assert result["changes"] == [{"path": base + "/l", "what": ["linked"]}]
    assert os.readlink(base + "/l") == "../static"
    assert not [name for name in os.listdir(base) if "pyweb-paths" in name]


def test_an_empty_directory_becomes_the_link(base):
    os.mkdir(base + "/static")
    os.mkdir(base + "/code")
    os.mkdir(base + "/code/staticfiles")
    result = manage_paths([{"path": base + "/code/staticfiles", "state": "link", "src": base + "/static"}])
    assert result["changes"] == [{"path": base + "/code/staticfiles", "what": ["removed", "linked"]}]
    assert os.path.islink(base + "/code/staticfiles")


def test_a_non_empty_directory_or_file_is_not_replaced_by_a_link(base):
    os.makedirs(base + "/code/staticfiles")
    open(base + "/code/staticfiles/app.css", "w").close()
    open(base + "/file", "w").close()
    with pytest.raises(PathsError) as caught:
        manage_paths([{"path": base + "/code/staticfiles", "state": "link", "src": "/x"}])
    assert str(caught.value).startswith(
        "%s/code/staticfiles exists and is a directory that is not empty (1 entries: app.css)" % base
    )
    with pytest.raises(PathsError, match=r"/file exists and is a file, not a symlink"):
        manage_paths([{"path": base + "/file", "state": "link", "src": "/x"}])
    assert os.path.isfile(base + "/code/staticfiles/app.css")


def test_link_owner_is_the_links_own(base):
    os.mkdir(base + "/target", 0o700)
    result = manage_paths([{"path": base + "/l", "state": "link", "src": base + "/target", "owner": 65534, "group": 65534}])
    assert result["changes"] == [{"path": base + "/l", "what": ["linked", "owner", "group"]}]
    assert attrs(base + "/l")[:2] == (65534, 65534)
    assert attrs(base + "/target") == (0, 0, "0700")
    again = manage_paths([{"path": base + "/l", "state": "link", "src": base + "/target", "owner": 65534, "group": 65534}])
    assert again["changed"] is False


def test_a_link_missing_its_parent_is_refused(base):
    with pytest.raises(PathsError, match=r"parent directory .*/nope does not exist"):
        manage_paths([{"path": base + "/nope/l", "state": "link", "src": "/x"}])


# --- absent ----------------------------------------------------------------------


def test_absent_removes_links_files_and_empty_directories(base):
    os.mkdir(base + "/empty")
    open(base + "/file", "w").close()
    os.mkdir(base + "/target")
    os.symlink(base + "/target", base + "/l")
    items = [{"path": base + p, "state": "absent"} for p in ("/empty", "/file", "/l", "/never")]
    result = manage_paths(items)
    assert result["changes"] == [{"path": base + p, "what": ["removed"]} for p in ("/empty", "/file", "/l")]
    assert sorted(os.listdir(base)) == ["target"]
    assert manage_paths(items)["changed"] is False


def test_absent_refuses_a_non_empty_directory(base):
    os.makedirs(base + "/full/sub")
    with pytest.raises(PathsError) as caught:
        manage_paths([{"path": base + "/full", "state": "absent"}])
    assert str(caught.value) == "%s/full is a directory that is not empty (1 entries: sub); refusing to remove it" % base
    assert os.path.isdir(base + "/full/sub")


def test_absent_children_then_the_parent(base):
    os.makedirs(base + "/old/sub")
    result = manage_paths([{"path": base + "/old/sub", "state": "absent"}, {"path": base + "/old", "state": "absent"}])
    assert result["changed"] is True
    assert not os.path.exists(base + "/old")


# --- check mode ------------------------------------------------------------------


def scenario(base):
    """A half-deployed app: some paths right, some wrong, some missing."""
    os.mkdir(base + "/srv", 0o755)
    os.mkdir(base + "/srv/code", 0o755)  # wrong group and mode
    os.mkdir(base + "/srv/code/staticfiles")  # empty: becomes a link
    os.symlink("/wrong", base + "/srv/current")
    os.mkdir(base + "/srv/old")
    return [
        {"path": base + "/srv", "owner": "root", "group": "root", "mode": "0755"},
        {"path": base + "/srv/code", "owner": "root", "group": 65534, "mode": "0750"},
        {"path": base + "/srv/static", "owner": 65534, "group": 65534, "mode": "2750"},
        {"path": base + "/srv/static/CACHE", "mode": "2750"},
        {"path": base + "/srv/code/staticfiles", "state": "link", "src": base + "/srv/static"},
        {"path": base + "/srv/current", "state": "link", "src": "code"},
        {"path": base + "/srv/old", "state": "absent"},
    ]


def test_check_mode_changes_nothing_and_reports_what_a_real_run_changes(base):
    items = scenario(base)
    before = tree_snapshot(base)
    checked = manage_paths(items, check_mode=True)
    assert tree_snapshot(base) == before
    real = manage_paths(items)
    assert checked["changes"] == real["changes"]
    assert checked["changes"] == [
        {"path": base + "/srv/code", "what": ["group", "mode"]},
        {"path": base + "/srv/static", "what": ["created"]},
        # The parent would be created first: the child is judged against that.
        {"path": base + "/srv/static/CACHE", "what": ["created"]},
        {"path": base + "/srv/code/staticfiles", "what": ["removed", "linked"]},
        {"path": base + "/srv/current", "what": ["linked"]},
        {"path": base + "/srv/old", "what": ["removed"]},
    ]
    assert manage_paths(items, check_mode=True)["changed"] is False


def test_check_mode_refuses_as_the_real_run_would(base):
    with pytest.raises(PathsError, match="parent directory"):
        manage_paths(
            [{"path": base + "/a"}, {"path": base + "/a/b", "state": "absent"}, {"path": base + "/c/d"}], check_mode=True
        )
    os.makedirs(base + "/full/sub")
    # Removing the only entry first makes the directory empty in the plan too.
    result = manage_paths(
        [{"path": base + "/full/sub", "state": "absent"}, {"path": base + "/full", "state": "absent"}], check_mode=True
    )
    assert [c["path"] for c in result["changes"]] == [base + "/full/sub", base + "/full"]
    with pytest.raises(PathsError, match="not empty"):
        manage_paths(
            [
                {"path": base + "/full/new"},
                {"path": base + "/full/sub", "state": "absent"},
                {"path": base + "/full", "state": "absent"},
            ],
            check_mode=True,
        )
    assert os.path.isdir(base + "/full/sub")
    assert not os.path.exists(base + "/full/new")


def test_check_mode_an_unknown_owner_is_a_warning(base):
    result = manage_paths([{"path": base + "/d", "owner": "no-such-user-pyweb", "mode": "0750"}], check_mode=True)
    assert result["changes"] == [{"path": base + "/d", "what": ["created"]}]
    assert "owner no-such-user-pyweb does not exist" in result["warnings"][0]
    assert result["diff"][0]["after"]["owner"] == "no-such-user-pyweb"
    os.mkdir(base + "/e")
    existing = manage_paths([{"path": base + "/e", "group": "no-such-group-pyweb"}], check_mode=True)
    assert existing["changes"] == [{"path": base + "/e", "what": ["group"]}]
    assert existing["diff"][0]["after"]["group"] == "no-such-group-pyweb"


# --- diff ------------------------------------------------------------------------


def test_diff_has_state_owner_group_mode_per_changed_path(base):
    root = pwd.getpwuid(0).pw_name
    rootgroup = grp.getgrgid(0).gr_name
    nobody = pwd.getpwuid(65534).pw_name
    nogroup = grp.getgrgid(65534).gr_name
    items = scenario(base)
    checked = manage_paths(items, check_mode=True)["diff"]
    real = manage_paths(items)["diff"]
    by_path = {d["before_header"]: d for d in real}
    assert [d["before_header"] for d in real] == [d["before_header"] for d in checked]
    assert all(d["before_header"] == d["after_header"] for d in real)
    assert by_path[base + "/srv/code"]["before"] == {
        "path": base + "/srv/code",
        "state": "directory",
        "owner": root,
        "group": rootgroup,
        "mode": "0755",
    }
    assert by_path[base + "/srv/code"]["after"] == {
        "path": base + "/srv/code",
        "state": "directory",
        "owner": root,
        "group": nogroup,
        "mode": "0750",
    }
    assert by_path[base + "/srv/static"]["before"] == {"path": base + "/srv/static", "state": "absent"}
    assert by_path[base + "/srv/static"]["after"] == {
        "path": base + "/srv/static",
        "state": "directory",
        "owner": nobody,
        "group": nogroup,
        "mode": "2750",
    }
    link = by_path[base + "/srv/code/staticfiles"]
    assert link["before"]["state"] == "directory"
    assert link["after"]["state"] == "link"
    assert link["after"]["src"] == base + "/srv/static"
    assert by_path[base + "/srv/current"]["before"]["src"] == "/wrong"
    assert by_path[base + "/srv/old"]["after"] == {"path": base + "/srv/old", "state": "absent"}
    # Check mode promises the same before/after a real run delivers, for
    # everything it can know in advance.
    for predicted, done in zip(checked, real):
        assert predicted["before"] == done["before"]
        assert {k: v for k, v in done["after"].items() if k in predicted["after"]} == predicted["after"]


# --- the module ------------------------------------------------------------------


def run_module(args, capsys):
    from ansible.module_utils.testing import patch_module_args  # noqa: PLC0415 - ansible-core's test helper

    from ansible_collections.pyweb.stack.plugins.modules import paths  # noqa: PLC0415

    with patch_module_args(args), pytest.raises(SystemExit) as caught:
        paths.main()
    output = json.loads(capsys.readouterr().out)
    return caught.value.code, output


def test_module_creates_and_diffs(base, capsys):
    args = {"paths": [{"path": base + "/m", "owner": "root", "group": 0, "mode": "0750"}], "_ansible_diff": True}
    code, result = run_module(args, capsys)
    assert code == 0
    assert result["changed"] is True
    assert result["changes"] == [{"path": base + "/m", "what": ["created"]}]
    assert result["diff"][0]["after"]["mode"] == "0750"
    code, result = run_module({"paths": [{"path": base + "/m", "mode": "0750"}]}, capsys)
    assert (code, result["changed"], "diff" in result) == (0, False, False)


def test_module_check_mode_and_failure(base, capsys):
    code, result = run_module({"paths": [{"path": base + "/c", "mode": "0700"}], "_ansible_check_mode": True}, capsys)
    assert (code, result["changed"]) == (0, True)
    assert not os.path.exists(base + "/c")
    code, result = run_module({"paths": [{"path": base + "/x/y"}]}, capsys)
    assert code == 1
    assert result["failed"] is True
    assert "parent directory %s/x does not exist" % base in result["msg"]
    code, result = run_module({"paths": [{"path": base + "/x", "state": "file"}]}, capsys)
    assert code == 1
    assert "state" in result["msg"]
