"""kuberca's own Prometheus metrics, exported at /metrics beside django-prometheus.

Every app increments these; none defines its own elsewhere, so names stay in
one place. Labels are small fixed sets, never ids. The task-queue gauges are not
set by anyone: TaskQueueCollector reads them from the database at scrape time.
`scrape_registry()` gives the registry a scrape reads, in multiprocess mode
(PROMETHEUS_MULTIPROC_DIR set, several gunicorn workers) or in one process.
"""

import contextlib
import fcntl
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import IO, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from django.db import DatabaseError
from django.db.models import Case, Count, F, Min, Q, When
from django.utils import timezone
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    make_wsgi_app,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from kuberca.credentials import bearer_ok

logger = logging.getLogger(__name__)

webhook_deliveries = Counter(
    "kuberca_webhook_deliveries_total", "Webhook deliveries by outcome", ["outcome"]
)  # outcome: processed, rejected (also too large), failed, unauthorized, throttled
alerts_received = Counter(
    "kuberca_alerts_total",
    "Alerts in webhook deliveries by what became of them",
    ["result"],  # stored, duplicate, ignored, rejected
)
truncated_groups = Counter(
    "kuberca_truncated_groups_total",
    "Deliveries whose group had alerts cut off by max_alerts (truncatedAlerts > 0)",
)
incidents = Counter(
    "kuberca_incidents_total", "Incident lifecycle events", ["event"]
)  # opened, reopened, resolved
slack_messages = Counter(
    "kuberca_slack_messages_total", "Slack API calls by outcome", ["kind", "outcome"]
)  # kind: SlackMessage.kind or root_update; outcome: sent, failed, retried
agent_calls = Counter(
    "kuberca_agent_calls_total",
    "Agent calls by endpoint and outcome",
    ["endpoint", "outcome"],
)  # endpoint: analyze, summarize-incident; outcome: ok, retried, failed
agent_latency = Histogram(
    "kuberca_agent_call_seconds",
    "Agent call latency",
    ["endpoint"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 240, 480),
)
embedding_calls = Counter(
    "kuberca_embedding_calls_total", "Embedding provider calls by outcome", ["outcome"]
)  # outcome: ok, unavailable (to be retried), rejected
webhook_to_slack_root = Histogram(
    "kuberca_webhook_to_slack_root_seconds",
    "From the webhook that opened an incident to its Slack root message",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)

# Series with a known, closed label set start at 0, so rate() works from the
# first scrape and a dashboard shows a flat line instead of "no data".
for _outcome in ("processed", "rejected", "failed", "unauthorized", "throttled"):
    webhook_deliveries.labels(outcome=_outcome)
for _result in ("stored", "duplicate", "ignored", "rejected"):
    alerts_received.labels(result=_result)
for _event in ("opened", "reopened", "resolved"):
    incidents.labels(event=_event)
# notifications.models.MessageKind, and the root message's edits.
_SLACK_KINDS = (
    "incident_root",
    "alert_firing",
    "alert_resolved",
    "analysis",
    "summary",
    "root_update",
)
for _kind in _SLACK_KINDS:
    for _outcome in ("sent", "failed", "retried"):
        slack_messages.labels(kind=_kind, outcome=_outcome)
for _endpoint in ("analyze", "summarize-incident"):
    agent_latency.labels(endpoint=_endpoint)
    for _outcome in ("ok", "retried", "failed"):
        agent_calls.labels(endpoint=_endpoint, outcome=_outcome)
for _outcome in ("ok", "unavailable", "rejected"):
    embedding_calls.labels(outcome=_outcome)

TASK_QUEUE_DEPTH = "kuberca_task_queue_depth"
TASK_OLDEST_PENDING_AGE = "kuberca_task_oldest_pending_seconds"


class TaskQueueCollector:
    """Read the task queue from django-tasks-db's table at scrape time.

    A gauge set by whichever process scraped last would be stale in the others,
    so the figures are computed per scrape: one small aggregate query on the
    partial index of READY rows. A database outage gives no queue series
    rather than a failed scrape.
    """

    def collect(self) -> Iterator[Metric]:
        from django_tasks_db.models import DBTaskResult, get_date_max

        now = timezone.now()
        never = get_date_max()  # run_after when the task has none
        due = Q(status="READY") & (Q(run_after=never) | Q(run_after__lte=now))
        # A delayed task (a retry with backoff) waits from its run_after, an
        # immediate one from when it was enqueued.
        runnable_since = Case(
            When(run_after=never, then=F("enqueued_at")), default=F("run_after")
        )
        try:
            figures = DBTaskResult.objects.filter(
                status__in=["READY", "RUNNING"]
            ).aggregate(
                depth=Count("id", filter=due),
                oldest=Min(runnable_since, filter=due),
                ready=Count("id", filter=Q(status="READY")),
                running=Count("id", filter=Q(status="RUNNING")),
            )
        except DatabaseError:
            logger.warning("task queue metrics unavailable: database error")
            return
        oldest = figures["oldest"]
        waited = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0

        depth = GaugeMetricFamily(TASK_QUEUE_DEPTH, "Tasks ready to run (READY, due)")
        depth.add_metric([], figures["depth"])
        yield depth
        age = GaugeMetricFamily(
            TASK_OLDEST_PENDING_AGE,
            "How long the oldest due task has waited since it became runnable",
        )
        age.add_metric([], waited)
        yield age
        by_status = GaugeMetricFamily(
            "kuberca_tasks",
            "Unfinished task results by status (ready includes tasks not yet due)",
            labels=["status"],
        )
        by_status.add_metric(["ready"], figures["ready"])
        by_status.add_metric(["running"], figures["running"])
        yield by_status


