# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Memory per worker of app servers already running.

Private to pyweb.stack. Finds a master and its workers (by main PID or by a
command-line pattern) and reads RSS, and PSS/USS where the kernel offers
them (/proc/<pid>/smaps_rollup, Linux 4.14+). Uses psutil when it is
importable on the target and /proc otherwise; both give the same numbers.
"""

from __future__ import annotations

import os
import re

try:  # psutil is optional on targets
    import psutil  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the target
    psutil = None

__all__ = ["descendants", "find_by_pattern", "measure_group", "process_memory", "workers"]

MIB = 1024.0 * 1024.0


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return None


def _ppid_map(proc="/proc"):
    parents = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        stat = _read(os.path.join(proc, entry, "stat"))
        if not stat:
            continue
        # The command name may hold spaces and parentheses: split after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1:
            parents[int(entry)] = int(fields[1])
    return parents


def _cmdline(pid, proc="/proc"):
    raw = _read(os.path.join(proc, str(pid), "cmdline"))
    return raw.replace("\0", " ").strip() if raw else ""


def descendants(pid, proc="/proc"):
    """Every process below ``pid`` (children, their children ...)."""
    parents = _ppid_map(proc)
    children = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    found = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return sorted(found)


# Python's own helpers a master starts beside its workers when it spawns them
# (Granian under pyweb_granian.py): they serve no request.
_HELPER = re.compile(r"-c from multiprocessing\.(resource_tracker|forkserver) import main\b")


def workers(pid, proc="/proc"):
    """The processes below ``pid`` that serve: descendants without Python's
    multiprocessing helpers (the resource tracker, a fork server)."""
    return [child for child in descendants(pid, proc) if not _HELPER.search(_cmdline(child, proc))]


def find_by_pattern(pattern, proc="/proc"):
    """(masters, workers): matching processes whose parent does not match, and the rest."""
    regex = re.compile(pattern)
    me = os.getpid()
    parents = _ppid_map(proc)
    matched = {pid for pid in parents if pid != me and regex.search(_cmdline(pid, proc) or "")}
    # The module's own ancestors (the shell that runs it) never count.
    ancestor = parents.get(me)
    while ancestor:
        matched.discard(ancestor)
        ancestor = parents.get(ancestor)
    masters = sorted(pid for pid in matched if parents.get(pid) not in matched)
    workers = sorted(pid for pid in matched if parents.get(pid) in matched)
    return masters, workers


def process_memory(pid, proc="/proc", use_psutil=None):
    """{rss_mb, pss_mb, uss_mb} of one process; PSS/USS None when unavailable.

    ``use_psutil`` None means: when psutil is importable.
    """
    if use_psutil is None:
        use_psutil = psutil is not None
    if use_psutil:
        try:
            process = psutil.Process(pid)
            try:
                full = process.memory_full_info()
                return {
                    "rss_mb": round(full.rss / MIB, 1),
                    "pss_mb": round(full.pss / MIB, 1) if hasattr(full, "pss") else None,
                    "uss_mb": round(full.uss / MIB, 1),
                }
            except psutil.AccessDenied:
                return {"rss_mb": round(process.memory_info().rss / MIB, 1), "pss_mb": None, "uss_mb": None}
        except psutil.NoSuchProcess:
            return None
    status = _read(os.path.join(proc, str(pid), "status"))
    if status is None:
        return None
    rss = None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    rollup = _read(os.path.join(proc, str(pid), "smaps_rollup"))
    pss = uss = None
    if rollup:
        values = {}
        for line in rollup.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                values[parts[0][:-1]] = int(parts[1]) * 1024
        if "Pss" in values:
            pss = values["Pss"]
        if "Private_Clean" in values or "Private_Dirty" in values:
            uss = values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)
    # Kernel threads and zombies have no VmRSS.
    rss = rss or 0

    def mib(value):
        return round(value / MIB, 1) if value is not None else None

    return {"rss_mb": mib(rss), "pss_mb": mib(pss), "uss_mb": mib(uss)}


def _median(values):
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return round((ordered[middle - 1] + ordered[middle]) / 2.0, 1)


def measure_group(masters, workers, proc="/proc", use_psutil=None):
    """Summarise a master (the first of ``masters``) and its workers."""
    if use_psutil is None:
        use_psutil = psutil is not None
    master = None
    if masters:
        memory = process_memory(masters[0], proc, use_psutil)
        if memory:
            master = dict(memory, pid=masters[0])
    samples = []
    for pid in workers:
        memory = process_memory(pid, proc, use_psutil)
        if memory:
            samples.append(dict(memory, pid=pid))
    summary = {"count": len(samples), "pids": [s["pid"] for s in samples]}
    for key in ("rss", "pss", "uss"):
        values = [s[key + "_mb"] for s in samples if s[key + "_mb"] is not None]
        summary[key + "_median_mb"] = _median(values)
        summary[key + "_max_mb"] = max(values) if values else None
    return {"master": master, "workers": summary, "source": "psutil" if use_psutil else "/proc"}
