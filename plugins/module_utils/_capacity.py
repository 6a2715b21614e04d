# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read what a host really has: effective CPUs, memory limits, kernel limits.

Private to pyweb.stack. Every reader takes ``root`` (``/`` on a real host, a
fixture tree in tests) and only reads files; nothing here runs a command.
cgroup v1 and v2 are both read, following the process's own cgroup and every
ancestor of it, because a limit set on a parent (a Docker container, a systemd
slice) binds the children as much as one set on the process itself.
"""

from __future__ import annotations

import os

__all__ = [
    "cgroup_paths",
    "cpu_capacity",
    "kernel_limits",
    "memory_capacity",
    "network_capacity",
    "parse_cpu_list",
]

MIB = 1024 * 1024
# cgroup v1 reports "no limit" as PAGE_COUNTER_MAX pages (9223372036854771712
# on 64-bit with 4 KiB pages); anything this large is no limit.
_UNLIMITED = 2**60


def _read(root, path):
    try:
        with open(os.path.join(root, path.lstrip("/"))) as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def _read_int(root, path):
    text = _read(root, path)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def parse_cpu_list(text):
    """``0-3,8,10-11`` -> 7. None for empty or garbage."""
    if not text or not text.strip():
        return None
    count = 0
    try:
        for part in text.strip().split(","):
            if "-" in part:
                low, high = part.split("-", 1)
                if int(high) < int(low):
                    return None
                count += int(high) - int(low) + 1
            else:
                int(part)
                count += 1
    except ValueError:
        return None
    return count or None


def _mounts(root):
    """cgroup mounts: [(fstype, mount_root, mount_point, super_options)]."""
    text = _read(root, "/proc/self/mountinfo") or ""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        rfields = right.split()
        if len(fields) < 5 or len(rfields) < 3 or rfields[0] not in ("cgroup", "cgroup2"):
            continue
        mounts.append((rfields[0], fields[3], fields[4], rfields[2].split(",")))
    return mounts


def cgroup_paths(root="/"):
    """Where this process's cgroups are on disk.

    Returns ``{"v2": dir or None, "v1": {controller: dir}}``; each dir is the
    process's own cgroup directory (under ``root``).
    """
    text = _read(root, "/proc/self/cgroup") or ""
    v2_path = None
    v1_paths = {}
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2_path = path
        else:
            for controller in controllers.split(","):
                if controller:
                    v1_paths[controller] = path

    result = {"v2": None, "v1": {}}
    for fstype, mount_root, mount_point, options in _mounts(root):
        if fstype == "cgroup2" and v2_path is not None:
            result["v2"] = _join_cgroup(root, mount_point, mount_root, v2_path)
        elif fstype == "cgroup":
            for controller in ("cpu", "cpuset", "memory"):
                if controller in options and controller in v1_paths:
                    result["v1"][controller] = _join_cgroup(root, mount_point, mount_root, v1_paths[controller])
    return result


def _join_cgroup(root, mount_point, mount_root, path):
    # A mount of a subtree (an older Docker without a cgroup namespace mounts
    # /docker/<id> at /sys/fs/cgroup/...) shows paths relative to the host's
    # root: strip the part the mount already stands for.
    if mount_root != "/" and (path == mount_root or path.startswith(mount_root + "/")):
        path = path[len(mount_root) :] or "/"
    return os.path.join(root, mount_point.lstrip("/"), path.lstrip("/")).rstrip("/")


def _ancestors(directory, stop):
    """``directory`` and its parents up to ``stop`` (the mount point)."""
    stop = stop.rstrip("/")
    current = directory.rstrip("/")
    while True:
        yield current
        if current == stop or len(current) <= len(stop):
            return
        current = os.path.dirname(current)


def _mount_point_of(root, directory):
    best = ""
    for _fstype, _mroot, mount_point, _opts in _mounts(root):
        full = os.path.join(root, mount_point.lstrip("/")).rstrip("/")
        if (directory == full or directory.startswith(full + "/")) and len(full) > len(best):
            best = full
    return best or directory


def _v2_has(directory, controller):
    # In a hybrid layout the cgroup2 mount carries no controllers.
    top = directory
    text = None
    while text is None and top:
        text = _read("/", os.path.join(top, "cgroup.controllers"))
        parent = os.path.dirname(top)
        if parent == top:
            break
        top = parent
    return text is not None and controller in text.split()


def _cpus_v2(path):
    """CPUs allowed by cgroup v2 ``cpu.max`` in one directory ("max": none)."""
    fields = (_read("/", os.path.join(path, "cpu.max")) or "").split()
    if not fields or fields[0] == "max":
        return None
    try:
        quota = int(fields[0])
        period = int(fields[1]) if len(fields) > 1 else 100000
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _cpus_v1(path):
    """CPUs allowed by cgroup v1 ``cpu.cfs_quota_us`` in one directory (-1: none)."""
    quota = _read_int("/", os.path.join(path, "cpu.cfs_quota_us"))
    period = _read_int("/", os.path.join(path, "cpu.cfs_period_us"))
    return quota / period if quota is not None and quota > 0 and period else None


def _smallest_quota(root, directory, cpus_in):
    """The tightest quota on ``directory`` or any ancestor: a parent's binds the child."""
    quotas = [cpus_in(path) for path in _ancestors(directory, _mount_point_of(root, directory))]
    return min((q for q in quotas if q is not None), default=None)


