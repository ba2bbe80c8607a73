"""Background embedding of incident summaries (SPEC §5.2, §6).

The durable truth is the incident itself: a resolved incident whose summary
has no embedding of that exact text for the current model still needs one.
`embed_incident` does the work and is safe to run twice; `recover_embeddings`
re-enqueues the ones whose task was lost.
"""

import logging
import random
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django_tasks import task

from embeddings.models import IncidentEmbedding
from embeddings.providers import EmbeddingRejected, EmbeddingUnavailable, get_provider
from embeddings.services import (
    EmbeddingColumnMismatch,
    blocking_failures,
    embedding_failure_record,
    embedding_store_if_current,
)
from incidents.models import Incident, IncidentStatus

logger = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 30
RETRY_MAX_SECONDS = 3600
# recover_embeddings looks at summaries stored in this window: younger ones
# still have their own task, older ones are the backfill command's job.
RECOVER_AFTER = timedelta(minutes=5)
RECOVER_WITHIN = timedelta(days=2)
RECOVER_BATCH = 200
# After a task's retries ran out on an unavailable provider, recovery starts
# another round no sooner than this.
GAVE_UP_PAUSE = timedelta(hours=1)


def retry_delay(attempt: int) -> timedelta:
    """Exponential backoff with full jitter in its upper half."""
    ceiling = min(RETRY_BASE_SECONDS * 2 ** (attempt - 1), RETRY_MAX_SECONDS)
    return timedelta(seconds=ceiling * (0.5 + random.random() / 2))  # noqa: S311


@task()
def embed_incident(incident_id: str, attempt: int = 1) -> str:
    """Embed the incident's summary, replacing its row for the current model.

    Returns what happened: "disabled" (no provider), "skipped" (no such
    incident or no summary), "current" (already embedded), "embedded",
    "moved on" (the summary changed meanwhile), "retrying" or "failed".
    Transient provider errors re-enqueue this task with backoff, up to
    EMBEDDING_TASK_MAX_ATTEMPTS; refusals are not retried, and a vector
    column of another size waits GAVE_UP_PAUSE. Each failure is kept as an
    EmbeddingFailure, which recover_embeddings heeds.
    """
    provider = get_provider()
    if provider.name == "none":
        return "disabled"
    incident = Incident.objects.filter(pk=incident_id).only("analysis_summary").first()
    if incident is None or not incident.analysis_summary:
        return "skipped"
    text = incident.analysis_summary
    already = IncidentEmbedding.objects.filter(
        incident_id=incident_id, model=provider.model, incident_summary=text
    ).exists()
    if already:
        return "current"

    def failed(reason: str, **kwargs: Any) -> None:
        embedding_failure_record(
            incident_id=incident_id,
            model=provider.model,
            text=text,
            reason=reason,
            attempts=attempt,
            **kwargs,
        )

    try:
        [vector] = provider.embed([text])
    except EmbeddingUnavailable as exc:
        now = timezone.now()
        if attempt >= settings.EMBEDDING_TASK_MAX_ATTEMPTS:
            failed(exc.message, retry_after=now + GAVE_UP_PAUSE)
            logger.error(
                "incident embedding gave up incident_id=%s attempts=%s reason=%s",
                incident_id,
                attempt,
                exc.message,
            )
            return "failed"
        delay = retry_delay(attempt)
        # Recovery leaves it to this retry (and to a lost one's margin).
        failed(exc.message, retry_after=now + delay + RECOVER_AFTER)
        embed_incident.using(run_after=now + delay).enqueue(incident_id, attempt + 1)
        logger.warning(
            "incident embedding retry incident_id=%s attempt=%s in_seconds=%d",
            incident_id,
            attempt,
            delay.total_seconds(),
        )
        return "retrying"
    except EmbeddingRejected as exc:
        failed(exc.message, permanent=True)
        logger.error(
            "incident embedding rejected incident_id=%s reason=%s",
            incident_id,
            exc.message,
        )
        return "failed"

    try:
        stored = embedding_store_if_current(
            incident_id=incident_id, text=text, vector=vector, model=provider.model
        )
    except EmbeddingColumnMismatch as exc:
        # Until resize_embeddings runs no vector fits: asking the provider
        # again at each recovery would only pay for answers to throw away.
        failed(exc.message, retry_after=timezone.now() + GAVE_UP_PAUSE)
        return "failed"
    if not stored:
        return "moved on"
    logger.info(
        "incident embedded incident_id=%s model=%s", incident_id, provider.model
    )
    return "embedded"


@task()
def recover_embeddings() -> int:
    """Enqueue embed_incident for recent summaries that still have no embedding.

    Not for a text the provider refused, nor while a retry is due or a pause
    after spent retries (GAVE_UP_PAUSE) lasts.
    """
    provider = get_provider()
    if provider.name == "none":
        return 0
    now = timezone.now()
    current = IncidentEmbedding.objects.filter(
        incident=OuterRef("pk"),
        model=provider.model,
        incident_summary=OuterRef("analysis_summary"),
    )
    missing = list(
        Incident.objects.filter(
            status=IncidentStatus.RESOLVED,
            updated_at__lt=now - RECOVER_AFTER,
            updated_at__gte=now - RECOVER_WITHIN,
        )
        .exclude(analysis_summary="")
        .exclude(Exists(current))
        .exclude(Exists(blocking_failures(model=provider.model, now=now)))
        .order_by("updated_at")
        .values_list("pk", flat=True)[:RECOVER_BATCH]
    )
    for incident_id in missing:
        embed_incident.enqueue(incident_id)
    if missing:
        logger.info("embeddings recovered count=%s", len(missing))
    return len(missing)
