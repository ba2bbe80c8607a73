"""`manage.py ingest_alertmanager FILE...`: feed saved webhook bodies in.

Each file goes through the webhook's own path (stored as a delivery, then
processed), so the result is what Alertmanager posting it would give. Like
the webhook, it reads no more of a body than WEBHOOK_MAX_BYTES allows.
"""

import json
import os
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from alerts.services import delivery_ingest


def read_body(path: Path) -> tuple[bytes, int]:
    """The file's first WEBHOOK_MAX_BYTES + 1 bytes, and its size.

    A body over the limit is answered 413 from its start, so a file of many
    gigabytes, a pipe or /dev/zero is never read whole into memory. Raises
    OSError.
    """
    with path.open("rb") as file:
        body = file.read(settings.WEBHOOK_MAX_BYTES + 1)
        size = os.fstat(file.fileno()).st_size
    return body, max(size, len(body))


class Command(BaseCommand):
    help = "Ingest saved Alertmanager webhook payload files, in the order given."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("files", nargs="+", type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        failed = 0
        for path in options["files"]:
            try:
                body, size = read_body(path)
            except OSError as error:
                raise CommandError(f"cannot read {path}: {error}") from None
            result = delivery_ingest(
                body=body,
                headers={
                    "User-Agent": "kuberca ingest_alertmanager",
                    "Content-Length": str(size),
                },
                source_address=None,
            )
            self.stdout.write(
                f"{path}: {result.http_status} {json.dumps(result.body())}"
            )
            if result.http_status != 200:
                failed += 1
        if failed:
            raise CommandError(f"{failed} file(s) were not accepted")
