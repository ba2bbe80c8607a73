"""Pytest plugin loaded before Django: points the tests at a throwaway server.

It runs before settings are imported, so an unset DATABASE_URL makes settings
start an embedded PostgreSQL in a temporary folder, deleted when the last
process using it exits, never the developer's ./var/pgdata.
"""

import os
import tempfile
from pathlib import Path

if not os.environ.get("DATABASE_URL"):
    if not os.environ.get("KUBERCA_PGDATA"):
        folder = Path(tempfile.mkdtemp(prefix="kuberca-test-"))
        os.environ["KUBERCA_PGDATA"] = str(folder / "pgdata")
        os.environ["KUBERCA_PGDATA_THROWAWAY"] = "1"

# Tests run with production-like settings, whatever the developer exports.
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "kuberca-tests-only-not-a-secret-0123456789abcdef")
os.environ.setdefault("ALLOWED_HOSTS", "*")
os.environ.setdefault("LOG_LEVEL", "WARNING")
