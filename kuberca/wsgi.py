"""WSGI entry point for gunicorn (`gunicorn kuberca.wsgi`)."""

import os
import sys

from django.core.wsgi import get_wsgi_application

from kuberca.chunked import with_chunked_bodies
from kuberca.env import ConfigError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kuberca.settings")

try:
    application = with_chunked_bodies(get_wsgi_application())
except ConfigError as error:
    sys.stderr.write(f"kuberca: configuration error: {error}\n")
    sys.exit(4)  # gunicorn stops the master when a worker cannot boot

from kuberca.views import log_optional_parts_off  # noqa: E402  (needs the apps)

log_optional_parts_off("web")
