"""Webhook ingestion benchmark: a live kuberca (gunicorn, 2 workers) on loopback.

Starts its own embedded PostgreSQL in a temporary folder (or uses
DATABASE_URL), migrates it, starts gunicorn on a free 127.0.0.1 port, then
posts distinct deliveries of 1, 10 and 50 alerts at concurrency 1, 4 and 16,
and re-deliveries of the same bodies (the update path): `repeat` at once,
when kuberca writes nothing (last_seen_at is written at most once a minute),
and `refresh` after last_seen_at was set two minutes back, when every row is
written, as with Alertmanager's group_interval re-sends. Prints deliveries/s,
alerts/s, latency percentiles, worker CPU per alert and peak worker RSS, and,
on the same database, the rate of a raw psycopg upsert of the same rows. The
worker CPU of a trivial request (GET /ping) is printed first: gunicorn's and
Django's share of each delivery.

    .venv/bin/python bench/ingest.py [--scale 1.0]

Slack and the Agent are off so the figures are ingestion's own.
"""

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import quantiles
from typing import Any
from urllib.parse import urlsplit

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kuberca.testing import live  # noqa: E402

SIZES = (1, 10, 50)
CONCURRENCY = (1, 4, 16)
TARGET_RATIO = {1: 0.10, 10: 0.25, 50: 0.35}


def alert(fp: str, starts: datetime, run: str) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {
            "alertname": "BenchAlert",
            "namespace": f"bench-{run}",
            "pod": fp,
            "severity": "warning",
        },
        "annotations": {"summary": "benchmark alert", "description": "x" * 200},
        "startsAt": starts.isoformat().replace("+00:00", "Z"),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fp,
    }


def payloads(run: str, size: int, count: int) -> list[bytes]:
    starts = datetime.now(UTC) - timedelta(minutes=1)
    bodies = []
    for d in range(count):
        alerts = [alert(f"{run}-{d}-{i}", starts, run) for i in range(size)]
        bodies.append(
            json.dumps(
                {
                    "version": "4",
                    "groupKey": f"{{}}:{{run={run}}}",
                    "status": "firing",
                    "receiver": "bench",
                    "truncatedAlerts": 0,
                    "alerts": alerts,
                }
            ).encode()
        )
    return bodies


class Workers:
    """CPU time and peak RSS of the gunicorn workers."""

    def __init__(self, master: psutil.Process) -> None:
        self.master = master
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def children(self) -> list[psutil.Process]:
        try:
            return self.master.children()
        except psutil.Error:
            return []

    def cpu(self) -> float:
        total = 0.0
        for child in self.children():
            try:
                times = child.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def _sample(self) -> None:
        while not self._stop.is_set():
            for child in self.children():
                try:
                    self.peak_rss = max(self.peak_rss, child.memory_info().rss)
                except psutil.NoSuchProcess:
                    pass
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()


def drive(url: str, bodies: list[bytes], concurrency: int) -> dict[str, Any]:
    """Post the bodies from `concurrency` threads; wall time and latencies.

    A plain http.client connection per request (gunicorn's sync workers close
    each one anyway): the sender shares the machine's cores with the server,
    so it should cost as little as it can.
    """
    target = urlsplit(url)
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def send(body: bytes) -> None:
        nonlocal errors
        began = time.perf_counter()
        try:
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            conn.request(
                "POST",
                target.path,
                body=body,
                headers={"Content-Type": "application/json"},
            )
            response = conn.getresponse()
            response.read()
            ok = response.status == 200
            conn.close()
        except (OSError, http.client.HTTPException):
            ok = False
        elapsed = time.perf_counter() - began
        with lock:
            latencies.append(elapsed)
            if not ok:
                errors += 1

    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, bodies))
    wall = time.perf_counter() - began
    cuts = quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {
        "wall": wall,
        "p50": cuts[49] * 1000,
        "p95": cuts[94] * 1000,
        "p99": cuts[98] * 1000,
        "errors": errors,
    }


def floor_cpu(base: str, workers: "Workers", count: int) -> float:
    """Worker CPU seconds of one trivial request (GET /ping), for comparison.

    What gunicorn and Django cost before a view does anything: the part of
    the webhook's CPU per delivery that no ingestion code can save.
    """
    target = urlsplit(base)
    began = workers.cpu()
    for _ in range(count):
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        conn.request("GET", "/ping")
        conn.getresponse().read()
        conn.close()
    return (workers.cpu() - began) / count


RAW_UPSERT = """
INSERT INTO bench_raw_alert (alert_id, fingerprint, alarm_title, severity, status,
    fired_at, labels, annotations, generator_url, namespace, group_key,
    analysis_summary, analysis_detail, thread_ts, grouping_reason, is_enabled,
    resolved_as_stale, last_seen_at, created_at, updated_at)
VALUES (%s, %s, %s, %s, 'firing', %s, %s::jsonb, %s::jsonb, %s, %s, %s,
    '', '', '', 'joined', true, false, now(), now(), now())
ON CONFLICT (fingerprint, fired_at) DO UPDATE SET labels = EXCLUDED.labels,
    annotations = EXCLUDED.annotations, last_seen_at = EXCLUDED.last_seen_at,
    updated_at = EXCLUDED.updated_at
"""


