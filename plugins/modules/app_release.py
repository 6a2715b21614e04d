#!/usr/bin/python
# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: app_release
short_description: An app's code releases - mark complete, switch atomically, roll back, prune
version_added: 0.1.0
description:
  - Manages the releases of one app under its base directory O(path) (APP),
    ansistrano-style. Each release is a directory C(APP/releases/<id>) with
    its code in C(app/), its static files in C(static/) and a relative link
    C(.venv) to a virtualenv C(APP/venvs/<key>), shared by releases that need
    the same packages. C(APP/current) is a relative link to the live release;
    C(APP/release-history) gets one line C(<epoch> <id>) per switch.
  - A release is complete once its marker C(.pyweb-release.json) is written
    (O(state=present)), after its code, static files and virtualenv are in
    place. A release directory without it is a build that stopped half way - it
    is never switched to and O(state=prune) removes it.
  - V(query) changes nothing and returns the releases; with O(release), whether
    it exists, whether it is complete and the key of the virtualenv it needs
    (RV(venv_key)).
  - V(present) writes the marker of O(release) - its directory must exist, its
    C(.venv) link must point to C(../../venvs/<venv>) and that virtualenv must
    exist; a refusal names what is missing. A marker already there with the same
    O(venv) is left as it is.
  - V(switch) points C(APP/current) at O(release), which must be complete. A
    temporary link is renamed over C(APP/current) (one C(rename(2))), so a reader
    sees the old release or the new one, never none. Switching to the release
    already current changes nothing and adds no history line. Rolling back is a
    switch to RV(previous). With O(clear=true) and no O(release), C(APP/current)
    is removed instead (the very first release failed, nothing to go back to).
  - V(absent) removes O(release), complete or not, and refuses the current one;
    then every virtualenv no remaining release links to.
  - V(prune) keeps the current release and the O(keep) - 1 releases switched
    away from most recently (by their last line in the history; the first of
    them is RV(previous)), and removes every other release directory -
    incomplete ones, complete ones never switched to, older ones. Then the
    virtualenvs no remaining release links to, then the O(legacy) directories;
    the history keeps only the lines of remaining releases.
options:
  path:
    description:
      - The app's base directory (APP), absolute.
      - May be missing for V(query) (no releases); must exist for every other state.
    type: path
    required: true
  state:
    description:
      - V(query), V(present), V(switch), V(absent) or V(prune), as described above.
    type: str
    choices: [query, present, switch, absent, prune]
    default: query
  release:
    description:
      - The release id - lowercase letters, digits, C(.), C(_) and C(-), starting
        with a letter or a digit, at most 64 characters.
      - Required with V(present) and V(absent), and with V(switch) unless
        O(clear=true). With V(query), adds RV(release_exists),
        RV(release_complete) and RV(venv_key).
    type: str
  source:
    description:
      - With V(present), where the code came from (a Git URL and commit, an archive),
        recorded in the marker and returned in RV(releases_info).
    type: str
    default: ''
  venv:
    description:
      - With V(present), the key of the release's virtualenv C(APP/venvs/<venv>) -
        lowercase letters and digits, at most 64 (RV(venv_key) of a V(query)).
      - Required with V(present).
    type: str
  requirements:
    description:
      - With V(query) and O(release), packages installed in the virtualenv on top
        of the release's C(app/requirements.txt), in the order given; they are
        part of RV(venv_key).
    type: list
    elements: str
    default: []
  keep:
    description:
      - With V(prune), how many releases stay, the current one included; at least
        2 (current and the one to roll back to).
    type: int
    default: 5
  legacy:
    description:
      - With V(prune), directories directly under O(path) left from before
        releases (C(APP/app), C(APP/venv)), absolute or as a name, removed with
        everything in them when they exist and are real directories (a symlink
        or a file is left, with a warning).
      - An entry not directly under O(path), or one of C(releases), C(venvs),
        C(current), C(release-history) and C(media), is refused before anything
        is removed.
    type: list
    elements: str
    default: []
  clear:
    description:
      - With V(switch) and no O(release), remove C(APP/current).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description:
      - Every state reports what it would change (RV(removed) included) and the
        releases as they would be afterwards, and changes nothing.
  diff_mode:
    support: none
    description: RV(removed), RV(switched_from) and the returned releases say what changed.
  platform:
    support: full
    platforms: posix
    description: POSIX file systems (symlinks, atomic rename); tested on Linux.
author:
  - pyweb.stack developers (@pyweb)
