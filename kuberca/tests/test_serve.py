"""`manage.py serve` (what `make run` starts): says when it is ready, stops all."""

import contextlib
import fcntl
import io
import os
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import psutil
import pytest
import requests

from alerts.tests.webhook_helpers import make_alert, make_payload
from kuberca import metrics
from kuberca.management.commands import serve
from kuberca.testing import live
from kuberca.testing.commands import run_from_command_line
from notifications.tests.fake_slack import CHANNEL, TOKEN, FakeSlack


def _wait_for_line(log: Path, line: str, process, timeout: float) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while line not in live.log_tail(log, chars=100_000):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"no {line!r} in the output:\n{live.log_tail(log)}")
        time.sleep(0.1)


def _serve_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": live.database_url(),
        "KUBERCA_VAR_DIR": str(tmp_path),
        "ALLOWED_HOSTS": "*",
        "SLACK_BOT_TOKEN": "",
        "AGENT_ENABLED": "false",
        "LOG_LEVEL": "INFO",
        **settings,
    }


def _own_terminal() -> None:
    # In the child, a session leader since start_new_session: stdin, a
    # pseudo-terminal, becomes its terminal, and its group the foreground one.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_serve_says_when_web_answers_and_stops_web_and_worker(
    transactional_db,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    port, metrics_port = live.free_port(), live.free_port()
    env = _serve_env(tmp_path, WORKER_METRICS_PORT=str(metrics_port))
    log = tmp_path / "serve.log"
    command = [sys.executable, str(live.ROOT / "manage.py"), "serve"]
    # On `::` (here written in brackets), both address families: what an
    # IPv6-only cluster sets. The worker's exporter binds it too.
    process = live.spawn(
        [*command, "--host", "[::]", "--port", str(port), "--web-workers", "1"],
        env=env,
        log_path=log,
    )
    try:
        _wait_for_line(log, "kuberca is ready.", process, timeout=60)
        # The worker may come up after the web server.
        exporter = f"worker metrics exporter listening port={metrics_port}"
        _wait_for_line(log, exporter, process, timeout=30)
        for address in ("127.0.0.1", "[::1]"):
            health = requests.get(f"http://{address}:{port}/healthz", timeout=5)
            assert health.status_code == 200
            scrape = requests.get(f"http://{address}:{metrics_port}/metrics", timeout=5)
            assert scrape.status_code == 200
        output = live.log_tail(log, chars=100_000)
        assert output.index("kuberca is starting") < output.index("kuberca is ready.")
        assert f"Webhook   http://localhost:{port}/webhook/alertmanager" in output
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


def test_ctrl_c_at_the_terminal_lets_the_worker_finish_its_task(
    transactional_db,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    """Ctrl-C signals the terminal's whole foreground group: web and worker
    have it already, and one more signal would abort the worker's task."""
    slack = FakeSlack(delay=3.0)
    env = _serve_env(
        tmp_path,
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_CHANNEL_ID=CHANNEL,
        SLACK_API_URL=slack.api_url,
        SLACK_CHANNEL_INTERVAL="0s",
    )
    port = live.free_port()
    log = tmp_path / "serve.log"
    terminal, its_side = os.openpty()
    command = [sys.executable, str(live.ROOT / "manage.py"), "serve"]
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603
            [*command, "--port", str(port), "--web-workers", "1"],
            cwd=live.ROOT,
            env=env,
            stdin=its_side,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_own_terminal,  # noqa: PLW1509
        )
    os.close(its_side)
    try:
        _wait_for_line(log, "kuberca is ready.", process, timeout=60)
        webhook = requests.post(
            f"http://127.0.0.1:{port}/webhook/alertmanager",
            json=make_payload(make_alert()),
            timeout=10,
        )
        assert webhook.status_code == 200
        deadline = time.monotonic() + 30
        while not slack.calls:  # the root post is in flight, Slack holds it
            assert time.monotonic() < deadline, live.log_tail(log)
            time.sleep(0.05)

        os.killpg(process.pid, signal.SIGINT)  # what the terminal does
        assert process.wait(timeout=40) == 0
    finally:
        live.stop(process, timeout=10)
        os.close(terminal)
        slack.stop()
    output = live.log_tail(log, chars=100_000)
    assert "terminating current task" not in output
    assert [call.method for call in slack.calls] == ["chat.postMessage"]
    assert "kuberca stopped" in output


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


def test_serve_refuses_to_start_beside_a_running_one(
    monkeypatch,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    folder = tmp_path / "prometheus"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    started = []
    monkeypatch.setattr(serve.subprocess, "Popen", lambda *a, **k: started.append(a))

    with metrics.prepare_multiprocess_dir(folder):
        (folder / "counter_123.db").write_bytes(b"the running one's")
        code, stderr = run_from_command_line("serve", "--port", "18999")

    assert code == 1
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1] == (
        f"CommandError: another kuberca (manage.py serve) is running with the "
        f"metrics folder {folder}; stop it first, or give this one its own "
        f"KUBERCA_VAR_DIR or PROMETHEUS_MULTIPROC_DIR"
    )
    assert started == []
    assert (folder / "counter_123.db").exists()


def test_a_killed_serve_leaves_its_metrics_folder_held_while_web_and_worker_run(
    transactional_db,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = _serve_env(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(folder))
    log = tmp_path / "serve.log"
    command = [sys.executable, str(live.ROOT / "manage.py"), "serve"]
    process = live.spawn(
        [*command, "--port", str(live.free_port()), "--web-workers", "1"],
        env=env,
        log_path=log,
    )
    children: list[psutil.Process] = []
    try:
        _wait_for_line(log, "kuberca is ready.", process, timeout=60)
        children = psutil.Process(process.pid).children(recursive=True)

        # SIGKILL (the OOM killer, kill -9): nothing stops web and worker.
        process.kill()
        process.wait(timeout=10)

        assert all(c.is_running() for c in children)
        with pytest.raises(metrics.MetricsDirInUse):
            metrics.prepare_multiprocess_dir(folder)
    finally:
        live.stop(process, timeout=10)
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.terminate()
        for child in psutil.wait_procs(children, timeout=30)[1]:
            child.kill()


def test_serve_names_a_metrics_folder_it_cannot_make_in_one_line(
    monkeypatch,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    folder = tmp_path / "a-file" / "prometheus"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    started = []
    monkeypatch.setattr(serve.subprocess, "Popen", lambda *a, **k: started.append(a))

    code, stderr = run_from_command_line("serve", "--port", "18999")

    assert code == 1
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1] == (
        f"CommandError: cannot use the metrics folder {folder}: Not a directory"
        " (PROMETHEUS_MULTIPROC_DIR, else KUBERCA_VAR_DIR/prometheus)"
    )
    assert started == []


@pytest.mark.parametrize(
    ("embedded", "line"),
    [
        (True, "  Press Ctrl-C to stop web, worker and the embedded PostgreSQL."),
        (False, "  Press Ctrl-C to stop web and worker."),
    ],
)
def test_the_banner_says_what_ctrl_c_stops(settings, embedded, line) -> None:  # noqa: ANN001
    settings.EMBEDDED_DATABASE = embedded
    out = io.StringIO()

    serve.Command(stdout=out)._announce("127.0.0.1", 8080)

    assert line in out.getvalue().splitlines()
