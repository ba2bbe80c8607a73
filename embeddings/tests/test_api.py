import math

import pytest
from django.db import connection

from embeddings import schema
from embeddings.models import IncidentEmbedding
from embeddings.providers import REQUEST_ATTEMPTS, REQUEST_TIMEOUT_SECONDS, get_provider
from embeddings.tests.factories import (
    AlertFactory,
    IncidentEmbeddingFactory,
    SummarizedIncidentFactory,
)
from embeddings.tests.fake_gemini import fake_vector
from incidents.models import Incident
from kuberca.testing.http import Reply

pytestmark = pytest.mark.django_db

CREATE = "/api/v1/embeddings"
SEARCH = "/api/v1/embeddings/search"


def post_create(client, incident_id: str):  # noqa: ANN001, ANN201
    """POST /embeddings for `incident_id` with a one-letter summary."""
    return client.post(
        CREATE, {"incident_id": incident_id, "incident_summary": "x"}, format="json"
    )


def test_create_embeds_the_summary_through_gemini(auth_client, fake_gemini, settings):
    incident = SummarizedIncidentFactory()

    response = auth_client.post(
        CREATE,
        {"incident_id": incident.pk, "incident_summary": "etcd leader lost quorum"},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success"
    assert body["model"] == "gemini-embedding-001"
    row = IncidentEmbedding.objects.get(pk=body["embedding_id"])
    assert row.incident_id == incident.pk
    assert row.incident_summary == "etcd leader lost quorum"
    assert len(row.embedding) == settings.EMBEDDING_DIMENSIONS
    [call] = fake_gemini.requests
    assert call.path == "/v1/models/gemini-embedding-001:batchEmbedContents"
    assert call.headers["x-goog-api-key"] == "test-key"
    assert call.json()["requests"][0]["outputDimensionality"] == 3072


def test_create_replaces_the_incidents_row_for_the_model(auth_client, fake_gemini):
    incident = SummarizedIncidentFactory()
    first = auth_client.post(
        CREATE, {"incident_id": incident.pk, "incident_summary": "one"}, format="json"
    ).json()

    second = auth_client.post(
        CREATE, {"incident_id": incident.pk, "incident_summary": "two"}, format="json"
    ).json()

    assert second["embedding_id"] == first["embedding_id"]
    assert list(IncidentEmbedding.objects.values_list("incident_summary")) == [("two",)]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"incident_id": "INC-1"},
        {"incident_summary": "x"},
        {"incident_id": "INC-1", "incident_summary": ""},
        {"incident_id": 5, "incident_summary": ["x"]},
        ["not", "an", "object"],
    ],
)
def test_create_rejects_bodies_without_both_fields(auth_client, fake_gemini, body):
    response = auth_client.post(CREATE, body, format="json")

    assert response.status_code == 400
    assert response.json() == {"error": "incident_id and incident_summary are required"}
    assert fake_gemini.calls == 0


