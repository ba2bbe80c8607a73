"""Periodic jobs: enqueued by the worker's scheduler thread, each run once."""

from datetime import UTC, datetime, timedelta

import pytest
from django_tasks_db.models import DBTaskResult

from kuberca.scheduler import run_due_jobs
from kuberca.testing.concurrency import run_at_once

STALE = "alerts.tasks.resolve_stale_alerts"
REAP = "kuberca.tasks.reap_lost_tasks"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def jobs(settings, monkeypatch):  # noqa: ANN001, ANN201
    settings.PERIODIC_TASKS = {STALE: timedelta(minutes=1), REAP: timedelta(minutes=5)}
    clock = Clock()
    monkeypatch.setattr("django.utils.timezone.now", clock)
    return clock


def enqueued(path: str) -> int:
    return DBTaskResult.objects.filter(task_path=path).count()


@pytest.mark.django_db
def test_each_job_runs_when_due_and_not_before(jobs) -> None:  # noqa: ANN001
    assert run_due_jobs() == [STALE, REAP]
    assert run_due_jobs() == []

    jobs.now = T0 + timedelta(minutes=1)
    assert run_due_jobs() == [STALE]
    jobs.now = T0 + timedelta(minutes=5)
    assert run_due_jobs() == [STALE, REAP]

    assert (enqueued(STALE), enqueued(REAP)) == (3, 2)


@pytest.mark.django_db
def test_a_job_whose_task_is_gone_is_skipped_and_the_others_run(
    jobs,
    settings,
    caplog,  # noqa: ANN001
) -> None:
    settings.PERIODIC_TASKS = {
        "alerts.tasks.no_such_task": timedelta(minutes=1),
        REAP: timedelta(minutes=5),
    }

    with caplog.at_level("WARNING", logger="kuberca.scheduler"):
        assert run_due_jobs() == [REAP]

    assert "periodic task missing task_path=alerts.tasks.no_such_task" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_workers_ticking_at_once_enqueue_each_job_once(jobs) -> None:  # noqa: ANN001
    ran = run_at_once(4, lambda _: run_due_jobs())

    assert sorted(path for paths in ran for path in paths) == [STALE, REAP]
    assert (enqueued(STALE), enqueued(REAP)) == (1, 1)
