"""Build one app source of the releases scenario, on the controller.

  build_source.py TEMPLATE DEST VERSION VARIANT --root ROOT --pack PACK_CODE

DEST becomes a copy of TEMPLATE (the demo app) with VERSION written at its
root and, for a broken VARIANT, app.py patched:

  good       as it is
  import     fails at import (a RuntimeError at the end of app.py)
  health500  every path but "/" answers 500: one worker boots and answers
             GET / (the pre-switch check passes), the health path fails

Every file and directory gets the same fixed mtime, so the same step gives
the same packed code (pack_code.py keeps mtimes): the same release id, and a
rerun (Molecule's idempotence) no new release. DEST is replaced only when
what it would pack differs. DEST must lie inside ROOT (the scenario's
ephemeral directory): nothing else is ever deleted.

Prints JSON: changed, id (the first 12 hex digits of the packed code's
sha256, as python_app names a path source's release), version, variant.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

# 2024-01-01T00:00:00Z
MTIME = 1704067200
IMPORT_BREAK = '\nraise RuntimeError("release broken at import")\n'
# The first statement of application(): anything but "/" answers 500.
HEALTH_ANCHOR = "    status, payload = _body(environ)\n"
HEALTH_BREAK = (
    '    if environ.get("PATH_INFO", "/") != "/":\n'
    '        status, payload = "500 Internal Server Error", {"error": "release broken: everything but / answers 500"}\n'
    "    else:\n"
    "        status, payload = _body(environ)\n"
)


def patch(app_py, variant):
    with open(app_py, encoding="utf-8") as handle:
        text = handle.read()
    if variant == "import":
        text += IMPORT_BREAK
    elif variant == "health500":
        if text.count(HEALTH_ANCHOR) != 1:
            raise SystemExit("%s: the line %r is not there exactly once: cannot make it answer 500" % (app_py, HEALTH_ANCHOR))
        text = text.replace(HEALTH_ANCHOR, HEALTH_BREAK)
    with open(app_py, "w", encoding="utf-8") as handle:
        handle.write(text)


def build(template, target, version, variant):
    shutil.copytree(template, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"))
    with open(os.path.join(target, "VERSION"), "w", encoding="utf-8") as handle:
        handle.write(version + "\n")
    os.chmod(os.path.join(target, "VERSION"), 0o644)
    if variant != "good":
        patch(os.path.join(target, "pyweb_demo", "app.py"), variant)
    for root, dirs, files in os.walk(target):
        for name in dirs + files:
            os.utime(os.path.join(root, name), (MTIME, MTIME), follow_symlinks=False)


def packed_sha256(pack_code, source, scratch):
    archive = os.path.join(scratch, "%s.tar.gz" % os.path.basename(source))
    out = subprocess.run([sys.executable, pack_code, source, archive], check=True, capture_output=True, text=True).stdout
    os.unlink(archive)
    return out.strip().splitlines()[-1]


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("template")
    parser.add_argument("dest")
    parser.add_argument("version")
    parser.add_argument("variant", choices=("good", "import", "health500"))
    parser.add_argument("--root", required=True)
    parser.add_argument("--pack", required=True)
    args = parser.parse_args(argv)
    root = os.path.realpath(args.root)
    dest = os.path.realpath(args.dest)
    if not root or root == "/" or os.path.commonpath([root, dest]) != root or dest == root:
        raise SystemExit("refusing to build %s: not inside %s" % (dest, root))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".build-", dir=os.path.dirname(dest))
    try:
        candidate = os.path.join(scratch, os.path.basename(dest))
        build(args.template, candidate, args.version, args.variant)
        digest = packed_sha256(args.pack, candidate, scratch)
        changed = not os.path.isdir(dest) or packed_sha256(args.pack, dest, scratch) != digest
        if changed:
            if os.path.lexists(dest):
                shutil.rmtree(dest)
            os.rename(candidate, dest)
    finally:
        shutil.rmtree(scratch)
    print(json.dumps({"changed": changed, "id": digest[:12], "version": args.version, "variant": args.variant}))


if __name__ == "__main__":
    main(sys.argv[1:])
