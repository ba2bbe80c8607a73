"""Server-side prepared statements for a hot path's fixed SQL.

Django binds parameters on the client, so every execute sends PostgreSQL a
query text it has never seen, to parse and plan again; for the webhook's
statements the planning costs more than running them. A `Statement` is
prepared (SQL `PREPARE`) once per database connection, the first time it is
used there, and is then sent as `EXECUTE name(...)`, still through Django's
cursor, so several of them share one query text and one round trip.

SQL-level prepared statements belong to the server session. A pooler in
transaction mode (PgBouncer) hands each transaction to any session, where
they do not exist: set `DATABASE_PREPARED_STATEMENTS=false` there. If a
session loses them anyway, the process notices the error, logs it once, and
sends plain SQL from then on; the statement that failed is sent again. A
migration that changes the type of a column a statement returns makes the
server refuse the old statement; it is prepared again on that connection.
"""

import logging
import weakref
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.backends.utils import CursorWrapper

from kuberca.transactions import sqlstate

logger = logging.getLogger(__name__)

_registry: dict[str, "Statement"] = {}
# The psycopg connections that have every registered statement prepared.
_prepared_on: "weakref.WeakSet[Any]" = weakref.WeakSet()
# Connections whose statements must be dropped and prepared again: a
# migration changed the type of a column one of them returns.
_outdated: "weakref.WeakSet[Any]" = weakref.WeakSet()
# Set once a session has lost its statements: this process stops using them.
_given_up = False
# "prepared statement does not exist".
_UNDEFINED = "26000"
# "cached plan must not change result type" (feature_not_supported).
_RESULT_TYPE_CHANGED = "0A000"
# A prepared statement keeps the generic plan made at its sixth execution
# until a table's statistics change. Planned while a table was still small, a
# sequential scan looks cheaper than its index and would then scan the grown
# table on every call. These statements all find their rows by key, so plans
# made while they run never choose one. SET LOCAL lasts until the end of the
# transaction (the implicit one of the query text, in autocommit).
_NO_SEQSCAN = "SET LOCAL enable_seqscan = off"


def enabled() -> bool:
    """Whether statements go as `EXECUTE` (else as their plain SQL)."""
    return settings.DATABASE_PREPARED_STATEMENTS and not _given_up


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
        self.execute_sql = f"EXECUTE {self.name}" + (f"({args})" if args else "")
        _registry[name] = self

    def __repr__(self) -> str:
        return f"Statement({self.name})"


def execute(
    cursor: CursorWrapper,
    statements: list[tuple[Statement, list[Any]]],
    *,
    prefix: str = "",
) -> None:
    """Send the statements as one query text; read results with `nextset()`.

    `prefix` (e.g. a `SET LOCAL`) goes first, as plain SQL without parameters.
    On return the cursor is at the first statement's result. When the
    session lost the statements (the process turns to plain SQL) or must
    prepare them again, the query text is sent again in autocommit; inside a
    transaction, which the error has aborted, it raises, and the caller may
    retry the transaction (see `lost_statements`).
    """
    for statement, values in statements:
        if len(values) != statement.arity:
            raise ValueError(
                f"{statement!r} takes {statement.arity} values, not {len(values)}"
            )
    try:
        _send(cursor, statements, prefix)
    except DatabaseError as error:
        if sqlstate(error) == _UNDEFINED:
            _give_up()
        elif _outdated_plan(error):
            logger.warning("a prepared statement's result changed; preparing again")
            _outdated.add(cursor.connection)
            _prepared_on.discard(cursor.connection)
        else:
            raise
        if connection.in_atomic_block:
            raise
        _send(cursor, statements, prefix)


def lost_statements(error: DatabaseError) -> bool:
    """Whether `error` came from prepared statements the session did not have,
    or had to prepare again: a transaction that failed so may be retried."""
    return sqlstate(error) == _UNDEFINED or _outdated_plan(error)


def _outdated_plan(error: DatabaseError) -> bool:
    return sqlstate(error) == _RESULT_TYPE_CHANGED and "result type" in str(error)


def _send(
    cursor: CursorWrapper, statements: list[tuple[Statement, list[Any]]], prefix: str
) -> None:
    prepared = enabled()
    texts = [prefix.strip().rstrip(";")] if prefix.strip() else []
    if prepared:
        texts.append(_NO_SEQSCAN)
        _prepare(cursor)
    prefixes = len(texts)
    params: list[Any] = []
    for statement, values in statements:
        texts.append(statement.execute_sql if prepared else statement.sql)
        params.extend(values)
    cursor.execute(";\n".join(texts), params)
    for _ in range(prefixes):
        cursor.nextset()


def _prepare(cursor: CursorWrapper) -> None:
    raw = cursor.connection
    if raw in _prepared_on:
        return
    texts = [statement.prepare_sql for statement in _registry.values()]
    if raw in _outdated:
        # Django prepares nothing itself (prepare_threshold is None), and
        # psycopg forgets its own statements when it sees DEALLOCATE ALL.
        texts.insert(0, "DEALLOCATE ALL")
    # PREPARE is not transactional: a rollback later keeps the statements.
    cursor.execute(";\n".join(texts))
    _outdated.discard(raw)
    _prepared_on.add(raw)
    logger.debug("prepared %s statements on a new connection", len(_registry))


def _give_up() -> None:
    global _given_up
    if not _given_up:
        logger.warning(
            "prepared statements lost by the database session; sending plain "
            "SQL from now on (set DATABASE_PREPARED_STATEMENTS=false behind a "
            "pooler in transaction mode)"
        )
    _given_up = True
