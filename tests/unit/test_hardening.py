"""systemd_hardening: one hardening block for every unit, app user or root."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pyweb.stack.plugins.filter.systemd_hardening import systemd_hardening
from ansible_collections.pyweb.stack.plugins.module_utils._hardening import HardeningError, hardening_lines

EMPEROR_CAPS = ["CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_KILL"]


def directives(lines):
    found = {}
    for line in lines:
        name, value = line.split("=", 1)
        found.setdefault(name, []).append(value)
    return found


def test_an_app_user_unit_has_no_capability_and_no_privileged_calls():
    found = directives(hardening_lines(["/srv/pyweb/demo/media", "/var/lib/pyweb/demo"], umask="0027"))
    assert found["CapabilityBoundingSet"] == [""]
    assert found["AmbientCapabilities"] == [""]
    assert found["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    assert found["SystemCallErrorNumber"] == ["EPERM"]
    assert found["RemoveIPC"] == ["yes"]
    assert found["ProtectProc"] == ["invisible"] and found["ProcSubset"] == ["pid"]
    assert found["ReadWritePaths"] == ["/srv/pyweb/demo/media /var/lib/pyweb/demo"]
    assert found["UMask"] == ["0027"]
    for name in ("NoNewPrivileges", "PrivateTmp", "PrivateDevices", "ProtectHome", "RestrictSUIDSGID", "LockPersonality"):
        assert found[name] == ["yes"], name
    assert found["ProtectSystem"] == ["strict"]


def test_a_root_unit_keeps_its_capabilities_and_the_calls_to_change_user():
    found = directives(hardening_lines(["-/run/pyweb"], capabilities=EMPEROR_CAPS))
    assert found["CapabilityBoundingSet"] == ["CAP_SETUID CAP_SETGID CAP_CHOWN CAP_KILL"]
    assert found["SystemCallFilter"] == ["@system-service", "~@resources"]
    assert "RemoveIPC" not in found
    assert "UMask" not in found
    assert found["ReadWritePaths"] == ["-/run/pyweb"]


def test_an_empty_capability_list_is_root_with_nothing():
    found = directives(hardening_lines([], capabilities=[]))
    assert found["CapabilityBoundingSet"] == [""]
    assert found["SystemCallFilter"][1] == "~@resources"
    assert "ReadWritePaths" not in found


@pytest.mark.parametrize("capabilities", [None, EMPEROR_CAPS])
def test_what_is_never_there(capabilities):
    # IP stays open (databases over TCP); PrivateUsers fails with ProtectProc in a systemd container
    found = directives(hardening_lines(["/srv"], capabilities=capabilities))
    for name in ("IPAddressDeny", "PrivateNetwork", "PrivateUsers", "MemoryDenyWriteExecute", "RootDirectory"):
        assert name not in found, name
    assert found["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]


def test_memory_deny_write_execute_is_opt_in():
    assert "MemoryDenyWriteExecute=yes" in hardening_lines(["/srv"], memory_deny_write_execute=True)
    assert "MemoryDenyWriteExecute=yes" not in hardening_lines(["/srv"])


def test_extra_address_families_are_added_once():
    found = directives(hardening_lines(["/srv"], address_families=["AF_NETLINK", "AF_INET", "AF_NETLINK"]))
    assert found["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6 AF_NETLINK"]


def test_paths_keep_their_order_without_duplicates_and_any_iterable_works():
    lines = hardening_lines(iter(["/b", "-/a", "/b"]))
    assert "ReadWritePaths=/b -/a" in lines


@pytest.mark.parametrize("umask, expected", [("0027", "0027"), ("027", "0027"), (0o027, "0027"), (0o077, "0077")])
def test_umask_as_text_or_as_the_number_yaml_makes_of_it(umask, expected):
    assert "UMask=" + expected in hardening_lines([], umask=umask)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"read_write_paths": ["relative/path"]}, "read_write_paths: 'relative/path' is not an absolute path"),
        ({"read_write_paths": ["/with space"]}, "is not an absolute path without spaces"),
        ({"read_write_paths": {"/a": 1}}, "read_write_paths must be a list of strings, got dict"),
        ({"read_write_paths": 5}, "read_write_paths must be a list of strings, got int"),
        ({"capabilities": ["SETUID"]}, "capabilities: 'SETUID' is not a capability"),
        ({"address_families": ["inet"]}, "address_families: 'inet' is not an address family"),
        ({"umask": "0999"}, "umask must be an octal mode"),
        ({"umask": True}, "umask must be an octal mode"),
        ({"memory_deny_write_execute": "yes"}, "memory_deny_write_execute must be true or false"),
    ],
)
def test_bad_input_is_refused_by_name(kwargs, message):
    kwargs.setdefault("read_write_paths", [])
    with pytest.raises(HardeningError, match=message.replace("(", r"\(")):
        hardening_lines(**kwargs)


def test_the_filter_returns_text_and_names_itself_in_errors():
    text = systemd_hardening(["/srv/pyweb/demo/media"], umask="0027")
    assert text.splitlines() == hardening_lines(["/srv/pyweb/demo/media"], umask="0027")
    assert not text.endswith("\n")
    with pytest.raises(AnsibleFilterError, match=r"^systemd_hardening: capabilities"):
        systemd_hardening([], capabilities=["bogus"])


def test_every_line_is_a_directive_systemd_knows():
    known = {
        "NoNewPrivileges", "CapabilityBoundingSet", "AmbientCapabilities", "PrivateTmp", "PrivateDevices",
        "ProtectSystem", "ProtectHome", "ReadWritePaths", "ProtectKernelTunables", "ProtectKernelModules",
        "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock", "ProtectHostname", "ProtectProc",
        "ProcSubset", "RestrictSUIDSGID", "RestrictRealtime", "RestrictNamespaces", "LockPersonality",
        "RemoveIPC", "SystemCallArchitectures", "SystemCallFilter", "SystemCallErrorNumber",
        "RestrictAddressFamilies", "UMask", "MemoryDenyWriteExecute",
    }  # fmt: skip
    lines = hardening_lines(["/srv"], memory_deny_write_execute=True, umask="0027", address_families=["AF_NETLINK"])
    assert set(directives(lines)) <= known