def test_create_rejects_malformed_json(auth_client, fake_gemini):
    response = auth_client.post(CREATE, "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid request"


def test_create_answers_404_for_an_unknown_incident(auth_client, fake_gemini):
    response = auth_client.post(
        CREATE, {"incident_id": "INC-missing", "incident_summary": "x"}, format="json"
    )

    assert response.status_code == 404
    assert response.json() == {"error": "incident not found"}
    assert fake_gemini.calls == 0


def test_create_answers_404_for_an_unknown_incident_without_a_provider(
    auth_client, no_provider
):
    response = auth_client.post(
        CREATE, {"incident_id": "INC-missing", "incident_summary": "x"}, format="json"
    )

    assert response.status_code == 404
    assert response.json() == {"error": "incident not found"}


def test_create_answers_503_without_a_provider(auth_client, no_provider):
    incident = SummarizedIncidentFactory()

    response = post_create(auth_client, incident.pk)

    assert response.status_code == 503
    assert response.json()["error"] == "embedding provider not configured"
    assert not IncidentEmbedding.objects.exists()


def test_create_answers_503_when_gemini_keeps_failing(auth_client, fake_gemini):
    incident = SummarizedIncidentFactory()
    fake_gemini.fail_always = 503

    response = post_create(auth_client, incident.pk)

    assert response.status_code == 503
    assert response.json()["error"] == "embedding provider unavailable"
    assert len(fake_gemini.requests) == 3  # EMBEDDING_RETRY_ATTEMPTS


def test_create_answers_502_when_gemini_refuses(auth_client, fake_gemini):
    incident = SummarizedIncidentFactory()
    fake_gemini.fail(400)

    response = post_create(auth_client, incident.pk)

    assert response.status_code == 502
    assert len(fake_gemini.requests) == 1  # a 400 is not retried


def test_create_answers_502_when_gemini_returns_an_unusable_vector(
    auth_client, local_server, fake_gemini, settings
):
    zero = [0.0] * settings.EMBEDDING_DIMENSIONS
    server = local_server(
        lambda request: Reply(body={"embeddings": [{"values": zero}]})
    )
    settings.GEMINI_API_URL = server.url
    incident = SummarizedIncidentFactory()

    response = post_create(auth_client, incident.pk)

    assert response.status_code == 502
    assert response.json()["error"] == "embedding provider error"
    assert not IncidentEmbedding.objects.exists()

    response = auth_client.post(SEARCH, {"query": "x"}, format="json")
    assert response.status_code == 200
    assert response.json()["model"] == "fulltext"


def test_create_retries_429_and_500_then_succeeds(auth_client, fake_gemini):
    incident = SummarizedIncidentFactory()
    fake_gemini.fail(429, 500)

    response = post_create(auth_client, incident.pk)

    assert response.status_code == 200
    assert len(fake_gemini.requests) == 3


@pytest.mark.parametrize("path", [CREATE, SEARCH])
def test_endpoints_need_a_token(api_client, fake_gemini, path):
    response = api_client.post(path, {"query": "x"}, format="json")

    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}


def test_endpoints_accept_a_trailing_slash(auth_client, fake_gemini):
    response = auth_client.post(SEARCH + "/", {"query": "disk"}, format="json")

    assert response.status_code == 200


def _embedded(summary, **incident):
    return IncidentEmbeddingFactory(
        incident=SummarizedIncidentFactory(analysis_summary=summary, **incident)
    ).incident


