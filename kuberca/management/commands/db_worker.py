"""`manage.py db_worker`: django-tasks-db's worker plus kuberca's periodic jobs."""

import os
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV
from django_tasks_db.management.commands.db_worker import Command as WorkerCommand

from kuberca import metrics, scheduler


class Command(WorkerCommand):
    help = "Run a background task worker, and enqueue periodic jobs when due."

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--no-scheduler",
            action="store_false",
            dest="scheduler",
            help="Do not enqueue periodic jobs from this worker.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        run_scheduler = options.pop("scheduler", True)
        in_reloader_parent = options.get("reload") and (
            os.environ.get(DJANGO_AUTORELOAD_ENV) != "true"
        )
        if run_scheduler and not options.get("batch") and not in_reloader_parent:
            scheduler.start_thread()
        if not options.get("batch") and not in_reloader_parent:
            metrics.start_worker_exporter(settings.WORKER_METRICS_PORT)
        super().handle(*args, **options)
