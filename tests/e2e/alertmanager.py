"""Run a real Prometheus Alertmanager on loopback for end-to-end tests.

The e2e tests call `RunningAlertmanager` to get an Alertmanager whose only
receiver is a webhook pointing at a live kuberca. Each instance owns a free port,
a config and storage under the test's tmp_path, and a log file there; it never
clusters and never outlives the `with` block.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, NotRequired, Self, TypedDict

import requests

logger = logging.getLogger(__name__)

ALERTMANAGER_BIN_ENV = "ALERTMANAGER_BIN"
_CANDIDATES = ("prometheus-alertmanager", "alertmanager")
_DEFAULT_PATHS = ("/usr/bin/prometheus-alertmanager", "/usr/local/bin/alertmanager")


class PostableAlert(TypedDict):
    """One alert as `POST /api/v2/alerts` takes it.

    `startsAt` and `endsAt` are RFC 3339 strings, or aware datetimes that
    `push_alerts` formats. An `endsAt` at or before now resolves the alert.
    """

    labels: dict[str, str]
    annotations: NotRequired[dict[str, str]]
    startsAt: NotRequired[str | datetime]
    endsAt: NotRequired[str | datetime]
    generatorURL: NotRequired[str]


def find_alertmanager() -> str | None:
    """Return the path of an Alertmanager binary, or None when there is none.

    `$ALERTMANAGER_BIN` wins; then Debian's `prometheus-alertmanager` and the
    upstream `alertmanager` on PATH; then their usual install paths.
    """
    override = os.environ.get(ALERTMANAGER_BIN_ENV)
    if override:
        return override if os.access(override, os.X_OK) else None
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    for path in _DEFAULT_PATHS:
        if os.access(path, os.X_OK):
            return path
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rfc3339(value: str | datetime) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("alert times must be timezone-aware")
        return value.isoformat()
    return value


class RunningAlertmanager:
    """An Alertmanager process whose single webhook receiver is `webhook_url`.

    Use it as a context manager: entering writes `alertmanager.yml`, starts the
    binary on 127.0.0.1 and waits for `/-/ready`; leaving terminates it (then
    kills it after `stop_timeout`). Its stdout and stderr go to
    `tmp_path / "alertmanager.log"`. Raises RuntimeError when no binary is
    found or the process does not become ready.
    """

    def __init__(
        self,
        webhook_url: str,
        *,
        tmp_path: Path,
        group_by: Sequence[str] = ("alertname", "namespace"),
        group_wait: str = "1s",
        group_interval: str = "2s",
        repeat_interval: str = "1h",
        send_resolved: bool = True,
        max_alerts: int = 0,
        bearer_token: str | None = None,
        resolve_timeout: str = "5m",
        log_level: Literal["debug", "info"] = "info",
        binary: str | None = None,
        ready_timeout: float = 15.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.webhook_url = webhook_url
        self.tmp_path = Path(tmp_path)
        self.group_by = list(group_by)
        self.group_wait = group_wait
        self.group_interval = group_interval
        self.repeat_interval = repeat_interval
        self.send_resolved = send_resolved
        self.max_alerts = max_alerts
        self.bearer_token = bearer_token
        self.resolve_timeout = resolve_timeout
        self.log_level = log_level
        self.binary = binary
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout

        self.config_path = self.tmp_path / "alertmanager.yml"
        self.storage_path = self.tmp_path / "alertmanager-data"
        self.log_path = self.tmp_path / "alertmanager.log"
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        # Loopback only: ignore HTTP(S)_PROXY from the environment.
        self._session = requests.Session()
        self._session.trust_env = False

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("alertmanager is not running")
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        """Return the configuration written to `alertmanager.yml`."""
        webhook: dict[str, Any] = {
            "url": self.webhook_url,
            "send_resolved": self.send_resolved,
            "max_alerts": self.max_alerts,
        }
        if self.bearer_token is not None:
            webhook["http_config"] = {
                "authorization": {"type": "Bearer", "credentials": self.bearer_token}
            }
        return {
            "global": {"resolve_timeout": self.resolve_timeout},
            "route": {
                "receiver": "kuberca",
                "group_by": self.group_by,
                "group_wait": self.group_wait,
                "group_interval": self.group_interval,
                "repeat_interval": self.repeat_interval,
            },
            "receivers": [{"name": "kuberca", "webhook_configs": [webhook]}],
        }

    def start(self) -> Self:
        """Write the config, start the process and wait until it is ready."""
        binary = self.binary or find_alertmanager()
        if binary is None:
            raise RuntimeError(
                "no Alertmanager binary; run .ci/install-alertmanager.sh "
                "or set ALERTMANAGER_BIN"
            )
        self.tmp_path.mkdir(parents=True, exist_ok=True)
        self.storage_path.mkdir(exist_ok=True)
        # JSON is valid YAML, and it quotes URLs and tokens safely.
        self.config_path.write_text(json.dumps(self.config(), indent=2) + "\n")

        # The port is picked before the process binds it, so another process
        # can take it in between; retry on a fresh port when that happens.
        attempt = 1
        while True:
            self.port = _free_port()
            self._spawn(binary)
            if self._wait_ready():
                logger.info(
                    "alertmanager started url=%s log=%s", self.url, self.log_path
                )
                return self
            log = self.log_text()
            self.stop()
            if "address already in use" not in log or attempt == 3:
                raise RuntimeError(
                    f"alertmanager did not become ready; log {self.log_path}:\n"
                    + log[-4000:]
                )
            logger.warning("alertmanager port taken port=%s, retrying", self.port)
            attempt += 1

    def _spawn(self, binary: str) -> None:
        args = [
            binary,
            f"--config.file={self.config_path}",
            f"--storage.path={self.storage_path}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--web.external-url=http://127.0.0.1:{self.port}",
            # An empty address disables the gossip cluster (and its port 9094).
            "--cluster.listen-address=",
            f"--log.level={self.log_level}",
        ]
        self._log_file = self.log_path.open("ab")
        self._log_file.write(("$ " + " ".join(args) + "\n").encode())
        self._log_file.flush()
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=self.tmp_path,
        )

    def _wait_ready(self) -> bool:
        assert self.process is not None
        # Another process may hold the port and answer /-/ready itself while
        # ours fails to bind, so also wait for our own "Listening on" line.
        listening = f'msg="Listening on" address=127.0.0.1:{self.port}'
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if listening in self.log_text():
                try:
                    response = self._session.get(f"{self.url}/-/ready", timeout=1)
                except requests.RequestException:
                    pass
                else:
                    if response.status_code == 200:
                        return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Terminate the process, kill it after `stop_timeout`; idempotent."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                logger.warning("alertmanager ignored SIGTERM pid=%s", process.pid)
                process.kill()
                process.wait(timeout=self.stop_timeout)
            logger.info("alertmanager stopped pid=%s", process.pid)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def push_alerts(self, alerts: Sequence[PostableAlert]) -> None:
        """POST alerts to `/api/v2/alerts`; raises HTTPError unless 2xx."""
        body = []
        for alert in alerts:
            item: dict[str, Any] = dict(alert)
            for key in ("startsAt", "endsAt"):
                if key in item:
                    item[key] = _rfc3339(item[key])
            body.append(item)
        response = self._session.post(f"{self.url}/api/v2/alerts", json=body, timeout=5)
        response.raise_for_status()
        logger.debug("alerts pushed count=%s", len(body))

    def get_alerts(self, **params: str) -> list[dict[str, Any]]:
        """Return `GET /api/v2/alerts` (e.g. `active="false"`), for debugging."""
        response = self._session.get(
            f"{self.url}/api/v2/alerts", params=params, timeout=5
        )
        response.raise_for_status()
        return response.json()

    def log_text(self) -> str:
        """Return what the process has written to its log so far."""
        if self._log_file is not None:
            self._log_file.flush()
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self._session.close()
