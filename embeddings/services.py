"""Storing incident embeddings and finding similar incidents (SPEC §6).

The API, the embedding task, the backfill command and the incident detail all
go through these functions. Vector search orders by the same expression the
HNSW index is built on (embeddings.schema); without a provider, or when the
provider fails on a query, search ranks by PostgreSQL full text instead and
says so with the model name "fulltext".
"""

import json
import logging
import re
from collections.abc import Sequence
from typing import Any, TypedDict

from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db import IntegrityError, connection, transaction
from django.db.models import (
    Exists,
    F,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from alerts.models import Alert
from embeddings import fulltext, schema
from embeddings.models import IncidentEmbedding
from embeddings.providers import (
    EmbeddingProvider,
    EmbeddingRejected,
    EmbeddingUnavailable,
    ProviderNotConfigured,
    get_provider,
)
from incidents.models import Incident, IncidentStatus
from incidents.services import IncidentNotFound

logger = logging.getLogger(__name__)

FULLTEXT_MODEL = "fulltext"
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
SIMILAR_LIMIT = 5
# A query of more words than this is cut: ranking by the first ones is enough.
_MAX_QUERY_WORDS = 48
_WORD = re.compile(r"[^\W_]+")


class SearchHit(TypedDict):
    incident_id: str
    incident_summary: str
    similarity: float


class SearchResult(TypedDict):
    results: list[SearchHit]
    model: str


class SimilarIncident(TypedDict):
    incident_id: str
    title: str
    score: float


def _upsert(rows: Sequence[tuple[str, str, list[float]]], *, model: str) -> list[int]:
    """Make each (incident_id, text, vector) the incident's row for `model`."""
    now = timezone.now()
    objects = [
        IncidentEmbedding(
            incident_id=incident_id,
            incident_summary=text,
            embedding=vector,
            model=model,
            created_at=now,
        )
        for incident_id, text, vector in rows
    ]
    created = IncidentEmbedding.objects.bulk_create(
        objects,
        update_conflicts=True,
        unique_fields=["incident", "model"],
        update_fields=["incident_summary", "embedding", "created_at"],
    )
    return [item.pk for item in created]


def embedding_store(
    *,
    incident_id: str,
    incident_summary: str,
    provider: EmbeddingProvider | None = None,
) -> tuple[int, str]:
    """Embed `incident_summary` as the incident's current row for the model.

    Returns (embedding_id, model). Raises IncidentNotFound,
    ProviderNotConfigured, EmbeddingUnavailable, EmbeddingRejected. The
    provider is called outside any transaction.
    """
    provider = provider or get_provider()
    if provider.name == "none":
        raise ProviderNotConfigured()
    if not Incident.objects.filter(pk=incident_id).exists():
        raise IncidentNotFound(incident_id=incident_id)

    [vector] = provider.embed([incident_summary])

    try:
        with transaction.atomic():
            [embedding_id] = _upsert(
                [(incident_id, incident_summary, vector)], model=provider.model
            )
    except IntegrityError:  # deleted while the provider answered
        raise IncidentNotFound(incident_id=incident_id) from None
    logger.info(
        "incident embedded incident_id=%s model=%s", incident_id, provider.model
    )
    return embedding_id, provider.model


def embedding_store_if_current(
    *, incident_id: str, text: str, vector: list[float], model: str
) -> bool:
    """Store the vector only while `text` is still the incident's summary.

    A summary replaced while the provider was answering has its own task; this
    keeps an older answer from overwriting the newer embedding.
    """
    with transaction.atomic():
        current = (
            Incident.objects.select_for_update()
            .filter(pk=incident_id, analysis_summary=text)
            .exists()
        )
        if current:
            _upsert([(incident_id, text, vector)], model=model)
    return current


def embeddings_store_batch(
    *, incidents: Sequence[tuple[str, str]], provider: EmbeddingProvider
) -> int:
    """Embed (incident_id, summary) pairs in one provider call and one write.

    Raises EmbeddingUnavailable or EmbeddingRejected before writing anything,
    so a failed batch leaves no partial rows.
    """
    if not incidents:
        return 0
    vectors = provider.embed([text for _, text in incidents])

    rows = [
        (incident_id, text, vector)
        for (incident_id, text), vector in zip(incidents, vectors, strict=True)
    ]
    with transaction.atomic():
        _upsert(rows, model=provider.model)
    return len(rows)


def backfill_candidates(*, model: str, everything: bool = False) -> QuerySet[Incident]:
    """Resolved incidents with a summary whose embedding for `model` is missing.

    An embedding of an older summary text counts as missing; `everything`
    takes every resolved incident with a summary. Ordered by id, so a run can
    go on after a given id.
    """
    candidates = Incident.objects.filter(status=IncidentStatus.RESOLVED).exclude(
        analysis_summary=""
    )
    if not everything:
        current = IncidentEmbedding.objects.filter(
            incident=OuterRef("pk"),
            model=model,
            incident_summary=OuterRef("analysis_summary"),
        )
        candidates = candidates.exclude(Exists(current))
    return candidates.order_by("pk")


def _vector_text(vector: Sequence[float]) -> str:
    # pgvector's text form is a JSON array; json's C encoder is the quickest
    # way to write 3,072 floats.
    return json.dumps([float(x) for x in vector], separators=(",", ":"))


def nearest_sql(
    *,
    model: str,
    limit: int,
    vector: Sequence[float] | None = None,
    like_incident_id: str | None = None,
) -> tuple[str, list[Any]]:
    """The nearest-neighbour statement, ordered by the indexed expression.

    Near `vector`, or near the stored embedding of `like_incident_id` (then
    that incident itself is left out, and nothing is found when it has no
    embedding). Visible incidents only. The query vector is sent and parsed
    once, in a CTE that both the distance and the ORDER BY read.
    """
    dimensions = IncidentEmbedding._meta.get_field("embedding").dimensions
    expression = schema.column_expression(dimensions, "e.embedding")
    if vector is not None:
        target_sql = f"SELECT %s::{schema.vector_type(dimensions)} AS v"
        target_params: list[Any] = [_vector_text(vector)]
        exclude_sql, exclude_params = "", []
    else:
        target_sql = (
            f"SELECT {schema.column_expression(dimensions, 'q.embedding')} AS v"  # noqa: S608
            f" FROM {schema.TABLE} q WHERE q.incident_id = %s AND q.model = %s"
        )
        target_params = [like_incident_id, model]
        exclude_sql = " AND e.incident_id <> %s AND EXISTS (SELECT 1 FROM target)"
        exclude_params = [like_incident_id]
    # Only constants of embeddings.schema are formatted in; values are params.
    sql = (
        f"WITH target AS MATERIALIZED ({target_sql})"  # noqa: S608
        " SELECT e.incident_id, e.incident_summary, i.title,"
        f" 1 - ({expression} <=> (SELECT v FROM target)) AS similarity"
        f" FROM {schema.TABLE} e"
        " JOIN incidents_incident i ON i.incident_id = e.incident_id"
        f" WHERE e.model = %s AND i.is_enabled{exclude_sql}"
        f" ORDER BY {expression} <=> (SELECT v FROM target)"
        " LIMIT %s"
    )
    return sql, [*target_params, model, *exclude_params, limit]


def set_scan_options(cursor: Any, *, limit: int) -> None:
    """Widen the HNSW scan for this transaction (one statement).

    The default ef_search of 40 caps how many rows one index scan returns and
    gives recall@10 of about 0.96; 100 gives 0.99 (bench/search.py). Strict
    iterative scans keep the LIMIT filled when hidden incidents or other
    models' rows are filtered out after the index scan.
    """
    cursor.execute(
        "SELECT set_config('hnsw.ef_search', %s, true),"
        " set_config('hnsw.iterative_scan', 'strict_order', true)",
        [str(max(100, 2 * limit))],
    )


def _nearest(**query: Any) -> list[dict[str, Any]]:
    sql, params = nearest_sql(**query)
    with transaction.atomic(), connection.cursor() as cursor:
        set_scan_options(cursor, limit=query["limit"])
        cursor.execute(sql, params)
        columns = [column.name for column in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _fulltext_query(text: str) -> SearchQuery | None:
    # Any word may match (OR), so a whole summary used as the query still
    # finds incidents that share some of its words; ts_rank favours more.
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))
    if not words:
        return None
    return SearchQuery(
        " | ".join(words[:_MAX_QUERY_WORDS]),
        search_type="raw",
        config=fulltext.CONFIG,
    )


