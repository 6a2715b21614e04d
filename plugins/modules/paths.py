#!/usr/bin/python
# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: paths
short_description: Directories, symlinks and removals for a list of paths in one task
version_added: 0.1.0
description:
  - Brings every path of O(paths) to its state in one module run, so a dozen
    directories cost one round trip through the connection instead of one per
    path (a loop of M(ansible.builtin.file)).
  - Every item is checked before anything changes (absolute path, state, octal
    mode, owner and group known on the host, no path listed twice); then the
    items are handled in the order given, a parent before its children.
  - B(directory) creates a missing directory and sets owner, group and mode
    (set-group-ID and sticky bits included) where they differ. Its parent must
    exist or be listed earlier; a typo fails naming the path instead of building
    a tree. A file or a symlink at the path fails naming it. Owner and mode are
    changed through the directory opened without following links, never on a
    symlink's target.
  - B(link) makes the path a symlink to O(paths[].src), replacing a symlink that
    points elsewhere. An empty directory at the path is removed and replaced by
    the link (a framework's static root inside the code becoming a link to the
    served directory); a file or a non-empty directory fails naming it.
  - B(absent) removes a symlink, a file or an empty directory, and refuses a
    directory that is not empty.
  - On a refusal after some paths were already changed, the failure's
    C(changes) lists them.
options:
  paths:
    description:
      - The paths, handled in this order.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description:
          - Absolute path.
        type: str
        required: true
      state:
        description:
          - V(directory), V(link) (a symlink to O(paths[].src)) or V(absent).
        type: str
        choices: [directory, link, absent]
        default: directory
      owner:
        description:
          - User name or numeric id owning the path. For V(link), the link's own
            owner. Not allowed with V(absent).
          - Left as it is when omitted.
          - An unknown name fails; in check mode it is a warning, since the task
            creating the user has not run either.
        type: raw
      group:
        description:
          - Group name or numeric id, as O(paths[].owner).
        type: raw
      mode:
        description:
          - Octal permissions as a string (V("0750"), V("2750") for set-group-ID,
            V("1777") for sticky) or the integer YAML makes of an unquoted
            V(0750). Set exactly, special bits included (V("0750") clears a
            set-group-ID bit inherited from the parent).
          - Only with V(directory). Left as it is when omitted; a directory
            created without it gets the umask's default.
        type: raw
      src:
        description:
          - Where the link points; required with V(link), not allowed otherwise.
          - Written as given (a relative O(paths[].src) is relative to the link's
            directory) and compared as given. It need not exist yet.
        type: str
attributes:
  check_mode:
    support: full
    description:
      - Reports what would change and changes nothing. Later paths are judged
        as the earlier ones would have left them (a child of a directory that
        would be created is reported as created).
  diff_mode:
    support: full
    description:
      - One before/after per changed path with its state, owner, group, mode
        (directories) and link target.
  platform:
    support: full
    platforms: posix
    description: POSIX file systems (owners, modes, symlinks); tested on Linux.
author:
  - pyweb.stack developers (@pyweb)
notes:
  - Symlinks in the parents of a path are followed (a V(/srv) that is a link
    to V(/data/srv) is fine); only the path itself is never followed.
seealso:
  - module: ansible.builtin.file
"""

EXAMPLES = r"""
# The paths are the ones pyweb.stack.app_layout gives an app named shop
# (user and group pyweb-shop), as the python_app role lays them out.
- name: Directories of the shop app
  pyweb.stack.paths:
    paths:
      - {path: /srv/pyweb, owner: root, group: root, mode: "0755"}
      - {path: /srv/pyweb/shop, owner: root, group: root, mode: "0755"}
      - {path: /srv/pyweb/shop/app, owner: root, group: pyweb-shop, mode: "0750"}
      - {path: /srv/pyweb/shop/media, owner: pyweb-shop, group: www-data, mode: "2750"}
      - {path: /var/log/pyweb, owner: root, group: root, mode: "0755"}
      - {path: /var/log/pyweb/shop, owner: pyweb-shop, group: pyweb-shop, mode: "0750"}

- name: Django's STATIC_ROOT inside the code is the served static directory
  pyweb.stack.paths:
    paths:
      - {path: /srv/pyweb/shop/app/staticfiles, state: link, src: /srv/pyweb/shop/static}

- name: Remove shop's uWSGI stats directory after it moved to Gunicorn (must be empty)
  pyweb.stack.paths:
    paths:
      - {path: /run/pyweb/shop, state: absent}
"""

RETURN = r"""
changes:
  description:
    - One entry per path that changed (or would change in check mode), in order.
    - C(what) holds V(created), V(owner), V(group), V(mode), V(linked) and
      V(removed); V(created) means the directory was made with the O(paths[].owner),
      O(paths[].group) and O(paths[].mode) given; an empty directory replaced by
      a link is V(removed) and V(linked).
  returned: always
  type: list
  elements: dict
  sample: [{path: /srv/pyweb/shop/media, what: [group, mode]}, {path: /srv/pyweb/shop/app/staticfiles, what: [removed, linked]}]
diff:
  description:
    - With C(--diff), one C(before)/C(after)/C(before_header)/C(after_header) per
      changed path, the way M(ansible.builtin.file) reports it. Each side holds
      C(path), C(state) and, where they apply, C(owner), C(group), C(mode) and
      C(src).
  returned: when diff mode is on
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pyweb.stack.plugins.module_utils._paths import STATES, PathsError, manage_paths


def main():
    module = AnsibleModule(
        argument_spec=dict(
            paths=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    path=dict(type="str", required=True),
                    state=dict(type="str", choices=list(STATES), default="directory"),
                    owner=dict(type="raw"),
                    group=dict(type="raw"),
                    mode=dict(type="raw"),
                    src=dict(type="str"),
                ),
            ),
        ),
        supports_check_mode=True,
    )
    try:
        result = manage_paths(module.params["paths"], check_mode=module.check_mode)
    except PathsError as exc:
        module.fail_json(msg=str(exc), changed=bool(exc.changes), changes=exc.changes)
    for warning in result.pop("warnings"):
        module.warn(warning)
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
