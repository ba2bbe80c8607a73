"""A task enqueue that fails after commit never fails the request that committed.

The database can go away between a commit and the enqueue that follows it:
the rows are stored, so the caller must get its answer (the webhook its 200),
and the recover_* jobs enqueue the work later.
"""

import logging

import pytest
from django.db import OperationalError, transaction

from alerts import analysis
from alerts.models import AlertAnalysis
from alerts.tests.factories import AlertFactory

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]


def test_failed_analysis_enqueue_after_commit_is_logged_not_raised(
    settings, monkeypatch, caplog
) -> None:  # noqa: ANN001
    settings.AGENT_URL = "http://127.0.0.1:9"
    settings.AGENT_ENABLED = True
    alert = AlertFactory()

    def database_gone(*args: object) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(analysis, "_enqueue_pending_auto", database_gone)
    with caplog.at_level(logging.ERROR, logger="django.db.backends.base"):
        with transaction.atomic():
            analysis.analysis_create_pending(alert_ids=[alert.pk], status="firing")

    assert AlertAnalysis.objects.filter(alert=alert, state="pending").count() == 1
    assert "database_gone" in caplog.text
