"""Periodic ingestion jobs, run by the worker's scheduler (PERIODIC_TASKS).

All are cheap when there is nothing to do and safe to run twice: the stale
sweep re-checks each alert under its lock, pruning deletes what is old, and
closing abandoned deliveries only touches rows still `received`.
"""

import logging

from django_tasks import task

from alerts.services import (
    alerts_resolve_stale,
    deliveries_close_abandoned,
    deliveries_prune,
    rate_counters_prune,
)

logger = logging.getLogger(__name__)


@task()
def resolve_stale_alerts() -> int:
    """Resolve firing alerts not seen for ALERT_STALE_AFTER."""
    count = alerts_resolve_stale()
    logger.info("stale sweep done resolved=%s", count)
    return count


@task()
def prune_deliveries() -> int:
    """Drop deliveries older than WEBHOOK_RETENTION_DAYS and old rate counters."""
    rate_counters_prune()
    count = deliveries_prune()
    logger.info("delivery prune done deleted=%s", count)
    return count


@task()
def close_abandoned_deliveries() -> int:
    """Mark failed the deliveries a request left unprocessed."""
    return deliveries_close_abandoned()
