"""WSGI entry point: `gunicorn wsgi:app` (settings from FEEDSVC_* environment variables)."""

from feedsvc import create_app

app = create_app()