def _cpuset(root, directory, filename):
    for path in _ancestors(directory, _mount_point_of(root, directory)):
        count = parse_cpu_list(_read("/", os.path.join(path, filename)))
        if count:
            return count
    return None


def cpu_capacity(root="/", affinity=None, cpu_count=None):
    """Effective CPUs and what decided them.

    ``affinity`` is the number of CPUs this process may run on
    (os.sched_getaffinity), ``cpu_count`` the host's count (os.cpu_count);
    both are handed in so tests can set them.
    """
    online = parse_cpu_list(_read(root, "/sys/devices/system/cpu/online"))
    host = online or cpu_count
    notes = []
    candidates = []
    if host:
        candidates.append((float(host), "host"))
    else:
        notes.append("no CPU count readable from /sys/devices/system/cpu/online nor os.cpu_count()")
    if affinity:
        candidates.append((float(affinity), "affinity"))

    paths = cgroup_paths(root)
    quota = None
    cgroup_version = None
    cpuset = None
    if paths["v2"] and _v2_has(paths["v2"], "cpu"):
        quota = _smallest_quota(root, paths["v2"], _cpus_v2)
        cgroup_version = 2
        if quota is not None:
            candidates.append((quota, "cgroup2 cpu.max"))
    elif "cpu" in paths["v1"]:
        quota = _smallest_quota(root, paths["v1"]["cpu"], _cpus_v1)
        cgroup_version = 1
        if quota is not None:
            candidates.append((quota, "cgroup1 cpu.cfs_quota_us"))
    if paths["v2"] and _v2_has(paths["v2"], "cpuset"):
        cpuset = _cpuset(root, paths["v2"], "cpuset.cpus.effective")
        cgroup_version = cgroup_version or 2
        if cpuset:
            candidates.append((float(cpuset), "cgroup2 cpuset"))
    elif "cpuset" in paths["v1"]:
        cpuset = _cpuset(root, paths["v1"]["cpuset"], "cpuset.effective_cpus") or _cpuset(
            root, paths["v1"]["cpuset"], "cpuset.cpus"
        )
        if cpuset:
            candidates.append((float(cpuset), "cgroup1 cpuset"))

    if candidates:
        # The smallest limit binds; on a tie the least specific source is
        # named, so "host" means nothing narrower applies.
        order = {"host": 0, "affinity": 1, "cgroup1 cpuset": 2, "cgroup2 cpuset": 2}
        effective, source = min(candidates, key=lambda c: (c[0], order.get(c[1], 3)))
    else:
        effective, source = None, None
    return {
        "cpus": round(effective, 3) if effective else None,
        "cpus_host": host,
        "cpus_source": source,
        "cpu_affinity": affinity,
        "cpu_quota": round(quota, 3) if quota else None,
        "cpuset_cpus": cpuset,
        "cgroup_version": cgroup_version,
        "notes": notes,
    }


def _meminfo(root):
    values = {}
    for line in (_read(root, "/proc/meminfo") or "").splitlines():
        name, _sep, rest = line.partition(":")
        fields = rest.split()
        if fields:
            try:
                kib = int(fields[0])
            except ValueError:
                continue
            values[name.strip()] = kib * 1024
    return values


