# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: nginx_settings
short_description: Check every nginx_* setting of the nginx role before anything is written
version_added: 0.1.0
description:
  - Takes the nginx role's variables (a dict of C(nginx_*) names to values) and returns them
    checked and normalised, under their names without the C(nginx_) prefix.
  - "A value outside what the setting allows fails with a message naming the variable, the value and
    what is allowed, for example C(nginx_upstream_retries: -1 is not allowed; a whole number from 0 to 10 ...)."
  - A name that starts with C(nginx_) but is no setting of the role is refused too, so a typo is
    not silently ignored.
  - Whole numbers may be given as strings (what C(-e name=value) passes).
  - "Also returns C(hsts), the Strict-Transport-Security value (C(max-age=...), with C(includeSubDomains)
    and C(preload) when asked; none when O(_input.nginx_hsts_max_age) is 0), and C(tls), the directives
    of the Mozilla profile C(nginx_tls_profile) names (C(protocols), C(ciphers)) and how the collection's
    self-signed certificate is made for it (C(self_signed))."
  - Every setting, with its bounds, is in the nginx role's argument specification.
positional: _input
options:
  _input:
    description: The nginx role's variables, every C(nginx_*) name to its value.
    type: dict
    required: true
author:
  - pyweb.stack developers (@pyweb)
"""

EXAMPLES = r"""
- name: Every nginx_* variable in scope, checked
  ansible.builtin.set_fact:
    nginx_checked: "{{ dict(names | zip(q('ansible.builtin.vars', *names))) | pyweb.stack.nginx_settings }}"
  vars:
    names: "{{ q('ansible.builtin.varnames', '^nginx_') }}"
"""

RETURN = r"""
_value:
  description: The settings without the C(nginx_) prefix (whole numbers as numbers), plus C(hsts) and C(tls).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.pyweb.stack.plugins.module_utils._nginx import NginxError, nginx_settings


def nginx_settings_filter(values):
    try:
        return nginx_settings(values)
    except NginxError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {"nginx_settings": nginx_settings_filter}
