"""A small FastAPI app, served by Gunicorn with uvicorn workers."""

import asyncio
import os

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def index():
    return {"app": os.environ.get("PYWEB_APP_NAME"), "uid": os.getuid(), "pid": os.getpid()}


@app.api_route("/io", methods=["GET", "POST"])
async def io(ms: int = 20):
    """Waits like a slow query or API call (the scenario's slow requests)."""
    await asyncio.sleep(min(max(ms, 0), 60000) / 1000)
    return {"slept_ms": ms}
