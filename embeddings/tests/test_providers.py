import socket
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from embeddings import schema
from embeddings.models import IncidentEmbedding
from embeddings.providers import (
    EmbeddingRejected,
    EmbeddingUnavailable,
    GeminiProvider,
    get_provider,
)
from embeddings.tests.factories import IncidentEmbeddingFactory
from embeddings.tests.fake_gemini import fake_vector
from kuberca.testing.http import Reply

pytestmark = pytest.mark.django_db


def _provider(url, **options):
    options = {"dimensions": 16, "retry_attempts": 2, **options}
    return GeminiProvider(
        api_key="k",
        model="gemini-embedding-001",
        base_url=url,
        retry_initial_delay=0.01,
        **options,
    )


def test_the_provider_is_none_without_a_key(no_provider):
    assert get_provider().name == "none"


def test_the_provider_is_gemini_with_a_key(fake_gemini):
    provider = get_provider()

    assert (provider.name, provider.model, provider.dimensions) == (
        "gemini",
        "gemini-embedding-001",
        3072,
    )


def test_gemini_vectors_follow_the_texts(fake_gemini):
    vectors = _provider(fake_gemini.url).embed(["disk full", "dns down"])

    assert vectors == [fake_vector("disk full", 16), fake_vector("dns down", 16)]


def test_gemini_calls_are_batched_by_100(fake_gemini):
    texts = [f"text {n}" for n in range(250)]

    vectors = _provider(fake_gemini.url).embed(texts)

    assert len(vectors) == 250
    assert [len(r.json()["requests"]) for r in fake_gemini.requests] == [100, 100, 50]


def test_gemini_unreachable_is_transient():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there

    with pytest.raises(EmbeddingUnavailable):
        _provider(f"http://127.0.0.1:{port}").embed(["x"])


def test_gemini_timeout_is_transient(local_server):
    server = local_server(lambda request: Reply(delay=3))

    with pytest.raises(EmbeddingUnavailable):
        _provider(server.url, dimensions=4, timeout_seconds=1, retry_attempts=1).embed(
            ["x"]
        )


def test_gemini_answer_trickling_in_gives_up_after_the_timeout(local_server):
    # Each byte comes well inside the timeout; the answer takes far longer.
    body = {"embeddings": [{"values": [0.5, 0.5, 0.5, 0.5]}]}
    server = local_server(lambda request: Reply(body=body, trickle=0.2))
    provider = _provider(server.url, dimensions=4, timeout_seconds=1, retry_attempts=1)
    started = time.monotonic()

    with pytest.raises(EmbeddingUnavailable, match="unreachable"):
        provider.embed(["x"])

    assert time.monotonic() - started < 3


def test_gemini_answer_of_the_wrong_size_is_rejected(local_server):
    server = local_server(lambda request: Reply(body={"embeddings": [{"values": [1]}]}))

    with pytest.raises(EmbeddingRejected):
        _provider(server.url).embed(["x"])


@pytest.mark.parametrize(
    ("dimensions", "values"),
    [
        (16, [float("nan")] + [0.25] * 15),
        (16, [float("inf")] + [0.25] * 15),
        (16, [0.0] * 16),
        (16, [1e39] + [0.25] * 15),
        (3072, [1e5] + [0.01] * 3071),
    ],
    ids=["nan", "infinity", "all-zero", "over-float4", "over-halfvec"],
)
def test_gemini_vector_that_cannot_be_stored_or_compared_is_rejected(
    local_server, dimensions, values
):
    server = local_server(
        lambda request: Reply(body={"embeddings": [{"values": values}]})
    )

    with pytest.raises(EmbeddingRejected, match="unusable vector"):
        _provider(server.url, dimensions=dimensions).embed(["x"])


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, b"<html>proxy</html>", {"Content-Type": "text/html"}),
        Reply(200, {"embeddings": "not a list"}),
        Reply(200, {"embeddings": [{"values": ["a", "b", "c", "d"]}]}),
        Reply(200, b'{"embeddings": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
        Reply(200, b'{"embeddings": [{"values": [' + b"9" * 5000 + b"]}]}"),
        Reply(302, b"", {"Location": "/again"}),
    ],
    ids=["html", "wrong-shape", "wrong-type", "nested", "huge-number", "redirects"],
)
def test_gemini_answer_that_cannot_be_read_is_transient(local_server, reply):
    server = local_server(lambda request: reply)

    with pytest.raises(EmbeddingUnavailable, match="unreadable"):
        _provider(server.url, retry_attempts=1).embed(["x"])


def test_resize_retypes_the_column_and_index(settings):
    IncidentEmbeddingFactory()
    settings.EMBEDDING_DIMENSIONS = 8
    out = StringIO()

    call_command("resize_embeddings", stdout=out)
    assert "run with --yes" in out.getvalue()
    assert IncidentEmbedding.objects.count() == 1

    call_command("resize_embeddings", "--yes", stdout=out)

    with connection.cursor() as cursor:
        assert schema.column_dimensions(cursor) == 8
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s", [schema.INDEX]
        )
        assert "vector_cosine_ops" in cursor.fetchone()[0]
    assert IncidentEmbedding.objects.count() == 0
    assert "backfill_embeddings --all" in out.getvalue()


def test_resize_only_rebuilds_a_missing_index_keeping_the_embeddings():
    IncidentEmbeddingFactory()
    with connection.cursor() as cursor:
        cursor.execute(schema.drop_index_sql())
    out = StringIO()

    call_command("resize_embeddings", stdout=out)
    assert "no embedding is deleted" in out.getvalue()
    call_command("resize_embeddings", "--yes", stdout=out)

    assert IncidentEmbedding.objects.count() == 1
    with connection.cursor() as cursor:
        assert schema.index_exists(cursor)
