# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Load an app's environment file into os.environ before uWSGI loads the app.

Installed by the pyweb.stack.uwsgi role and run by uWSGI's ``pyimport`` in
the process that loads the app (each worker with lazy-apps), so every reload,
chain reload included, reads the file again. uWSGI's own ``env =`` option is
not used for it: uWSGI expands $(...), @(...) and %(...) inside option values,
which would rewrite (or read files named by) secrets.

The file is the one the python_app role writes for systemd: KEY="value"
lines, with backslash and double quote escaped inside the quotes.
"""

import os


def parse(text):
    """Return the variables of an environment file written by python_app."""
    result = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError("line %d is not KEY=value" % number)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            chars = []
            escaped = False
            for char in value[1:-1]:
                if escaped:
                    chars.append(char)
                    escaped = False
                elif char == "\\":
                    escaped = True
                else:
                    chars.append(char)
            value = "".join(chars)
        result[key.strip()] = value
    return result


def load(path):
    with open(path, encoding="utf-8") as handle:
        variables = parse(handle.read())
    os.environ.update(variables)
    return variables


_PATH = os.environ.get("PYWEB_ENV_FILE")
if _PATH:
    try:
        load(_PATH)
    except (OSError, ValueError) as exc:
        # uWSGI only prints a failed pyimport and goes on; an app without its
        # settings must not serve. 22 is uWSGI's own "no app loaded" code.
        print("pyweb: cannot load the environment file %s: %s" % (_PATH, exc), flush=True)
        os._exit(22)
