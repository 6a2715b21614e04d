# Granian as pyweb.stack runs it (installed by pyweb.stack.python_app).
#
#   pyweb_granian.py serve TARGET   Granian on the socket systemd holds
#   pyweb_granian.py check TARGET [OPTION...]
#                                   the options in the environment (and
#                                   those given, which win), checked
#
# Options come from the environment (GRANIAN_*, the granian role's
# granian.env), exactly as the granian command reads them.
#
# serve: Granian binds its own unix socket and removes it when it stops, so
# a restart refuses connections until the new master listens (nginx answers
# 502 for a POST it cannot retry). systemd holds the socket instead
# (pyweb-<app>.granian.socket, 0660, the app's user, nginx's group): this
# takes it over as the one listener every worker accepts on, and a restart
# queues connections in its backlog. The sockets are Granian 2.8.7's own
# objects (SocketHolder from a descriptor, what it does on Windows); the
# granian role pins that version and the unit tests boot it.
#
# On HUP Granian starts a new worker, then stops an old one, one by one;
# each new worker imports the app from the working directory resolved anew
# (`current`, a symlink the releases switch). The master's own directory
# would still be the release it started in: it moves to `current` first, so
# the new workers' relative paths are the new release's too.
#
# Workers are spawned (a fresh interpreter each, as Granian does on Python
# 3.14), not forked: with the metrics endpoint on, the master runs its
# exporter's threads while it forks, and a forked worker could inherit a lock
# one of them held and wait on it for ever ("Started worker-1", then no
# answer). Measured on Debian 13 (Python 3.13): 7 of 16 restarts left a
# worker stuck in a futex when forked, 0 of 15 when spawned. The extra child
# is Python's resource tracker, not a worker (_procmem.workers skips it).
import json
import os
import sys

_SYSTEMD_FD = 3


def _fail(message):
    print("PYWEB_APPCHECK " + json.dumps({"error": message}), flush=True)
    sys.exit(2)


def _adopt_systemd_socket():
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
        _fail(
            "pyweb_granian.py serve needs exactly one socket from systemd (LISTEN_FDS=1 for this process), got "
            "LISTEN_FDS=%r LISTEN_PID=%r" % (os.environ.get("LISTEN_FDS"), os.environ.get("LISTEN_PID"))
        )
    # The workers are this process's children: they must not take these as theirs.
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(key, None)
    os.set_inheritable(_SYSTEMD_FD, True)

    from granian._granian import SocketHolder
    from granian.server import common

    def init_shared_socket(server):
        server._ssp = None
        server._shd = SocketHolder(_SYSTEMD_FD, True, server.backlog)
        server._sfd = _SYSTEMD_FD

    common.AbstractServer._init_shared_socket = init_shared_socket
    common.AbstractServer._bind_addr_fmt = property(lambda server: "unix:%s (systemd's)" % os.environ.get("PYWEB_SOCKET", "?"))

    reload = common.AbstractServer._reload

    def reload_in_current(server, *args, **kwargs):
        if server.working_dir:
            os.chdir(str(server.working_dir))
        return reload(server, *args, **kwargs)

    common.AbstractServer._reload = reload_in_current


def _check(target, extra):
    from granian.cli import cli

    known = {"GRANIAN_" + param.name.upper() for param in cli.params}
    unknown = sorted(key for key in os.environ if key.startswith("GRANIAN_") and key not in known)
    if unknown:
        _fail("%s: not a Granian option" % ", ".join(unknown))
    try:
        cli.make_context("granian", [*extra, target], auto_envvar_prefix="GRANIAN")
    except Exception as exc:  # click's usage errors name the option and the value
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        _fail("Granian refuses its options: %s" % message)
    print("PYWEB_APPCHECK " + json.dumps({"ok": True}), flush=True)


def main(argv):
    if len(argv) < 2 or argv[0] not in ("serve", "check") or (argv[0] == "serve" and len(argv) != 2):
        _fail("usage: pyweb_granian.py serve TARGET | check TARGET [OPTION...]")
    command, target, extra = argv[0], argv[1], argv[2:]
    if command == "check":
        _check(target, extra)
        return
    _adopt_systemd_socket()
    import multiprocessing

    multiprocessing.set_start_method("spawn", force=True)
    from granian.cli import cli

    cli.main(args=[target], prog_name="granian", auto_envvar_prefix="GRANIAN")


if __name__ == "__main__":
    main(sys.argv[1:])
