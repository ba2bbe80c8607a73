"""Tasks that only tests enqueue, for the worker's own behaviour."""

import os
import signal

from django.db import connection
from django_tasks import task


@task()
def stop_and_lose_the_database() -> None:
    """Ask this worker to stop, then lose its database connection, so that
    the worker cannot record the task's end: a database going away just as
    a pod is told to stop."""
    os.kill(os.getpid(), signal.SIGTERM)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
