from datetime import timedelta

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from embeddings.models import EmbeddingFailure, IncidentEmbedding
from embeddings.tasks import (
    GAVE_UP_PAUSE,
    embed_incident,
    recover_embeddings,
    retry_delay,
)
from embeddings.tests.factories import (
    IncidentEmbeddingFactory,
    SummarizedIncidentFactory,
)
from incidents import events
from incidents.models import Incident
from kuberca.testing.http import Reply

pytestmark = pytest.mark.django_db

TASK = "embeddings.tasks.embed_incident"


def _queued(path=TASK):
    return list(DBTaskResult.objects.filter(task_path=path))


def test_a_stored_summary_enqueues_the_embedding_after_commit(
    fake_gemini, django_capture_on_commit_callbacks
):
    incident = SummarizedIncidentFactory()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        events.incident_summarized.send(
            sender=Incident, incident_id=incident.pk, generation=1
        )
        assert _queued() == []  # nothing before commit

    assert len(callbacks) == 1
    [queued] = _queued()
    assert queued.args_kwargs["args"] == [incident.pk]


def test_a_stored_summary_enqueues_nothing_without_a_provider(
    no_provider, django_capture_on_commit_callbacks
):
    incident = SummarizedIncidentFactory()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        events.incident_summarized.send(
            sender=Incident, incident_id=incident.pk, generation=1
        )

    assert callbacks == []
    assert _queued() == []


def test_embed_incident_embeds_the_summary(fake_gemini):
    incident = SummarizedIncidentFactory(analysis_summary="etcd lost quorum")

    assert embed_incident.call(incident.pk) == "embedded"

    row = IncidentEmbedding.objects.get(incident=incident)
    assert row.incident_summary == "etcd lost quorum"
    assert row.model == "gemini-embedding-001"
    assert fake_gemini.texts == ["etcd lost quorum"]


def test_embed_incident_twice_embeds_once(fake_gemini):
    incident = SummarizedIncidentFactory()

    first = embed_incident.call(incident.pk)
    second = embed_incident.call(incident.pk)

    assert (first, second) == ("embedded", "current")
    assert IncidentEmbedding.objects.count() == 1
    assert fake_gemini.calls == 1


def test_embed_incident_replaces_the_embedding_of_an_older_summary(fake_gemini):
    old = IncidentEmbeddingFactory(incident_summary="old text")

    assert embed_incident.call(old.incident_id) == "embedded"

    [row] = IncidentEmbedding.objects.all()
    assert row.pk == old.pk
    assert row.incident_summary == old.incident.analysis_summary


def test_embed_incident_does_nothing_without_a_provider(no_provider):
    incident = SummarizedIncidentFactory()

    assert embed_incident.call(incident.pk) == "disabled"
    assert not IncidentEmbedding.objects.exists()


def test_embed_incident_skips_unknown_or_unsummarised_incidents(fake_gemini):
    incident = SummarizedIncidentFactory(analysis_summary="")

    assert embed_incident.call(incident.pk) == "skipped"
    assert embed_incident.call("INC-gone") == "skipped"
    assert fake_gemini.calls == 0


def test_embed_incident_retries_later_on_a_transient_error(fake_gemini):
    incident = SummarizedIncidentFactory()
    fake_gemini.fail_always = 503
    before = timezone.now()

    assert embed_incident.call(incident.pk) == "retrying"

    [retry] = _queued()
    assert retry.args_kwargs["args"] == [incident.pk, 2]
    assert retry.run_after >= before + timedelta(seconds=15)
    assert not IncidentEmbedding.objects.exists()


def test_embed_incident_gives_up_after_the_last_attempt(fake_gemini, settings):
    incident = SummarizedIncidentFactory()
    fake_gemini.fail_always = 503

    result = embed_incident.call(incident.pk, settings.EMBEDDING_TASK_MAX_ATTEMPTS)

    assert result == "failed"
    assert _queued() == []


def test_embed_incident_does_not_retry_a_refusal(fake_gemini):
    incident = SummarizedIncidentFactory()
    fake_gemini.fail(400)

    assert embed_incident.call(incident.pk) == "failed"
    assert _queued() == []


def test_embed_incident_does_not_retry_a_vector_it_cannot_store(
    fake_gemini, local_server, settings
):
    nan = [float("nan")] * settings.EMBEDDING_DIMENSIONS
    server = local_server(lambda request: Reply(body={"embeddings": [{"values": nan}]}))
    settings.GEMINI_API_URL = server.url
    incident = SummarizedIncidentFactory()

    assert embed_incident.call(incident.pk) == "failed"

    failure = EmbeddingFailure.objects.get(incident=incident)
    assert failure.permanent and "unusable vector" in failure.reason
    assert _queued() == []
    assert not IncidentEmbedding.objects.exists()


