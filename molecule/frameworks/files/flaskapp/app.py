"""A small Flask app: one page, one POST endpoint that records what it took.

Every accepted POST appends one line to a file in the app's state directory
(PYWEB_STATE_DIR, writable by the app, never served by nginx), so the number
of POSTs the app handled can be compared with the number the client sent.
"""

import os
from pathlib import Path

from flask import Flask, jsonify, request

app = Flask(__name__)
STATE_DIR = Path(os.environ["PYWEB_STATE_DIR"])


@app.get("/")
def index():
    return jsonify(
        app=os.environ.get("PYWEB_APP_NAME"), uid=os.getuid(), pid=os.getpid(), release=os.environ.get("PYWEB_RELEASE")
    )


@app.post("/orders")
def create_order():
    item = request.form.get("item", "")
    with (STATE_DIR / "orders.log").open("a") as orders:
        orders.write("%s %d\n" % (item, os.getpid()))
    return jsonify(accepted=item), 201
