"""`manage.py serve`: run web (gunicorn) and the task worker together.

This is what `make run` starts after migrating. It holds the embedded database
(when DATABASE_URL is unset) for as long as it runs, prints where everything
is and how to log in, and on Ctrl-C or SIGTERM stops both children and waits
for them, so nothing is left running.
"""

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from kuberca import embedded_db
from kuberca.env import PORT_MAX, bare_host, bind_address, url_host
from kuberca.management.commands.prune import whole_number
from kuberca.metrics import MetricsDirInUse, prepare_multiprocess_dir

logger = logging.getLogger(__name__)

# Far more than a pod's cores; scale with pods (README, Scaling).
WEB_WORKERS_MAX = 64


class Probe:
    """Says once when the web server first answers `/healthz`, or that it has not."""

    def __init__(self, host: str, port: int, *, patience: float = 60.0) -> None:
        # `::` may take IPv6 only (net.ipv6.bindv6only); IPv6 loopback is sure.
        local = "[::1]" if bare_host(host) == "::" else "127.0.0.1"
        self.url = f"http://{url_host(host, local=local)}:{port}/healthz"
        self.deadline = time.monotonic() + patience
        self.done = False

    def check(self) -> str | None:
        if self.done:
            return None
        try:
            answered = requests.get(self.url, timeout=0.5).status_code == 200
        except requests.RequestException:
            answered = False
        if answered:
            self.done = True
            return "kuberca is ready."
        if time.monotonic() > self.deadline:
            self.done = True
            return f"kuberca: no answer from {self.url} yet; see the log above."
        return None


