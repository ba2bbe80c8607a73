from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django.utils.module_loading import import_string

from embeddings import services
from embeddings.services import embedding_search, similar_incidents
from embeddings.tests.factories import (
    AlertFactory,
    IncidentEmbeddingFactory,
    SummarizedIncidentFactory,
)

pytestmark = pytest.mark.django_db


def _embedded(summary, **incident):
    return IncidentEmbeddingFactory(
        incident=SummarizedIncidentFactory(analysis_summary=summary, **incident)
    ).incident


def test_the_incidents_app_finds_the_function_through_settings():
    assert import_string(settings.SIMILAR_INCIDENTS_FINDER) is similar_incidents


def test_similar_incidents_ranks_by_the_incidents_own_embedding(
    fake_gemini, django_assert_max_num_queries
):
    incident = _embedded("oom killed payments api pods memory limit")
    close = _embedded("oom killed payments pods memory")
    far = _embedded("dns resolution failing in cluster")
    _embedded("oom killed payments api pods memory limit", is_enabled=False)

    with django_assert_max_num_queries(4):
        similar = similar_incidents(incident)

    assert [item["incident_id"] for item in similar] == [close.pk, far.pk]
    assert similar[0]["title"] == close.title
    assert similar[0]["score"] > similar[1]["score"]
    assert fake_gemini.calls == 0  # the stored vector is the query


def test_a_stored_vector_without_direction_scores_zero_instead_of_failing(
    auth_client, fake_gemini
):
    # An all-zero vector (as stored before Gemini's answers were checked) has
    # a NaN cosine distance to everything.
    zero = IncidentEmbeddingFactory(embedding=[0.0] * settings.EMBEDDING_DIMENSIONS)
    other = _embedded("oom killed payments api pods")

    for incident_id, similar_id in (
        (zero.incident_id, other.pk),
        (other.pk, zero.incident_id),
    ):
        response = auth_client.get(f"/api/v1/incidents/{incident_id}")
        assert response.status_code == 200
        assert (
            response.json()["data"]["similar_incidents"][-1]["incident_id"]
            == similar_id
        )
        assert response.json()["data"]["similar_incidents"][-1]["score"] == 0.0

    response = auth_client.post(
        "/api/v1/embeddings/search", {"query": "oom killed"}, format="json"
    )
    assert response.status_code == 200
    assert [hit["similarity"] for hit in response.json()["results"]][-1] == 0.0


def test_similar_incidents_returns_at_most_five(fake_gemini):
    incident = _embedded("disk full")
    for n in range(7):
        _embedded(f"disk full {n}")

    assert len(similar_incidents(incident)) == 5


def test_incident_detail_shows_the_five_most_similar_incidents(
    auth_client, fake_gemini
):
    incident = _embedded("disk full on node pool")
    closest = [_embedded(f"disk full on node pool {n}") for n in range(5)]
    for n in range(3):
        _embedded(f"disk full {n}")

    response = auth_client.get(f"/api/v1/incidents/{incident.pk}")

    assert response.status_code == 200
    similar = response.json()["data"]["similar_incidents"]
    assert {item["incident_id"] for item in similar} == {i.pk for i in closest}


def test_similar_incidents_uses_full_text_without_an_embedding(
    fake_gemini, django_assert_max_num_queries
):
    incident = SummarizedIncidentFactory(
        title="Disk full on node", analysis_summary="volume filled up"
    )
    other = SummarizedIncidentFactory(title="Disk pressure", analysis_summary="")
    SummarizedIncidentFactory(title="TLS certificate expired", analysis_summary="")

    # The vector search (savepoint, settings, query, release), then the full
    # text (savepoint, settings, words, ranking, settings back, release).
    with django_assert_max_num_queries(10):
        similar = similar_incidents(incident)

    assert [item["incident_id"] for item in similar] == [other.pk]
    assert 0 < similar[0]["score"] < 1


def test_similar_incidents_uses_full_text_without_a_provider(no_provider):
    incident = SummarizedIncidentFactory(title="Disk full on node")
    other = _embedded("disk", title="Disk full again")

    similar = similar_incidents(incident)

    assert [item["incident_id"] for item in similar] == [other.pk]


def test_similar_incidents_is_empty_when_nothing_is_alike(no_provider):
    incident = SummarizedIncidentFactory(title="Disk full", analysis_summary="")
    SummarizedIncidentFactory(title="Certificate expired", analysis_summary="")

    assert similar_incidents(incident) == []


