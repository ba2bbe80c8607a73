"""`manage.py ingest_alertmanager FILE...`: feed saved webhook bodies in.

Each file goes through the webhook's own path (stored as a delivery, then
processed), so the result is what Alertmanager posting it would give.
"""

import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from alerts.services import delivery_ingest


class Command(BaseCommand):
    help = "Ingest saved Alertmanager webhook payload files, in the order given."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("files", nargs="+", type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        failed = 0
        for path in options["files"]:
            try:
                body = path.read_bytes()
            except OSError as error:
                raise CommandError(f"cannot read {path}: {error}") from None
            result = delivery_ingest(
                body=body,
                headers={"User-Agent": "kuberca ingest_alertmanager"},
                source_address=None,
            )
            self.stdout.write(
                f"{path}: {result.http_status} {json.dumps(result.body())}"
            )
            if result.http_status != 200:
                failed += 1
        if failed:
            raise CommandError(f"{failed} file(s) were not accepted")
