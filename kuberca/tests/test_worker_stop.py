"""`manage.py db_worker` keeps a SIGTERM that came while a task ran."""

import os
import subprocess
import sys

import pytest

from kuberca.testing import live
from kuberca.testing.tasks import stop_and_lose_the_database

pytestmark = pytest.mark.django_db(transaction=True)


def test_worker_stops_when_told_to_while_the_database_went_away(tmp_path) -> None:  # noqa: ANN001
    stop_and_lose_the_database.enqueue()
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": live.database_url(),
        "KUBERCA_VAR_DIR": str(tmp_path),
        "SLACK_BOT_TOKEN": "",
        "AGENT_ENABLED": "false",
        "LOG_LEVEL": "INFO",
    }
    process = live.spawn(
        [sys.executable, str(live.ROOT / "manage.py"), "db_worker", "--no-scheduler"],
        env=env,
        log_path=log,
    )
    try:
        code = process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker ran on after SIGTERM:\n{live.log_tail(log)}")
    finally:
        live.stop(process, timeout=10)
    assert code == 0, live.log_tail(log)
    assert "lost the database while stopping" in live.log_tail(log)
