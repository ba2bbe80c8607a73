"""Server-side prepared statements for a hot path's fixed SQL.

Django binds parameters on the client, so every execute sends PostgreSQL a
query text it has never seen, to parse and plan again; for the webhook's
statements the planning costs more than running them. A `Statement` is
prepared (SQL `PREPARE`) once per database connection, the first time it is
used there, and is then sent as `EXECUTE name(...)`, still through Django's
cursor, so several of them share one query text and one round trip.

`DATABASE_PREPARED_STATEMENTS=false` sends the plain SQL instead, for poolers
that hand one session's statements to another (PgBouncer in transaction mode
before 1.21).
"""

import logging
import weakref
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.backends.utils import CursorWrapper

logger = logging.getLogger(__name__)

_registry: dict[str, "Statement"] = {}
# Per psycopg connection: True once every statement is prepared there, False
# when some were lost and the rest must be dropped before preparing again.
_prepared_on: "weakref.WeakKeyDictionary[Any, bool]" = weakref.WeakKeyDictionary()
# "prepared statement does not exist": the session lost them (DISCARD ALL).
_UNDEFINED = "26000"
# A prepared statement keeps the generic plan made at its sixth execution
# until a table's statistics change. Planned while a table was still small, a
# sequential scan looks cheaper than its index and would then scan the grown
# table on every call. These statements all find their rows by key, so plans
# made while they run never choose one. SET LOCAL lasts until the end of the
# transaction (the implicit one of the query text, in autocommit).
_NO_SEQSCAN = "SET LOCAL enable_seqscan = off"


class Statement:
    """One fixed SQL text with `%s` placeholders, run as a prepared statement."""

    def __init__(self, name: str, sql: str) -> None:
        if name in _registry:
            raise ValueError(f"statement {name!r} is registered twice")
        self.name = f"kuberca_{name}"
        self.sql = sql.strip()
        pieces = self.sql.split("%s")
        self.arity = len(pieces) - 1
        numbered = pieces[0] + "".join(
            f"${n}{piece}" for n, piece in enumerate(pieces[1:], start=1)
        )
        self.prepare_sql = f"PREPARE {self.name} AS {numbered}"
        args = ", ".join(["%s"] * self.arity)
        self.execute_sql = (
            f"EXECUTE {self.name}({args})" if args else (f"EXECUTE {self.name}")
        )
        _registry[name] = self

    def text(self) -> str:
        """What to send: `EXECUTE ...`, or the plain SQL when preparing is off."""
        if settings.DATABASE_PREPARED_STATEMENTS:
            return self.execute_sql
        return self.sql

    def __repr__(self) -> str:
        return f"Statement({self.name})"


def execute(
    cursor: CursorWrapper,
    statements: list[tuple["Statement", list[Any]]],
    *,
    prefix: str = "",
) -> None:
    """Send the statements as one query text; read results with `nextset()`.

    `prefix` (e.g. a `SET LOCAL`) goes first, as plain SQL without parameters;
    with prepared statements on, so does `_NO_SEQSCAN`. On return the cursor
    is at the first statement's result.
    """
    params: list[Any] = []
    texts = [prefix.strip().rstrip(";")] if prefix.strip() else []
    if settings.DATABASE_PREPARED_STATEMENTS:
        texts.append(_NO_SEQSCAN)
    prefixes = len(texts)
    for statement, values in statements:
        if len(values) != statement.arity:
            raise ValueError(
                f"{statement!r} takes {statement.arity} values, not {len(values)}"
            )
        texts.append(statement.text())
        params.extend(values)
    sql = ";\n".join(texts)
    for attempt in (1, 2):
        if settings.DATABASE_PREPARED_STATEMENTS:
            _prepare(cursor)
        try:
            cursor.execute(sql, params)
            break
        except DatabaseError as error:
            if getattr(error.__cause__, "sqlstate", None) != _UNDEFINED:
                raise
            # The session dropped them (DISCARD ALL, a pooler's reset): prepare
            # again. Inside a transaction the error has aborted it, so the
            # caller retries the transaction (`lost_statements`).
            logger.warning("prepared statements lost by the session; preparing again")
            _prepared_on[cursor.connection] = False
            if attempt == 2 or connection.in_atomic_block:
                raise
    for _ in range(prefixes):
        cursor.nextset()


def lost_statements(error: DatabaseError) -> bool:
    """Whether `error` came from prepared statements the session had lost."""
    return getattr(error.__cause__, "sqlstate", None) == _UNDEFINED


def _prepare(cursor: CursorWrapper) -> None:
    raw = cursor.connection
    ready = _prepared_on.get(raw)
    if ready:
        return
    texts = [statement.prepare_sql for statement in _registry.values()]
    if ready is False:
        # psycopg notices DEALLOCATE ALL and forgets its own statements too.
        texts.insert(0, "DEALLOCATE ALL")
    # PREPARE is not transactional: a rollback later keeps the statements.
    cursor.execute(";\n".join(texts))
    _prepared_on[raw] = True
    logger.debug("prepared %s statements on a new connection", len(_registry))