def _in_terminal_foreground() -> bool:
    """Whether this process's group is its terminal's foreground one, which a
    Ctrl-C there signals as a whole."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):  # no terminal, or stdin closed
        return False


class _Stop:
    """What SIGINT or SIGTERM asked of serve: to stop, and whether the
    children heard the signal themselves.

    A Ctrl-C at the terminal reaches the children too (they share its process
    group): a SIGTERM from here as well would be their second signal, on
    which the task worker aborts the task it runs.
    """

    def __init__(self) -> None:
        self.requested = False
        self.children_told = False

    def __call__(self, signum: int, frame: Any) -> None:
        if not self.requested:
            self.children_told = signum == signal.SIGINT and _in_terminal_foreground()
        self.requested = True


class Command(BaseCommand):
    help = "Run the web server and the task worker in the foreground."

    def add_arguments(self, parser: CommandParser) -> None:
        # PORT and WEB_CONCURRENCY are checked by settings; the options here.
        parser.add_argument(
            "--port",
            type=whole_number(1, PORT_MAX),
            default=int(os.environ.get("PORT", "8080")),
        )
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument(
            "--migrate",
            action="store_true",
            help="Apply migrations and create the admin user first.",
        )
        parser.add_argument(
            "--web-workers",
            type=whole_number(1, WEB_WORKERS_MAX),
            default=int(os.environ.get("WEB_CONCURRENCY", "2")),
        )

    def handle(
        self,
        *args: Any,
        port: int,
        host: str,
        web_workers: int,
        migrate: bool = False,
        **options: Any,
    ) -> None:
        stop = _Stop()
        # Installed first, so Ctrl-C during start-up still stops cleanly.
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        # Web workers and the task worker write metrics to one folder, so a
        # scrape of /metrics sums them all (prometheus_client multiprocess).
        metrics_dir = Path(
            os.environ.get("PROMETHEUS_MULTIPROC_DIR")
            or Path(settings.VAR_DIR) / "prometheus"
        )
        try:
            metrics_lock = prepare_multiprocess_dir(metrics_dir)
        except MetricsDirInUse:
            raise CommandError(
                f"another kuberca (manage.py serve) is running with the metrics "
                f"folder {metrics_dir}; stop it first, or give this one its own "
                f"KUBERCA_VAR_DIR or PROMETHEUS_MULTIPROC_DIR"
            ) from None
        except OSError as error:
            raise CommandError(
                f"cannot use the metrics folder {metrics_dir}: {error.strerror}"
                " (PROMETHEUS_MULTIPROC_DIR, else KUBERCA_VAR_DIR/prometheus)"
            ) from None
        with metrics_lock:
            self._serve(
                host=host,
                port=port,
                web_workers=web_workers,
                migrate=migrate,
                metrics_dir=metrics_dir,
                lock_fd=metrics_lock.fileno(),
                stop=stop,
            )

    def _serve(
        self,
        *,
        host: str,
        port: int,
        web_workers: int,
        migrate: bool,
        metrics_dir: Path,
        lock_fd: int,
        stop: _Stop,
    ) -> None:
        if migrate:
            call_command("migrate", interactive=False, verbosity=1)
            call_command("ensure_admin", generate=True)
        if stop.requested:
            return
        python = sys.executable
        base = Path(settings.BASE_DIR)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        web = [
            python,
            "-m",
            "gunicorn",
            "kuberca.wsgi",
            "-c",
            str(base / "kuberca" / "gunicorn_conf.py"),
            "--bind",
            bind_address(host, port),
            "--workers",
            str(web_workers),
        ]
        worker = [
            python,
            str(base / "manage.py"),
            "db_worker",
            "--no-reload",
            "--queue-name",
            "*",
            # An idle worker polls this often: a new incident reaches Slack
            # well within 2 s of its webhook (bench/notify.py).
            "--interval",
            "0.2",
        ]
        # The children hold the lock too: killed (SIGKILL), this process
        # leaves them running, and a new serve must not empty the folder
        # under them.
        held = (lock_fd,)
        worker_env = {**os.environ, "HOST": host}
        children = [
            subprocess.Popen(web, cwd=base, pass_fds=held),  # noqa: S603
            # The worker's metrics exporter (WORKER_METRICS_PORT) binds HOST.
            subprocess.Popen(worker, cwd=base, env=worker_env, pass_fds=held),  # noqa: S603
        ]
        self._announce(host, port)
        probe = Probe(host, port)
        try:
            while not stop.requested and all(
                child.poll() is None for child in children
            ):
                message = probe.check()
                if message:
                    self.stdout.write(message)
                time.sleep(0.3)
        finally:
            for child in children:
                if child.poll() is None and not stop.children_told:
                    child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 30
            for child in children:
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            # Children that died without saying goodbye must not keep the
            # embedded server alive after this process, its last user, exits.
            embedded_db.forget_dead_handles()
        failed = [
            c.args[2] if len(c.args) > 2 else c.args
            for c in children
            if c.returncode not in (0, -15, None)
        ]
        self.stdout.write("kuberca stopped")
        if failed and not stop.requested:
            sys.exit(1)

    def _announce(self, host: str, port: int) -> None:
        url = f"http://{url_host(host)}:{port}"
        password_file = Path(settings.VAR_DIR) / "admin_password"
        if settings.ADMIN_USERNAME and settings.ADMIN_PASSWORD:
            login = f"user {settings.ADMIN_USERNAME} with ADMIN_PASSWORD"
        elif password_file.exists():
            password = password_file.read_text().strip()
            login = f"user admin, password {password} (kept in {password_file})"
        else:
            login = "an existing superuser (manage.py createsuperuser)"
        database = (
            f"embedded PostgreSQL in {settings.DATABASES['default']['HOST']}"
            if settings.EMBEDDED_DATABASE
            else "DATABASE_URL"
        )
        lines = [
            "",
            "kuberca is starting",
            f"  API       {url}/api/v1/incidents  (token: POST {url}/api/v1/auth/login"
            ' with {"id": ..., "password": ...})',
            f"  Health    {url}/healthz  {url}/readyz",
            f"  Webhook   {url}/webhook/alertmanager",
            f"  Admin     {url}/admin/",
            f"  API docs  {url}/api/docs/  (OpenAPI: {url}/openapi.json)",
            f"  Log in    {login}",
            f"  Database  {database}",
            "  Press Ctrl-C to stop "
            + (
                "web, worker and the embedded PostgreSQL."
                if settings.EMBEDDED_DATABASE
                else "web and worker."
            ),
            "",
        ]
        self.stdout.write("\n".join(lines))
