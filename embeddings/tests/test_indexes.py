"""The search statements use their indexes (EXPLAIN), at 3072 dimensions."""

import pytest
from django.conf import settings
from django.db import connection

from embeddings import fulltext, schema
from embeddings.services import fulltext_sql, nearest_sql
from embeddings.tests.factories import AlertFactory, IncidentEmbeddingFactory
from embeddings.tests.fake_gemini import fake_vector

pytestmark = pytest.mark.django_db


def _plan(sql, params, *settings):
    with connection.cursor() as cursor:
        for setting in settings:
            cursor.execute(f"SET LOCAL {setting} = off")
        # With a handful of rows a scan and a sort are cheaper; forbid them to
        # see whether the index *can* serve the statement.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_the_column_has_the_configured_dimensions_on_a_halfvec_index():
    with connection.cursor() as cursor:
        assert schema.column_dimensions(cursor) == settings.EMBEDDING_DIMENSIONS
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s", [schema.INDEX]
        )
        [definition] = cursor.fetchone()

    assert settings.EMBEDDING_DIMENSIONS == 3072
    assert "USING hnsw" in definition
    assert "halfvec(3072)" in definition
    assert "halfvec_cosine_ops" in definition


def test_search_by_vector_uses_the_hnsw_index():
    for n in range(5):
        IncidentEmbeddingFactory(incident_summary=f"disk {n}")
    sql, params = nearest_sql(
        model=settings.EMBEDDING_MODEL, limit=10, vector=fake_vector("disk", 3072)
    )

    plan = _plan(sql, params)

    assert f"Index Scan using {schema.INDEX}" in plan


def test_search_like_an_incident_uses_the_hnsw_index():
    embedding = IncidentEmbeddingFactory(incident_summary="disk")
    IncidentEmbeddingFactory(incident_summary="disk full")
    sql, params = nearest_sql(
        model=settings.EMBEDDING_MODEL, limit=5, like_incident_id=embedding.incident_id
    )

    plan = _plan(sql, params)

    assert f"Index Scan using {schema.INDEX}" in plan


def test_full_text_search_uses_both_gin_indexes():
    AlertFactory(alarm_title="NodeDiskFull")
    sql, params = fulltext_sql("disk full nodediskfull", limit=5)

    # Only bitmap scans can take a full-text condition to an index.
    plan = _plan(sql, params, "enable_indexscan")

    assert fulltext.INCIDENT_INDEX in plan
    assert fulltext.ALERT_INDEX in plan
