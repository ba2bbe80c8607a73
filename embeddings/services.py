"""Storing incident embeddings and finding similar incidents (SPEC §6).

The API, the embedding task, the backfill command and the incident detail all
go through these functions. Vector search orders by the same expression the
HNSW index is built on (embeddings.schema); without a provider, or when the
provider fails on a query, search ranks by PostgreSQL full text instead and
says so with the model name "fulltext".
"""

import json
import logging
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache
from operator import attrgetter
from typing import Any, TypedDict

from django.contrib.postgres.search import SearchRank
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import (
    Exists,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Value,
)
from django.utils import timezone

from alerts.models import Alert
from embeddings import fulltext, schema
from embeddings.models import EmbeddingFailure, IncidentEmbedding
from embeddings.providers import (
    EmbeddingProvider,
    EmbeddingRejected,
    EmbeddingUnavailable,
    ProviderNotConfigured,
    get_provider,
)
from incidents.models import Incident, IncidentStatus
from incidents.services import IncidentNotFound
from kuberca.errors import DomainError

logger = logging.getLogger(__name__)

FULLTEXT_MODEL = "fulltext"
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
SIMILAR_LIMIT = 5
# A query of more words than this is cut to its rarest: they tell the most.
_MAX_QUERY_WORDS = 48


class EmbeddingColumnMismatch(DomainError):
    """The vector column is of another size than EMBEDDING_DIMENSIONS.

    The provider's vectors are checked to have EMBEDDING_DIMENSIONS, so the
    database refusing one (or the stored ones) means the column was made for
    another size: a setting changed without resize_embeddings.
    """

    code = "embedding column mismatch"
    http_status = 503
    default_message = (
        "the embedding column is not of EMBEDDING_DIMENSIONS: run manage.py"
        " resize_embeddings"
    )


def _log_column_mismatch(error: DataError) -> None:
    """Log a DataError from storing or searching vectors; the resize hint
    only when it is about dimensions (pgvector names them)."""
    text = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
    if "dimension" in text:
        logger.error(
            "embedding column refused a vector of EMBEDDING_DIMENSIONS (run"
            " manage.py resize_embeddings) error=%s",
            text,
        )
    else:
        logger.error("database refused an embedding query error=%s", text)


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
    EmbeddingFailure.objects.filter(
        model=model, incident_id__in=[incident_id for incident_id, _, _ in rows]
    ).delete()
    return [item.pk for item in created]


def embedding_failure_record(
    *,
    incident_id: str,
    model: str,
    text: str,
    reason: str,
    attempts: int,
    permanent: bool = False,
    retry_after: datetime | None = None,
) -> None:
    """Remember that embedding `text` failed, for recover_embeddings to heed.

    `permanent`: the provider refused it; else recovery waits for
    `retry_after`. Nothing is kept for an incident deleted meanwhile.
    """
    try:
        with transaction.atomic():
            EmbeddingFailure.objects.bulk_create(
                [
                    EmbeddingFailure(
                        incident_id=incident_id,
                        model=model,
                        incident_summary=text,
                        permanent=permanent,
                        attempts=attempts,
                        reason=reason[:2000],
                        retry_after=None if permanent else retry_after,
                        updated_at=timezone.now(),
                    )
                ],
                update_conflicts=True,
                unique_fields=["incident", "model"],
                update_fields=[
                    "incident_summary",
                    "permanent",
                    "attempts",
                    "reason",
                    "retry_after",
                    "updated_at",
                ],
            )
    except IntegrityError:
        logger.info("embedding failure not kept: incident_id=%s gone", incident_id)


def blocking_failures(*, model: str, now: datetime) -> QuerySet[EmbeddingFailure]:
    """Failures recovery must leave alone, for a subquery on Incident's `pk`:
    the provider refused that very text, or a retry or pause is still due."""
    return EmbeddingFailure.objects.filter(
        incident=OuterRef("pk"),
        model=model,
        incident_summary=OuterRef("analysis_summary"),
    ).filter(Q(permanent=True) | Q(retry_after__gt=now))


