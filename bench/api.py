"""Measure the incident and alert API on 100,000 incidents and 1,000,000 alerts.

Usage: `.venv/bin/python bench/api.py [--reload] [--requests N]`.

It creates (or reuses) the database `kuberca_bench` on the embedded server of
./var/pgdata, never the development or test data, migrates it, fills it in
SQL with generate_series under a fixed seed (skipped when the rows are
already there; --reload refills), starts gunicorn with 2 workers on a free
port of 127.0.0.1 against it, and prints p50/p95 of the three pages the
frontend opens most, then the EXPLAIN ANALYZE of the queries behind them.
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

BENCH_DATABASE = "kuberca_bench"
INCIDENTS = 100_000
ALERTS = 1_000_000
BIG_INCIDENT_ALERTS = 200
BIG_INCIDENT = "INC-" + format(INCIDENTS, "012x")
SEED = 0.42
TARGETS_MS = {"incidents": 150, "alerts": 150, "detail": 50}
TARGETS_MS.update({"inc q": 150, "alr q": 150})


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def bench_database_url() -> str:
    """Start (or join) the embedded server and make sure kuberca_bench exists."""
    import psycopg

    from kuberca import embedded_db

    pgdata = Path(os.environ.get("KUBERCA_PGDATA", BASE_DIR / "var" / "pgdata"))
    server = embedded_db.start(pgdata)
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (BENCH_DATABASE,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
    info = server.get_postmaster_info()
    socket_dir = str(info.socket_dir).replace("/", "%2F")
    # Keep the handle referenced: the server stops when its last user exits.
    globals()["_server"] = server
    return f"postgresql://postgres@{socket_dir}:{info.port}/{BENCH_DATABASE}"


def configure_environment(database_url: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "SECRET_KEY": "kuberca-bench-only-not-a-secret-0123456789abcdef",
        "JWT_SECRET": "kuberca-bench-jwt-only-not-a-secret-0123456789",
        "JWT_ACCESS_TTL": "2h",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "SLACK_BOT_TOKEN": "",
        "GEMINI_API_KEY": "",
        "AI_API_KEY": "",
        "DJANGO_SETTINGS_MODULE": "kuberca.settings",
    }
    os.environ.update(env)
    return env


LOAD_INCIDENTS = """
INSERT INTO incidents_incident (
    incident_id, title, severity, status, fired_at, resolved_at, resolved_by,
    analysis_summary, analysis_detail, created_by, is_enabled, group_key,
    last_alert_at, truncated_alerts, summary_generation, summary_status,
    summary_error, created_at, updated_at)
SELECT
    'INC-' || lpad(to_hex(i), 12, '0'),
    (ARRAY['KubePodCrashLooping', 'KubeDeploymentReplicasMismatch',
           'NodeFilesystemSpaceFillingUp', 'TargetDown', 'HighLatency',
           'KubeJobFailed', 'CPUThrottlingHigh', 'KubeMemoryOvercommit',
           'etcdHighFsyncDurations', 'KubeAPIErrorBudgetBurn'])[1 + i %% 10]
        || ' in ns-' || (i %% 50),
    CASE WHEN r < 0.3 THEN 'critical' WHEN r < 0.8 THEN 'warning' ELSE 'info' END,
    CASE WHEN i %% 20 = 0 THEN 'firing' ELSE 'resolved' END,
    fired,
    CASE WHEN i %% 20 = 0 THEN NULL ELSE fired + interval '25 minutes' END,
    CASE WHEN i %% 20 = 0 THEN '' ELSE 'alertmanager' END,
    CASE WHEN i %% 3 = 0 THEN 'Pods restarted after an out-of-memory kill' ELSE '' END,
    '', 'system', i %% 50 <> 7, 'cluster=prod,namespace=ns-' || (i %% 50),
    fired, 0, CASE WHEN i %% 20 = 0 THEN 0 ELSE 1 END,
    CASE WHEN i %% 20 = 0 THEN '' ELSE 'done' END, '', fired, fired
FROM (
    SELECT i, random() AS r,
           timestamptz '2025-01-01 00:00:00+00'
             + (i * 300 + floor(random() * 120)::int) * interval '1 second'
             AS fired
    FROM generate_series(1, %(incidents)s) AS i
) AS s
"""

# Alerts 1..ALERTS-200 spread over incidents 1..INCIDENTS-1 (about ten each);
# the last 200 all belong to BIG_INCIDENT, the detail page measured.
LOAD_ALERTS = """
INSERT INTO alerts_alert (
    alert_id, incident_id, fingerprint, alarm_title, severity, status,
    fired_at, resolved_at, labels, annotations, generator_url, namespace,
    group_key, analysis_summary, analysis_detail, thread_ts, grouping_reason,
    is_enabled, resolved_as_stale, last_seen_at, created_at, updated_at)
