"""Rows the project itself keeps: the periodic-job schedule of the worker."""

from django.db import models


class ScheduledJob(models.Model):
    """When a periodic task was last enqueued; claimed by a conditional UPDATE."""

    task_path = models.CharField(max_length=200, primary_key=True)
    last_enqueued_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.task_path
