"""A blocking call bounded in all, not per socket read.

The HTTP clients' timeouts (urllib's for Slack, httpx's for Gemini) bound
each read, not the answer: a peer that sends its body a byte at a time holds
the call for as long as it likes. `call_within` gives up on it after a
deadline; the overrunning call is left to end by itself in its daemon thread.
"""

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def call_within(call: Callable[[], T], seconds: float, *, name: str) -> T:
    """`call()`'s result or exception, or TimeoutError after `seconds`."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # re-raised in the caller's thread
            outcome.append(exc)

    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()
    worker.join(seconds)
    if not outcome:
        raise TimeoutError("the answer took longer than the timeout")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]
