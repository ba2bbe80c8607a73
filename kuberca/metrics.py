"""kuberca's own Prometheus metrics, exported at /metrics with django-prometheus.

Every app increments these; none defines its own elsewhere, so names stay in
one place. Labels are small fixed sets, never ids.
"""

from prometheus_client import Counter, Gauge, Histogram

webhook_deliveries = Counter(
    "kuberca_webhook_deliveries_total", "Webhook deliveries by outcome", ["outcome"]
)
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
)  # outcome: sent, failed, retried
agent_calls = Counter(
    "kuberca_agent_calls_total",
    "Agent calls by endpoint and outcome",
    ["endpoint", "outcome"],
)
agent_latency = Histogram(
    "kuberca_agent_call_seconds",
    "Agent call latency",
    ["endpoint"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 240, 480),
)
embedding_calls = Counter(
    "kuberca_embedding_calls_total", "Embedding provider calls by outcome", ["outcome"]
)
task_queue_depth = Gauge(
    "kuberca_task_queue_depth", "Tasks ready to run", multiprocess_mode="livemax"
)
task_oldest_pending_age = Gauge(
    "kuberca_task_oldest_pending_seconds",
    "Age of the oldest ready task",
    multiprocess_mode="livemax",
)
webhook_to_slack_root = Histogram(
    "kuberca_webhook_to_slack_root_seconds",
    "From the webhook that opened an incident to its Slack root message",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
