"""What the scenario's molecule.yml says, for the verifier (read on the controller)."""

from __future__ import annotations

from pathlib import Path

import yaml

SCENARIO_DIR = Path(__file__).resolve().parent.parent
PROJECT_DIR = SCENARIO_DIR.parent.parent
GUIDE = PROJECT_DIR / "docs" / "deploying-apps.md"


def group_vars():
    molecule = yaml.safe_load((SCENARIO_DIR / "molecule.yml").read_text())
    return molecule["provisioner"]["inventory"]["group_vars"]["pyweb_stack"]


def app(name):
    return next(a for a in group_vars()["pyweb_apps"] if a["name"] == name)
