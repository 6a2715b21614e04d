# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: nginx_plan
short_description: The TLS directives of nginx.conf and each app site's headers and OCSP stapling
version_added: 0.1.0
description:
  - From the checked settings (P(pyweb.stack.nginx_settings#filter)), the apps
    (P(pyweb.stack.app_layout#filter)), what C(nginx -V) printed and what the host's
    certificates carry, says what the nginx role writes.
  - "C(tls): C(protocols) and C(ciphers) of the profile, C(curves) (X25519, prime256v1, secp384r1;
    the hybrid post-quantum X25519MLKEM768 first when nginx runs with OpenSSL 3.5 or later) and
    C(session_tickets) (C(off) before nginx 1.23.2, which rotates ticket keys itself; none after)."
  - "C(sites): per app, C(headers) (the settings' security headers, HSTS on TLS apps, then the app's own
    C(headers) over them, a null value removing one; each with the nginx variable that holds it and the
    upstream header that, when the app sends it, wins) and C(stapling) (on only when the certificate
    names an OCSP responder, its file holds the issuer, a resolver and a CA bundle are there; else off
    with the reason)."
  - "C(default_headers): the security headers of the closed default site."
  - "C(long_lived): C(websocket) (some app has C(websocket_paths): nginx.conf maps C($http_upgrade) to the
    Connection header of their locations) and C(stream_timeout) (the longest C(stream_timeout) of the apps with
    C(websocket_paths) or C(streaming_paths), else null: it bounds how long a reload's old workers keep them)."
positional: _input, apps
options:
  _input:
    description: The result of P(pyweb.stack.nginx_settings#filter).
    type: dict
    required: true
  apps:
    description: The apps, as P(pyweb.stack.app_layout#filter) returns them.
    type: list
    elements: dict
    required: true
  nginx_v:
    description: What C(nginx -V) printed (its standard error).
    type: str
    default: ""
  probe:
    description:
      - "What the nginx role's certificate probe printed: tab-separated lines
        C(cert <app> <certificates in the file> <OCSP URL>), C(nameserver <address>), C(bundle <path>)."
    type: str
    default: ""
author:
  - pyweb.stack developers (@pyweb)
"""

EXAMPLES = r"""
- name: What nginx writes
  ansible.builtin.set_fact:
    plan: "{{ settings | pyweb.stack.nginx_plan(apps, nginx_v=version.stderr, probe=certificates.stdout) }}"

- name: The headers of the shop's site
  ansible.builtin.debug:
    msg: "{{ plan.sites.shop.headers | map(attribute='name') | list }}"
"""

RETURN = r"""
_value:
  description: >-
    C(build) (nginx's C(version), C(openssl)), C(tls), C(sites) (app name to C(headers), C(stapling)),
    C(default_headers), C(long_lived) (C(websocket), C(stream_timeout)).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.pyweb.stack.plugins.module_utils._nginx import NginxError, nginx_plan


def nginx_plan_filter(settings, apps, nginx_v="", probe=""):
    try:
        return nginx_plan(settings, apps, nginx_v=nginx_v, probe=probe)
    except NginxError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {"nginx_plan": nginx_plan_filter}
