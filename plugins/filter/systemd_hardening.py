# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: systemd_hardening
short_description: The hardening directives of a systemd unit's [Service] section
version_added: 0.1.0
description:
  - Returns the sandboxing lines every pyweb.stack unit carries (Gunicorn, uWSGI
    instances, the uWSGI emperor, the nginx drop-in), written once, as text to
    place in a C([Service]) section.
  - Read-only file system except the given paths, private C(/tmp) and C(/dev),
    other users' processes invisible, only C(/proc/<pid>), the system calls of a
    system service minus C(@resources) (and minus C(@privileged) for a unit
    that runs as its app user), refused calls fail with C(EPERM), only Unix and
    IP sockets, no capability at all unless the unit stays root with a named set.
  - IP traffic is not restricted (an app talks to its database over TCP), and
    C(MemoryDenyWriteExecute=) is opt-in (it breaks cffi callbacks and every JIT).
  - Why each directive is there, or left out, is written next to it in
    C(plugins/module_utils/_hardening.py).
  - Bad input raises an error naming the argument and what is allowed.
positional: _input
options:
  _input:
    description:
      - The paths the unit may write (C(ReadWritePaths=)), in order; duplicates
        are dropped. A leading C(-) makes a path optional. An empty list
        writes no C(ReadWritePaths=).
    type: list
    elements: str
    required: true
  capabilities:
    description:
      - Omitted (or null) for a unit that runs as its C(User=), with no capability.
      - A list for a unit that stays root and keeps only these capabilities
        (the uWSGI emperor, nginx's master). Such a unit keeps C(@privileged)
        system calls (it changes user) and gets no C(RemoveIPC=).
    type: list
    elements: str
  memory_deny_write_execute:
    description: Add C(MemoryDenyWriteExecute=yes).
    type: bool
    default: false
  address_families:
    description: Address families allowed besides C(AF_UNIX AF_INET AF_INET6), such as C(AF_NETLINK).
    type: list
    elements: str
    default: []
  umask:
    description: The unit's C(UMask=), such as C(0027). Omitted, systemd's C(0022) stays.
    type: str
author:
  - pyweb.stack developers (@pyweb)
"""

EXAMPLES = r"""
# In a unit template, under [Service]:
#   {{ [app.media_dir, app.state_dir, app.log_dir] | pyweb.stack.systemd_hardening(umask='0027') }}

- name: An app server's unit, running as its app user
  ansible.builtin.debug:
    msg: "{{ ['/srv/pyweb/shop/media', '/var/lib/pyweb/shop'] | pyweb.stack.systemd_hardening(umask='0027') }}"

- name: A unit that stays root with three capabilities, writing logs if the directory exists
  ansible.builtin.debug:
    msg: "{{ ['-/var/log/nginx', '/run'] | pyweb.stack.systemd_hardening(capabilities=['CAP_NET_BIND_SERVICE', 'CAP_SETUID', 'CAP_SETGID']) }}"
"""

RETURN = r"""
_value:
  description: The directives, one per line (C(Name=value)), without a trailing newline.
  type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.pyweb.stack.plugins.module_utils._hardening import HardeningError, hardening_lines


def systemd_hardening(read_write_paths, capabilities=None, memory_deny_write_execute=False, address_families=None, umask=None):
    try:
        return "\n".join(
            hardening_lines(
                read_write_paths,
                capabilities=capabilities,
                memory_deny_write_execute=memory_deny_write_execute,
                address_families=address_families,
                umask=umask,
            )
        )
    except HardeningError as exc:
        raise AnsibleFilterError("systemd_hardening: %s" % exc) from None


class FilterModule:
    def filters(self):
        return {"systemd_hardening": systemd_hardening}
