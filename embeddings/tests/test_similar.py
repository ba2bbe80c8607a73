import pytest
from django.conf import settings
from django.utils.module_loading import import_string

from embeddings.services import similar_incidents
from embeddings.tests.factories import (
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


def test_similar_incidents_returns_at_most_five(fake_gemini):
    incident = _embedded("disk full")
    for n in range(7):
        _embedded(f"disk full {n}")

    assert len(similar_incidents(incident)) == 5


def test_similar_incidents_uses_full_text_without_an_embedding(
    fake_gemini, django_assert_max_num_queries
):
    incident = SummarizedIncidentFactory(
        title="Disk full on node", analysis_summary="volume filled up"
    )
    other = SummarizedIncidentFactory(title="Disk pressure", analysis_summary="")
    SummarizedIncidentFactory(title="TLS certificate expired", analysis_summary="")

    with django_assert_max_num_queries(6):
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
