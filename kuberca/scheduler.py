"""Periodic jobs run by the task worker, with no scheduler process of its own.

Each `manage.py db_worker` runs a small thread that, every
SCHEDULER_TICK_SECONDS, enqueues the tasks of settings.PERIODIC_TASKS that are
due. A conditional UPDATE on ScheduledJob claims each run, so however many
workers run, one of them enqueues it, in the same transaction as the claim.
"""

import logging
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string

from kuberca.models import ScheduledJob

logger = logging.getLogger(__name__)


def run_due_jobs() -> list[str]:
    """Enqueue every periodic task that is due; return the paths enqueued."""
    enqueued = []
    for task_path, every in settings.PERIODIC_TASKS.items():
        now = timezone.now()
        ScheduledJob.objects.get_or_create(task_path=task_path)
        with transaction.atomic():
            claimed = (
                ScheduledJob.objects.filter(task_path=task_path)
                .filter(
                    Q(last_enqueued_at__isnull=True)
                    | Q(last_enqueued_at__lte=now - every)
                )
                .update(last_enqueued_at=now)
            )
            if not claimed:
                continue
            try:
                task = import_string(task_path)
            except ImportError:
                logger.warning("periodic task missing task_path=%s", task_path)
                continue
            task.enqueue()
        enqueued.append(task_path)
        logger.debug("periodic task enqueued task_path=%s", task_path)
    return enqueued


def _loop(stop: threading.Event, tick: timedelta) -> None:
    while not stop.is_set():
        try:
            close_old_connections()
            run_due_jobs()
        except DatabaseError:
            logger.warning("scheduler tick failed: database unavailable")
        except Exception:
            logger.exception("scheduler tick failed")
        finally:
            close_old_connections()
        stop.wait(tick.total_seconds())


def start_thread() -> threading.Event:
    """Start the scheduler thread; set the returned event to stop it."""
    stop = threading.Event()
    tick = timedelta(seconds=settings.SCHEDULER_TICK_SECONDS)
    # A small delay lets the worker's first poll happen before the first tick.
    time.sleep(0.1)
    thread = threading.Thread(
        target=_loop, args=(stop, tick), name="kuberca-scheduler", daemon=True
    )
    thread.start()
    return stop
