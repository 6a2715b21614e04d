# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The [Service] hardening lines every pyweb.stack unit carries, written once.

Private to pyweb.stack; the systemd_hardening filter is a thin wrapper. The
Gunicorn unit, the uWSGI instance unit, the uWSGI emperor and the nginx
drop-in differ only in what is passed here: the paths they write, whether
they stay root (and with which capabilities), extra address families, the
umask and the opt-in MemoryDenyWriteExecute.

Measured with ``systemd-analyze security`` (systemd 252, Debian 12):
Gunicorn 3.0 -> 1.3, uWSGI instance 3.0 -> 1.3, nginx 9.6 -> 2.4;
docs/operations.md ("Unit hardening") has the table.

Left out on purpose, for every unit:

- PrivateNetwork=, IPAddressDeny=: an app talks to its database, cache and
  outside APIs over TCP, and nginx to whatever it proxies. Denying IP would
  break the first deploy of every app that is not self-contained.
- PrivateUsers=: for a non-root unit it works on a real host, but not together
  with ProtectProc= in a systemd container (Docker, Podman: the unit fails
  with 217/USER "Failed to set up user namespacing", systemd issue 29656), and
  the Molecule scenarios run in such containers. ProtectProc=invisible hides
  more from a compromised app (other services' command lines and environment
  sizes), so it wins. A root unit that changes to other users (the uWSGI
  emperor, nginx) cannot have it at all: only root and User= are mapped into
  the namespace, setuid() to an app user or www-data would fail.
- RootDirectory=/RootImage=: the apps run from the host's file system.
- DevicePolicy=closed, KeyringMode=private, PrivateMounts=yes: implied already
  (PrivateDevices=yes gives the closed device policy, a system service gets a
  private keyring, ProtectSystem= gives the private mount namespace); writing
  them again would only suggest they could differ.