class _Forward:
    """Hand on the process-wide registry's metrics (single-process mode)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def scrape_registry(*, task_queue: bool = True) -> CollectorRegistry:
    """Build the registry one scrape reads.

    With PROMETHEUS_MULTIPROC_DIR, every process (each gunicorn worker, and the
    task worker under `manage.py serve`) writes its metrics to files there and
    the MultiProcessCollector sums them; without it, the process's own
    registry is read. The queue collector is added on top in both cases.
    """
    registry = CollectorRegistry()
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Forward())
    if task_queue:
        registry.register(TaskQueueCollector())
    return registry


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def worker_exporter_app(registry: CollectorRegistry, token: str) -> WSGIApp:
    """The task worker's metrics server: `/healthz`, open to the liveness
    probe (which cannot read a Secret), and the metrics on every other path,
    which need `Authorization: Bearer <token>` when `token` is set, like the
    web's `/metrics`."""
    scrape = make_wsgi_app(registry)
    json_type = ("Content-Type", "application/json")

    def answer(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            allow = ("Allow", "GET, HEAD")
            start_response("405 Method Not Allowed", [json_type, allow])
            return [b'{"error": "method not allowed"}']
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [json_type])
            return [b'{"status": "ok"}']
        if token and not bearer_ok(environ.get("HTTP_AUTHORIZATION", ""), token):
            start_response("401 Unauthorized", [json_type])
            return [b'{"error": "unauthorized"}']
        # prometheus_client's app answers GET only; a HEAD gets its headers.
        return scrape({**environ, "REQUEST_METHOD": "GET"}, start_response)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        body = answer(environ, start_response)
        # wsgiref sends whatever body it is given, also to a HEAD.
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else body

    return app


class _QuietHandler(WSGIRequestHandler):
    # Seconds a client may leave the socket silent. Without a limit, one
    # that stops sending (or vanished) holds a thread and a socket of the
    # worker for good, and enough of them use up the file descriptors its
    # database connections need. Scrapes and probes send at once.
    timeout = 10

    def handle(self) -> None:
        """Drop a client gone silent quietly (socketserver would print the
        timeout's traceback to stderr, outside the logging setup)."""
        with contextlib.suppress(TimeoutError):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Scrapes and probes go unlogged (one every few seconds)."""


class ExporterServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def __init__(self, addr: str, port: int, app: WSGIApp) -> None:
        # An IPv6 address gets an IPv6 socket ("::" takes IPv4 too: Linux
        # binds IPv6 sockets dual-stack by default); anything else, a host
        # name included, an IPv4 one, as gunicorn binds the web to the same
        # HOST. A resolver's first address for a name is often ::1 for
        # localhost, which IPv4 probes and scrapes would not reach.
        self.address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        super().__init__((addr, port), _QuietHandler)
        self.set_app(app)


_exporter_lock = threading.Lock()
_exporter_started = False


def start_worker_exporter(port: int, addr: str = "0.0.0.0", token: str = "") -> bool:  # noqa: S104
    """Serve this process's metrics on `port` (the task worker has no web server).

    The worker's Slack, Agent and embedding counters live in its own process;
    in Kubernetes its pod is scraped on this port. Returns False when `port`
    is 0 (off) or an exporter already runs.
    """
    global _exporter_started
    if not port:
        return False
    with _exporter_lock:
        if _exporter_started:
            return False
        app = worker_exporter_app(scrape_registry(task_queue=False), token)
        server = ExporterServer(addr, port, app)
        threading.Thread(
            target=server.serve_forever, name="metrics-exporter", daemon=True
        ).start()
        _exporter_started = True
    logger.info("worker metrics exporter listening port=%s", port)
    return True


LOCK_FILE = "kuberca.lock"


class MetricsDirInUse(Exception):
    """Another launcher's processes write metrics to the folder."""


def prepare_multiprocess_dir(path: Path) -> IO[bytes]:
    """Claim `path` for this launcher, then empty it of an earlier run's
    metric files; return the open lock file, which the launcher keeps.

    Call before any process that writes there starts: files of dead pids
    would otherwise be summed into every scrape. Raises MetricsDirInUse while
    another launcher holds the folder: emptying it would take the metrics of
    that one's running processes, and its scrapes would sum this one's.
    """
    path.mkdir(parents=True, exist_ok=True)
    # In the folder, where only *.db files are metrics: the emptying leaves
    # it. The kernel drops the lock with the last process holding it.
    lock = (path / LOCK_FILE).open("ab")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise MetricsDirInUse(str(path)) from None
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    return lock
