"""The full-text expressions searched when no embedding provider is configured.

Migration 0003 builds GIN indexes on exactly these expressions and the search
queries filter on them, so PostgreSQL can use the indexes: change one here and
add a migration that rebuilds the index.
"""

from django.contrib.postgres.search import SearchVector

CONFIG = "english"
INCIDENT_INDEX = "incident_fulltext_gin"
ALERT_INDEX = "alert_fulltext_gin"


def incident_vector() -> SearchVector:
    return (
        SearchVector("title", weight="A", config=CONFIG)
        + SearchVector("analysis_summary", weight="B", config=CONFIG)
        + SearchVector("analysis_detail", weight="C", config=CONFIG)
    )


def alert_vector() -> SearchVector:
    return SearchVector("alarm_title", weight="A", config=CONFIG)