def _analyze():
    # ANALYZE sees this transaction's rows: the statistics the search reads.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE incidents_incident")
        cursor.execute("ANALYZE alerts_alert")


def test_full_text_similar_incidents_come_from_the_rarest_shared_words(
    no_provider, monkeypatch
):
    monkeypatch.setattr(services, "CANDIDATES", 5)
    incident = SummarizedIncidentFactory(
        title="KubeDiskFull in payments", analysis_summary=""
    )
    for _ in range(30):
        SummarizedIncidentFactory(title="Latency high in payments", analysis_summary="")
    SummarizedIncidentFactory(
        title="KubeDiskFull in billing", analysis_summary="", is_enabled=False
    )
    # Stored last and older: ranked among every match by ts_rank alone, it
    # would tie with the others and come last.
    related = SummarizedIncidentFactory(
        title="KubeDiskFull in checkout",
        analysis_summary="",
        fired_at=timezone.now() - timedelta(days=30),
    )
    _analyze()

    similar = similar_incidents(incident)

    assert similar[0]["incident_id"] == related.pk
    assert similar[0]["score"] > similar[1]["score"]


def test_full_text_similar_incidents_still_come_when_every_word_is_common(
    no_provider, monkeypatch
):
    monkeypatch.setattr(services, "CANDIDATES", 5)
    incident = SummarizedIncidentFactory(title="payments", analysis_summary="")
    others = {
        SummarizedIncidentFactory(title="payments slow", analysis_summary="").pk
        for _ in range(30)
    }
    _analyze()

    similar = similar_incidents(incident)

    assert len(similar) == 5
    assert {item["incident_id"] for item in similar} <= others


def test_full_text_similar_incidents_rank_by_the_incidents_alert_names_too(
    no_provider,
):
    incident = SummarizedIncidentFactory(
        title="NodeDiskFull on worker-3", analysis_summary=""
    )
    by_title = SummarizedIncidentFactory(
        title="NodeDiskFull again", analysis_summary=""
    )
    by_title_and_alert = SummarizedIncidentFactory(
        title="NodeDiskFull on db", analysis_summary=""
    )
    AlertFactory(incident=by_title_and_alert, alarm_title="NodeDiskFull")
    by_alert = SummarizedIncidentFactory(title="Storage", analysis_summary="")
    AlertFactory(incident=by_alert, alarm_title="NodeDiskFull")
    AlertFactory(incident=incident, alarm_title="NodeDiskFull")

    similar = similar_incidents(incident)

    ids = [item["incident_id"] for item in similar]
    assert ids[0] == by_title_and_alert.pk
    assert set(ids) == {by_title.pk, by_title_and_alert.pk, by_alert.pk}


def test_full_text_similar_incidents_parse_words_as_the_titles_are(no_provider):
    incident = SummarizedIncidentFactory(title="Disk full in ns-7", analysis_summary="")
    same_namespace = SummarizedIncidentFactory(
        title="Pods pending in ns-7", analysis_summary=""
    )
    SummarizedIncidentFactory(title="Pods pending in ns-8", analysis_summary="")

    similar = similar_incidents(incident)

    assert similar[0]["incident_id"] == same_namespace.pk
    assert similar[0]["score"] > similar[1]["score"]


def test_full_text_similar_incidents_look_past_a_rare_word_only_hidden_ones_hold(
    no_provider, monkeypatch
):
    monkeypatch.setattr(services, "CANDIDATES", 5)
    incident = SummarizedIncidentFactory(
        title="QuotaExceeded in billing", analysis_summary=""
    )
    for _ in range(8):
        SummarizedIncidentFactory(
            title="Latency in billing", analysis_summary="", is_enabled=False
        )
    visible = {
        SummarizedIncidentFactory(
            title="QuotaExceeded in checkout", analysis_summary=""
        ).pk
        for _ in range(12)
    }
    _analyze()

    similar = similar_incidents(incident)

    assert len(similar) == 5
    assert {item["incident_id"] for item in similar} <= visible


def test_full_text_search_leaves_the_planner_settings_as_they_were(no_provider):
    SummarizedIncidentFactory(title="Disk full", analysis_summary="")

    embedding_search(query="disk")

    with connection.cursor() as cursor:
        cursor.execute("SHOW enable_seqscan")
        assert cursor.fetchone() == ("on",)
        cursor.execute("SHOW enable_indexscan")
        assert cursor.fetchone() == ("on",)
