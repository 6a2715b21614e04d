"""Verify helpers shared by every Molecule scenario (testinfra).

Each scenario's tests/conftest.py puts this folder on sys.path.
"""

from __future__ import annotations

import json


def sysctl_conf(host, path):
    """Parse a sysctl.d file into {key: value}, values whitespace-folded."""
    values = {}
    for raw in host.file(path).content_string.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, _sep, value = line.partition("=")
        assert key.strip() not in values, "key %s appears twice in %s" % (key.strip(), path)
        values[key.strip()] = " ".join(value.split())
    return values


def sysctl_comments(host, path):
    """{key: the comment line right above it}."""
    comments = {}
    last = None
    for raw in host.file(path).content_string.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            last = line.lstrip("# ")
        elif "=" in line:
            comments[line.partition("=")[0].strip()] = last
            last = None
    return comments


def live_sysctl(host, key):
    """The live value inside the instance, whitespace-folded."""
    out = host.check_output("sysctl -n %s", key)
    return " ".join(out.split())


def remote_json(host, path):
    return json.loads(host.file(path).content_string)
