"""`manage.py serve` (what `make run` starts): says when it is ready, stops all."""

import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from kuberca.management.commands import serve
from kuberca.testing import live
from kuberca.testing.commands import run_from_command_line


def _wait_for_line(log: Path, line: str, process, timeout: float) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while line not in live.log_tail(log, chars=100_000):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"no {line!r} in the output:\n{live.log_tail(log)}")
        time.sleep(0.1)


def test_serve_says_when_web_answers_and_stops_web_and_worker(
    transactional_db,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    port = live.free_port()
    env = {
        **os.environ,
        "DATABASE_URL": live.database_url(),
        "KUBERCA_VAR_DIR": str(tmp_path),
        "ALLOWED_HOSTS": "*",
        "SLACK_BOT_TOKEN": "",
        "AGENT_ENABLED": "false",
        "LOG_LEVEL": "INFO",
    }
    log = tmp_path / "serve.log"
    command = [sys.executable, str(live.ROOT / "manage.py"), "serve"]
    process = live.spawn(
        [*command, "--port", str(port), "--web-workers", "1"], env=env, log_path=log
    )
    try:
        _wait_for_line(log, "kuberca is ready.", process, timeout=60)
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert health.status_code == 200
        output = live.log_tail(log, chars=100_000)
        assert output.index("kuberca is starting") < output.index("kuberca is ready.")
        for process_name in ("web", "worker"):
            line = f"optional part off part=agent process={process_name}"
            _wait_for_line(log, line, process, timeout=30)
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 3  # gunicorn master, its worker, db_worker

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=40) == 0
    finally:
        live.stop(process, timeout=10)
    assert "kuberca stopped" in live.log_tail(log)
    assert not [c for c in children if c.is_running() and c.status() != "zombie"]


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [
        ("--port", "99999", "from 1 to 65535"),
        ("--port", "0", "from 1 to 65535"),
        ("--web-workers", "0", "from 1 to 64"),
    ],
)
def test_serve_rejects_a_bad_port_or_worker_count_in_one_line(
    monkeypatch,  # noqa: ANN001
    option: str,
    value: str,
    allowed: str,
) -> None:
    def started(*args: object, **options: object) -> None:
        pytest.fail(f"serve started with {option} {value}")

    monkeypatch.setattr(serve.Command, "handle", started)

    code, stderr = run_from_command_line("serve", option, value)

    assert code == 2
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1] == (
        f"manage.py serve: error: argument {option}: must be {allowed}, not {value}"
    )
