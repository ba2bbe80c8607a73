"""Fixtures of the embeddings tests: the fake Gemini, or no provider at all."""

import pytest
from django.db import connection

from embeddings import schema
from embeddings.tests.factories import SummarizedIncidentFactory
from embeddings.tests.fake_gemini import FakeGemini


@pytest.fixture
def fake_gemini(local_server, settings):  # noqa: ANN001, ANN201
    """Configure the gemini provider against a local FakeGemini."""
    gemini = FakeGemini(local_server)
    settings.GEMINI_API_KEY = "test-key"
    settings.GEMINI_API_URL = gemini.url
    settings.EMBEDDING_RETRY_INITIAL_DELAY = 0.01
    settings.EMBEDDING_RETRY_ATTEMPTS = 3
    return gemini


@pytest.fixture
def no_provider(settings):  # noqa: ANN001, ANN201
    settings.GEMINI_API_KEY = ""
    settings.GEMINI_API_URL = ""


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):  # noqa: ANN001, ANN201
    # The `user` fixture's Argon2 hash costs most of a second per test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def column_of_another_size(settings):  # noqa: ANN001, ANN201
    """EMBEDDING_DIMENSIONS changed, resize_embeddings not run yet: the column
    still holds vectors of the old size (8 here), one of them stored."""
    incident = SummarizedIncidentFactory(
        title="Disk full on node", analysis_summary="disk full"
    )
    with connection.cursor() as cursor:
        cursor.execute(schema.drop_index_sql())
        cursor.execute(
            f"ALTER TABLE {schema.TABLE} ALTER COLUMN embedding TYPE vector(8)"
        )
        cursor.execute(
            f"INSERT INTO {schema.TABLE}"  # noqa: S608
            " (incident_id, incident_summary, embedding, model, created_at)"
            " VALUES (%s, 'disk full', '[1,2,3,4,5,6,7,8]', %s, now())",
            [incident.pk, settings.EMBEDDING_MODEL],
        )
    return incident
