"""Soak test: mixed traffic against a live kuberca for --minutes (default 30).

Starts `manage.py serve --migrate` as `make run` does (gunicorn with 2 workers
plus the task worker) on a free 127.0.0.1 port with its own throwaway embedded
PostgreSQL (or DATABASE_URL), logs in, then sends from --clients threads a mix
of webhooks (new firing alerts, repeats, resolutions), API reads (incident and
alert lists, details, an incident's alerts) and searches. Each minute it
prints requests, errors and latency percentiles per kind, and the RSS of the
web workers and the task worker; at the end, RSS growth from the first
minute (after warm-up) to the last. Target: no errors, RSS growth under 10%.
Once --max-alerts distinct alerts exist, webhooks only repeat known alerts,
so the data stops growing and later RSS growth is the server's own.

    .venv/bin/python bench/soak.py [--minutes 30] [--clients 4] [--max-alerts N]

Slack, the Agent and embeddings are off, so the figures are kuberca's own.
"""

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import quantiles
from typing import Any

import psutil
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kuberca.testing import live  # noqa: E402

PASSWORD = "soak-password-" + uuid.uuid4().hex[:8]
KINDS = ("webhook", "read", "search")
WEIGHTS = (0.4, 0.45, 0.15)
NAMESPACES = [f"soak-{i}" for i in range(8)]
WORDS = ["disk", "pressure", "crash", "loop", "latency", "node", "pod", "memory"]


