"""A small WSGI/ASGI demo app for pyweb.stack's sandbox and tests."""
