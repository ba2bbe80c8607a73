"""Slack notification benchmark: webhook → Slack root latency, messages, throughput.

Starts its own embedded PostgreSQL in a temporary folder (or uses
DATABASE_URL), a fake Slack on 127.0.0.1 that answers in --slack-ms (50 ms),
gunicorn (2 workers) and --workers `manage.py db_worker` processes polling
every --interval seconds. Then posts 1,000 alerts over 100 incidents (one
namespace each, in deliveries of --batch alerts, at --rate deliveries/s) and
waits until every Slack message is out. Prints the Slack calls made, the
webhook → root-posted latency p50/p95 (target: p95 ≤ 2 s) and the workers'
throughput.

    .venv/bin/python bench/notify.py [--workers 2] [--interval 0.2]
"""

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from statistics import quantiles

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kuberca.testing import live  # noqa: E402
from notifications.tests.fake_slack import CHANNEL, TOKEN, FakeSlack  # noqa: E402


def body(run: str, incident: int, first: int, size: int) -> dict:
    starts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    alerts = [
        {
            "status": "firing",
            "labels": {
                "alertname": "BenchNotify",
                "namespace": f"bench-{run}-{incident}",
                "pod": f"pod-{n}",
                "severity": "critical" if n % 7 == 0 else "warning",
            },
            "annotations": {"summary": f"pod-{n} of incident {incident} is down"},
            "startsAt": starts,
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph",
            "fingerprint": f"{run}-{incident}-{n}",
        }
        for n in range(first, first + size)
    ]
    return {
        "version": "4",
        "groupKey": f"bench-{run}-{incident}",
        "status": "firing",
        "receiver": "kuberca",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager",
        "alerts": alerts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--incidents", type=int, default=100)
    parser.add_argument("--batch", type=int, default=5, help="alerts per delivery")
    parser.add_argument("--rate", type=float, default=20, help="deliveries per second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--slack-ms", type=float, default=50)
    parser.add_argument("--thread-interval", default="5s")
    parser.add_argument("--timeout", type=float, default=180)
    parser.add_argument(
        "--slack-off", action="store_true", help="webhooks alone, for comparison"
    )
    args = parser.parse_args()

    fake = FakeSlack(delay=args.slack_ms / 1000)
    env = live.server_env(
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_CHANNEL_ID=CHANNEL,
        SLACK_API_URL=fake.api_url,
        SLACK_THREAD_INTERVAL=args.thread_interval,
        ALERT_STALE_AFTER="0",
    )
    if args.slack_off:
        env["SLACK_CHANNEL_ID"] = ""
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kuberca.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from alerts.models import Alert
    from notifications.models import MessageKind, SlackMessage

    call_command("migrate", verbosity=0)
    connection.close()

    port = live.free_port()
    logs = Path(tempfile.gettempdir())
    web_log = logs / "kuberca-bench-notify-web.log"
    worker_log = logs / "kuberca-bench-notify-worker.log"
    processes = [
        live.spawn(
            live.gunicorn_command(port=port, workers=2), env=env, log_path=web_log
        )
    ]
    worker_log.write_bytes(b"")  # the workers append to one log
    for n in range(args.workers):
        command = live.worker_command(interval=args.interval, scheduler=n == 0)
        processes.append(live.spawn(command, env=env, log_path=worker_log, append=True))
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            live.wait_healthy(base, processes[0], timeout=60, log_path=web_log)
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from None
        time.sleep(1.5)  # the workers' first poll

        run = uuid.uuid4().hex[:8]
        per_incident = args.alerts // args.incidents
        deliveries = [
            (incident, first)
            for first in range(0, per_incident, args.batch)
            for incident in range(args.incidents)
        ]
        opened_at: dict[str, float] = {}
        session = requests.Session()
        started = time.time()
        errors = 0
        for index, (incident, first) in enumerate(deliveries):
            due = started + index / args.rate
            time.sleep(max(0.0, due - time.time()))
            size = min(args.batch, per_incident - first)
            namespace = f"bench-{run}-{incident}"
            sent_at = time.time()
            response = session.post(
                f"{base}/webhook/alertmanager",
                json=body(run, incident, first, size),
                timeout=30,
            )
            errors += response.status_code != 200
            opened_at.setdefault(namespace, sent_at)
        sending_done = time.time()

        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            if (
                not SlackMessage.objects.unsent().exists()
                and not (
                    SlackMessage.objects.roots().filter(
                        revision__gt=django.db.models.F("posted_revision")
                    )
                ).exists()
            ):
                break
            time.sleep(0.25)
        finished = time.time()
        unsent = SlackMessage.objects.unsent().count()

        namespace_of = dict(
            Alert.objects.filter(namespace__startswith=f"bench-{run}-")
            .values_list("incident_id", "namespace")
            .distinct()
        )
        latencies = []
        for incident_id, sent in SlackMessage.objects.filter(
            kind=MessageKind.INCIDENT_ROOT, state="sent"
        ).values_list("incident_id", "sent_at"):
            namespace = namespace_of.get(incident_id)
            if namespace in opened_at:
                latencies.append(sent.timestamp() - opened_at[namespace])
        calls = [c for c in fake.calls if c.answered == 200]
        posts = [c for c in calls if c.method == "chat.postMessage"]
        updates = [c for c in calls if c.method == "chat.update"]
        cuts = quantiles(latencies, n=20) if len(latencies) > 1 else [0] * 19
        busy = max(1e-9, finished - started)
        print(
            f"alerts {args.alerts} over {args.incidents} incidents, "
            f"{len(deliveries)} deliveries at {args.rate:g}/s ({errors} errors), "
            f"{args.workers} worker(s), poll interval {args.interval:g}s, "
            f"Slack {args.slack_ms:g} ms, thread interval {args.thread_interval}"
        )
        print(
            f"slack calls {len(calls)}: {len(posts)} messages posted "
            f"({len(latencies)} roots, {len(posts) - len(latencies)} replies), "
            f"{len(updates)} root edits; unsent left {unsent}"
        )
        print(
            f"webhook -> root posted: p50 {cuts[9]:.3f}s  p95 {cuts[18]:.3f}s  "
            f"max {max(latencies, default=0):.3f}s  (target p95 <= 2s: "
            f"{'met' if cuts[18] <= 2 else 'MISSED'})"
        )
        print(
            f"worker throughput: {len(calls) / busy:.1f} Slack calls/s over "
            f"{busy:.1f}s (sending took {sending_done - started:.1f}s, "
            f"drain after last webhook {finished - sending_done:.1f}s)"
        )
    finally:
        live.stop(*processes, timeout=15)
        fake.stop()


if __name__ == "__main__":
    main()
