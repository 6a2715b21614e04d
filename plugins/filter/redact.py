# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: redact
short_description: Mask secret values in output before it is shown
version_added: 0.1.0
description:
  - Replaces every occurrence of each secret in a string, or in each string of
    a list (such as a command's C(stdout_lines)), with C(********).
  - The secrets are the values of a dict (an app's C(env), say) or a list of
    strings; nested dicts and lists are searched too. Longer secrets are masked
    first, so a secret containing another one is masked whole.
  - Values shorter than 6 characters, whole numbers and C(true)/C(false)/C(yes)/C(no)
    are left alone; they occur in ordinary output, and masking them would garble it.
positional: _input, secrets
options:
  _input:
    description: The text, a string or a list of strings.
    type: raw
    required: true
  secrets:
    description: The values to mask, a dict (its values) or a list of strings; a single string is one secret.
    type: raw
    required: true
author:
  - pyweb.stack developers (@pyweb)
"""

EXAMPLES = r"""
- name: Show why collectstatic failed, without the app's secrets
  ansible.builtin.debug:
    msg: "{{ collectstatic.stderr_lines | pyweb.stack.redact(app.env) }}"

- name: A string and a list of secrets
  ansible.builtin.debug:
    msg: "{{ 'password=hunter2hunter2 port=5432' | pyweb.stack.redact(['hunter2hunter2']) }}"
    # password=******** port=5432
"""

RETURN = r"""
_value:
  description: The input with every secret replaced by C(********); a string for a string, a list for a list.
  type: raw
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.pyweb.stack.plugins.module_utils._redact import RedactError, redact


def redact_filter(data, secrets):
    try:
        return redact(data, secrets)
    except RedactError as exc:
        raise AnsibleFilterError("redact: %s" % exc) from None


class FilterModule:
    def filters(self):
        return {"redact": redact_filter}
