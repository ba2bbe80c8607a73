"""The embedded development database: its creation by racing processes."""

import threading
import uuid

import psycopg
import pytest
from django.db import connection

from kuberca.embedded_db import _ensure_database


def _server_uri() -> str:
    """A conninfo for the maintenance database of the server tests run on."""
    db = connection.settings_dict
    return psycopg.conninfo.make_conninfo(
        dbname="postgres",
        user=db.get("USER") or "postgres",
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=db.get("PORT") or None,
    )


@pytest.mark.django_db
def test_processes_starting_at_once_all_find_the_database() -> None:
    uri = _server_uri()
    name = f"kuberca_race_{uuid.uuid4().hex[:12]}"
    starters = 8
    barrier = threading.Barrier(starters)
    failures: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            _ensure_database(uri, name)
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=start) for _ in range(starters)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert failures == []
        with psycopg.connect(uri, autocommit=True) as conn:
            found = conn.execute(
                "SELECT count(*) FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
        assert found == (1,)
    finally:
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("DROP DATABASE IF EXISTS {}").format(
                    psycopg.sql.Identifier(name)
                )
            )