def test_a_vector_column_of_another_size_fails_the_task_and_pauses_recovery(
    fake_gemini, column_of_another_size, caplog
):
    incident = column_of_another_size
    IncidentEmbedding.objects.all().delete()
    Incident.objects.filter(pk=incident.pk).update(
        updated_at=timezone.now() - timedelta(minutes=30)
    )

    assert embed_incident.call(incident.pk) == "failed"

    failure = EmbeddingFailure.objects.get(incident=incident)
    assert not failure.permanent
    assert "resize_embeddings" in failure.reason
    assert failure.retry_after >= timezone.now() + GAVE_UP_PAUSE - timedelta(minutes=1)
    assert "resize_embeddings" in caplog.text
    assert recover_embeddings.call() == 0
    assert fake_gemini.calls == 1


def test_retry_delay_grows_and_stays_bounded():
    assert timedelta(seconds=15) <= retry_delay(1) <= timedelta(seconds=30)
    assert timedelta(seconds=60) <= retry_delay(3) <= timedelta(seconds=120)
    assert retry_delay(30) <= timedelta(hours=1)


def test_recover_embeddings_enqueues_summaries_left_without_one(fake_gemini):
    stale = timezone.now() - timedelta(minutes=30)
    lost = SummarizedIncidentFactory()
    done = IncidentEmbeddingFactory().incident
    fresh = SummarizedIncidentFactory()
    Incident.objects.filter(pk__in=[lost.pk, done.pk]).update(updated_at=stale)

    assert recover_embeddings.call() == 1

    assert [task.args_kwargs["args"] for task in _queued()] == [[lost.pk]]
    assert fresh.pk != lost.pk


def test_recover_embeddings_does_nothing_without_a_provider(no_provider):
    lost = SummarizedIncidentFactory()
    Incident.objects.filter(pk=lost.pk).update(
        updated_at=timezone.now() - timedelta(hours=1)
    )

    assert recover_embeddings.call() == 0
    assert _queued() == []


def _stale(incident: Incident) -> None:
    """As if the summary was stored long enough ago for recovery to look."""
    Incident.objects.filter(pk=incident.pk).update(
        updated_at=timezone.now() - timedelta(minutes=30)
    )


def test_a_refused_summary_is_not_asked_for_again(fake_gemini):
    incident = SummarizedIncidentFactory()
    fake_gemini.fail(400)
    assert embed_incident.call(incident.pk) == "failed"
    failure = EmbeddingFailure.objects.get(incident=incident)
    assert failure.permanent and failure.incident_summary == incident.analysis_summary
    _stale(incident)

    assert recover_embeddings.call() == 0

    # A new summary is another text: it is embedded afresh.
    Incident.objects.filter(pk=incident.pk).update(
        analysis_summary="a rewritten summary"
    )
    _stale(incident)
    assert recover_embeddings.call() == 1
    assert embed_incident.call(incident.pk) == "embedded"
    assert not EmbeddingFailure.objects.exists()


def test_recovery_starts_no_second_round_while_a_retry_is_due(fake_gemini):
    incident = SummarizedIncidentFactory()
    fake_gemini.fail_always = 503
    assert embed_incident.call(incident.pk) == "retrying"
    _stale(incident)

    assert recover_embeddings.call() == 0
    assert len(_queued()) == 1  # only the retry

    # The retry was lost: once its time and margin passed, recovery takes it.
    EmbeddingFailure.objects.update(retry_after=timezone.now() - timedelta(seconds=1))
    assert recover_embeddings.call() == 1


def test_recovery_pauses_after_the_retries_ran_out(fake_gemini, settings):
    incident = SummarizedIncidentFactory()
    fake_gemini.fail_always = 503
    before = timezone.now()
    last = settings.EMBEDDING_TASK_MAX_ATTEMPTS
    assert embed_incident.call(incident.pk, last) == "failed"
    failure = EmbeddingFailure.objects.get(incident=incident)
    assert (failure.permanent, failure.attempts) == (False, last)
    assert failure.retry_after >= before + GAVE_UP_PAUSE
    _stale(incident)

    assert recover_embeddings.call() == 0
    EmbeddingFailure.objects.update(retry_after=timezone.now() - timedelta(seconds=1))
    assert recover_embeddings.call() == 1
    fake_gemini.fail_always = None
    assert embed_incident.call(incident.pk) == "embedded"
    assert not EmbeddingFailure.objects.exists()
