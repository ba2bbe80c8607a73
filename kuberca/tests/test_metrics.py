import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from prometheus_client.parser import text_string_to_metric_families

from kuberca import metrics
from kuberca.tasks import reap_lost_tasks

pytestmark = pytest.mark.django_db

BASE = Path(__file__).resolve().parents[2]


def scrape(client, **headers) -> str:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in a scrape, or None when it is absent."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def test_metrics_exports_every_kuberca_metric_after_its_action(client):
    metrics.webhook_deliveries.labels(outcome="processed").inc()
    metrics.alerts_received.labels(result="stored").inc(3)
    metrics.truncated_groups.inc()
    metrics.incidents.labels(event="opened").inc()
    metrics.slack_messages.labels(kind="incident_root", outcome="sent").inc()
    metrics.slack_messages.labels(kind="analysis", outcome="retried").inc()
    metrics.agent_calls.labels(endpoint="analyze", outcome="ok").inc()
    metrics.agent_latency.labels(endpoint="analyze").observe(1.5)
    metrics.embedding_calls.labels(outcome="ok").inc()
    metrics.webhook_to_slack_root.observe(0.7)

    text = scrape(client)

    assert sample(text, "kuberca_webhook_deliveries_total", outcome="processed")
    assert sample(text, "kuberca_alerts_total", result="stored") >= 3
    assert sample(text, "kuberca_truncated_groups_total") >= 1
    assert sample(text, "kuberca_incidents_total", event="opened") >= 1
    assert sample(
        text, "kuberca_slack_messages_total", kind="incident_root", outcome="sent"
    )
    assert sample(
        text, "kuberca_slack_messages_total", kind="analysis", outcome="retried"
    )
    assert sample(text, "kuberca_agent_calls_total", endpoint="analyze", outcome="ok")
    assert sample(text, "kuberca_agent_call_seconds_count", endpoint="analyze") >= 1
    assert sample(text, "kuberca_agent_call_seconds_bucket", le="2.0") >= 1
    assert sample(text, "kuberca_embedding_calls_total", outcome="ok") >= 1
    assert sample(text, "kuberca_webhook_to_slack_root_seconds_count") >= 1
    assert sample(text, "kuberca_task_queue_depth") is not None
    assert sample(text, "kuberca_task_oldest_pending_seconds") is not None


def test_webhook_delivery_moves_the_ingestion_metrics(
    client, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_AUTH_TOKEN = ""
    settings.WEBHOOK_HMAC_SECRET = ""
    names = [
        ("kuberca_webhook_deliveries_total", {"outcome": "processed"}),
        ("kuberca_alerts_total", {"result": "stored"}),
        ("kuberca_alerts_total", {"result": "ignored"}),
        ("kuberca_incidents_total", {"event": "opened"}),
        ("kuberca_truncated_groups_total", {}),
    ]
    before = scrape(client)
    payload = {
        "version": "4",
        "groupKey": '{}:{alertname="X"}',
        "truncatedAlerts": 2,
        "status": "firing",
        "receiver": "kuberca",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": alertname,
                    "namespace": "shop",
                    "severity": sev,
                },
                "annotations": {},
                "startsAt": "2026-12-03T16:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
            }
            for alertname, sev in (("Crash", "critical"), ("Watchdog", "none"))
        ],
    }

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/webhook/alertmanager", payload, content_type="application/json"
        )

    assert response.status_code == 200, response.content
    after = scrape(client)
    for name, labels in names:
        assert (sample(after, name, **labels) or 0) - (
            sample(before, name, **labels) or 0
        ) == 1, name


def incident_counts() -> dict[str, float]:
    return {
        event: metrics.incidents.labels(event=event)._value.get()
        for event in ("opened", "reopened", "resolved")
    }


def counted_since(before: dict[str, float]) -> dict[str, float]:
    return {event: value - before[event] for event, value in incident_counts().items()}


def test_incident_lifecycle_is_counted_whoever_changes_it(
    auth_client, django_capture_on_commit_callbacks
):
    from alerts.models import Alert
    from alerts.services import incident_merge
    from alerts.tests.webhook_helpers import T0, ingest, make_alert, make_payload

    before = incident_counts()
    earlier = T0.replace(hour=15)
    with django_capture_on_commit_callbacks(execute=True):
        ingest(make_payload(make_alert("a", fingerprint="a", starts_at=earlier)))
        ingest(make_payload(make_alert("b", fingerprint="b", namespace="web")))
    assert counted_since(before) == {"opened": 2, "reopened": 0, "resolved": 0}
    a = Alert.objects.get(fingerprint="a").incident
    b = Alert.objects.get(fingerprint="b").incident

    # A person resolves the older one from the API; a merge into it brings it
    # back (b's alert is firing) and resolves b.
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.post(f"/api/v1/incidents/{a.pk}/resolve")
    assert response.status_code == 200, response.content
    with django_capture_on_commit_callbacks(execute=True):
        incident_merge(incident_ids=[a.pk, b.pk], merged_by="oncall")
    assert counted_since(before) == {"opened": 2, "reopened": 1, "resolved": 2}


