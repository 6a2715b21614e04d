"""The controller's check of Gunicorn settings agrees with Gunicorn itself (the pinned version)."""

from __future__ import annotations

import pytest

from ansible_collections.pyweb.stack.plugins.module_utils._gunicorn_settings import (
    GUNICORN_VERSION,
    OWNED,
    SETTING_KINDS,
    setting_problem,
)

gunicorn = pytest.importorskip("gunicorn")
from gunicorn import config

KIND_OF_VALIDATOR = {
    "validate_pos_int": "int",
    "validate_bool": "bool",
    "validate_string": "str",
    "validate_list_string": "strlist",
}
SAMPLES = [0, 1, 30, -1, "30", " 8 ", "0o22", "many", "", None, True, False, "true", "FALSE", "yes", 1.5, ["a", "b"], [1], {}]


def test_the_table_is_gunicorns():
    assert gunicorn.__version__ == GUNICORN_VERSION
    real = {s.name: KIND_OF_VALIDATOR.get(s.validator.__name__, "other") for s in config.KNOWN_SETTINGS}
    assert real == SETTING_KINDS
    assert set(OWNED) <= set(real)


@pytest.mark.parametrize("name", sorted(n for n, k in SETTING_KINDS.items() if k != "other" and n not in OWNED))
def test_verdicts_match_gunicorns_validator(name):
    validator = next(s.validator for s in config.KNOWN_SETTINGS if s.name == name)
    for value in SAMPLES:
        try:
            validator(value)
            gunicorn_ok = True
        except (TypeError, ValueError):
            gunicorn_ok = False
        ours_ok = setting_problem(name, value) is None
        if SETTING_KINDS[name] == "int" and isinstance(value, bool):
            # stricter on purpose: Gunicorn takes true as 1
            assert not ours_ok
            continue
        assert ours_ok == gunicorn_ok, (name, value)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("keepalive", "many", "Gunicorn wants a whole number >= 0, got 'many'"),
        ("max_requests", -5, "Gunicorn wants a whole number >= 0, got -5"),
        ("preload_app", "yes", "Gunicorn wants true or false, got 'yes'"),
        ("bind", "0.0.0.0:80", "set by pyweb.stack: the socket is systemd's"),
        ("daemon", True, "set by pyweb.stack: systemd runs Gunicorn in the foreground"),
        ("worker_class", "eventlet", "set by pyweb.stack: chosen by the sizing"),
    ],
)
def test_problems_are_named(name, value, message):
    assert setting_problem(name, value).startswith(message)


@pytest.mark.parametrize(
    ("name", "value"), [("keepalive", 4), ("limit_request_line", 8190), ("loglevel", "debug"), ("no_such", 1)]
)
def test_good_and_unknown_values_pass(name, value):
    # an unknown name is the host's check's to refuse (the installed Gunicorn may know it)
    assert setting_problem(name, value) is None
