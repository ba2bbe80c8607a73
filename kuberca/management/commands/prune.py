"""`manage.py prune`: delete what is past its retention, in small batches.

Old webhook deliveries (WEBHOOK_RETENTION_DAYS), finished task results
(TASK_RETENTION_DAYS, `--tasks-days`) and, only when asked
(`--incidents-days N` or INCIDENT_RETENTION_DAYS), resolved incidents with
their alerts. Each batch is its own short transaction, so the command can run
from a CronJob beside live traffic, be killed, and simply run again.
"""

import logging
from argparse import ArgumentTypeError
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import models
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from alerts.models import Alert, AlertStatus
from alerts.services import old_deliveries
from incidents.models import Incident, IncidentStatus
from kuberca.batches import BATCH_SIZE, delete_in_batches

logger = logging.getLogger(__name__)

BATCH_SIZE_MAX = 100_000


def whole_number(minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `minimum` to `maximum`.

    Out of range is an argument error, one line naming the option, instead
    of an OverflowError or a database error once the work has begun.
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not minimum <= value <= maximum:
            raise ArgumentTypeError(f"must be from {minimum} to {maximum}, not {value}")
        return value

    return parse


def old_task_results(*, now: datetime, days: int) -> models.QuerySet:
    """Finished (successful or failed) results; never ready or running ones."""
    return DBTaskResult.objects.filter(
        status__in=["SUCCESSFUL", "FAILED"],
        finished_at__lt=now - timedelta(days=days),
    )


def old_incidents(*, now: datetime, days: int) -> models.QuerySet:
    """Resolved incidents resolved before the limit with no alert still firing.

    An incident resolved by hand keeps its firing alerts; deleting it would
    orphan them, so it stays until they resolve.
    """
    firing = Alert.objects.filter(incident=OuterRef("pk"), status=AlertStatus.FIRING)
    return Incident.objects.filter(
        status=IncidentStatus.RESOLVED,
        resolved_at__lt=now - timedelta(days=days),
    ).exclude(Exists(firing))


class Command(BaseCommand):
    help = (
        "Delete webhook deliveries and finished task results past retention, "
        "and with --incidents-days resolved incidents and their alerts."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        days = whole_number(1, settings.RETENTION_DAYS_MAX)
        parser.add_argument(
            "--deliveries-days",
            type=days,
            default=None,
            help="Keep deliveries this many days (default WEBHOOK_RETENTION_DAYS).",
        )
        parser.add_argument(
            "--tasks-days",
            type=days,
            default=None,
            help="Keep finished task results this many days "
            "(default TASK_RETENTION_DAYS, 7).",
        )
        parser.add_argument(
            "--incidents-days",
            type=whole_number(0, settings.RETENTION_DAYS_MAX),
            default=None,
            help="Delete incidents resolved more than this many days ago, with "
            "their alerts (default INCIDENT_RETENTION_DAYS; 0 = keep).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would go; delete none."
        )
        parser.add_argument(
            "--batch-size", type=whole_number(1, BATCH_SIZE_MAX), default=BATCH_SIZE
        )

    def handle(
        self,
        *args: Any,
        deliveries_days: int | None,
        tasks_days: int | None,
        incidents_days: int | None,
        dry_run: bool,
        batch_size: int,
        **options: Any,
    ) -> None:
        # In range either way: the option types check what is given, env_int
        # the settings.
        if deliveries_days is None:
            deliveries_days = settings.WEBHOOK_RETENTION_DAYS
        if tasks_days is None:
            tasks_days = settings.TASK_RETENTION_DAYS
        if incidents_days is None:
            incidents_days = settings.INCIDENT_RETENTION_DAYS
        now = timezone.now()

        counts = {
            "deliveries": delete_in_batches(
                old_deliveries(now=now, days=deliveries_days),
                batch_size=batch_size,
                dry_run=dry_run,
            ),
            "task_results": delete_in_batches(
                old_task_results(now=now, days=tasks_days),
                batch_size=batch_size,
                dry_run=dry_run,
            ),
            "incidents": 0,
            "alerts": 0,
        }
        if incidents_days:
            incidents = old_incidents(now=now, days=incidents_days)
            # Alerts first: their FK to the incident is SET_NULL, and an
            # alert without its incident is noise. Analyses go with them.
            counts["alerts"] = delete_in_batches(
                Alert.objects.filter(incident__in=incidents),
                batch_size=batch_size,
                dry_run=dry_run,
            )
            counts["incidents"] = delete_in_batches(
                incidents, batch_size=batch_size, dry_run=dry_run
            )

        verb = "would prune" if dry_run else "pruned"
        logger.info(
            "prune finished dry_run=%s deliveries=%s task_results=%s incidents=%s"
            " alerts=%s",
            dry_run,
            counts["deliveries"],
            counts["task_results"],
            counts["incidents"],
            counts["alerts"],
        )
        self.stdout.write(
            verb + " " + " ".join(f"{name}={n}" for name, n in counts.items())
        )