def _stat_value(root_dir, filename, key):
    for line in (_read("/", os.path.join(root_dir, filename)) or "").splitlines():
        name, _sep, value = line.partition(" ")
        if name == key:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def memory_capacity(root="/"):
    """Memory in MiB: total, available, the cgroup limit, the effective limit."""
    info = _meminfo(root)
    total = info.get("MemTotal")
    available = info.get("MemAvailable")
    if available is None and total is not None:
        # Kernels before 3.14 have no MemAvailable.
        available = info.get("MemFree", 0) + info.get("Cached", 0) + info.get("Buffers", 0)

    paths = cgroup_paths(root)
    limit = None
    usage = None
    reclaimable = 0
    source = None
    if paths["v2"] and _v2_has(paths["v2"], "memory"):
        directory = paths["v2"]
        for path in _ancestors(directory, _mount_point_of(root, directory)):
            text = (_read("/", os.path.join(path, "memory.max")) or "").strip()
            if text and text != "max":
                try:
                    value = int(text)
                except ValueError:
                    continue
                if value < _UNLIMITED and (limit is None or value < limit):
                    limit = value
                    usage = _read_int("/", os.path.join(path, "memory.current"))
                    reclaimable = _stat_value(path, "memory.stat", "inactive_file") or 0
        source = "cgroup2 memory.max" if limit is not None else None
    elif "memory" in paths["v1"]:
        directory = paths["v1"]["memory"]
        for path in _ancestors(directory, _mount_point_of(root, directory)):
            value = _read_int("/", os.path.join(path, "memory.limit_in_bytes"))
            if value is not None and value < _UNLIMITED and (limit is None or value < limit):
                limit = value
                usage = _read_int("/", os.path.join(path, "memory.usage_in_bytes"))
                reclaimable = _stat_value(path, "memory.stat", "total_inactive_file") or 0
        source = "cgroup1 memory.limit_in_bytes" if limit is not None else None

    effective = total
    if limit is not None and (total is None or limit < total):
        effective = limit
    else:
        source = "MemTotal" if total is not None else None
    if limit is not None and usage is not None:
        in_cgroup = max(0, limit - max(0, usage - reclaimable))
        available = in_cgroup if available is None else min(available, in_cgroup)

    def mib(value):
        return int(value // MIB) if value is not None else None

    return {
        "total_mb": mib(total),
        "available_mb": mib(available),
        "cgroup_limit_mb": mib(limit),
        "effective_mb": mib(effective),
        "source": source,
    }


def kernel_limits(root="/", nofile=None):
    """somaxconn, file-max, nr_open and the open-files limits.

    ``nofile`` is ``(soft, hard)`` of RLIMIT_NOFILE, handed in by the caller.
    """

    def num(key):
        return _read_int(root, "/proc/sys/" + key.replace(".", "/"))

    soft, hard = nofile if nofile else (None, None)

    def finite(value):
        # RLIM_INFINITY and other huge values: no limit worth stating.
        return None if value is None or value < 0 or value >= _UNLIMITED else value

    return {
        "somaxconn": num("net.core.somaxconn"),
        "tcp_max_syn_backlog": num("net.ipv4.tcp_max_syn_backlog"),
        "file_max": num("fs.file-max"),
        "nr_open": num("fs.nr_open"),
        "nofile_soft": finite(soft),
        "nofile_hard": finite(hard),
    }


def network_capacity(root="/"):
    """Whether the host has an IPv6 stack with an address (nginx may listen on [::]).

    Read here so a play needs no full fact gathering for it: a container
    started without IPv6 has an empty /proc/net/if_inet6 (or none).
    """
    text = _read(root, "/proc/net/if_inet6")
    return {"ipv6": bool(text and text.strip())}


# ID / ID_LIKE of os-release to the family a role's per-OS vars file is named
# after (Ansible's ansible_facts.os_family spelling).
_OS_FAMILIES = {"debian": "Debian", "ubuntu": "Debian", "rhel": "RedHat", "fedora": "RedHat", "centos": "RedHat"}


def os_release(root="/"):
    """The distribution, its major version and family, from /etc/os-release.

    Read here so the roles can load their per-OS vars files without a fact
    gathering. Unknown values are None (the roles then refuse the host).
    """
    text = _read(root, "/etc/os-release") or _read(root, "/usr/lib/os-release") or ""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip('"').strip("'")
    ident = fields.get("ID", "").lower() or None
    family = None
    for candidate in [ident, *fields.get("ID_LIKE", "").lower().split()]:
        if candidate in _OS_FAMILIES:
            family = _OS_FAMILIES[candidate]
            break
    version = fields.get("VERSION_ID") or None
    return {
        "distribution": ident.capitalize() if ident else None,
        "id": ident,
        "major": version.split(".")[0] if version else None,
        "family": family,
        "codename": fields.get("VERSION_CODENAME") or None,
    }
