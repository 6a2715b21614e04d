"""docs/deploying-apps.md shows what this scenario deploys, word for word (read on the controller)."""

from __future__ import annotations

import re

import pytest
import yaml
from scenario import GUIDE, SCENARIO_DIR, app, group_vars

CREATE_REPO = (SCENARIO_DIR / "files" / "mysite" / "create_repo.sh").read_text()


def guide():
    return GUIDE.read_text()


def fences(language):
    return re.findall(r"^```%s\n(.*?)^```$" % language, guide(), re.MULTILINE | re.DOTALL)


def guide_apps():
    apps = {}
    for block in fences("yaml"):
        data = yaml.safe_load(block)
        items = data.get("pyweb_apps", []) if isinstance(data, dict) else data
        for item in items or []:
            if isinstance(item, dict) and "name" in item:
                apps[item["name"]] = item
    return apps


def test_the_settings_block_is_the_one_the_scenario_appends():
    block = (SCENARIO_DIR / "files" / "mysite" / "settings.py.append").read_text()
    assert block in fences("python")
    assert 'cat "$files/settings.py.append" >> mysite/settings.py' in CREATE_REPO


def test_the_secret_key_edit_is_the_one_the_scenario_makes():
    command = """sed -i "/^SECRET_KEY = 'django-insecure-/d" mysite/settings.py"""
    assert command in CREATE_REPO
    assert command + "\n" in fences("sh")


@pytest.mark.parametrize("name", ["mysite", "flaskapp", "fastapiapp"])
def test_requirements_are_the_scenarios(name):
    requirements = (SCENARIO_DIR / "files" / name / "requirements.txt").read_text()
    assert requirements in fences("text")


@pytest.mark.parametrize("name", ["mysite", "flaskapp", "fastapiapp", "fastgranian"])
def test_app_descriptions_are_the_scenarios_but_for_the_source(name):
    shown = dict(guide_apps()[name])
    deployed = dict(app(name))
    assert shown.pop("source")["type"] == deployed.pop("source")["type"]
    assert shown == deployed


def test_domains_are_passed_to_allowed_hosts_from_one_list():
    shown = next(yaml.safe_load(b) for b in fences("yaml") if "mysite_domains" in b)
    assert shown["mysite_domains"] == group_vars()["mysite_domains"]


def test_superuser_command_is_the_scenarios():
    side_effect = yaml.safe_load((SCENARIO_DIR / "side_effect.yml").read_text())
    task = side_effect[0]["tasks"][0]
    argv = task["ansible.builtin.command"]["argv"]
    shown = "pyweb-manage --setenv DJANGO_SUPERUSER_PASSWORD='...' " + " ".join(argv[3:])
    assert argv[:2] == ["pyweb-manage", "--setenv"] and argv[2].startswith("DJANGO_SUPERUSER_PASSWORD=")
    assert shown in guide()
