"""Stand-in for ansible-test's pip bootstrap script (get-pip.py).

ansible-test downloads get-pip.py from a host CI cannot reach, but it uses a
copy from its cache when there is one. This copy installs pip with the
standard library's ensurepip, then installs what ansible-test asked for
(e.g. pip==24.2) from the package index that is reachable.
"""

import subprocess
import sys

# In a child process: ensurepip points PIP_CONFIG_FILE at /dev/null in its own
# environment, which would hide /etc/pip.conf (and its CA setting) from the
# install below.
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
wanted = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
if any(not arg.startswith("-") for arg in wanted):
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", *wanted])