def fulltext_queryset(
    text: str, *, exclude_incident_id: str | None = None
) -> QuerySet[Incident] | None:
    """Visible incidents ranked by full text over title, summary, alert names.

    Candidates come from the two GIN indexes (incident text, alert names);
    only they are ranked. None when the text has no words.
    """
    query = _fulltext_query(text)
    if query is None:
        return None
    by_incident = (
        Incident.objects.annotate(document=fulltext.incident_vector())
        .filter(document=query)
        .values("pk")
    )
    by_alert = (
        Alert.objects.annotate(document=fulltext.alert_vector())
        .filter(document=query, incident__isnull=False)
        .values("incident_id")
    )
    alert_rank = (
        Alert.objects.filter(incident=OuterRef("pk"))
        .annotate(rank=SearchRank(fulltext.alert_vector(), query))
        .order_by("-rank")
        .values("rank")[:1]
    )
    raw_rank = SearchRank(fulltext.incident_vector(), query) + Coalesce(
        Subquery(alert_rank, output_field=FloatField()), Value(0.0)
    )
    hits = (
        Incident.objects.visible()
        .filter(Q(pk__in=by_incident) | Q(pk__in=by_alert))
        .annotate(raw_rank=raw_rank)
        .annotate(similarity=F("raw_rank") / (F("raw_rank") + Value(1.0)))
        .order_by("-raw_rank", "-fired_at")
    )
    if exclude_incident_id:
        hits = hits.exclude(pk=exclude_incident_id)
    return hits


