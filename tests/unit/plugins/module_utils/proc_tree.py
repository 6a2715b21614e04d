"""Build fixture /proc/sys trees."""

from __future__ import annotations

import os


def make_proc_sys(base, values):
    """Write ``values`` ({dotted key: text}) under ``base``."""
    for key, text in values.items():
        path = os.path.join(str(base), *key.split("."))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write("%s\n" % text)
    return str(base)