notes:
  - RV(venv_key) hashes the version of the Python running the module - give the
    task the interpreter that creates the virtualenvs (the host's C(python3)).
  - A C(-r) or C(-c) line in C(requirements.txt) is hashed as written, not
    the file it names.
  - Run V(prune) after V(switch) - a complete release never switched to is
    removed.
  - A virtualenv is removed only when no release directory links to it - make a
    new release's C(.venv) link before anything prunes.
seealso:
  - module: pyweb.stack.paths
"""

EXAMPLES = r"""
- name: Which virtualenv the new release needs
  pyweb.stack.app_release:
    path: /srv/pyweb/shop
    release: "20240501t120000"
    requirements: [gunicorn==23.0.0]
  register: shop_release

# ... build APP/venvs/<venv_key>, link APP/releases/<id>/.venv to it ...

- name: The build is complete
  pyweb.stack.app_release:
    path: /srv/pyweb/shop
    state: present
    release: "20240501t120000"
    venv: "{{ shop_release.venv_key }}"
    source: "https://git.example.com/shop.git@4f2a9c1"

- name: Go live
  pyweb.stack.app_release:
    path: /srv/pyweb/shop
    state: switch
    release: "20240501t120000"
  register: shop_switch

- name: Roll back when the new release fails its health check
  pyweb.stack.app_release:
    path: /srv/pyweb/shop
    state: switch
    release: "{{ shop_switch.previous }}"
  when: shop_health is failed and shop_switch.previous

- name: The very first release failed - nothing to go back to
  pyweb.stack.app_release:
    path: /srv/pyweb/shop
    state: switch
    clear: true
  when: shop_health is failed and not shop_switch.previous

- name: Keep three releases, drop the layout from before releases
  pyweb.stack.app_release:
    path: /srv/pyweb/shop
    state: prune
    keep: 3
    legacy: [app, venv]
"""

RETURN = r"""
current:
  description: The current release's id (afterwards); null when there is none, or when C(APP/current) is dangling or points elsewhere (with a warning).
  returned: always
  type: str
  sample: "20240501t120000"
previous:
  description:
    - The release current before the current one - the latest in the history
      that differs from RV(current) and is still complete; where a rollback goes.
    - Null when there is none.
  returned: always
  type: str
  sample: "20240420t093000"
releases:
  description:
    - The complete releases - the current one first, then the others by their
      last switch (latest first), then those never switched to, newest marker first.
  returned: always
  type: list
  elements: str
  sample: ["20240501t120000", "20240420t093000"]
venv:
  description: The virtualenv key the current release's C(.venv) links to; null without a current release.
  returned: always
  type: str
  sample: 3f9a0c2b7d41e8a6
releases_info:
  description: One entry per release of RV(releases), in the same order.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The release id.
      type: str
    created:
      description: When its marker was written (seconds since the epoch).
      type: int
    source:
      description: O(source) as given to V(present).
      type: str
    venv:
      description: Its virtualenv key, as given to V(present).
      type: str
    current:
      description: Whether it is the current release.
      type: bool
  sample: [{id: "20240501t120000", created: 1714564800, source: "https://git.example.com/shop.git@4f2a9c1", venv: 3f9a0c2b7d41e8a6, current: true}]
release_exists:
  description: Whether C(APP/releases/<release>) is a directory, complete or not.
  returned: with O(state=query) and O(release)
  type: bool
release_complete:
  description: Whether O(release) is complete (its directory has the marker).
  returned: with O(state=query) and O(release)
  type: bool
venv_key:
  description:
    - The key of the virtualenv O(release) needs - the first 16 hex digits of
      the SHA-1 of its C(app/requirements.txt) (empty when missing), a NUL,
      O(requirements) one per line, a NUL, and C(py<major>.<minor>) of the
      Python running the module.
    - Null when the release or its C(app/) directory does not exist.
  returned: with O(state=query) and O(release)
  type: str
  sample: 3f9a0c2b7d41e8a6
switched_from:
  description: The release current before the switch (null when there was none, or nothing changed).
  returned: with O(state=switch)
  type: str
  sample: "20240420t093000"
removed:
  description: The paths removed (in check mode - that would be) - release directories, virtualenvs, legacy directories.
  returned: with O(state=absent) and O(state=prune)
  type: list
  elements: str
  sample: [/srv/pyweb/shop/releases/20240401t080000, /srv/pyweb/shop/venvs/9e01d5c3a2b4f670, /srv/pyweb/shop/app]
"""

import sys

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pyweb.stack.plugins.module_utils._releases import (
    ReleaseError,
    describe_os_error,
    mark,
    prune,
    query,
    remove,
    switch,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["query", "present", "switch", "absent", "prune"], default="query"),
            release=dict(type="str"),
            source=dict(type="str", default=""),
            venv=dict(type="str"),
            requirements=dict(type="list", elements="str", default=[]),
            keep=dict(type="int", default=5),
            legacy=dict(type="list", elements="str", default=[]),
            clear=dict(type="bool", default=False),
        ),
        required_if=[
            ("state", "present", ("release", "venv")),
            ("state", "absent", ("release",)),
        ],
        supports_check_mode=True,
    )
    params = module.params
    state = params["state"]
    check = module.check_mode
    if params["clear"] and state != "switch":
        module.fail_json(msg="clear: true is only for state=switch (state: %r)" % state)
    try:
        if state == "query":
            result = query(params["path"], params["release"] or None, params["requirements"], sys.version_info[:2])
        elif state == "present":
            result = mark(params["path"], params["release"], params["source"], params["venv"], check=check)
        elif state == "switch":
            result = switch(params["path"], params["release"] or None, check=check, clear=params["clear"])
        elif state == "absent":
            result = remove(params["path"], params["release"], check=check)
        else:
            result = prune(params["path"], params["keep"], params["legacy"], check=check)
    except ReleaseError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="state=%s on %s failed: %s" % (state, params["path"], describe_os_error(exc)))
    for warning in result.pop("warnings"):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
