# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: server_registry
short_description: What each app-server runtime keeps once per host, with the host's directories filled in
version_added: 0.1.0
description:
  - The server registry of pyweb.stack declares every runtime an app can run
    on (C(gunicorn), C(uwsgi_emperor), C(uwsgi_instances)) with its units,
    sockets, files and process names. The per-app part reaches the roles
    through P(pyweb.stack.app_layout#filter); this filter gives the part a
    runtime keeps once per host - the uWSGI emperor's unit name, its ini,
    its vassals directory and its stats socket - so the uwsgi role and the
    retiring step read the same names.
positional: _input
options:
  _input:
    description: The stack's directories - C(run) and C(config) (the contract's C(dirs)).
    type: dict
    required: true
author:
  - pyweb.stack developers (@pyweb)
"""

EXAMPLES = r"""
- name: The emperor's names
  ansible.builtin.debug:
    msg: "{{ ({'run': '/run/pyweb', 'config': '/etc/pyweb'} | pyweb.stack.server_registry).uwsgi_emperor.service }}"
    # pyweb-uwsgi-emperor
"""

RETURN = r"""
_value:
  description: Per runtime with host-wide parts, a dict - for C(uwsgi_emperor) C(service), C(ini), C(vassals), C(stats).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.pyweb.stack.plugins.module_utils._servers import host_paths


def server_registry(dirs):
    if not isinstance(dirs, dict) or not dirs.get("run") or not dirs.get("config"):
        raise AnsibleFilterError("server_registry: expected a dict with run and config directories, got %r" % (dirs,))
    return host_paths({"run_dir": dirs["run"], "config_dir": dirs["config"]})


class FilterModule:
    def filters(self):
        return {"server_registry": server_registry}
