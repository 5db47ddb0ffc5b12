"""WSGI entry point for any WSGI server, e.g. `granian --interface wsgi wsgi:app` (settings from FEEDSVC_*
environment variables). `feedsvc serve` does more: see feedsvc/server.py."""

from feedsvc import create_app

app = create_app()
