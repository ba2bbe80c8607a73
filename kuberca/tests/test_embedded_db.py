"""The embedded development database: its creation by racing processes, and
the test processes that share one server."""

import threading
import uuid

import psycopg
import pytest
from django.db import connection

from kuberca.embedded_db import _ensure_database
from kuberca.testing.concurrency import wait_for_lock_wait


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


@pytest.mark.django_db
def test_a_lock_wait_in_another_database_of_the_server_is_not_this_tests() -> None:
    # Another test process, with its database on the same server, waits for
    # a lock in a statement of the shape this test waits for.
    uri = _server_uri()
    name = f"kuberca_other_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name))
        )
    other = psycopg.conninfo.conninfo_to_dict(uri) | {"dbname": name}

    def wait_for_the_lock() -> None:
        with psycopg.connect(**other, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(7)")

    holder = psycopg.connect(**other)
    waiter = threading.Thread(target=wait_for_the_lock)
    try:
        holder.execute("SELECT pg_advisory_xact_lock(7)")
        waiter.start()
        assert wait_for_lock_wait(other, "%pg_advisory_xact_lock%")

        params = connection.get_connection_params()
        assert not wait_for_lock_wait(params, "%pg_advisory_xact_lock%", tries=25)
    finally:
        holder.rollback()
        holder.close()
        waiter.join(timeout=30)
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("DROP DATABASE IF EXISTS {}").format(
                    psycopg.sql.Identifier(name)
                )
            )