SELECT
    'ALR-' || lpad(to_hex(j), 12, '0'),
    inc.incident_id,
    substr(md5(j::text), 1, 16),
    name,
    sev,
    CASE WHEN inc.status = 'firing' THEN 'firing' ELSE 'resolved' END,
    inc.fired_at + (j %% 600) * interval '1 second',
    CASE WHEN inc.status = 'firing' THEN NULL
         ELSE inc.fired_at + (j %% 600) * interval '1 second'
              + interval '20 minutes' END,
    jsonb_build_object('alertname', name, 'severity', sev, 'cluster', 'prod',
                       'namespace', ns, 'pod', name || '-' || j,
                       'container', 'app', 'job', 'kube-state-metrics'),
    jsonb_build_object('summary', name || ' in ' || ns,
                       'description', 'Pod ' || name || '-' || j
                           || ' has been restarting for 15 minutes.',
                       'runbook_url', 'https://runbooks.example/' || name),
    'http://prometheus:9090/graph?g0.expr=up', ns,
    'cluster=prod,namespace=' || ns, '', '', '', 'joined', true, false,
    inc.fired_at, inc.fired_at, inc.fired_at
FROM (
    SELECT j,
           CASE WHEN j > %(spread_alerts)s THEN %(incidents)s
                ELSE 1 + j %% %(spread_incidents)s END AS n,
           (ARRAY['KubePodCrashLooping', 'KubeDeploymentReplicasMismatch',
                  'NodeFilesystemSpaceFillingUp', 'TargetDown', 'HighLatency',
                  'KubeJobFailed', 'CPUThrottlingHigh', 'KubeMemoryOvercommit',
                  'etcdHighFsyncDurations', 'KubeAPIErrorBudgetBurn'])[1 + j %% 10]
               AS name,
           CASE WHEN random() < 0.3 THEN 'critical'
                WHEN random() < 0.7 THEN 'warning' ELSE 'info' END AS sev
    FROM generate_series(1, %(alerts)s) AS j
) AS a
JOIN incidents_incident AS inc
  ON inc.incident_id = 'INC-' || lpad(to_hex(a.n), 12, '0')
CROSS JOIN LATERAL (SELECT 'ns-' || (a.n %% 50) AS ns) AS l
"""


def load(reload: bool) -> None:
    from django.db import connection

    from alerts.models import Alert
    from incidents.models import Incident

    if not reload and (
        Incident.objects.count() == INCIDENTS and Alert.objects.count() == ALERTS
    ):
        out(f"data already loaded: {INCIDENTS} incidents, {ALERTS} alerts")
        return
    sizes = {
        "incidents": INCIDENTS,
        "alerts": ALERTS,
        "spread_alerts": ALERTS - BIG_INCIDENT_ALERTS,
        "spread_incidents": INCIDENTS - 1,
    }
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE alerts_analysisartifact, alerts_alertanalysis, alerts_alert,"
            " incidents_incident CASCADE"
        )
        cursor.execute("SELECT setseed(%s)", [SEED])
        cursor.execute(LOAD_INCIDENTS, sizes)
        out(f"incidents loaded in {time.monotonic() - started:.0f} s")
        cursor.execute("SELECT setseed(%s)", [SEED])
        cursor.execute(LOAD_ALERTS, sizes)
        out(f"alerts loaded in {time.monotonic() - started:.0f} s")
        cursor.execute("VACUUM (ANALYZE) incidents_incident")
        cursor.execute("VACUUM (ANALYZE) alerts_alert")
    out(f"load and vacuum took {time.monotonic() - started:.0f} s")


def access_token() -> str:
    from django.contrib.auth import get_user_model
    from rest_framework_simplejwt.tokens import RefreshToken

    user, _ = get_user_model().objects.get_or_create(username="bench")
    return str(RefreshToken.for_user(user).access_token)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(
    env: dict[str, str], port: int, settings_module: str = "kuberca.settings"
) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "kuberca.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "--timeout",
        "60",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(
        command,
        cwd=BASE_DIR,
        env={**os.environ, **env, "DJANGO_SETTINGS_MODULE": settings_module},
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).ok:
                return process
        except requests.RequestException:
            pass
        if process.poll() is not None:
            raise SystemExit("gunicorn exited before it answered")
        time.sleep(0.3)
    stop(process)
    raise SystemExit("gunicorn did not answer /healthz within 60 s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def measure(session: requests.Session, url: str, count: int) -> dict[str, Any]:
    for _ in range(5):  # warm both workers and their connections
        session.get(url, timeout=30).raise_for_status()
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        response = session.get(url, timeout=30)
        elapsed = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        timings.append(elapsed)
    timings.sort()
    return {
        "p50": statistics.median(timings),
        "p95": timings[max(0, int(round(0.95 * len(timings))) - 1)],
        "max": timings[-1],
        "bytes": len(response.content),
        "rows": response.headers.get("X-Total-Count", "-"),
        "similar": [
            item["incident_id"]
            for item in response.json().get("data", {}).get("similar_incidents", [])
        ]
        if url.rsplit("/", 1)[-1].startswith("INC-")
        else [],
    }


def explain(run: Any) -> list[str]:
    """EXPLAIN ANALYZE every statement that `run()` sends, as Django sends it."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        run()
    plans = []
    # One transaction, settings replayed, so each plan is the one served.
    with transaction.atomic(), connection.cursor() as cursor:
        for query in captured.captured_queries:
            sql = query["sql"].lstrip("( \n")
            if "set_config" in sql:
                cursor.execute(query["sql"])
            if not sql.startswith("SELECT") or "set_config" in sql:
                continue  # transaction control and settings: nothing to plan
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
            plan = "\n".join(row[0] for row in cursor.fetchall())
            plans.append(" ".join(sql.split())[:160] + " ...\n" + plan)
    return plans


