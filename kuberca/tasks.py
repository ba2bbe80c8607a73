"""Tasks that keep the task system itself healthy."""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django_tasks import task
from django_tasks_db.models import DBTaskResult

logger = logging.getLogger(__name__)


@task()
def reap_lost_tasks() -> int:
    """Mark tasks RUNNING far longer than any task may run as FAILED.

    A worker killed with SIGKILL leaves its task RUNNING for ever; the work it
    was doing is recovered by each app's own `recover_*` job, which finds the
    unfinished rows, so this only makes the lost task visible in the admin.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.TASK_LOST_AFTER_SECONDS)
    lost = DBTaskResult.objects.running().filter(started_at__lt=cutoff)
    count = lost.update(
        status="FAILED",
        finished_at=timezone.now(),
        exception_class_path="kuberca.tasks.WorkerLost",
        traceback="worker stopped while running this task",
    )
    if count:
        logger.warning("lost tasks marked failed count=%s", count)
    return count
