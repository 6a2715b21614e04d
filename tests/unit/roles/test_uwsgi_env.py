"""The uwsgi role's loader reads exactly what the python_app role's env template writes."""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest

ROOT = Path(__file__).resolve().parents[3]
LOADER = ROOT / "roles/uwsgi/files/uwsgi_env.py"
TEMPLATE = ROOT / "roles/python_app/templates/app.env.j2"

spec = importlib.util.spec_from_file_location("uwsgi_env", LOADER)
uwsgi_env = importlib.util.module_from_spec(spec)
spec.loader.exec_module(uwsgi_env)

TRICKY = {
    "UWSGI_MAGIC": "s3cr$(HOME)@(/etc/passwd)%(x)%d",
    "QUOTES": 'say "hi" \\ back\\slash',
    "SPACES": "  padded  ",
    "EMPTY": "",
    "EQUALS": "a=b=c",
    "HASH": "#not a comment",
}


def render(env):
    app = {"name": "demo", "django": {}, "env": env, "state_dir": "/var/lib/pyweb/demo", "log_dir": "/var/log/pyweb/demo"}
    return jinja2.Template(TEMPLATE.read_text(), keep_trailing_newline=True).render(ansible_managed="managed", __python_app=app)


def test_round_trip_of_the_python_app_template():
    parsed = uwsgi_env.parse(render(TRICKY))
    assert parsed.pop("PYWEB_APP_NAME") == "demo"
    assert parsed.pop("PYWEB_STATE_DIR") == "/var/lib/pyweb/demo"
    assert parsed.pop("PYWEB_LOG_DIR") == "/var/log/pyweb/demo"
    # surrounding spaces inside the quotes are kept; nothing is expanded
    assert parsed == TRICKY


def test_gunicorn_reads_the_same_with_shlex():
    """gunicorn.conf.py loads the file with shlex.split: the same variables, byte for byte."""
    text = render(TRICKY)
    pairs = dict(item.split("=", 1) for item in shlex.split(text, comments=True))
    assert pairs == uwsgi_env.parse(text)


def test_bad_lines_are_errors():
    with pytest.raises(ValueError, match="line 2 is not KEY=value"):
        uwsgi_env.parse('A="1"\nnonsense\n')


def test_missing_file_stops_the_process_with_uwsgis_no_app_code(tmp_path):
    env = dict(os.environ, PYWEB_ENV_FILE=str(tmp_path / "missing"))
    result = subprocess.run([sys.executable, str(LOADER)], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 22
    assert "cannot load the environment file" in result.stdout


def test_loading_sets_the_environment(tmp_path):
    path = tmp_path / "env"
    path.write_text(render({"SECRET": TRICKY["UWSGI_MAGIC"]}))
    code = "import os; print(os.environ['SECRET'])"
    env = dict(os.environ, PYWEB_ENV_FILE=str(path))
    result = subprocess.run(
        [sys.executable, "-c", "exec(open(%r).read()); %s" % (str(LOADER), code)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == TRICKY["UWSGI_MAGIC"]
