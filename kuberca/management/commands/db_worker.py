"""`manage.py db_worker`: django-tasks-db's worker plus kuberca's periodic jobs."""

import contextlib
import logging
import os
import signal
import time
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connections
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV
from django_tasks_db.management.commands.db_worker import Command as WorkerCommand
from django_tasks_db.management.commands.db_worker import Worker

from kuberca import metrics, scheduler
from kuberca.env import bare_host, env_str
from kuberca.views import log_optional_parts_off

logger = logging.getLogger(__name__)

# A worker that lost the database (a restart, a failover) tries again this
# often instead of exiting; its tasks are rows, so nothing is lost meanwhile.
DATABASE_RETRY_SECONDS = 1.0


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
            metrics.start_worker_exporter(
                settings.WORKER_METRICS_PORT,
                addr=bare_host(env_str("HOST", "0.0.0.0")),  # noqa: S104
                token=settings.METRICS_TOKEN,
            )
            log_optional_parts_off("worker")
        while True:
            try:
                super().handle(*args, **options)
                return
            except DatabaseError as exc:
                # A task cut off here stays RUNNING; the recover_* jobs pick
                # up its rows. SIGTERM while waiting still stops the worker.
                if _stop_requested():
                    logger.warning(
                        "task worker lost the database while stopping; stopped "
                        "error=%s",
                        type(exc).__name__,
                    )
                    return
                logger.warning(
                    "task worker lost the database, retrying error=%s delay=%s",
                    type(exc).__name__,
                    DATABASE_RETRY_SECONDS,
                )
                with contextlib.suppress(DatabaseError):
                    connections.close_all()
                time.sleep(DATABASE_RETRY_SECONDS)


def _stop_requested() -> bool:
    """Whether the library's worker that just failed had been told to stop.

    A SIGTERM that came while a task ran only clears the worker's `running`;
    if the database then failed the task's ending, a new worker made by the
    retry would have forgotten it, and the pod would run on to its SIGKILL.
    The worker's signal handler is its bound `shutdown`.
    """
    worker = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    return isinstance(worker, Worker) and not worker.running
