"""The SQL shape of the embedding column and its HNSW index, in one place.

pgvector's HNSW indexes `vector` up to 2,000 dimensions and `halfvec` up to
4,000, so above 2,000 the index is on the expression `embedding::halfvec(N)`
and every query must order by that same expression, or PostgreSQL scans the
whole table. Migrations, the resize command, search and the benchmark all
build their SQL here so the expressions never drift apart.
"""

from typing import Any

TABLE = "embeddings_incidentembedding"
INDEX = "embedding_hnsw_cosine"
HALFVEC_ABOVE = 2000
HNSW_MAX_DIMENSIONS = 4000
# What a vector or halfvec column holds at most (EMBEDDING_DIMENSIONS).
VECTOR_MAX_DIMENSIONS = 16000
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64


def uses_halfvec(dimensions: int) -> bool:
    return dimensions > HALFVEC_ABOVE


def indexable(dimensions: int) -> bool:
    return dimensions <= HNSW_MAX_DIMENSIONS


def vector_type(dimensions: int) -> str:
    """The type queries cast both sides to, matching the index expression."""
    kind = "halfvec" if uses_halfvec(dimensions) else "vector"
    return f"{kind}({int(dimensions)})"


def column_expression(dimensions: int, column: str = "embedding") -> str:
    if uses_halfvec(dimensions):
        return f"({column}::{vector_type(dimensions)})"
    return column


def create_index_sql(dimensions: int, *, table: str = TABLE, index: str = INDEX) -> str:
    opclass = "halfvec_cosine_ops" if uses_halfvec(dimensions) else "vector_cosine_ops"
    return (
        f"CREATE INDEX IF NOT EXISTS {index} ON {table} USING hnsw "
        f"({column_expression(dimensions)} {opclass}) "
        f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
    )


def drop_index_sql(*, index: str = INDEX) -> str:
    return f"DROP INDEX IF EXISTS {index}"


def column_dimensions(cursor: Any, *, table: str = TABLE) -> int | None:
    """The dimension the database column really has (None: no such column)."""
    cursor.execute(
        "SELECT atttypmod FROM pg_attribute"
        " WHERE attrelid = %s::regclass AND attname = 'embedding'",
        [table],
    )
    row = cursor.fetchone()
    return int(row[0]) if row and row[0] > 0 else None


def index_exists(cursor: Any, *, index: str = INDEX) -> bool:
    cursor.execute("SELECT 1 FROM pg_class WHERE relname = %s", [index])
    return cursor.fetchone() is not None
