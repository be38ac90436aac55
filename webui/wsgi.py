"""WSGI entry point: `gunicorn webui.wsgi:app`."""
from . import create_app

app = create_app()
