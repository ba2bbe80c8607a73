"""`manage.py prune_deliveries`: drop deliveries older than the retention."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from alerts.services import deliveries_prune


class Command(BaseCommand):
    help = "Delete webhook deliveries older than WEBHOOK_RETENTION_DAYS."

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = deliveries_prune()
        self.stdout.write(
            f"deleted {deleted} deliveries older than "
            f"{settings.WEBHOOK_RETENTION_DAYS} days"
        )
