"""The full-text expressions searched when no embedding provider is configured.

Migration 0003 builds GIN indexes on exactly these expressions and the search
queries filter on them, so PostgreSQL can use the indexes: change one here and
add a migration that rebuilds the index. Queries are made of the lexemes
to_tsvector gives the search text, so words parse and stem as in the documents.
"""

from collections.abc import Iterable
from typing import Any, NamedTuple

from django.contrib.postgres.search import SearchQuery, SearchVector

CONFIG = "english"
INCIDENT_INDEX = "incident_fulltext_gin"
ALERT_INDEX = "alert_fulltext_gin"


def incident_vector(through: str = "") -> SearchVector:
    """The incident's document; `through` ("incident__") reads it from an alert."""
    return (
        SearchVector(f"{through}title", weight="A", config=CONFIG)
        + SearchVector(f"{through}analysis_summary", weight="B", config=CONFIG)
        + SearchVector(f"{through}analysis_detail", weight="C", config=CONFIG)
    )


def alert_vector() -> SearchVector:
    return SearchVector("alarm_title", weight="A", config=CONFIG)


def _quoted(lexeme: str) -> str:
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def any_lexeme(lexemes: Iterable[str]) -> str:
    """The text of a tsquery matching any of the lexemes, taken as they are."""
    return " | ".join(map(_quoted, lexemes))


class TsQuery(SearchQuery):
    """A tsquery given as its text (cast, not parsed and stemmed again)."""

    template = "%(expressions)s::tsquery"

    def __init__(self, text: str) -> None:
        super().__init__(text, search_type="raw")


class Term(NamedTuple):
    lexeme: str
    incident_rows: float  # estimated incidents holding it
    alert_rows: float  # estimated alerts holding it


# The planner's statistics of each GIN index expression hold its most common
# lexemes with the share of rows holding each; a lexeme missing there is rarer
# than all of them (or absent), and counts as 0. No statistics yet: all 0.
_SHARE_SQL = """
WITH stats AS (
    SELECT tablename, most_common_elems::text::text[] AS lexemes,
           most_common_elem_freqs AS shares
    FROM pg_stats WHERE schemaname = current_schema() AND tablename IN (%s, %s)
)
SELECT l.lexeme,
       COALESCE((SELECT shares[array_position(lexemes, l.lexeme)] FROM stats
                 WHERE tablename = %s), 0)
         * (SELECT GREATEST(reltuples, 0) FROM pg_class WHERE oid = %s::regclass),
       COALESCE((SELECT shares[array_position(lexemes, l.lexeme)] FROM stats
                 WHERE tablename = %s), 0)
         * (SELECT GREATEST(reltuples, 0) FROM pg_class WHERE oid = %s::regclass)
FROM unnest(tsvector_to_array(to_tsvector(%s::regconfig, %s))) AS l(lexeme)
"""


def terms(cursor: Any, text: str) -> list[Term]:
    """The lexemes of `text` with how many incidents and alerts hold each.

    One cheap statement on the catalogue: the counts are the planner's
    estimates, good enough to tell a rare word from one in every incident.
    """
    cursor.execute(
        _SHARE_SQL,
        [
            INCIDENT_INDEX,
            ALERT_INDEX,
            INCIDENT_INDEX,
            "incidents_incident",
            ALERT_INDEX,
            "alerts_alert",
            CONFIG,
            text,
        ],
    )
    return [Term(lexeme, float(i), float(a)) for lexeme, i, a in cursor.fetchall()]
