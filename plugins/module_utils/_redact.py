# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mask secret values in text a task is about to print.

Private to pyweb.stack; the redact filter is a thin wrapper. A failed
collectstatic or migrate prints its environment and settings; this takes the
secrets back out before the output reaches a log.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "MIN_LENGTH", "RedactError", "redact", "secret_values"]

MASK = "********"
# Shorter values, whole numbers and booleans turn up everywhere in ordinary
# output: masking every "8000" or "true" would garble it and reveal nothing.
MIN_LENGTH = 6
_TRIVIAL = re.compile(r"^\s*([+-]?[0-9]+|true|false|yes|no)\s*$", re.IGNORECASE)


class RedactError(ValueError):
    """Input of the wrong shape; the message says what is expected."""


def _collect(value, found):
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, dict):
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _collect(item, found)
    elif isinstance(value, (str, int, float)):
        text = str(value)
        if len(text) >= MIN_LENGTH and not _TRIVIAL.match(text):
            found.add(text)
    else:
        raise RedactError("secrets must be strings (in a dict or a list), got %s" % type(value).__name__)


def secret_values(secrets):
    """The strings to mask, longest first (a secret containing another is masked whole)."""
    if not isinstance(secrets, (dict, list, tuple, str)) and secrets is not None:
        raise RedactError("secrets must be a dict (its values are masked) or a list of strings, got %s" % type(secrets).__name__)
    found = set()
    _collect(secrets, found)
    return sorted(found, key=lambda text: (-len(text), text))


def _mask(text, values):
    for value in values:
        text = text.replace(value, MASK)
    return text


def redact(data, secrets):
    """``data`` (a string or a list of strings) with every secret value masked."""
    values = secret_values(secrets)
    if isinstance(data, str):
        return _mask(data, values)
    if isinstance(data, (list, tuple)):
        result = []
        for index, item in enumerate(data):
            if not isinstance(item, str):
                raise RedactError("redact takes a string or a list of strings; item %d is %s" % (index, type(item).__name__))
            result.append(_mask(item, values))
        return result
    raise RedactError("redact takes a string or a list of strings, got %s" % type(data).__name__)
