"""Pytest plugin loaded before Django: points the tests at a throwaway server.

It runs before settings are imported, so an unset DATABASE_URL makes settings
start an embedded PostgreSQL in a temporary folder, deleted when the last
process using it exits, never the developer's ./var/pgdata.
"""

import atexit
import contextlib
import os
import tempfile
from pathlib import Path


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


if not os.environ.get("DATABASE_URL"):
    if not os.environ.get("KUBERCA_PGDATA"):
        folder = Path(tempfile.mkdtemp(prefix="kuberca-test-"))
        os.environ["KUBERCA_PGDATA"] = str(folder / "pgdata")
        os.environ["KUBERCA_PGDATA_THROWAWAY"] = "1"
        # Registered before the server starts, so it runs after the server's
        # own clean-up has deleted pgdata: leave no empty folder behind.
        atexit.register(_remove_if_empty, folder)

# Tests run with production-like settings, whatever the developer exports.
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "kuberca-tests-only-not-a-secret-0123456789abcdef")
os.environ.setdefault("ALLOWED_HOSTS", "*")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# The Agent is on, as in production, but at a closed local port: a test that
# runs an analysis task without its own fake Agent fails fast, reaching nothing.
os.environ.setdefault("AGENT_URL", "http://127.0.0.1:9")
