# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan the kernel settings of pyweb.stack.sysctl.

Private to pyweb.stack. ``plan_sysctl`` validates the requested keys and
values against what the kernel offers under ``/proc/sys`` and decides, per
key, the value to write and whether it may be applied live here. It only
reads; the role writes the file and applies the live values.
"""

from __future__ import annotations

import os
import re

__all__ = [
    "KNOWN_KEYS",
    "NAMESPACED_PREFIXES",
    "SysctlError",
    "normalise_key",
    "plan_sysctl",
    "read_live",
]

# Keys whose values live in a network or IPC namespace: a container has its
# own copy and may change it. Everything else (fs.*, vm.*, most kernel.*)
# belongs to the host kernel, shared by every container on it.
NAMESPACED_PREFIXES = (
    "net.",
    "kernel.shm",
    "kernel.msg",
    "kernel.sem",
    "fs.mqueue.",
)

_INT64_MAX = 2**63 - 1


class _Spec:
    """What pyweb.stack knows of a key it manages by default."""

    def __init__(self, count=1, minimum=None, maximum=None, choices=None, policy="set"):
        self.count = count
        self.minimum = minimum
        self.maximum = maximum
        self.choices = choices
        # "raise": a capacity; the live value is never lowered.
        # "set": a choice (a range, a mode); written as requested.
        self.policy = policy


KNOWN_KEYS = {
    # Accept queue ceiling: listen(2) backlogs above it are silently clamped,
    # and uWSGI refuses to start when its listen exceeds it.
    "net.core.somaxconn": _Spec(minimum=128, maximum=1048576, policy="raise"),
    "net.ipv4.tcp_max_syn_backlog": _Spec(minimum=128, maximum=1048576, policy="raise"),
    # The kernel rejects a low end below net.ipv4.ip_unprivileged_port_start
    # (1024 by default) and a high end below the low end.
    "net.ipv4.ip_local_port_range": _Spec(count=2, minimum=1024, maximum=65535),
    "net.ipv4.tcp_tw_reuse": _Spec(choices=(0, 1, 2)),
    # The kernel's own limits (net/ipv4/sysctl_net_ipv4.c): SYN retries
    # 1..MAX_TCP_SYNCNT, SYN-ACK retries held in a byte.
    "net.ipv4.tcp_syn_retries": _Spec(minimum=1, maximum=127),
    "net.ipv4.tcp_synack_retries": _Spec(minimum=0, maximum=255),
    "fs.file-max": _Spec(minimum=8192, maximum=_INT64_MAX, policy="raise"),
    # sysctl_nr_open_max on 64-bit kernels.
    "fs.nr_open": _Spec(minimum=1024, maximum=2147483584, policy="raise"),
}

_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@+-]*$")


class SysctlError(ValueError):
    """Bad input; the message names every offending key or argument."""


def normalise_key(key):
    """``net/core/somaxconn`` and ``net.core.somaxconn`` are the same key."""
    if not isinstance(key, str) or not key.strip():
        raise SysctlError("sysctl key %r is not a non-empty string" % (key,))
    name = key.strip().replace("/", ".").strip(".")
    if not _KEY_RE.match(name) or ".." in name:
        raise SysctlError("sysctl key %r has characters no kernel key has" % (key,))
    return name


def _proc_path(proc_sys, key):
    return os.path.join(proc_sys, *key.split("."))


def read_live(proc_sys, key):
    """The live value as the kernel prints it (whitespace folded), or None."""
    try:
        with open(_proc_path(proc_sys, key)) as handle:
            return " ".join(handle.read().split())
    except OSError:
        return None


def _as_ints(value):
    """Integers in a value, or None when it is not made of integers only."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return [value]
    if isinstance(value, (list, tuple)):
        parts = list(value)
    elif isinstance(value, str):
        parts = value.split()
    else:
        return None
    if not parts:
        return None
    ints = []
    for part in parts:
        if isinstance(part, bool):
            return None
        if isinstance(part, int):
            ints.append(part)
        elif isinstance(part, str) and re.match(r"^-?[0-9]+$", part.strip()):
            ints.append(int(part))
        else:
            return None
    return ints


def _describe(value):
    return repr(value) if not isinstance(value, str) else "'%s'" % value


def _check_known(key, spec, value):
    ints = _as_ints(value)
    if ints is None:
        shape = "an integer" if spec.count == 1 else "%d integers ('low high')" % spec.count
        return None, "%s: %s is not %s" % (key, _describe(value), shape)
    if len(ints) != spec.count:
        return None, "%s: %s must be %d integer(s), got %d" % (key, _describe(value), spec.count, len(ints))
    if spec.choices is not None and ints[0] not in spec.choices:
        allowed = ", ".join(str(c) for c in spec.choices)
        return None, "%s: %s is not one of %s" % (key, ints[0], allowed)
    for number in ints:
        if (spec.minimum is not None and number < spec.minimum) or (spec.maximum is not None and number > spec.maximum):
            return None, "%s: %s is out of range (allowed %s..%s)" % (key, number, spec.minimum, spec.maximum)
    if spec.count == 2 and ints[0] > ints[1]:
        return None, "%s: low end %d is above high end %d" % (key, ints[0], ints[1])
    return ints, None


def _check_extra(key, value, live):
    """A key pyweb.stack has no spec for takes the shape of its live value."""
    live_ints = _as_ints(live)
    if live_ints is None:
        # A string key (tcp_congestion_control, core_pattern ...).
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            return None, "%s: %s is not a string or integer" % (key, _describe(value))
        text = str(value).strip()
        if not text or "\n" in text:
            return None, "%s: %s is empty or spans lines" % (key, _describe(value))
        return text, None
    ints = _as_ints(value)
    if ints is None:
        return None, "%s: %s is not an integer (the kernel holds %s)" % (key, _describe(value), live)
    if len(ints) != len(live_ints):
        return None, "%s: %s must be %d integer(s) like the kernel's '%s'" % (key, _describe(value), len(live_ints), live)
    return ints, None


