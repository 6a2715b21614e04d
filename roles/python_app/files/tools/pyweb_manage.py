# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a command as a pyweb.stack app runs: its user, its environment, its sandbox.

  pyweb-manage [--setenv NAME=VALUE]... APP ARGS...      python manage.py ARGS (Django)
  pyweb-manage [--setenv NAME=VALUE]... --run APP CMD [ARGS...]   any command; the
                                                          app's virtualenv comes first in PATH
  pyweb-manage --list                                     the apps of this host

Installed by the pyweb.stack.python_app role (root only). The command runs
through systemd-run with the same User, EnvironmentFile, WorkingDirectory and
filesystem protection as the service: it may write the app's state, media and
log directories and nothing else. Interactive when stdin is a terminal
(createsuperuser, shell, dbshell); the exit status is the command's.
"""

import json
import os
import shutil
import sys

APPS_DIR = "/etc/pyweb/manage.d"


def fail(message):
    sys.stderr.write("pyweb-manage: %s\n" % message)
    sys.exit(2)


def apps():
    try:
        return sorted(name[:-5] for name in os.listdir(APPS_DIR) if name.endswith(".json"))
    except FileNotFoundError:
        return []


def main(argv):
    setenv = []
    run = False
    while argv and argv[0].startswith("--"):
        flag = argv.pop(0)
        if flag == "--setenv" and argv and "=" in argv[0]:
            setenv.append(argv.pop(0))
        elif flag == "--run":
            run = True
        elif flag == "--list":
            print("\n".join(apps()))
            return 0
        elif flag in ("--help", "-h"):
            print(__doc__.strip())
            return 0
        else:
            fail("unknown option %s (see pyweb-manage --help)" % flag)
    if not argv:
        fail("name an app (one of: %s)" % (", ".join(apps()) or "none deployed"))
    name, args = argv[0], argv[1:]
    if "/" in name or name.startswith("."):
        fail("%r is not an app name" % name)
    try:
        with open(os.path.join(APPS_DIR, name + ".json")) as handle:
            app = json.load(handle)
    except FileNotFoundError:
        fail("no app %r on this host (apps: %s)" % (name, ", ".join(apps()) or "none"))
    if os.geteuid() != 0:
        fail("run me as root (the command then runs as %s)" % app["user"])
    if run:
        if not args:
            fail("--run needs a command")
        command = list(args)
        # systemd-run looks commands up in its own PATH: the venv comes first here.
        if "/" not in command[0]:
            venv_bin = os.path.join(app["venv"], "bin", command[0])
            found = venv_bin if os.access(venv_bin, os.X_OK) else shutil.which(command[0])
            if not found:
                fail("no command %r in %s/bin or on PATH" % (command[0], app["venv"]))
            command[0] = found
    else:
        if not app.get("django"):
            fail("%s is not a Django app: use pyweb-manage --run %s COMMAND" % (name, name))
        command = [app["venv"] + "/bin/python", "manage.py", *args]
    cmd = ["systemd-run", "--quiet", "--wait", "--collect", "--pty" if sys.stdin.isatty() else "--pipe"]
    cmd += ["--property=%s" % prop for prop in app["properties"]]
    cmd += ["--setenv=PATH=%s/bin:/usr/local/bin:/usr/bin:/bin" % app["venv"]]
    cmd += ["--setenv=%s" % item for item in setenv]
    cmd += ["--", *command]
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
