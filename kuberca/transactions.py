"""Transactions that PostgreSQL may abort for a conflict, run again.

Two writers that lock the same rows in different orders deadlock, and one of
them is aborted (SQLSTATE 40P01); a serializable transaction can be aborted
for a conflict (40001). Either is the database's answer "try again", not a
fault: `atomic_retrying` runs the work again in a new transaction, so a
person's merge or move that met a webhook or another person's write gets the
answer it would have had a moment later.
"""

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import DatabaseError, connection, transaction

logger = logging.getLogger(__name__)

T = TypeVar("T")

# serialization failure, deadlock
CONFLICT_SQLSTATES = frozenset({"40001", "40P01"})
ATTEMPTS = 5
# The pause before attempt n+1 is up to n times this, at random, so that two
# writers that just deadlocked do not meet again at once.
PAUSE_STEP_SECONDS = 0.02


def sqlstate(error: DatabaseError) -> str | None:
    """PostgreSQL's SQLSTATE of a database error Django raised, if any."""
    return getattr(error.__cause__, "sqlstate", None)


def conflicted(error: DatabaseError) -> bool:
    """Whether PostgreSQL aborted the transaction for a conflict with another."""
    return sqlstate(error) in CONFLICT_SQLSTATES


def pause_after_conflict(attempt: int) -> None:
    """Wait a little, at random, before running attempt `attempt` + 1 again."""
    time.sleep(random.uniform(0, PAUSE_STEP_SECONDS * attempt))  # noqa: S311


def atomic_retrying(
    work: Callable[[], T],
    *,
    name: str,
    also: Callable[[DatabaseError], bool] | None = None,
) -> T:
    """Run `work` in a transaction, again (up to ATTEMPTS) after a conflict.

    `also` names other errors worth trying again, at once (after a conflict
    it pauses first). Inside a caller's transaction it runs once: the conflict
    aborted the caller's work too, and only the caller can start it again.
    Signals sent by an aborted attempt defer their effects to a commit that
    never comes.
    """
    if connection.in_atomic_block:
        with transaction.atomic():
            return work()
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with transaction.atomic():
                return work()
        except DatabaseError as error:
            clash = conflicted(error)
            if attempt == ATTEMPTS or not (clash or (also and also(error))):
                raise
            logger.warning(
                "transaction %s, running it again work=%s attempt=%s sqlstate=%s",
                "conflicted" if clash else "failed",
                name,
                attempt,
                sqlstate(error),
            )
            if clash:
                pause_after_conflict(attempt)
    raise AssertionError("unreachable")  # the loop returns or raises