def embedding_store(
    *,
    incident_id: str,
    incident_summary: str,
    provider: EmbeddingProvider | None = None,
) -> tuple[int, str]:
    """Embed `incident_summary` as the incident's current row for the model.

    Returns (embedding_id, model). Raises IncidentNotFound,
    ProviderNotConfigured, EmbeddingUnavailable, EmbeddingRejected,
    EmbeddingColumnMismatch. The provider is called outside any transaction.
    """
    # An unknown incident is the caller's mistake whatever the provider.
    if not Incident.objects.filter(pk=incident_id).exists():
        raise IncidentNotFound(incident_id=incident_id)
    provider = provider or get_provider(in_request=True)
    if provider.name == "none":
        raise ProviderNotConfigured()

    [vector] = provider.embed([incident_summary])

    try:
        with transaction.atomic():
            [embedding_id] = _upsert(
                [(incident_id, incident_summary, vector)], model=provider.model
            )
    except IntegrityError:  # deleted while the provider answered
        raise IncidentNotFound(incident_id=incident_id) from None
    except DataError as error:
        _log_column_mismatch(error)
        raise EmbeddingColumnMismatch() from error
    logger.info(
        "incident embedded incident_id=%s model=%s", incident_id, provider.model
    )
    return embedding_id, provider.model


def embedding_store_if_current(
    *, incident_id: str, text: str, vector: list[float], model: str
) -> bool:
    """Store the vector only while `text` is still the incident's summary.

    A summary replaced while the provider was answering has its own task; this
    keeps an older answer from overwriting the newer embedding. Raises
    EmbeddingColumnMismatch.
    """
    try:
        with transaction.atomic():
            current = (
                Incident.objects.select_for_update(no_key=True)
                .filter(pk=incident_id, analysis_summary=text)
                .exists()
            )
            if current:
                _upsert([(incident_id, text, vector)], model=model)
    except DataError as error:
        _log_column_mismatch(error)
        raise EmbeddingColumnMismatch() from error
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


def embeddings_backfill_batch(
    *, incidents: Sequence[tuple[str, str]], provider: EmbeddingProvider
) -> tuple[int, list[str]]:
    """Embed a batch of the backfill; return (rows stored, incident ids refused).

    When the provider refuses the batch, each summary is tried alone, so the
    one it refuses costs only itself (kept as a permanent EmbeddingFailure)
    instead of stopping every later run at the same batch. Raises
    EmbeddingUnavailable, before writing anything.
    """
    try:
        return embeddings_store_batch(incidents=incidents, provider=provider), []
    except EmbeddingRejected as exc:
        if len(incidents) > 1:
            each = [
                embeddings_backfill_batch(incidents=[item], provider=provider)
                for item in incidents
            ]
            return sum(n for n, _ in each), [pk for _, ids in each for pk in ids]
        [(incident_id, text)] = incidents
        embedding_failure_record(
            incident_id=incident_id,
            model=provider.model,
            text=text,
            reason=exc.message,
            attempts=1,
            permanent=True,
        )
        logger.warning(
            "backfill summary refused incident_id=%s reason=%s",
            incident_id,
            exc.message,
        )
        return 0, [incident_id]


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


# pgvector refuses a larger hnsw.ef_search, which would fail the search.
EF_SEARCH_MAX = 1000


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
        [str(min(max(100, 2 * limit), EF_SEARCH_MAX))],
    )