def test_search_orders_by_similarity(auth_client, fake_gemini):
    best = _embedded("disk full on node pool storage volume")
    middle = _embedded("disk pressure on node")
    _embedded("certificate expired for ingress")

    response = auth_client.post(
        SEARCH, {"query": "disk full on node storage"}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "gemini-embedding-001"
    ids = [hit["incident_id"] for hit in body["results"]]
    assert ids[:2] == [best.pk, middle.pk]
    similarities = [hit["similarity"] for hit in body["results"]]
    assert similarities == sorted(similarities, reverse=True)
    assert 0 < similarities[0] <= 1
    assert body["results"][0]["incident_summary"] == best.analysis_summary


def test_search_gives_one_hit_per_incident(auth_client, fake_gemini):
    incident = _embedded("disk full")
    IncidentEmbeddingFactory(
        incident=incident, model="older-model", incident_summary="disk full"
    )

    body = auth_client.post(SEARCH, {"query": "disk full"}, format="json").json()

    assert [hit["incident_id"] for hit in body["results"]] == [incident.pk]


def test_search_leaves_hidden_incidents_out(auth_client, fake_gemini):
    visible = _embedded("disk full")
    _embedded("disk full", is_enabled=False)

    body = auth_client.post(SEARCH, {"query": "disk full"}, format="json").json()

    assert [hit["incident_id"] for hit in body["results"]] == [visible.pk]


def _bulk_embedded(count: int) -> None:
    """`count` embedded incidents about a full disk, in two statements."""
    incidents = Incident.objects.bulk_create(
        SummarizedIncidentFactory.build(analysis_summary=f"disk full {n}")
        for n in range(count)
    )
    IncidentEmbedding.objects.bulk_create(
        IncidentEmbeddingFactory.build(incident=incident) for incident in incidents
    )


def test_search_limit_defaults_to_10_and_is_capped_at_100(auth_client, fake_gemini):
    _bulk_embedded(105)

    default = auth_client.post(SEARCH, {"query": "disk"}, format="json").json()
    capped = auth_client.post(
        SEARCH, {"query": "disk", "limit": 1000}, format="json"
    ).json()
    three = auth_client.post(SEARCH, {"query": "disk", "limit": 3}, format="json")

    assert len(default["results"]) == 10
    assert capped["model"] == "gemini-embedding-001"  # not the full-text fallback
    assert len(capped["results"]) == 100
    assert len(three.json()["results"]) == 3


def test_search_similarity_is_one_minus_the_cosine_distance(
    auth_client, fake_gemini, settings
):
    query = fake_vector("disk", settings.EMBEDDING_DIMENSIONS)  # one slot of ±1
    [slot] = [i for i, value in enumerate(query) if value]
    aside = (slot + 1) % len(query)

    def at_cosine(cosine: float, length: float = 2.0) -> list[float]:
        """A vector of `length` whose cosine with the query's is `cosine`."""
        vector = [length * cosine * value for value in query]
        vector[aside] = length * math.sqrt(1 - cosine**2)
        return vector

    near = IncidentEmbeddingFactory(embedding=at_cosine(0.6)).incident
    far = IncidentEmbeddingFactory(embedding=at_cosine(0.28)).incident

    body = auth_client.post(SEARCH, {"query": "disk"}, format="json").json()

    assert body["model"] == "gemini-embedding-001"
    hits = {hit["incident_id"]: hit["similarity"] for hit in body["results"]}
    # The column is halfvec at 3,072 dimensions: about three decimals.
    assert hits == {
        near.pk: pytest.approx(0.6, abs=1e-3),
        far.pk: pytest.approx(0.28, abs=1e-3),
    }


@pytest.mark.parametrize("limit", [0, -1, "ten", 2.5, True])
def test_search_rejects_a_bad_limit(auth_client, fake_gemini, limit):
    response = auth_client.post(
        SEARCH, {"query": "disk", "limit": limit}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid input"


@pytest.mark.parametrize("body", [{}, {"query": ""}, {"query": "  "}, {"query": 3}])
def test_search_requires_a_query(auth_client, fake_gemini, body):
    response = auth_client.post(SEARCH, body, format="json")

    assert response.status_code == 400
    assert response.json() == {"error": "query is required"}


def test_search_without_a_provider_ranks_by_full_text(auth_client, no_provider):
    by_title = SummarizedIncidentFactory(
        title="Disk full on node", analysis_summary="volume filled"
    )
    by_alert = SummarizedIncidentFactory(title="Storage", analysis_summary="")
    AlertFactory(incident=by_alert, alarm_title="NodeDiskFull")
    SummarizedIncidentFactory(title="Certificate expired", analysis_summary="tls")
    SummarizedIncidentFactory(title="Disk full again", is_enabled=False)

    response = auth_client.post(SEARCH, {"query": "disk full"}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "fulltext"
    ids = [hit["incident_id"] for hit in body["results"]]
    assert ids[0] == by_title.pk
    assert by_alert.pk not in ids  # "NodeDiskFull" is one word
    assert body["results"][0]["incident_summary"] == "volume filled"
    assert 0 < body["results"][0]["similarity"] < 1


def test_full_text_search_matches_alert_names(auth_client, no_provider):
    incident = SummarizedIncidentFactory(title="Storage trouble", analysis_summary="")
    AlertFactory(incident=incident, alarm_title="KubePersistentVolumeFillingUp")

    body = auth_client.post(
        SEARCH, {"query": "KubePersistentVolumeFillingUp"}, format="json"
    ).json()

    assert [hit["incident_id"] for hit in body["results"]] == [incident.pk]


def test_search_falls_back_to_full_text_when_gemini_is_down(auth_client, fake_gemini):
    incident = SummarizedIncidentFactory(title="Disk full on node")
    fake_gemini.fail_always = 500

    body = auth_client.post(SEARCH, {"query": "disk"}, format="json").json()

    assert body["model"] == "fulltext"
    assert [hit["incident_id"] for hit in body["results"]] == [incident.pk]


def test_search_answers_within_the_web_timeout_when_gemini_hangs(
    auth_client, local_server, fake_gemini, settings
):
    hung = local_server(lambda request: Reply(delay=10))
    settings.GEMINI_API_URL = hung.url
    settings.EMBEDDING_TIMEOUT_SECONDS = 1
    settings.EMBEDDING_RETRY_ATTEMPTS = 6  # what the worker may spend
    incident = SummarizedIncidentFactory(title="Disk full on node")

    response = auth_client.post(SEARCH, {"query": "disk full"}, format="json")

    assert response.status_code == 200
    assert response.json()["model"] == "fulltext"
    assert [hit["incident_id"] for hit in response.json()["results"]] == [incident.pk]
    assert len(hung.requests) == REQUEST_ATTEMPTS

    response = post_create(auth_client, incident.pk)
    assert response.status_code == 503
    assert len(hung.requests) == 2 * REQUEST_ATTEMPTS


def test_a_web_request_waits_for_gemini_a_bounded_time(fake_gemini, settings):
    settings.EMBEDDING_TIMEOUT_SECONDS = 300
    settings.EMBEDDING_RETRY_ATTEMPTS = 10

    provider = get_provider(in_request=True)

    assert provider.timeout_seconds == REQUEST_TIMEOUT_SECONDS
    assert provider.retry_attempts == REQUEST_ATTEMPTS
    # The calls and the backoff between them (1 s, then 2 s, each plus up to
    # 1 s of jitter) fit in gunicorn's 60 s.
    assert REQUEST_ATTEMPTS * REQUEST_TIMEOUT_SECONDS + 5 < 60
    assert get_provider().timeout_seconds == 300


def test_search_falls_back_to_full_text_when_gemini_answers_garbage(
    auth_client, local_server, fake_gemini, settings
):
    html = Reply(
        200, b"<html>sign in to the proxy</html>", {"Content-Type": "text/html"}
    )
    settings.GEMINI_API_URL = local_server(lambda request: html).url
    incident = SummarizedIncidentFactory(title="Disk full on node")

    response = auth_client.post(SEARCH, {"query": "disk full"}, format="json")

    assert response.status_code == 200
    assert response.json()["model"] == "fulltext"
    assert [hit["incident_id"] for hit in response.json()["results"]] == [incident.pk]

    response = post_create(auth_client, incident.pk)
    assert response.status_code == 503


def test_search_falls_back_to_full_text_when_the_column_has_another_size(
    auth_client, fake_gemini, column_of_another_size, caplog
):
    response = auth_client.post(SEARCH, {"query": "disk full"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["model"] == "fulltext"
    hits = [hit["incident_id"] for hit in response.json()["results"]]
    assert hits == [column_of_another_size.pk]
    assert "resize_embeddings" in caplog.text


def test_create_answers_503_when_the_column_has_another_size(
    auth_client, fake_gemini, column_of_another_size
):
    response = post_create(auth_client, column_of_another_size.pk)

    assert response.status_code == 503, response.content
    body = response.json()
    assert body["error"] == "embedding column mismatch"
    assert "resize_embeddings" in body["detail"]


def test_a_wide_search_scans_no_wider_than_pgvector_allows(db) -> None:  # noqa: ANN001
    from django.db import transaction

    from embeddings.services import EF_SEARCH_MAX, set_scan_options

    with transaction.atomic(), connection.cursor() as cursor:
        set_scan_options(cursor, limit=5000)
        cursor.execute("SHOW hnsw.ef_search")
        (ef_search,) = cursor.fetchone()
        # pgvector takes it: a search runs with it.
        cursor.execute(f"SELECT count(*) FROM {schema.TABLE}")  # noqa: S608

    assert int(ef_search) == EF_SEARCH_MAX == 1000


def test_a_database_error_other_than_dimensions_names_no_resize(caplog) -> None:  # noqa: ANN001
    from django.db import DataError

    from embeddings.services import _log_column_mismatch

    _log_column_mismatch(DataError("value out of range for parameter"))

    assert "value out of range" in caplog.text
    assert "resize_embeddings" not in caplog.text