def raw_rate(dsn: dict[str, Any], bodies: list[bytes], concurrency: int) -> float:
    """Alerts/s of a plain psycopg upsert of the same rows, one commit a body."""
    import psycopg

    rows_per_body = []
    for body in bodies:
        rows = []
        for a in json.loads(body)["alerts"]:
            rows.append(
                (
                    uuid.uuid4().hex[:20],
                    a["fingerprint"],
                    a["labels"]["alertname"],
                    a["labels"]["severity"],
                    a["startsAt"],
                    json.dumps(a["labels"]),
                    json.dumps(a["annotations"]),
                    a["generatorURL"],
                    a["labels"]["namespace"],
                    "namespace=" + a["labels"]["namespace"],
                )
            )
        rows_per_body.append(rows)
    local = threading.local()
    connections = []

    def send(rows: list[tuple]) -> None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = psycopg.connect(**dsn)
            connections.append(conn)
        with conn.cursor() as cursor:
            cursor.executemany(RAW_UPSERT, rows)
        conn.commit()

    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, rows_per_body))
    wall = time.perf_counter() - began
    for conn in connections:
        conn.close()
    return sum(len(r) for r in rows_per_body) / wall


def _age_last_seen(dsn: dict[str, Any], run: str) -> None:
    """Set the run's last_seen_at two minutes back, so repeats write them."""
    import psycopg

    with psycopg.connect(**dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE alerts_alert SET last_seen_at = last_seen_at - interval "
            "'2 minutes' WHERE namespace = %s",
            [f"bench-{run}"],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help="more or fewer requests"
    )
    args = parser.parse_args()
    env = live.server_env(ALERT_STALE_AFTER="0")
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kuberca.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    settings = connection.settings_dict
    dsn = {
        "dbname": settings["NAME"],
        "user": settings.get("USER") or "postgres",
        "host": settings.get("HOST") or None,
        "port": settings.get("PORT") or None,
        "password": settings.get("PASSWORD") or None,
    }
    dsn = {k: v for k, v in dsn.items() if v}
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_raw_alert")
        cursor.execute(
            "CREATE TABLE bench_raw_alert (LIKE alerts_alert INCLUDING DEFAULTS "
            "INCLUDING CONSTRAINTS INCLUDING INDEXES)"
        )
    connection.close()

    port = live.free_port()
    log_path = Path(tempfile.gettempdir()) / "kuberca-bench-gunicorn.log"
    process = live.spawn(
        live.gunicorn_command(port=port, workers=2), env=env, log_path=log_path
    )
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            live.wait_healthy(base, process, timeout=60, log_path=log_path)
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from None
        workers = Workers(psutil.Process(process.pid))
        url = f"{base}/webhook/alertmanager"
        # Warm both workers (imports, connections) before measuring.
        drive(url, payloads("warm", 1, 20), 4)
        expected = 0
        print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        floor = floor_cpu(base, workers, max(100, int(1000 * args.scale)))
        print(f"worker CPU of a trivial request (GET /ping): {floor * 1000:.2f}ms")
        print(
            f"{'alerts':>6} {'conc':>4} {'mode':>8} {'deliv/s':>8} {'alerts/s':>9} "
            f"{'p50ms':>7} {'p95ms':>7} {'p99ms':>7} {'cpu/alert':>10} "
            f"{'raw/s':>8} {'ratio':>6} {'target':>6} {'errors':>6}"
        )
        for size in SIZES:
            count = max(20, int({1: 400, 10: 150, 50: 40}[size] * args.scale))
            for conc in CONCURRENCY:
                run = uuid.uuid4().hex[:8]
                bodies = payloads(run, size, count)
                for mode in ("new", "repeat", "refresh"):
                    if mode == "refresh":
                        _age_last_seen(dsn, run)
                    cpu_before = workers.cpu()
                    result = drive(url, bodies, conc)
                    cpu = workers.cpu() - cpu_before
                    alerts = size * count
                    raw = raw_rate(dsn, bodies, conc)
                    rate = alerts / result["wall"]
                    print(
                        f"{size:>6} {conc:>4} {mode:>8} {count / result['wall']:>8.1f} "
                        f"{rate:>9.1f} {result['p50']:>7.1f} {result['p95']:>7.1f} "
                        f"{result['p99']:>7.1f} {cpu / alerts * 1000:>8.2f}ms "
                        f"{raw:>8.0f} {rate / raw:>6.2f} {TARGET_RATIO[size]:>6.2f} "
                        f"{result['errors']:>6}",
                        flush=True,
                    )
                expected += size * count
        workers.stop()
        import psycopg

        with psycopg.connect(**dsn) as conn:
            (stored,) = conn.execute(
                "SELECT count(*) FROM alerts_alert WHERE alarm_title = 'BenchAlert' "
                "AND fingerprint NOT LIKE 'warm-%'"
            ).fetchone()
        print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        print(f"peak worker RSS: {workers.peak_rss / 2**20:.1f} MiB")
        print(f"alerts expected {expected}, stored {stored}, lost {expected - stored}")
    finally:
        live.stop(process, timeout=15)


if __name__ == "__main__":
    main()