def explain_all() -> None:
    from alerts.views import alert_list
    from incidents import selectors
    from incidents.models import Incident

    no_filters = selectors.ListFilters.from_params({})
    critical = selectors.ListFilters.from_params({"severity": "critical"})
    incidents = selectors.incident_list(hidden=False, filters=no_filters)
    alerts = alert_list(critical)
    by_text = selectors.ListFilters.from_params({"q": "latency"})
    incidents_q = selectors.incident_list(hidden=False, filters=by_text)
    alerts_q = alert_list(by_text)
    big = Incident.objects.get(pk=BIG_INCIDENT)
    steps = [
        ("incident page", lambda: list(selectors.incident_list_page(incidents)[:500])),
        ("incident count", incidents.count),
        ("critical alert page", lambda: list(alerts[:500])),
        ("critical alert count", alerts.count),
        (
            "incident page q",
            lambda: list(selectors.incident_list_page(incidents_q)[:500]),
        ),
        ("incident count q", incidents_q.count),
        ("alert page q", lambda: list(alerts_q[:500])),
        ("alert count q", alerts_q.count),
        ("detail: incident", lambda: Incident.objects.filter(pk=BIG_INCIDENT).first()),
        ("detail: alerts", lambda: list(selectors.incident_alerts(BIG_INCIDENT))),
        ("detail: is_analyzing", lambda: selectors.incident_is_analyzing(big)),
    ]
    for name, run in steps:
        for plan in explain(run):
            out(f"--- EXPLAIN ANALYZE {name}: {plan}")
    started = time.perf_counter()
    found = selectors.similar_incidents(big, limit=5)
    elapsed = (time.perf_counter() - started) * 1000
    out(
        f"--- similar_incidents via {settings_finder()}: {len(found)} found in "
        f"{elapsed:.1f} ms (in-process, first call)"
    )
    for plan in explain(lambda: selectors.similar_incidents(big, limit=5)):
        out(f"--- EXPLAIN ANALYZE similar incidents: {plan}")


def settings_finder() -> str:
    from django.conf import settings

    return settings.SIMILAR_INCIDENTS_FINDER


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reload", action="store_true", help="refill the data")
    parser.add_argument("--requests", type=int, default=100, help="per endpoint")
    args = parser.parse_args()

    env = configure_environment(bench_database_url())
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    load(args.reload)
    token = access_token()

    pages = {
        "incidents": ("kuberca.settings", "/incidents?limit=500"),
        "alerts": ("kuberca.settings", "/alerts?limit=500&severity=critical"),
        "detail": ("kuberca.settings", f"/incidents/{BIG_INCIDENT}"),
        "detail*": ("bench.settings_no_similar", f"/incidents/{BIG_INCIDENT}"),
        # `q` is a substring match (icontains) without an index: shown, not tuned.
        "inc q": ("kuberca.settings", "/incidents?limit=500&q=latency"),
        "alr q": ("kuberca.settings", "/alerts?limit=500&q=latency"),
    }
    results = {}
    for settings_module in ("kuberca.settings", "bench.settings_no_similar"):
        port = free_port()
        process = start_gunicorn(env, port, settings_module)
        try:
            with requests.Session() as session:
                session.headers["Authorization"] = f"Bearer {token}"
                for name, (module, path) in pages.items():
                    if module == settings_module:
                        url = f"http://127.0.0.1:{port}/api/v1{path}"
                        results[name] = measure(session, url, args.requests)
        finally:
            stop(process)

    out()
    out(
        f"{INCIDENTS} incidents, {ALERTS} alerts; gunicorn 2 workers; "
        f"{args.requests} sequential requests each"
    )
    for name, (_, path) in pages.items():
        r = results[name]
        target = TARGETS_MS[name.rstrip("*")]
        verdict = "ok" if r["p95"] < target else "OVER TARGET"
        out(
            f"{name:9} p50 {r['p50']:7.1f} ms  p95 {r['p95']:7.1f} ms  "
            f"max {r['max']:7.1f} ms  target p95 < {target} ms {verdict}  "
            f"({r['bytes']} bytes, X-Total-Count {r['rows']})  GET {path}"
        )
    out("detail*: the same detail with the similar-incidents search off")
    similar = results["detail"]["similar"]
    out(f"detail: similar_incidents in the answer: {similar}")
    if not similar:
        out("SIMILAR INCIDENTS EMPTY: the search found nothing or was cut off")
    out()
    explain_all()


if __name__ == "__main__":
    main()