def test_incident_lifecycle_is_not_counted_when_rolled_back(
    django_capture_on_commit_callbacks,
):
    from django.db import transaction

    from alerts.tests.webhook_helpers import ingest, make_alert, make_payload

    before = incident_counts()
    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                ingest(make_payload(make_alert("a", fingerprint="a")))
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
    assert counted_since(before) == {"opened": 0, "reopened": 0, "resolved": 0}


def test_metrics_counts_go_up_by_what_happened(client):
    before = sample(scrape(client), "kuberca_incidents_total", event="reopened")
    metrics.incidents.labels(event="reopened").inc(2)
    after = sample(scrape(client), "kuberca_incidents_total", event="reopened")
    assert after - before == 2


def test_metrics_start_closed_label_sets_at_zero(client):
    text = scrape(client)
    for outcome in ("processed", "rejected", "failed", "unauthorized", "throttled"):
        name = "kuberca_webhook_deliveries_total"
        assert sample(text, name, outcome=outcome) is not None
    for result in ("stored", "duplicate", "ignored", "rejected"):
        assert sample(text, "kuberca_alerts_total", result=result) is not None
    for event in ("opened", "reopened", "resolved"):
        assert sample(text, "kuberca_incidents_total", event=event) is not None


def test_metrics_of_optional_parts_are_there_while_they_are_off(client):
    # Slack, the Agent and embeddings off: their dashboards show zeros, not
    # "no data".
    from alerts.agent import ANALYZE, SUMMARIZE
    from notifications.models import MessageKind

    text = scrape(client)
    for kind in [*MessageKind.values, "root_update"]:
        for outcome in ("sent", "failed", "retried"):
            name = "kuberca_slack_messages_total"
            assert sample(text, name, kind=kind, outcome=outcome) is not None
    for endpoint in (ANALYZE, SUMMARIZE):
        name = "kuberca_agent_call_seconds_count"
        assert sample(text, name, endpoint=endpoint) is not None
        for outcome in ("ok", "retried", "failed"):
            name = "kuberca_agent_calls_total"
            assert sample(text, name, endpoint=endpoint, outcome=outcome) is not None
    for outcome in ("ok", "unavailable", "rejected"):
        name = "kuberca_embedding_calls_total"
        assert sample(text, name, outcome=outcome) is not None


def test_metrics_include_django_http_and_database_metrics(client):
    client.get("/ping")
    client.get("/healthz")  # runs a query through the instrumented backend

    text = scrape(client)

    assert sample(text, "django_http_requests_total_by_method_total", method="GET")
    assert sample(text, "django_db_execute_total", vendor="postgresql")


def test_task_queue_depth_counts_due_ready_tasks_only(client):
    reap_lost_tasks.enqueue()
    reap_lost_tasks.enqueue()
    reap_lost_tasks.using(run_after=timezone.now() + timedelta(hours=1)).enqueue()
    done = reap_lost_tasks.enqueue()
    DBTaskResult.objects.filter(pk=done.id).update(status="SUCCESSFUL")

    text = scrape(client)

    assert sample(text, "kuberca_task_queue_depth") == 2
    assert sample(text, "kuberca_tasks", status="ready") == 3


def test_task_oldest_pending_age_measures_from_enqueue_or_run_after(client):
    now = timezone.now()
    waiting = reap_lost_tasks.enqueue()
    DBTaskResult.objects.filter(pk=waiting.id).update(
        enqueued_at=now - timedelta(seconds=120)
    )
    # Enqueued an hour ago but only runnable for 300 s: it has waited 300 s.
    delayed = reap_lost_tasks.using(run_after=now - timedelta(seconds=300)).enqueue()
    DBTaskResult.objects.filter(pk=delayed.id).update(
        enqueued_at=now - timedelta(hours=1)
    )

    age = sample(scrape(client), "kuberca_task_oldest_pending_seconds")

    assert 300 <= age < 360


def test_task_queue_is_empty_without_ready_tasks(client):
    text = scrape(client)
    assert sample(text, "kuberca_task_queue_depth") == 0
    assert sample(text, "kuberca_task_oldest_pending_seconds") == 0


