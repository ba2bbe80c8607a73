from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from embeddings import schema
from embeddings.models import EmbeddingFailure, IncidentEmbedding
from embeddings.tests.factories import (
    IncidentEmbeddingFactory,
    SummarizedIncidentFactory,
)
from incidents.tests.factories import IncidentFactory
from kuberca.testing.http import Reply

pytestmark = pytest.mark.django_db


def _backfill(*args):
    out, err = StringIO(), StringIO()
    call_command("backfill_embeddings", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def incidents():
    wanted = SummarizedIncidentFactory.create_batch(5)
    IncidentFactory(analysis_summary="still firing")  # not resolved
    SummarizedIncidentFactory(analysis_summary="")  # no summary
    IncidentEmbeddingFactory()  # already embedded
    return wanted


def test_backfill_embeds_resolved_summaries_without_an_embedding(
    fake_gemini, incidents
):
    out, err = _backfill("--batch-size", "2")

    embedded = set(IncidentEmbedding.objects.values_list("incident_id", flat=True))
    assert {incident.pk for incident in incidents} <= embedded
    assert IncidentEmbedding.objects.count() == 6
    assert fake_gemini.calls == 3  # batches of 2, 2, 1
    assert "backfill done: embedded 5 of 5 incidents" in out
    assert "incident/s" in err or "it/s" in err  # the progress bar's rate
    assert "5/5" in err


def test_backfill_dry_run_counts_and_writes_nothing(fake_gemini, incidents):
    out, _ = _backfill("--dry-run")

    assert out.strip() == (
        "dry run: 5 incidents would be embedded with gemini-embedding-001; 1 "
        "resolved incidents (of all, whatever --after) have no summary, so "
        "nothing to embed"
    )
    assert IncidentEmbedding.objects.count() == 1
    assert fake_gemini.calls == 0


def test_backfill_dry_run_says_it_would_rebuild_the_index(fake_gemini, incidents):
    out, _ = _backfill("--dry-run", "--rebuild-index")

    assert out.strip().startswith("dry run: 5 incidents would be embedded")
    assert out.strip().endswith("; the vector index would be dropped and built again")
    assert fake_gemini.calls == 0


def test_backfill_all_counts_every_summary(fake_gemini, incidents):
    out, _ = _backfill("--all", "--dry-run")

    assert "dry run: 6 incidents" in out


def test_backfill_all_reembeds_everything(fake_gemini, incidents):
    _backfill("--all")

    assert IncidentEmbedding.objects.count() == 6
    assert len(fake_gemini.texts) == 6


def test_backfill_resumes_after_a_provider_failure(fake_gemini, incidents):
    fake_gemini.fail(None, 500, 500, 500)  # batch 2 fails on every retry

    with pytest.raises(CommandError, match="embedded 2 of 5"):
        _backfill("--batch-size", "2")

    assert IncidentEmbedding.objects.count() == 1 + 2  # batch 1 kept
    out, _ = _backfill("--batch-size", "2")
    assert "embedded 3 of 3" in out
    assert IncidentEmbedding.objects.count() == 6


def test_a_summary_the_provider_refuses_does_not_block_the_others(fake_gemini):
    answer = fake_gemini.respond

    def refuse_poison(request):
        if b"poison" in request.body:
            return Reply(400, {"error": {"code": 400, "message": "no", "status": "X"}})
        return answer(request)

    fake_gemini.server.responder = refuse_poison
    refused = SummarizedIncidentFactory(analysis_summary="poison text")
    others = SummarizedIncidentFactory.create_batch(4)

    named = f"refused the summaries of 1 incidents: {refused.pk}"
    with pytest.raises(CommandError, match=named):
        _backfill("--batch-size", "2")

    embedded = set(IncidentEmbedding.objects.values_list("incident_id", flat=True))
    assert embedded == {incident.pk for incident in others}
    failure = EmbeddingFailure.objects.get()
    assert (failure.incident_id, failure.permanent) == (refused.pk, True)


def test_backfill_dry_run_says_when_no_provider_is_configured(no_provider, incidents):
    out, _ = _backfill("--dry-run")

    assert "would be embedded with gemini-embedding-001 once a provider is " in out
    assert "configured (set GEMINI_API_KEY)" in out


def test_backfill_exits_non_zero_when_no_provider_is_configured(no_provider, incidents):
    with pytest.raises(CommandError, match="no embedding provider configured"):
        _backfill()


def test_backfill_rejects_a_batch_size_over_the_provider_limit(fake_gemini):
    with pytest.raises(CommandError, match="--batch-size"):
        _backfill("--batch-size", "101")


def test_backfill_can_build_the_index_after_the_load(fake_gemini, incidents):
    out, _ = _backfill("--rebuild-index")

    from django.db import connection

    with connection.cursor() as cursor:
        assert schema.index_exists(cursor)
    assert "HNSW index built" in out
    assert IncidentEmbedding.objects.count() == 6


def test_backfill_tries_a_summary_the_provider_refused_before(fake_gemini):
    from embeddings.models import EmbeddingFailure
    from embeddings.tasks import embed_incident

    incident = SummarizedIncidentFactory()
    fake_gemini.fail(400)
    assert embed_incident.call(incident.pk) == "failed"
    assert EmbeddingFailure.objects.filter(incident=incident, permanent=True).exists()

    out, _ = _backfill()

    assert "embedded 1 of 1 incidents" in out
    assert IncidentEmbedding.objects.filter(incident=incident).exists()
    assert not EmbeddingFailure.objects.exists()