"""

from __future__ import annotations

import re

__all__ = ["BASE_ADDRESS_FAMILIES", "HardeningError", "hardening_lines"]

# AF_UNIX: systemd's socket, the uWSGI stats socket, journald, a PostgreSQL
# server on its local socket. AF_INET/AF_INET6: the database, cache and APIs
# over TCP. Everything else (AF_NETLINK, AF_PACKET, ...) is refused; glibc's
# getaddrinfo() copes without netlink (it only uses it for AI_ADDRCONFIG and
# falls back).
BASE_ADDRESS_FAMILIES = ("AF_UNIX", "AF_INET", "AF_INET6")

_PATH = re.compile(r"^-?/\S*$")
_CAPABILITY = re.compile(r"^CAP_[A-Z_]+$")
_FAMILY = re.compile(r"^AF_[A-Z0-9_]+$")
_UMASK = re.compile(r"^0?[0-7]{3}$")


class HardeningError(ValueError):
    """Input of the wrong shape; the message says what is expected."""


def _strings(name, value, pattern, what):
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    elif isinstance(value, (dict, bytes)) or not hasattr(value, "__iter__"):
        raise HardeningError("%s must be a list of strings, got %s" % (name, type(value).__name__))
    found = []
    for item in value:
        if not isinstance(item, str) or not pattern.match(item):
            raise HardeningError("%s: %r is not %s" % (name, item, what))
        if item not in found:
            found.append(item)
    return found


def hardening_lines(
    read_write_paths=(),
    capabilities=None,
    memory_deny_write_execute=False,
    address_families=(),
    umask=None,
):
    """The [Service] hardening directives, one string per line.

    ``read_write_paths``: what the unit may write under ProtectSystem=strict,
    in order, duplicates dropped; a leading ``-`` makes a path optional (a
    missing path is skipped instead of failing the start).
    ``capabilities``: None for a unit that runs as its User= (no capability at
    all); a list (possibly empty) for a unit that stays root and keeps only
    these capabilities.
    ``memory_deny_write_execute``: opt-in, it breaks cffi (and any JIT).
    ``address_families``: added to AF_UNIX AF_INET AF_INET6.
    ``umask``: such as ``0027``; None leaves systemd's 0022.
    """
    paths = _strings("read_write_paths", read_write_paths, _PATH, "an absolute path without spaces (optionally after '-')")
    families = _strings("address_families", address_families, _FAMILY, "an address family such as AF_NETLINK")
    root = capabilities is not None
    caps = _strings("capabilities", capabilities, _CAPABILITY, "a capability such as CAP_SETUID")
    if not isinstance(memory_deny_write_execute, bool):
        raise HardeningError("memory_deny_write_execute must be true or false, got %r" % (memory_deny_write_execute,))
    if isinstance(umask, bool):
        raise HardeningError("umask must be an octal mode such as 0027, got %r" % umask)
    if isinstance(umask, int):
        # YAML reads an unquoted 0027 as the number 23.
        umask = "%04o" % umask if 0 <= umask <= 0o777 else str(umask)
    if umask is not None:
        umask = str(umask)
        if not _UMASK.match(umask):
            raise HardeningError("umask must be an octal mode such as 0027, got %r" % umask)
        umask = umask.zfill(4)

    all_families = BASE_ADDRESS_FAMILIES + tuple(f for f in families if f not in BASE_ADDRESS_FAMILIES)
    lines = [
        # A setuid binary or file capability cannot give a process more than it
        # started with. (A root unit still changes user: dropping privileges is
        # not gaining them.)
        "NoNewPrivileges=yes",
        # Empty: nothing at all for an app user. A root unit keeps exactly the
        # capabilities its caller names; root without CAP_DAC_OVERRIDE cannot
        # even read another user's 0600 file.
        "CapabilityBoundingSet=%s" % " ".join(caps),
        "AmbientCapabilities=",
        "PrivateTmp=yes",
        # /dev holds only null, zero, random, tty and the like (and implies
        # DevicePolicy=closed).
        "PrivateDevices=yes",
        # The whole file system is read-only except ReadWritePaths=; /home,
        # /root and /run/user are not there at all.
        "ProtectSystem=strict",
        "ProtectHome=yes",
    ]
    if paths:
        lines.append("ReadWritePaths=%s" % " ".join(paths))
    lines += [
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        # Processes of other users are invisible in /proc: their command lines
        # (and the secrets some put there) cannot be read. A Gunicorn or uWSGI
        # master still sees and signals its workers, they run as its own user.
        # The emperor, root but without CAP_SYS_PTRACE, does not see its
        # vassals in /proc either; it needs only their pids (it forked them)
        # and CAP_KILL to signal them.
        "ProtectProc=invisible",
        # Only /proc/<pid>: no /proc/sys, /proc/meminfo, /proc/cpuinfo. Python
        # (os.cpu_count() reads sysconf, i.e. /sys), Gunicorn, uWSGI and nginx
        # need none of it; uWSGI's somaxconn check is skipped when
        # /proc/sys/net/core/somaxconn cannot be read, and the backlog it checks
        # is systemd's socket anyway. psutil's system-wide figures would fail.
        "ProcSubset=pid",
        "RestrictSUIDSGID=yes",
        "RestrictRealtime=yes",
        "RestrictNamespaces=yes",
        "LockPersonality=yes",
    ]
    if not root:
        # SysV and POSIX IPC objects (semaphores, /dev/shm segments) of the
        # app user go when the last unit running as that user stops (systemd
        # counts the units per user), so a restart starts clean. Root's would
        # not be removed: the option does not apply to root.
        lines.append("RemoveIPC=yes")
    lines += [
        "SystemCallArchitectures=native",
        # An allow list: what a system service uses (files, sockets, threads,
        # signals, epoll, timers: gevent, uvicorn's uvloop, uWSGI's threads and
        # Gunicorn's master/worker signalling are all in it), nothing else
        # (no mount, module, reboot, swap, clock, raw I/O, ptrace, kexec...).
        "SystemCallFilter=@system-service",
        # Then minus @resources (nice, setpriority, sched_setaffinity,
        # sched_setscheduler, setrlimit, mbind, ...): no unit here tunes its
        # scheduling. Raising the file limit still works: glibc's setrlimit()
        # is the prlimit64 system call, in @default (nginx's
        # worker_rlimit_nofile, Python's resource.setrlimit). uWSGI's
        # cpu-affinity and prio options would be refused.
        # A unit of an app user also loses @privileged (chown, setuid,
        # setgroups, chroot, capset, ...): it could not use them anyway with
        # no capability, except chown() to its own group. A root unit that
        # changes user (setuid, setgroups) and hands over files (chown) needs
        # them.
        "SystemCallFilter=~@resources" if root else "SystemCallFilter=~@privileged @resources",
        # A refused call fails with EPERM, as it would for an unprivileged
        # user, instead of killing the process with SIGSYS: libraries that
        # probe (a chown after copying a file, an affinity hint) carry on.
        "SystemCallErrorNumber=EPERM",
        "RestrictAddressFamilies=%s" % " ".join(all_families),
    ]
    if umask is not None:
        lines.append("UMask=%s" % umask)
    if memory_deny_write_execute:
        # Opt-in: cffi callbacks (pyOpenSSL's, gevent's libuv loop, ...), ctypes
        # callbacks and every JIT need writable executable memory; with this
        # they fail at run time, not at start.
        lines.append("MemoryDenyWriteExecute=yes")
    return lines
