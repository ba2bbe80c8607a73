"""Launch a live kuberca (gunicorn, `manage.py db_worker`) on 127.0.0.1.

Shared by the benchmarks in `bench/` and the end-to-end and reliability
tests: a free loopback port, the environment of a server of its own, the web
and worker command lines, a bounded wait for the web server to answer, and a
stop that escalates to SIGKILL. Every command runs with this interpreter from
the project root (`ROOT`).
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(*, prefix: str = "kuberca-bench-", **settings: str) -> dict[str, str]:
    """This process's environment for a live server with a database of its own.

    Unless DATABASE_URL or KUBERCA_PGDATA name one, a throwaway embedded
    PostgreSQL (and var folder) in a new temporary folder named `prefix...`.
    DEBUG off, any host, no Agent and no Slack, warnings only; `settings`
    (variable=value) win over all of it.
    """
    env = dict(os.environ)
    if not env.get("DATABASE_URL") and not env.get("KUBERCA_PGDATA"):
        folder = Path(tempfile.mkdtemp(prefix=prefix))
        env["KUBERCA_PGDATA"] = str(folder / "pgdata")
        env["KUBERCA_PGDATA_THROWAWAY"] = "1"
        env["KUBERCA_VAR_DIR"] = str(folder / "var")
    env.update(
        DEBUG="false",
        SECRET_KEY=env.get("SECRET_KEY") or "bench-only-" + uuid.uuid4().hex,
        ALLOWED_HOSTS="*",
        AGENT_ENABLED="false",
        SLACK_BOT_TOKEN="",
        LOG_LEVEL=env.get("LOG_LEVEL", "WARNING"),
    )
    env.update(settings)
    return env


def database_url() -> str:
    """A DATABASE_URL for the database Django is connected to (the test one)."""
    from django.db import connection

    db = connection.settings_dict
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or ""
    port = f":{db['PORT']}" if db.get("PORT") and not host.startswith("/") else ""
    if host.startswith("/"):
        return f"postgresql://{user}@/{db['NAME']}?host={host}"
    return f"postgresql://{user}@{host}{port}/{db['NAME']}"


def gunicorn_command(
    *, port: int, workers: int, config: bool = True, extra: Sequence[str] = ()
) -> list[str]:
    """gunicorn serving `kuberca.wsgi` on 127.0.0.1:`port`.

    `config` adds `kuberca/gunicorn_conf.py` (worker hooks, metrics, logging);
    `extra` is appended as is (e.g. `["--threads", "4"]`).
    """
    command = [sys.executable, "-m", "gunicorn", "kuberca.wsgi"]
    if config:
        command += ["-c", str(ROOT / "kuberca" / "gunicorn_conf.py")]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
    return [*command, *extra]


def worker_command(*, interval: float, scheduler: bool = True) -> list[str]:
    """`manage.py db_worker` on every queue, polling every `interval` seconds.

    Run one worker with `scheduler` (the periodic jobs) and any others without.
    """
    command = [
        sys.executable,
        str(ROOT / "manage.py"),
        "db_worker",
        "--no-reload",
        "--no-startup-delay",
        "--queue-name",
        "*",
        "--interval",
        str(interval),
    ]
    return command if scheduler else [*command, "--no-scheduler"]


def spawn(
    command: Sequence[str],
    *,
    env: dict[str, str],
    log_path: Path | None = None,
    append: bool = False,
) -> subprocess.Popen[bytes]:
    """Start `command` in ROOT; stdout and stderr go to `log_path`.

    The log is truncated first unless `append` (several processes may append
    to one log). Without `log_path` the child writes to this process's output.
    """
    if log_path is None:
        return subprocess.Popen(list(command), cwd=ROOT, env=env)  # noqa: S603
    # The child keeps its own descriptor once ours is closed.
    with log_path.open("ab" if append else "wb") as log:
        return subprocess.Popen(  # noqa: S603
            list(command), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )


def log_tail(log_path: Path | None, chars: int = 3000) -> str:
    """The last `chars` characters of a log file, or "" when there is none."""
    if log_path is None:
        return ""
    try:
        return log_path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return ""


def wait_healthy(
    url: str,
    process: subprocess.Popen[bytes],
    *,
    timeout: float,
    log_path: Path | None = None,
    path: str = "/healthz",
    every: float = 0.2,
    request_timeout: float = 1.0,
) -> None:
    """Poll `url + path` until it answers 200.

    Raises RuntimeError, with the end of the log at `log_path`, when the
    process exits first or `timeout` seconds pass.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url + path, timeout=request_timeout).status_code == 200:
                return
        except requests.RequestException:
            pass
        if process.poll() is not None:
            problem = f"exited with status {process.returncode}"
        elif time.monotonic() > deadline:
            problem = f"did not answer {path} within {timeout:g} s"
        else:
            time.sleep(every)
            continue
        tail = log_tail(log_path)
        where = f"; log {log_path}:\n{tail}" if log_path is not None else ""
        raise RuntimeError(f"kuberca {problem}{where}")


def stop(
    *processes: subprocess.Popen[bytes],
    timeout: float,
    sig: signal.Signals = signal.SIGTERM,
) -> None:
    """Send `sig` to every process still running, then SIGKILL what outlives
    `timeout` seconds. Idempotent."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(sig)
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