class Traffic:
    """What the clients send, and what they learned (ids, firing alerts)."""

    def __init__(self, base: str, token: str, max_alerts: int) -> None:
        self.base = base
        self.max_alerts = max_alerts
        self.created = 0
        self.headers = {"Authorization": f"Bearer {token}"}
        self.lock = threading.Lock()
        self.firing: list[dict[str, Any]] = []
        self.incident_ids: list[str] = []

    def _alert(self, status: str = "firing", **known: Any) -> dict[str, Any]:
        namespace = known.get("namespace") or random.choice(NAMESPACES)
        fingerprint = known.get("fingerprint") or uuid.uuid4().hex[:16]
        starts = known.get("startsAt") or datetime.now(UTC).isoformat().replace(
            "+00:00", "Z"
        )
        words = " ".join(random.sample(WORDS, 3))
        return {
            "status": status,
            "labels": {
                "alertname": f"Soak{random.randint(0, 20)}",
                "namespace": namespace,
                "severity": random.choice(["critical", "warning", "info"]),
                "pod": fingerprint,
            },
            "annotations": {"summary": f"{words} in {namespace}"},
            "startsAt": starts,
            "endsAt": (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
            if status == "resolved"
            else "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph",
            "fingerprint": fingerprint,
        }

    def webhook(self, session: requests.Session) -> requests.Response:
        roll = random.random()
        with self.lock:
            known = random.choice(self.firing) if self.firing else None
        with self.lock:
            full = self.created >= self.max_alerts
        if known and (full or roll < 0.5):
            # Past max_alerts only repeats: the data stops growing, so RSS
            # growth from then on is the server's, not the data's.
            resolve = roll < 0.25 and not full
            alerts = [self._alert("resolved" if resolve else "firing", **known)]
            if resolve:
                with self.lock:
                    if known in self.firing:
                        self.firing.remove(known)
        else:
            alerts = [self._alert() for _ in range(random.randint(1, 10))]
            with self.lock:
                self.created += len(alerts)
                self.firing.extend(
                    {k: a[k] for k in ("fingerprint", "startsAt")}
                    | {"namespace": a["labels"]["namespace"]}
                    for a in alerts
                )
                del self.firing[:-2000]
        body = {
            "version": "4",
            "groupKey": "{}:{soak}",
            "status": alerts[0]["status"],
            "receiver": "soak",
            "alerts": alerts,
        }
        return session.post(
            f"{self.base}/webhook/alertmanager", data=json.dumps(body), timeout=30
        )

    def read(self, session: requests.Session) -> requests.Response:
        roll = random.random()
        with self.lock:
            incident_id = (
                random.choice(self.incident_ids) if self.incident_ids else None
            )
        if roll < 0.3 or incident_id is None:
            response = session.get(
                f"{self.base}/api/v1/incidents",
                params={"limit": 50, "offset": random.choice([0, 0, 50])},
                headers=self.headers,
                timeout=30,
            )
            if response.status_code == 200:
                ids = [row["incident_id"] for row in response.json()]
                with self.lock:
                    self.incident_ids = (self.incident_ids + ids)[-500:]
            return response
        if roll < 0.55:
            return session.get(
                f"{self.base}/api/v1/alerts",
                params={"limit": 100, "namespace": random.choice(NAMESPACES)},
                headers=self.headers,
                timeout=30,
            )
        if roll < 0.8:
            return session.get(
                f"{self.base}/api/v1/incidents/{incident_id}",
                headers=self.headers,
                timeout=30,
            )
        return session.get(
            f"{self.base}/api/v1/incidents/{incident_id}/alerts",
            params={"limit": 100},
            headers=self.headers,
            timeout=30,
        )

    def search(self, session: requests.Session) -> requests.Response:
        query = " ".join(random.sample(WORDS, 2))
        return session.post(
            f"{self.base}/api/v1/embeddings/search",
            json={"query": query, "limit": 10},
            headers=self.headers,
            timeout=30,
        )


class Recorder:
    """Latencies and errors per minute and kind; RSS samples per minute."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[tuple[int, str], list[float]] = defaultdict(list)
        self.errors: dict[tuple[int, str], int] = defaultdict(int)
        self.error_samples: list[str] = []
        self.rss: dict[int, dict[str, int]] = {}
        self.started = time.monotonic()

    def minute(self) -> int:
        return int((time.monotonic() - self.started) // 60)

    def record(self, kind: str, seconds: float, error: str | None) -> None:
        with self.lock:
            key = (self.minute(), kind)
            self.latency[key].append(seconds)
            if error:
                self.errors[key] += 1
                if len(self.error_samples) < 20:
                    self.error_samples.append(f"{kind}: {error}")


def client(traffic: Traffic, recorder: Recorder, stop: threading.Event) -> None:
    session = requests.Session()
    calls = {"webhook": traffic.webhook, "read": traffic.read, "search": traffic.search}
    while not stop.is_set():
        kind = random.choices(KINDS, WEIGHTS)[0]
        began = time.perf_counter()
        try:
            response = calls[kind](session)
            error = (
                None
                if response.status_code < 400
                else f"{response.status_code} {response.text[:120]}"
            )
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"[:160]
        recorder.record(kind, time.perf_counter() - began, error)
        stop.wait(random.uniform(0.005, 0.03))


def processes(serve: psutil.Process) -> dict[str, list[psutil.Process]]:
    found: dict[str, list[psutil.Process]] = {"web": [], "worker": []}
    try:
        children = serve.children(recursive=True)
    except psutil.Error:
        return found
    for child in children:
        try:
            cmdline = " ".join(child.cmdline())
            parent = child.parent()
            parent_cmd = " ".join(parent.cmdline()) if parent else ""
        except psutil.Error:
            continue
        if "db_worker" in cmdline:
            found["worker"].append(child)
        elif "gunicorn" in cmdline and "gunicorn" in parent_cmd:
            found["web"].append(child)
    return found


def rss_of(group: list[psutil.Process]) -> tuple[int, int]:
    """RSS and USS (private memory, without shared and file-backed pages)."""
    rss = uss = 0
    for process in group:
        try:
            info = process.memory_full_info()
        except psutil.Error:
            continue
        rss += info.rss
        uss += info.uss
    return rss, uss


def sample_rss(
    serve: psutil.Process, recorder: Recorder, stop: threading.Event
) -> None:
    while not stop.is_set():
        groups = processes(serve)
        sample: dict[str, int] = {"web_pids": len(groups["web"])}
        for name, group in groups.items():
            sample[name], sample[f"{name}_uss"] = rss_of(group)
        with recorder.lock:
            recorder.rss[recorder.minute()] = sample  # the minute's last sample
        stop.wait(5)


def _cuts(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        value = values[0] * 1000 if values else 0.0
        return value, value, value
    cuts = quantiles(values, n=100)
    return cuts[49] * 1000, cuts[94] * 1000, cuts[98] * 1000


def report(recorder: Recorder, minutes: int) -> int:
    print(
        f"{'min':>3} {'kind':>7} {'reqs':>6} {'errors':>6} {'p50ms':>7} "
        f"{'p95ms':>7} {'p99ms':>7} {'webRSS':>8} {'workerRSS':>9}"
    )
    total_errors = 0
    for minute in range(minutes):
        rss = recorder.rss.get(minute, {})
        for kind in KINDS:
            values = recorder.latency.get((minute, kind), [])
            errors = recorder.errors.get((minute, kind), 0)
            total_errors += errors
            p50, p95, p99 = _cuts(values)
            print(
                f"{minute + 1:>3} {kind:>7} {len(values):>6} {errors:>6} "
                f"{p50:>7.1f} {p95:>7.1f} {p99:>7.1f} "
                f"{rss.get('web', 0) / 2**20:>7.1f}M "
                f"{rss.get('worker', 0) / 2**20:>8.1f}M"
            )
    first = recorder.rss.get(0, {})
    last = recorder.rss.get(minutes - 1) or recorder.rss.get(max(recorder.rss), {})
    requests_total = sum(len(v) for v in recorder.latency.values())
    print(f"requests {requests_total}, errors {total_errors}")
    for name in ("web", "worker"):
        start, end = first.get(name, 0), last.get(name, 0)
        growth = (end - start) / start * 100 if start else 0.0
        verdict = "ok" if growth < 10 else "OVER TARGET"
        uss_start, uss_end = first.get(f"{name}_uss", 0), last.get(f"{name}_uss", 0)
        print(
            f"{name} RSS {start / 2**20:.1f} MiB -> {end / 2**20:.1f} MiB "
            f"({growth:+.1f}%, target < 10%: {verdict}); private (USS) "
            f"{uss_start / 2**20:.1f} -> {uss_end / 2**20:.1f} MiB"
        )
    if last.get("web_pids") != 2:
        print(f"web workers at the end: {last.get('web_pids')} (expected 2)")
    for sample in recorder.error_samples:
        print("error:", sample)
    return total_errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--max-alerts",
        type=int,
        default=5000,
        help="distinct alerts created before webhooks only repeat known ones",
    )
    args = parser.parse_args()
    port = live.free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = Path(tempfile.gettempdir()) / f"kuberca-soak-{port}.log"
    serve = live.spawn(
        [sys.executable, "manage.py", "serve", "--migrate", "--port", str(port)],
        env=live.server_env(
            prefix="kuberca-soak-",
            PORT=str(port),
            GEMINI_API_KEY="",
            AI_API_KEY="",
            ADMIN_USERNAME="soak",
            ADMIN_PASSWORD=PASSWORD,
            JWT_ACCESS_TTL="24h",
        ),
        log_path=log_path,
    )
    stop = threading.Event()
    try:
        try:
            live.wait_healthy(
                base, serve, timeout=180, log_path=log_path, path="/readyz", every=0.5
            )
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from None
        login = requests.post(
            f"{base}/api/v1/auth/login",
            json={"id": "soak", "password": PASSWORD},
            timeout=10,
        )
        login.raise_for_status()
        traffic = Traffic(base, login.json()["accessToken"], args.max_alerts)
        # Warm-up: both web workers import and connect before minute 1.
        warm = requests.Session()
        for _ in range(20):
            traffic.webhook(warm)
            traffic.read(warm)
        recorder = Recorder()
        threads = [
            threading.Thread(target=client, args=(traffic, recorder, stop))
            for _ in range(args.clients)
        ]
        threads.append(
            threading.Thread(
                target=sample_rss, args=(psutil.Process(serve.pid), recorder, stop)
            )
        )
        for thread in threads:
            thread.start()
        print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        print(
            f"soak: {args.minutes} min, {args.clients} clients against {base} "
            f"(server log {log_path})",
            flush=True,
        )
        for minute in range(args.minutes):
            time.sleep(
                max(0.0, (minute + 1) * 60 - (time.monotonic() - recorder.started))
            )
            print(f"minute {minute + 1} done", flush=True)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        errors = report(recorder, args.minutes)
    finally:
        stop.set()
        live.stop(serve, timeout=60)
    raise SystemExit(1 if errors else 0)


if __name__ == "__main__":
    main()