def _fmt(value):
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def plan_sysctl(settings, *, min_somaxconn=0, proc_sys="/proc/sys", in_container=False, container=None, access=os.access):
    """Validate ``settings`` and decide what to write and apply.

    ``settings`` maps keys to values (int, "a b" strings or lists).
    Raises SysctlError naming every bad key at once; otherwise returns a dict:
    ``entries`` (sorted by key: key, value, requested, live, apply_live,
    changes_live, scope, reason), ``values`` (key -> value written), ``host_owned``,
    ``not_writable`` and ``notes`` (sentences for the operator).
    ``access`` is os.access; root passes every permission bit on a plain
    file, so tests of read-only keys hand in their own.
    """
    errors = []
    if not isinstance(settings, dict):
        raise SysctlError("settings must be a mapping of sysctl keys to values, got %s" % type(settings).__name__)
    if isinstance(min_somaxconn, bool) or not isinstance(min_somaxconn, int):
        raise SysctlError("min_somaxconn: %s is not an integer" % _describe(min_somaxconn))
    somax_spec = KNOWN_KEYS["net.core.somaxconn"]
    if min_somaxconn < 0 or min_somaxconn > somax_spec.maximum:
        raise SysctlError("min_somaxconn: %d is out of range (allowed 0..%d)" % (min_somaxconn, somax_spec.maximum))

    requested = {}
    for raw_key, value in settings.items():
        try:
            key = normalise_key(raw_key)
        except SysctlError as exc:
            errors.append(str(exc))
            continue
        if key in requested:
            errors.append("%s: given twice (as %r and another spelling)" % (key, raw_key))
            continue
        live = read_live(proc_sys, key)
        spec = KNOWN_KEYS.get(key)
        if live is None and not os.path.exists(_proc_path(proc_sys, key)):
            errors.append("%s: unknown key (no %s on this kernel)" % (key, _proc_path(proc_sys, key)))
            continue
        if spec is not None:
            parsed, error = _check_known(key, spec, value)
        else:
            parsed, error = _check_extra(key, value, live)
        if error:
            errors.append(error)
            continue
        requested[key] = (parsed, spec, live)
    if errors:
        raise SysctlError("invalid sysctl settings: " + "; ".join(errors))

    if min_somaxconn and "net.core.somaxconn" not in requested:
        live = read_live(proc_sys, "net.core.somaxconn")
        requested["net.core.somaxconn"] = ([somax_spec.minimum], somax_spec, live)

    entries = []
    host_owned = []
    not_writable = []
    notes = []
    for key in sorted(requested):
        parsed, spec, live = requested[key]
        value = parsed
        reason = "requested"
        if key in ("net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog") and min_somaxconn > value[0]:
            value = [min_somaxconn]
            reason = "raised to %d: the app servers listen with a backlog of %d" % (min_somaxconn, min_somaxconn)
        live_ints = _as_ints(live)
        if spec is not None and spec.policy == "raise" and live_ints and live_ints[0] > value[0]:
            reason = "kept the live value %d: higher than %d, and never lowered" % (live_ints[0], value[0])
            value = live_ints
        namespaced = key.startswith(NAMESPACED_PREFIXES)
        writable = access(_proc_path(proc_sys, key), os.W_OK)
        scope = "namespaced" if namespaced else "host"
        if in_container and not namespaced:
            apply_live = False
            host_owned.append(key)
            reason += "; host-wide key: written for the record, the host kernel owns it"
        elif not writable:
            apply_live = False
            not_writable.append(key)
        else:
            apply_live = True
        value = _fmt(value)
        entries.append(
            {
                "key": key,
                "value": value,
                "requested": _fmt(parsed),
                "live": live,
                "apply_live": apply_live,
                # The role writes only these live, and puts back only these.
                "changes_live": apply_live and (live is None or live.split() != value.split()),
                "scope": scope,
                "reason": reason,
            }
        )

    where = ("this %s container" % container) if container else "this container"
    if host_owned:
        notes.append(
            "%s: host-wide key(s) %s written to the file but not applied: the host kernel owns them, "
            "set them on the host" % (where if in_container else "here", ", ".join(host_owned))
        )
    if not_writable:
        if in_container:
            notes.append(
                "%s: %s read-only here; not applied (start the container with --sysctl KEY=VALUE "
                "or a writable /proc/sys)" % (where, ", ".join(not_writable))
            )
        else:
            raise SysctlError("read-only sysctl key(s) on this host: %s" % ", ".join(not_writable))

    values = dict((e["key"], e["value"]) for e in entries)
    if min_somaxconn:
        somax = next(e for e in entries if e["key"] == "net.core.somaxconn")
        live_somax = _as_ints(somax["live"])
        if not somax["apply_live"] and (not live_somax or live_somax[0] < min_somaxconn):
            raise SysctlError(
                "net.core.somaxconn is %s here and cannot be changed from %s; the app servers need at least %d "
                "(their listen backlog): raise it outside (docker run --sysctl net.core.somaxconn=%d) "
                "or lower the servers' backlog"
                % (somax["live"], where if in_container else "this host", min_somaxconn, min_somaxconn)
            )
    return {
        "entries": entries,
        "values": values,
        "host_owned": host_owned,
        "not_writable": not_writable,
        "notes": notes,
        "in_container": bool(in_container),
        "container": container,
        "min_somaxconn": min_somaxconn,
    }
