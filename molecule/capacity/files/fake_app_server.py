"""A master that forks worker processes, each holding its own memory: the
shape of Gunicorn or uWSGI, for capacity_facts to measure."""

import os
import signal
import sys
import time

WORKERS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
WORKER_MB = int(sys.argv[2]) if len(sys.argv) > 2 else 24

children = []
for _ in range(WORKERS):
    pid = os.fork()
    if pid == 0:
        ballast = bytearray(os.urandom(1024 * 1024)) * WORKER_MB  # private, touched pages
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        while True:
            time.sleep(3600)
    children.append(pid)


def stop(*_):
    for child in children:
        os.kill(child, signal.SIGTERM)
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
while True:
    time.sleep(3600)