def _fulltext(
    text: str, *, limit: int, exclude_incident_id: str | None = None
) -> list[dict[str, Any]]:
    hits = fulltext_queryset(text, exclude_incident_id=exclude_incident_id)
    if hits is None:
        return []
    fields = ("incident_id", "title", "analysis_summary", "similarity")
    return list(hits.values(*fields)[:limit])


def _score(value: float | None) -> float:
    return round(float(value or 0.0), 4)


def embedding_search(*, query: str, limit: int = DEFAULT_LIMIT) -> SearchResult:
    """Rank visible incidents by similarity to `query`, one hit per incident.

    Uses the provider's embeddings when one is configured and answers, else
    full-text ranking (model "fulltext"). `limit` is clamped to 1..100.
    """
    limit = min(max(limit, 1), MAX_LIMIT)
    provider = get_provider()
    if provider.name != "none":
        try:
            [vector] = provider.embed([query])
        except (EmbeddingUnavailable, EmbeddingRejected) as exc:
            logger.warning("search falls back to full text reason=%s", exc.code)
        else:
            rows = _nearest(model=provider.model, limit=limit, vector=vector)
            return {
                "results": [
                    {
                        "incident_id": row["incident_id"],
                        "incident_summary": row["incident_summary"],
                        "similarity": _score(row["similarity"]),
                    }
                    for row in rows
                ],
                "model": provider.model,
            }

    rows = _fulltext(query, limit=limit)
    return {
        "results": [
            {
                "incident_id": row["incident_id"],
                "incident_summary": row["analysis_summary"],
                "similarity": _score(row["similarity"]),
            }
            for row in rows
        ],
        "model": FULLTEXT_MODEL,
    }


def similar_incidents(incident: Incident, limit: int = SIMILAR_LIMIT) -> list[dict]:
    """Up to `limit` other visible incidents most like `incident`.

    By the incident's own stored embedding when it has one for the current
    model (no provider call), else by full text on its title and summary.
    Returns [{"incident_id", "title", "score"}]; a constant number of queries.
    """
    provider = get_provider()
    rows: list[dict[str, Any]] = []
    if provider.name != "none":
        rows = _nearest(model=provider.model, limit=limit, like_incident_id=incident.pk)
    if not rows:
        text = f"{incident.title} {incident.analysis_summary}"
        rows = _fulltext(text, limit=limit, exclude_incident_id=incident.pk)
    return [
        {
            "incident_id": row["incident_id"],
            "title": row["title"],
            "score": _score(row["similarity"]),
        }
        for row in rows
    ]