def test_metrics_refuse_scrape_without_token_when_one_is_set(client, settings):
    settings.METRICS_TOKEN = "scrape-secret"

    missing = client.get("/metrics")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    basic = client.get("/metrics", HTTP_AUTHORIZATION="Basic scrape-secret")

    for response in (missing, wrong, basic):
        assert response.status_code == 401
        assert response.json() == {"error": "unauthorized"}
    assert "kuberca_alerts_total" in scrape(
        client, HTTP_AUTHORIZATION="Bearer scrape-secret"
    )


def test_metrics_are_open_without_token(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200


def _run(code: str, env: dict[str, str]) -> str:
    # An empty value means "unset": prometheus_client would take "" as the
    # current folder and leave its files in the repository.
    merged = {**os.environ, **env}
    merged = {key: value for key, value in merged.items() if value != ""}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=merged,
        cwd=BASE,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_multiprocess_scrape_sums_what_every_process_wrote(tmp_path):
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    bump = (
        "import sys; from kuberca import metrics; "
        "metrics.alerts_received.labels(result='stored').inc(int(sys.argv[-1]))"
    )
    _run(bump.replace("sys.argv[-1]", "'3'"), env)
    _run(bump.replace("sys.argv[-1]", "'4'"), env)

    text = _run(
        "from prometheus_client import generate_latest; from kuberca import metrics; "
        "print(generate_latest(metrics.scrape_registry(task_queue=False)).decode())",
        env,
    )

    assert sample(text, "kuberca_alerts_total", result="stored") == 7


def test_prepare_multiprocess_dir_empties_metric_files_of_earlier_runs(tmp_path):
    folder = tmp_path / "prom"
    folder.mkdir()
    (folder / "counter_123.db").write_bytes(b"x")
    (folder / "keep.txt").write_text("not a metric file")

    with metrics.prepare_multiprocess_dir(folder):
        pass
    with metrics.prepare_multiprocess_dir(tmp_path / "new"):
        pass

    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt", metrics.LOCK_FILE]
    assert (tmp_path / "new").is_dir()


def test_prepare_multiprocess_dir_refuses_a_folder_another_launcher_holds(tmp_path):
    folder = tmp_path / "prom"
    with metrics.prepare_multiprocess_dir(folder):
        (folder / "counter_123.db").write_bytes(b"a running worker's")

        # flock conflicts between two opens of the file, in one process too.
        with pytest.raises(metrics.MetricsDirInUse):
            metrics.prepare_multiprocess_dir(folder)
        assert (folder / "counter_123.db").exists()

    with metrics.prepare_multiprocess_dir(folder):
        assert not (folder / "counter_123.db").exists()


def test_gunicorn_child_exit_drops_dead_worker_live_gauges(tmp_path, monkeypatch):
    from kuberca import gunicorn_conf

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    dead = tmp_path / "gauge_livemax_4242.db"
    dead.write_bytes(b"x")
    counter = tmp_path / "counter_4242.db"
    counter.write_bytes(b"x")

    gunicorn_conf.child_exit(None, SimpleNamespace(pid=4242))

    assert not dead.exists()
    assert counter.exists()  # counters of dead workers still count


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
            return response.status, response.read().decode()
    except OSError:
        return 0, ""


def test_gunicorn_with_two_workers_serves_summed_metrics_and_stops_on_sigterm(
    tmp_path,
):
    port = _free_port()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "LOG_FORMAT": "json",
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "WEB_CONCURRENCY": "2",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "kuberca.wsgi", "-c"]
        + ["kuberca/gunicorn_conf.py"],
        cwd=BASE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while _get(f"http://127.0.0.1:{port}/ping")[0] != 200:
            assert server.poll() is None, "gunicorn exited at start"
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)
        for _ in range(20):
            _get(f"http://127.0.0.1:{port}/ping")

        # Whichever worker answers, the scrape holds every worker's requests.
        pings = []
        for _ in range(4):
            status, text = _get(f"http://127.0.0.1:{port}/metrics")
            assert status == 200
            pings.append(
                sample(
                    text,
                    "django_http_requests_total_by_view_transport_method_total",
                    view="ping",
                )
            )
        assert all(p is not None and p >= 21 for p in pings), pings

        # Each worker writes its own files once booted; on a busy machine the
        # second may still be booting when the first has answered everything.
        def writers() -> int:
            return len({f.name.rsplit("_", 1)[-1] for f in tmp_path.glob("*.db")})

        while writers() < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert writers() >= 2
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0
    lines = [line for line in output.decode().splitlines() if line.startswith("{")]
    assert lines, output
    assert any(re.search(r'"logger": "gunicorn\.(error|access)"', x) for x in lines)