def _nearest(**query: Any) -> list[dict[str, Any]]:
    sql, params = nearest_sql(**query)
    with transaction.atomic(), connection.cursor() as cursor:
        set_scan_options(cursor, limit=query["limit"])
        cursor.execute(sql, params)
        columns = [column.name for column in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


# Candidates come from each GIN index through the rarest lexemes of the query
# (as "more like this" searches pick their terms), at most this many per
# tier; only candidates are ranked, so a word that every incident holds
# cannot make one search rank the whole table.
CANDIDATES = 100


# A tier whose lexemes the statistics give more rows than this is left out
# (the incidents' first tier excepted): building the bitmap of every alert
# named KubePodCrashLooping costs more than the search is worth.
MAX_TIER_ROWS = 25_000


def _tiers(
    terms: Sequence[fulltext.Term],
    rows: Callable[[fulltext.Term], float],
    *,
    keep_first: bool,
) -> list[str]:
    """The tsquery texts that find candidates in one index, rarest first.

    First the rarest lexemes together, while their estimated matches stay
    within CANDIDATES (at least one); then the next lexeme alone, so that a
    rare word held only by hidden incidents, or by the incident itself,
    still leaves some. Tiers over MAX_TIER_ROWS are left out, but for the
    first when `keep_first`.
    """
    ordered = sorted(terms, key=lambda term: (rows(term), term.lexeme))
    rare, expected = 1, rows(ordered[0])
    while rare < len(ordered) and expected + rows(ordered[rare]) <= CANDIDATES:
        expected += rows(ordered[rare])
        rare += 1
    lexemes = [term.lexeme for term in ordered]
    tiers = []
    if keep_first or expected <= MAX_TIER_ROWS:
        tiers.append(fulltext.any_lexeme(lexemes[:rare]))
    if rare < len(lexemes) and rows(ordered[rare]) <= MAX_TIER_ROWS:
        tiers.append(fulltext.any_lexeme(lexemes[rare : rare + 1]))
    return tiers


def fulltext_terms(text: str) -> list[fulltext.Term]:
    """The lexemes of `text` that rank a search: its rarest _MAX_QUERY_WORDS."""
    with connection.cursor() as cursor:
        found = fulltext.terms(cursor, text)
    found.sort(key=lambda term: (term.incident_rows, term.lexeme))
    return found[:_MAX_QUERY_WORDS]


def fulltext_candidates(
    *,
    ranked: str,
    by_incident: Sequence[str],
    by_alert: Sequence[str],
    exclude_incident_id: str | None = None,
) -> QuerySet:
    """Visible incidents matching tsquery texts, with their ranks by `ranked`.

    Rows (pk, title, analysis_summary, fired_at, incident_rank, alert_rank):
    for each text of `by_incident`, up to CANDIDATES incidents whose text
    matches it (alert rank 0); for each of `by_alert`, up to CANDIDATES
    alerts whose name matches it, with their incident.
    """
    fields = ("title", "analysis_summary", "fired_at")
    # The rarest lexemes (the first tier) count twice: a crude inverse
    # document frequency, which ts_rank lacks.
    incidents = Incident.objects.visible().annotate(
        document=fulltext.incident_vector(),
        incident_rank=SearchRank(fulltext.incident_vector(), fulltext.TsQuery(ranked))
        + SearchRank(fulltext.incident_vector(), fulltext.TsQuery(by_incident[0])),
        alert_rank=Value(0.0, output_field=FloatField()),
    )
    through = "incident__"
    alerts = Alert.objects.filter(incident__is_enabled=True).annotate(
        document=fulltext.alert_vector(),
        incident_rank=SearchRank(
            fulltext.incident_vector(through), fulltext.TsQuery(ranked)
        )
        + SearchRank(
            fulltext.incident_vector(through), fulltext.TsQuery(by_incident[0])
        ),
        alert_rank=SearchRank(fulltext.alert_vector(), fulltext.TsQuery(ranked))
        + SearchRank(
            fulltext.alert_vector(), fulltext.TsQuery(by_alert[0] if by_alert else "")
        ),
    )
    if exclude_incident_id:
        incidents = incidents.exclude(pk=exclude_incident_id)
        alerts = alerts.exclude(incident_id=exclude_incident_id)
    # No ORDER BY: it would tempt the planner into walking an index in order.
    parts = [
        incidents.filter(document=fulltext.TsQuery(query))
        .order_by()
        .values_list("pk", *fields, "incident_rank", "alert_rank")[:CANDIDATES]
        for query in by_incident
    ] + [
        alerts.filter(document=fulltext.TsQuery(query))
        .order_by()
        .values_list(
            "incident_id",
            *(f"incident__{field}" for field in fields),
            "incident_rank",
            "alert_rank",
        )[:CANDIDATES]
        for query in by_alert
    ]
    return parts[0].union(*parts[1:], all=True)


# Stand-ins for the values of the ranking statement, compiled once by the ORM
# (compiling its text-search expressions costs more than running it).
_RANKED, _ITSELF = "\x00R", "\x00S"


def _stand_ins(side: str, count: int) -> list[str]:
    return [f"\x00{side}{n}" for n in range(count)]


@cache
def _ranking_template(
    exclude: bool, incident_tiers: int, alert_tiers: int, candidates: int
) -> tuple[str, tuple]:
    queryset = fulltext_candidates(
        ranked=_RANKED,
        by_incident=_stand_ins("I", incident_tiers),
        by_alert=_stand_ins("A", alert_tiers),
        exclude_incident_id=_ITSELF if exclude else None,
    )
    candidates_sql, params = queryset.query.sql_with_params()
    # The candidates' SQL is the ORM's own, with its values as params.
    sql = (
        "SELECT c.pk AS incident_id, c.title, c.analysis_summary,"  # noqa: S608
        " MAX(c.incident_rank) + MAX(c.alert_rank) AS raw_rank"
        f" FROM ({candidates_sql}) AS c"
        " GROUP BY c.pk, c.title, c.analysis_summary, c.fired_at"
        " ORDER BY raw_rank DESC, c.fired_at DESC, c.pk DESC LIMIT %s"
    )
    return sql, tuple(params)


def fulltext_sql(
    text: str, *, limit: int, exclude_incident_id: str | None = None
) -> tuple[str, list[Any]] | None:
    """The ranking statement over the candidates; None when `text` has no words.

    The rank counts every lexeme of the text (any may match); candidates come
    through its rarest ones. An incident's rank is that of its own text plus
    the best of its alerts among the candidates; ties go to the newer one.
    """
    terms = fulltext_terms(text)
    if not terms:
        return None
    by_incident = _tiers(terms, attrgetter("incident_rows"), keep_first=True)
    by_alert = _tiers(terms, attrgetter("alert_rows"), keep_first=False)
    values = {
        _RANKED: fulltext.any_lexeme(term.lexeme for term in terms),
        _ITSELF: exclude_incident_id,
        **dict(zip(_stand_ins("I", len(by_incident)), by_incident, strict=True)),
        **dict(zip(_stand_ins("A", len(by_alert)), by_alert, strict=True)),
    }
    sql, params = _ranking_template(
        bool(exclude_incident_id), len(by_incident), len(by_alert), CANDIDATES
    )
    params = [values.get(p, p) if isinstance(p, str) else p for p in params]
    return sql, [*params, limit]


_BITMAP_ONLY = (
    "SELECT current_setting('enable_seqscan'), current_setting('enable_indexscan'),"
    " set_config('enable_seqscan', %s, true), set_config('enable_indexscan', %s, true)"
)


def _fulltext(
    text: str, *, limit: int, exclude_incident_id: str | None = None
) -> list[dict[str, Any]]:
    """Visible incidents ranked by full text over title, summary, alert names.

    Similarity is rank / (rank + 1), in 0..1. Four statements, whatever the
    table sizes, in a transaction (a savepoint inside the caller's).
    """
    with transaction.atomic(), connection.cursor() as cursor:
        # Bitmap scans only: with a LIMIT, the planner would rather scan a
        # table until it finds enough matches, and a word its statistics do
        # not know (it guesses those common) may match nothing at all. Local
        # to this transaction, and set back for the caller's.
        cursor.execute(_BITMAP_ONLY, ["off", "off"])
        previous = cursor.fetchone()
        statement = fulltext_sql(
            text, limit=limit, exclude_incident_id=exclude_incident_id
        )
        rows: list[dict[str, Any]] = []
        if statement is not None:
            cursor.execute(*statement)
            columns = [column.name for column in cursor.description]
            rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
        cursor.execute(_BITMAP_ONLY, list(previous[:2]))
    for row in rows:
        row["similarity"] = row["raw_rank"] / (row["raw_rank"] + 1.0)
    return rows


def _score(value: float | None) -> float:
    # NaN: the cosine distance of a vector without direction (all zeros).
    value = float(value or 0.0)
    return round(value, 4) if math.isfinite(value) else 0.0


def embedding_search(*, query: str, limit: int = DEFAULT_LIMIT) -> SearchResult:
    """Rank visible incidents by similarity to `query`, one hit per incident.

    Uses the provider's embeddings when one is configured and answers, else
    full-text ranking (model "fulltext"), also when the vector column is of
    another size than EMBEDDING_DIMENSIONS. `limit` is clamped to 1..100.
    """
    limit = min(max(limit, 1), MAX_LIMIT)
    provider = get_provider(in_request=True)
    if provider.name != "none":
        try:
            [vector] = provider.embed([query])
        except (EmbeddingUnavailable, EmbeddingRejected) as exc:
            logger.warning("search falls back to full text reason=%s", exc.code)
        else:
            try:
                rows = _nearest(model=provider.model, limit=limit, vector=vector)
            except DataError as error:
                _log_column_mismatch(error)  # full text still answers
            else:
                return _search_result(rows, "incident_summary", provider.model)
    rows = _fulltext(query, limit=limit)
    return _search_result(rows, "analysis_summary", FULLTEXT_MODEL)


def _search_result(
    rows: list[dict[str, Any]], summary: str, model: str
) -> SearchResult:
    """Hits from ranked rows, whose `summary` column holds the summary shown."""
    return {
        "results": [
            {
                "incident_id": row["incident_id"],
                "incident_summary": row[summary],
                "similarity": _score(row["similarity"]),
            }
            for row in rows
        ],
        "model": model,
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
