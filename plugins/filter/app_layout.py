# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: app_layout
short_description: Validate pyweb_apps and derive every path, user and socket from it
version_added: 0.1.0
description:
  - Each app is described once in C(pyweb_apps). This filter checks each
    description and fills in what the roles derive from it, so the socket nginx
    proxies to and the socket the app server binds are the same string, computed
    in one place.
  - "Required keys: C(name) (lowercase, digits, _), C(module) (import path such as
    C(mysite.wsgi:application)), C(source) (C({type: path, path: ...}),
    C({type: git, repo: ..., version: ...}) or C({type: pip, requirement: ...}))."
  - "Optional keys: C(server) (gunicorn; uvicorn, uwsgi or granian),
    C(interface) (wsgi; asgi for uvicorn; rsgi for granian only), C(profile), C(domains) (C([_]), the default server; at least one),
    C(default_server), C(static_url), C(media_url), C(static_dir), C(media_dir), C(static_source),
    C(static_hashed) (false), C(client_max_body_size), C(tls), C(env),
    C(django) (C(settings) required, C(collectstatic) true, C(migrate) false), C(python_requirements),
    C(health_path), C(preload_app), C(user), C(server_settings) (for Gunicorn and Granian, unknown names, values of the wrong kind and the
    settings the stack owns are refused), C(headers) (the site's security headers; null removes one),
    C(weight), C(keep_releases), C(websocket_paths) and C(streaming_paths) (URL path prefixes nginx gives a
    location of their own: a WebSocket upgrade, for asgi and rsgi apps only; a stream passed on unbuffered and
    uncompressed, for every server; each starting with C(/), not C(/), the static or media URL, or in both lists),
    C(stream_timeout) (3600; whole seconds from 1 to 86400 a WebSocket or stream may stay idle; only with one
    of the two lists), C(state) (present;
    C(absent) leaves the result: only the app's name is needed), C(purge) (with C(state=absent)) and the sizing keys of
    P(pyweb.stack.worker_sizing#filter) (C(allow_over_budget) among them)."
  - "Derived: C(user)/C(group) (pyweb-<name>), C(base_dir), C(releases_dir), C(venvs_dir), C(current)
    (the live release's symlink), C(code_dir) and C(venv) (through C(current)),
    C(static_dir), C(media_dir), C(state_dir) (C(<state_dir>/<name>)), C(log_dir), C(config_dir),
    C(env_file), C(runtime) (the server registry's entry - gunicorn, uwsgi_emperor or uwsgi_instances),
    C(socket) and C(service) (the runtime's own), C(upstream), C(web_group), C(measure),
    C(host_name) (the first domain, or localhost), C(health_max_status) (399 when C(health_path)
    is given, 499 when it defaults to C(/)), C(framework) (what O(framework) applied, or C({}))."
  - Every key, with its type, default and meaning, is in docs/app_layout.md of the collection.
  - "uWSGI apps also get C(uwsgi_mode) (the app's own C(uwsgi_mode) key, else O(uwsgi_mode)),
    C(private_run_dir) (C(<run_dir>/<name>), for stats sockets), C(stats_socket) and C(vassal)
    (the emperor's file, C(<config_dir>/uwsgi/vassals/<name>.ini)). In C(instances) mode C(socket) and C(stats_socket) contain
    C(%i), the instance number (systemd's instance specifier, expanded by the nginx site for
    every instance), and C(service) ends in C(@) (a systemd template)."
  - An unknown key, a bad value, a name or domain used twice fails with a message
    naming the app and the key.
positional: _input
options:
  _input:
    description: The list of app descriptions.
    type: list
    elements: dict
    required: true
  base_dir:
    description: Where apps live; each gets C(<base_dir>/<name>).
    type: str
    default: /srv/pyweb
  run_dir:
    description: Where the sockets are.
    type: str
    default: /run/pyweb
  config_dir:
    description: Where the servers' configuration and the environment files are.
    type: str
    default: /etc/pyweb
  log_dir:
    description: Where the apps log.
    type: str
    default: /var/log/pyweb
  web_group:
    description: The group of the nginx worker; it owns the sockets' group.
    type: str
    default: www-data
  uwsgi_mode:
    description: How uWSGI apps without their own C(uwsgi_mode) run (see the P(pyweb.stack.uwsgi#role) role).
    type: str
    choices: [emperor, instances]
    default: emperor
  state_dir:
    description: Where apps keep writable state nginx never serves (a SQLite file); each gets C(<state_dir>/<name>).
    type: str
    default: /var/lib/pyweb
  framework:
    description:
      - "What the framework answered on the host, per app name: a dict with C(static_dir), C(static_url),
        C(media_dir), C(media_url) and C(static_hashed), from Django's STATIC_ROOT, STATIC_URL, MEDIA_ROOT,
        MEDIA_URL and storage backend, for example C({shop: {static_dir: /srv/pyweb/shop/app/staticfiles,
        static_url: static/, media_dir: null, media_url: null, static_hashed: true}})."
      - A value given (not null or empty) replaces the derived one. URLs get the slashes nginx needs;
        an absolute URL (a CDN) keeps the derived URL and is only recorded in the app's C(framework).
        An app whose description sets C(static_dir) or C(media_dir) to something else is refused.
    type: dict
  absent:
    description:
      - Return only the apps marked C(state=absent), each as C({name, purge}), instead of the layout.
    type: bool
    default: false
author:
  - pyweb.stack developers (@pyweb)
"""

EXAMPLES = r"""
- name: Everything about the apps, derived once
  ansible.builtin.set_fact:
    apps: "{{ pyweb_apps | pyweb.stack.app_layout }}"
  vars:
    pyweb_apps:
      - name: shop
        module: shop.wsgi:application
        source: {type: git, repo: "https://git.example.com/shop.git", version: v1.4.2}
        domains: [shop.example.com]

- name: The socket nginx will proxy to
  ansible.builtin.debug:
    msg: "{{ apps[0].socket }}"  # /run/pyweb/shop.sock
"""

RETURN = r"""
_value:
  description: The apps, each with every key filled in (with O(absent), the absent apps' C(name) and C(purge)).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.pyweb.stack.plugins.module_utils._apps import AppError, absent_apps, app_layout


def app_layout_filter(apps, absent=False, **kwargs):
    try:
        if absent:
            app_layout(apps, **kwargs)
            return absent_apps(apps)
        return app_layout(apps, **kwargs)
    except AppError as exc:
        raise AnsibleFilterError(str(exc)) from None
    except TypeError as exc:
        raise AnsibleFilterError("app_layout: %s" % exc) from None


class FilterModule:
    def filters(self):
        return {"app_layout": app_layout_filter}