def test_worker_exporter_serves_the_worker_process_metrics(tmp_path):
    port = _free_port()
    code = (
        "import urllib.request; from kuberca import metrics; "
        f"assert metrics.start_worker_exporter({port}, addr='127.0.0.1'); "
        f"assert not metrics.start_worker_exporter({port}, addr='127.0.0.1'); "
        "assert not metrics.start_worker_exporter(0); "
        "metrics.agent_calls.labels(endpoint='analyze', outcome='ok').inc(5); "
        f"print(urllib.request.urlopen('http://127.0.0.1:{port}/metrics').read().decode())"
    )

    text = _run(code, {"PROMETHEUS_MULTIPROC_DIR": ""})

    assert (
        sample(text, "kuberca_agent_calls_total", endpoint="analyze", outcome="ok") == 5
    )
    assert sample(text, "kuberca_task_queue_depth") is None  # the web's to report


def test_worker_exporter_on_the_ipv6_wildcard_answers_both_families():
    # db_worker binds it to HOST; `::` is what an IPv6-only cluster sets.
    port = _free_port()
    code = (
        "import urllib.request; from kuberca import metrics; "
        f"assert metrics.start_worker_exporter({port}, addr='::'); "
        f"urllib.request.urlopen('http://127.0.0.1:{port}/metrics').read(); "
        f"print(urllib.request.urlopen('http://[::1]:{port}/metrics').status)"
    )

    assert _run(code, {"PROMETHEUS_MULTIPROC_DIR": ""}).strip() == "200"


@contextmanager
def _exporter(token: str, addr: str = "127.0.0.1") -> Iterator[int]:
    """A worker exporter on a free port of `addr`; yields the port."""
    app = metrics.worker_exporter_app(metrics.scrape_registry(task_queue=False), token)
    server = metrics.ExporterServer(addr, 0, app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _exporter_get(port: int, path: str, **headers: str) -> requests.Response:
    return requests.get(f"http://127.0.0.1:{port}{path}", headers=headers, timeout=5)


def test_worker_exporter_needs_the_token_but_not_for_its_health() -> None:
    with _exporter("scrape-secret") as port:
        missing = _exporter_get(port, "/metrics")
        wrong = _exporter_get(port, "/metrics", Authorization="Bearer nope")
        health = _exporter_get(port, "/healthz")
        scraped = _exporter_get(port, "/metrics", Authorization="Bearer scrape-secret")

    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.json() == {"error": "unauthorized"}
    assert "kuberca_alerts_total" not in missing.text
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert scraped.status_code == 200
    assert "kuberca_alerts_total" in scraped.text


def test_worker_exporter_is_open_without_a_token() -> None:
    with _exporter("") as port:
        response = _exporter_get(port, "/metrics")
    assert response.status_code == 200
    assert "kuberca_alerts_total" in response.text


def test_worker_exporter_takes_get_and_head_only() -> None:
    with _exporter("") as port:
        url = f"http://127.0.0.1:{port}/metrics"
        posted = requests.post(url, timeout=5)
        head = requests.head(url, timeout=5)
        health = requests.head(f"http://127.0.0.1:{port}/healthz", timeout=5)

    assert posted.status_code == 405
    assert posted.json() == {"error": "method not allowed"}
    assert posted.headers["Allow"] == "GET, HEAD"
    assert head.status_code == 200 and head.content == b""
    assert health.status_code == 200 and health.content == b""


def test_worker_exporter_drops_a_client_that_stops_sending(monkeypatch, capfd) -> None:  # noqa: ANN001
    # A client that went silent or vanished mid-request would otherwise hold
    # a thread and a socket of the worker process for good; enough of them
    # use up its file descriptors, those its database connections need too.
    assert metrics._QuietHandler.timeout is not None
    monkeypatch.setattr(metrics._QuietHandler, "timeout", 0.5)
    with _exporter("") as port:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as silent:
            silent.sendall(b"GET /metrics HTTP/1.1\r\n")  # and nothing more
            # Closed by the exporter, its handler thread done.
            assert silent.recv(1024) == b""
        assert _exporter_get(port, "/healthz").status_code == 200
    assert "Traceback" not in capfd.readouterr().err


def test_worker_exporter_binds_a_host_name_to_ipv4_like_the_web(monkeypatch) -> None:  # noqa: ANN001
    # gunicorn binds the web to HOST's IPv4 address unless HOST is an IPv6
    # one; the exporter does the same, also where the resolver lists ::1
    # first for localhost (an /etc/hosts with "::1 localhost", as Docker's).
    resolve = socket.getaddrinfo

    def ipv6_first(host, port, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        found = resolve(host, port, *args, **kwargs)
        if host != "localhost":
            return found
        loopback = ("::1", port or 0, 0, 0)
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", loopback), *found]

    monkeypatch.setattr(socket, "getaddrinfo", ipv6_first)
    with _exporter("", addr="localhost") as port:
        assert _exporter_get(port, "/healthz").status_code == 200
