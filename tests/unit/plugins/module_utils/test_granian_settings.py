# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
import click
import granian
import pytest
from granian.cli import cli

from ansible_collections.pyweb.stack.plugins.module_utils._apps import AppError, app_layout
from ansible_collections.pyweb.stack.plugins.module_utils._granian_settings import (
    CHOICES,
    GRANIAN_VERSION,
    OPTIONS,
    OWNED,
    RANGES,
    env_name,
    env_value,
    setting_problem,
)

PARAMS = {param.name: param for param in cli.params if param.name not in ("app", "version")}


def test_the_pinned_granian_is_the_one_described():
    assert granian.__version__ == GRANIAN_VERSION


def test_options_are_granians_own():
    assert set(OPTIONS) == set(PARAMS)
    for name, choices in CHOICES.items():
        assert tuple(PARAMS[name].type.choices) == choices
    for name, param in PARAMS.items():
        if isinstance(param.type, click.IntRange):
            assert RANGES.get(name, (None, None)) == (param.type.min, param.type.max), name
        assert OPTIONS[name] == "bool" if param.is_flag else OPTIONS[name] != "bool", name


def test_every_owned_name_is_an_option():
    assert set(OWNED) <= set(OPTIONS)


def test_a_value_granian_takes_from_the_environment_is_one_it_accepts(monkeypatch):
    monkeypatch.setenv(env_name("http1_keep_alive"), env_value(False))
    monkeypatch.setenv(env_name("workers_lifetime"), env_value("1h30m"))
    monkeypatch.setenv(env_name("log_level"), env_value("warning"))
    context = cli.make_context("granian", ["app:app"], auto_envvar_prefix="GRANIAN")
    assert context.params["http1_keep_alive"] is False
    assert context.params["workers_lifetime"] == 5400
    assert context.params["log_level"].value == "warning"


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("workerz", 2, "not a Granian 2.8.7 option"),
        ("http1_keepalive", True, "options starting alike: http1_buffer_size, http1_header_read_timeout, http1_keep_alive"),
        ("uds", "/tmp/x.sock", "set by pyweb.stack: the socket is systemd's"),
        ("reload", True, "set by pyweb.stack: a reload is the collection's"),
        ("http1_keep_alive", "yes", "must be true or false, got 'yes'"),
        ("http1_buffer_size", 100, "must be at least 8192, got 100"),
        ("http1_header_read_timeout", 0, "must be between 1 and 60000, got 0"),
        ("blocking_threads_idle_timeout", "soon", "must be a whole number of seconds (or like 1h30m), got 'soon'"),
        ("log_level", "loud", "must be one of critical, error, warning, warn, info, debug, notset, got 'loud'"),
        ("log_access_fmt", ["a"], "must be a single value"),
    ],
)
def test_bad_settings_are_named(name, value, message):
    assert message in setting_problem(name, value)


def test_good_settings_pass():
    for name, value in (("http1_keep_alive", False), ("log_level", "info"), ("http2_keep_alive_timeout", "30s")):
        assert setting_problem(name, value) is None


def test_app_layout_refuses_a_bad_granian_setting_before_anything_changes():
    app = {"name": "demo", "server": "granian", "module": "m:app", "source": {"type": "path", "path": "/src"}}
    with pytest.raises(AppError, match=r"pyweb_apps\[demo\]\.server_settings\.http1_buffer_size: must be at least 8192"):
        app_layout([dict(app, server_settings={"http1_buffer_size": 1})])
    with pytest.raises(AppError, match=r"pyweb_apps\[demo\]\.server_settings\.backpressure: set by the sizing engine"):
        app_layout([dict(app, server_settings={"backpressure": 4})])
    (laid_out,) = app_layout([dict(app, server_settings={"http1_buffer_size": 65536})])
    assert laid_out["server_settings"] == {"http1_buffer_size": 65536}
