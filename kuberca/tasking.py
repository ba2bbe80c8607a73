"""Enqueue tasks so the request id of the web request follows them into the worker.

`enqueue_on_commit(task, *args)` captures the current request id and, at
commit, enqueues the task with it as the keyword `request_id`. The task body
is wrapped in `@with_request_id` (under `@task()`), which takes that keyword off
and sets it for the task's log lines, so one id greps a webhook from its
request to every task it caused, and to the tasks those re-enqueue.
"""

import functools
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, ParamSpec, TypeVar

from django.db import transaction
from django_tasks.base import Task, TaskResult

from kuberca.logging import request_id_var

P = ParamSpec("P")
T = TypeVar("T")

NO_REQUEST_ID = "-"


def current_request_id() -> str:
    """The id of the request or task running now; "-" outside both."""
    return request_id_var.get()


def enqueue(task: Task, *args: Any, **kwargs: Any) -> TaskResult:
    """Enqueue `task` now, passing the current request id as `request_id`.

    For a task re-enqueueing itself (a retry with `task.using(run_after=...)`)
    or a command outside any transaction.
    """
    kwargs.setdefault("request_id", current_request_id())
    return task.enqueue(*args, **kwargs)


def enqueue_on_commit(
    task: Task, *args: Any, using: str | None = None, **kwargs: Any
) -> None:
    """Enqueue `task(*args, **kwargs, request_id=<current>)` once the transaction
    commits (at once outside a transaction); never before the rows it reads exist.

    The request id is taken now, while the request's context is still set.
    """
    kwargs.setdefault("request_id", current_request_id())
    transaction.on_commit(partial(task.enqueue, *args, **kwargs), using=using)


@contextmanager
def request_id_context(request_id: str | None) -> Iterator[str]:
    """Set the request id for log lines inside the block; a fresh one if none."""
    if not request_id or request_id == NO_REQUEST_ID:
        request_id = "task-" + uuid.uuid4().hex
    token = request_id_var.set(request_id)
    try:
        yield request_id
    finally:
        request_id_var.reset(token)


def with_request_id(func: Callable[P, T]) -> Callable[P, T]:
    """Let a task body accept `request_id=` and log under it.

    Put it under `@task()`. A task called without one (the scheduler, a test's
    `task.call(pk)`) gets a fresh id, so its lines still group.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        request_id = kwargs.pop("request_id", None)
        with request_id_context(request_id if isinstance(request_id, str) else None):
            return func(*args, **kwargs)

    return wrapper
