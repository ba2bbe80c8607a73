"""Work PostgreSQL aborts for a conflict is run again; what still conflicts
after the attempts is a 503 that says to try again."""

import logging

import psycopg
import pytest
from django.db import OperationalError, connection

from kuberca import transactions
from kuberca.errors import api_exception_handler


def _conflict(error_class: type[psycopg.Error]) -> OperationalError:
    error = OperationalError("aborted")
    error.__cause__ = error_class("aborted")
    return error


@pytest.mark.django_db(transaction=True)
def test_work_that_conflicted_runs_again_in_a_new_transaction(monkeypatch, caplog):
    monkeypatch.setattr(transactions, "PAUSE_STEP_SECONDS", 0)
    calls = []

    def work() -> str:
        calls.append(connection.in_atomic_block)
        if len(calls) < 3:
            raise _conflict(psycopg.errors.DeadlockDetected)
        return "done"

    with caplog.at_level(logging.WARNING):
        assert transactions.atomic_retrying(work, name="test") == "done"
    assert calls == [True, True, True]
    assert caplog.text.count("transaction conflicted") == 2


@pytest.mark.django_db(transaction=True)
def test_work_still_conflicting_after_the_attempts_raises(monkeypatch):
    monkeypatch.setattr(transactions, "PAUSE_STEP_SECONDS", 0)
    calls = []

    def work() -> None:
        calls.append(1)
        raise _conflict(psycopg.errors.SerializationFailure)

    with pytest.raises(OperationalError):
        transactions.atomic_retrying(work, name="test")
    assert len(calls) == transactions.ATTEMPTS


@pytest.mark.django_db(transaction=True)
def test_other_database_errors_run_once():
    calls = []

    def broken() -> None:
        calls.append(1)
        raise OperationalError("connection lost")

    with pytest.raises(OperationalError):
        transactions.atomic_retrying(broken, name="test")
    assert calls == [1]


def test_a_conflict_the_api_could_not_get_past_is_a_503_to_try_again():
    response = api_exception_handler(
        _conflict(psycopg.errors.DeadlockDetected), {"view": None}
    )

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.data == {
        "error": "service unavailable",
        "detail": "database busy with the same rows; try again",
    }
