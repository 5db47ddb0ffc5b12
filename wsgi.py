"""WSGI entry point for any WSGI server, e.g. `granian --interface wsgi wsgi:app` (settings from FEEDSVC_*
environment variables). `feedsvc serve` does more: see feedsvc/server.py."""

import logging

from feedsvc import create_app
from feedsvc.runtime.store import reload_on_sighup

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = create_app()
reload_on_sighup(app.extensions["feedsvc"])  # this module is the process's entry point: SIGHUP reloads
