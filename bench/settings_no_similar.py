"""Bench-only settings: kuberca's own, with the similar-incidents search off.

bench/api.py serves the incident detail once with this module to tell the
cost of the detail itself from the cost of the similar-incidents search.
"""

from kuberca.settings import *  # noqa: F403

SIMILAR_INCIDENTS_FINDER = "bench.settings_no_similar.no_similar_incidents"


def no_similar_incidents(incident: object, limit: int = 5) -> list[dict]:
    return []
