"""A small FastAPI app, served by Gunicorn with uvicorn workers."""

import os

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def index():
    return {"app": os.environ.get("PYWEB_APP_NAME"), "uid": os.getuid(), "pid": os.getpid()}
