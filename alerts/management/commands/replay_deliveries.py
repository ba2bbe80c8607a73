"""`manage.py replay_deliveries [--id N] [--since T] [--until T]`.

Processes stored webhook deliveries again, oldest first. Ingestion is
idempotent, so a replay changes only what a fixed bug got wrong.
"""

from argparse import ArgumentParser, ArgumentTypeError
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from alerts.models import WebhookDelivery
from alerts.payload import parse_time
from alerts.services import DeliveryNotFound, delivery_replay


def _time(text: str) -> datetime:
    """An argparse type; its error is one line naming the option.

    A CommandError raised here would escape argparse as a traceback.
    """
    try:
        value = parse_time(text)
    except ValueError:
        value = None
    if value is None:
        raise ArgumentTypeError(f"not an RFC 3339 time with an offset: {text!r}")
    return value


def _window(since: datetime | None, until: datetime | None) -> str:
    if since and until:
        return f"--since {since.isoformat()} --until {until.isoformat()}"
    if since:
        return f"--since {since.isoformat()}"
    return f"--until {until.isoformat()}"


class Command(BaseCommand):
    help = "Re-process stored webhook deliveries by id or time range."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--id", type=int, action="append", dest="ids", help="repeat for several"
        )
        parser.add_argument(
            "--since", type=_time, help="RFC 3339, e.g. 2026-12-03T16:00:00Z"
        )
        parser.add_argument("--until", type=_time, help="RFC 3339, as --since")

    def handle(self, *args: Any, **options: Any) -> None:
        since, until = options["since"], options["until"]
        if since and until and since >= until:
            raise CommandError(
                f"--since must be before --until ({since.isoformat()} is not"
                f" before {until.isoformat()})"
            )
        deliveries = WebhookDelivery.objects.order_by("received_at", "pk")
        if options["ids"]:
            deliveries = deliveries.filter(pk__in=options["ids"])
        if options["since"]:
            deliveries = deliveries.filter(received_at__gte=options["since"])
        if options["until"]:
            deliveries = deliveries.filter(received_at__lt=options["until"])
        if not (options["ids"] or options["since"] or options["until"]):
            raise CommandError("give --id, --since or --until")
        ids = list(deliveries.values_list("pk", flat=True))
        if options["ids"] and len(ids) < len(set(options["ids"])):
            missing = sorted(set(options["ids"]) - set(ids))[0]
            if since or until:
                # Given with --id, the window must hold the delivery too.
                outside = WebhookDelivery.objects.filter(pk=missing).first()
                if outside is not None:
                    raise CommandError(
                        f"delivery {missing} was received at "
                        f"{outside.received_at.isoformat()}, outside "
                        f"{_window(since, until)}"
                    )
            raise CommandError(f"no delivery with id {missing}")
        stored = failed = gone = 0
        for delivery_id in ids:
            try:
                result = delivery_replay(delivery_id=delivery_id)
            except DeliveryNotFound:
                # Pruned (past WEBHOOK_RETENTION_DAYS) since the ids were read.
                gone += 1
                self.stdout.write(
                    f"delivery {delivery_id}: gone (deleted since the replay began)"
                )
                continue
            stored += result.stored
            line = (
                f"delivery {delivery_id}: {result.http_status} stored={result.stored} "
                f"duplicates={result.duplicates}"
            )
            if result.http_status != 200:
                failed += 1
                line += f" error={result.error}: {result.detail}"
            self.stdout.write(line)
        done = len(ids) - gone
        summary = (
            f"replayed {done} deliver{'y' if done == 1 else 'ies'}, "
            f"{stored} alert{'' if stored == 1 else 's'} changed"
        )
        self.stdout.write(summary + (f"; {gone} gone" if gone else ""))
        if failed:
            # As ingest_alertmanager: a script or CronJob must see it.
            raise CommandError(
                f"{failed} of {len(ids) - gone} deliveries were not processed"
                " (see above)"
            )
