# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ask an app what it is, and boot its server once, before it goes live.

Installed by pyweb.stack.python_app as /usr/local/lib/pyweb/pyweb_appcheck.py
and run by the roles through systemd-run as the app's user, with its
environment file and working directory, with the app's own virtualenv python:
the app is imported exactly as its server will import it.

  inspect MODULE [--django]     import MODULE ("pkg.mod:callable"); say whether
                                the callable is WSGI or ASGI, and (--django)
                                where Django keeps static and media files
  gunicorn-settings NAME...     refuse names Gunicorn does not know (it ignores
                                unknown names in its config file silently)
  boot --socket PATH --host H --max-status N --timeout S -- ARGV...
                                start ARGV (a server bound to the unix socket
                                PATH), send one GET / with Host H, require a
                                status <= N, stop it; a worker that cannot boot
                                fails here instead of in a restart loop

The answer is one line "PYWEB_APPCHECK <json>" on stdout (an app may print
too); the exit status is 0 when the check passed.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import time

MARK = "PYWEB_APPCHECK "


def answer(ok, **fields):
    fields["ok"] = ok
    sys.stdout.flush()
    sys.stdout.write("\n" + MARK + json.dumps(fields, sort_keys=True) + "\n")
    sys.stdout.flush()
    return 0 if ok else 1


def load(target):
    """The callable named by 'pkg.mod:attr' (or 'pkg.mod', attr 'application'), as Gunicorn finds it."""
    module_name, _sep, attr = target.partition(":")
    attr = attr or "application"
    sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    call = attr.endswith("()")
    obj = module
    for part in attr[: -2 if call else None].split("."):
        obj = getattr(obj, part)
    return obj() if call else obj


def interface_of(app):
    """'asgi', 'wsgi' or 'unknown' from the callable's shape.

    ASGI 3: a coroutine function (or an object whose __call__ is one) taking
    scope, receive, send. WSGI: a plain callable taking environ, start_response.
    """
    if inspect.iscoroutinefunction(app):
        return "asgi"
    call = type(app).__call__ if callable(app) else None
    if not inspect.isfunction(app) and not inspect.ismethod(app) and inspect.iscoroutinefunction(call):
        return "asgi"
    try:
        params = inspect.signature(app).parameters.values()
    except (TypeError, ValueError):
        return "unknown"
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    return {2: "wsgi", 3: "asgi"}.get(len(positional), "unknown")


def django_answers():
    from django.conf import settings

    storages = getattr(settings, "STORAGES", None) or {}
    backend = (storages.get("staticfiles") or {}).get("BACKEND") or getattr(settings, "STATICFILES_STORAGE", "") or ""
    return {
        "static_dir": str(settings.STATIC_ROOT) if settings.STATIC_ROOT else None,
        "static_url": settings.STATIC_URL or None,
        "media_dir": str(settings.MEDIA_ROOT) if settings.MEDIA_ROOT else None,
        "media_url": settings.MEDIA_URL or None,
        # Manifest storages write file names with a content hash.
        "static_hashed": "Manifest" in backend,
        "staticfiles": "django.contrib.staticfiles" in settings.INSTALLED_APPS,
        "debug": bool(settings.DEBUG),
        "allowed_hosts": list(settings.ALLOWED_HOSTS),
    }


def cmd_inspect(args):
    target = args[0]
    try:
        app = load(target)
    except BaseException as exc:
        return answer(False, error="importing %s failed: %s: %s" % (target, type(exc).__name__, exc))
    result = {"interface": interface_of(app)}
    if "--django" in args:
        try:
            import django
            from django.apps import apps

            if not apps.ready:
                django.setup()
            result["django"] = django_answers()
        except BaseException as exc:
            return answer(False, error="asking Django for its settings failed: %s: %s" % (type(exc).__name__, exc))
    return answer(True, **result)


def cmd_gunicorn_settings(names):
    from gunicorn.config import KNOWN_SETTINGS

    known = {setting.name for setting in KNOWN_SETTINGS}
    unknown = sorted(set(names) - known)
    if unknown:
        return answer(False, error="Gunicorn has no setting named %s" % ", ".join(unknown), unknown=unknown)
    return answer(True)


def probe(path, host, timeout):
    """The status of GET / over the unix socket, or raise OSError."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(path)
        conn.sendall(("GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: pyweb-appcheck\r\nConnection: close\r\n\r\n" % host).encode())
        head = b""
        while b"\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                break
            head += chunk
    finally:
        conn.close()
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split()
    if len(parts) < 2 or not parts[1].isdigit():
        raise OSError("no HTTP answer (got %r)" % line[:80])
    return int(parts[1])


def cmd_boot(args):
    opts = {}
    while args and args[0] != "--":
        opts[args[0].lstrip("-")] = args[1]
        args = args[2:]
    argv = args[1:]
    path, timeout = opts["socket"], float(opts["timeout"])
    log_path = path + ".log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    status, error = None, None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                error = "the server exited with status %s before answering" % server.returncode
                break
            if os.path.exists(path):
                try:
                    status = probe(path, opts["host"], max(1.0, deadline - time.monotonic()))
                    break
                except OSError as exc:
                    error = str(exc)
            time.sleep(0.2)
        else:
            error = "no answer within %gs (%s)" % (timeout, error or "socket never appeared")
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
    with open(log_path, "rb") as log:
        tail = log.read().decode("utf-8", "replace").splitlines()[-15:]
    if status is not None and status <= int(opts["max-status"]):
        return answer(True, status=status)
    if status is not None:
        error = "GET / with Host %s answered %d (healthy is at most %s)" % (opts["host"], status, opts["max-status"])
    return answer(False, error=error, log=tail)


def main(argv):
    if not argv:
        sys.stderr.write(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "inspect":
        return cmd_inspect(rest)
    if command == "gunicorn-settings":
        return cmd_gunicorn_settings(rest)
    if command == "boot":
        return cmd_boot(rest)
    sys.stderr.write("unknown command %s\n" % command)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
