"""Run calls from threads released together, as concurrent requests would be,
and wait for one of them to wait for a lock."""

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from django.db import connection


def run_at_once(count: int, call: Callable[[int], Any]) -> list[Any]:
    """Run call(0..count-1) from `count` threads behind one barrier.

    Each result is the call's return value or the exception it raised; each
    thread closes its own database connection.
    """
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def worker(index: int) -> None:
        try:
            barrier.wait()
            results[index] = call(index)
        except Exception as error:  # noqa: BLE001 - handed to the caller
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def wait_for_lock_wait(params: dict[str, Any], pattern: str, tries: int = 250) -> bool:
    """Wait until a session of this test's database waits for a lock in a
    statement like `pattern` (SQL LIKE); whether one did, within `tries`
    looks 20 ms apart.

    Only this database's sessions count: `make test`'s processes share one
    server, each with a database of its own, and another process's test may
    be waiting for a lock in a statement of the same shape.
    """
    with psycopg.connect(**params, autocommit=True) as watch:
        for _ in range(tries):
            if watch.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                "'Lock' AND datname = current_database() AND query LIKE %s",
                [pattern],
            ).fetchone()[0]:
                return True
            time.sleep(0.02)
    return False
