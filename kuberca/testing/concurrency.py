"""Run calls from threads released together, as concurrent requests would be."""

import threading
from collections.abc import Callable
from typing import Any

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
