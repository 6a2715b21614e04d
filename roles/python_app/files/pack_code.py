# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pack an app's code into one reproducible tar.gz, on the controller.

  python3 pack_code.py SOURCE_DIR ARCHIVE

Same files (names, contents, modes, mtimes) -> the same bytes, so the copy to
the host is skipped when nothing changed: one transfer and one checksum
instead of a stat per file. Owners are dropped (the role sets them),
bytecode caches and VCS directories are left out. Prints the archive's sha256.
"""

import gzip
import hashlib
import io
import os
import sys
import tarfile

SKIP_DIRS = {"__pycache__", ".git", ".hg", ".svn", ".tox", ".venv", ".mypy_cache", ".pytest_cache"}


def pack(source):
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=6) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for root, dirs, files in os.walk(source):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
            for name in sorted(dirs) + sorted(f for f in files if not f.endswith((".pyc", ".pyo"))):
                path = os.path.join(root, name)
                info = tar.gettarinfo(path, arcname=os.path.relpath(path, source))
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.pax_headers = {}
                if info.isfile():
                    with open(path, "rb") as handle:
                        tar.addfile(info, handle)
                else:
                    tar.addfile(info)
    return buffer.getvalue()


def main(source, archive):
    if not os.path.isdir(source):
        sys.stderr.write("source.path %s is not a directory on the controller\n" % source)
        return 1
    data = pack(source)
    digest = hashlib.sha256(data).hexdigest()
    try:
        with open(archive, "rb") as handle:
            same = hashlib.sha256(handle.read()).hexdigest() == digest
    except OSError:
        same = False
    if not same:
        tmp = archive + ".tmp"
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, archive)
    print(digest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
