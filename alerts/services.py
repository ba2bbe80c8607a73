"""Alert ingestion, grouping into incidents, and the moves a person makes.

The webhook, `manage.py ingest_alertmanager`, `replay_deliveries`, the admin and
the tasks all call these functions. Ingestion keeps the statement count of a
delivery constant: one lock statement, one lookup of known alerts, one lookup of
candidate incidents, one bulk upsert, one ledger update, whatever the number of
alerts. Advisory locks on the group keys and fingerprints serialise concurrent
deliveries that touch the same alerts, so any number of processes agree.
Incident rows are locked FOR NO KEY UPDATE (see incidents.services._locked),
so that a lock on an incident never holds back the commit of a row naming it.
"""

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgspec
from django.conf import settings
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    connection,
)
from django.db.models import Q, QuerySet, Subquery
from django.utils import timezone

from alerts import events
from alerts.models import (
    PINNED_REASONS,
    Alert,
    AlertStatus,
    DeliveryOutcome,
    GroupingReason,
    WebhookDelivery,
    WebhookRateCounter,
    new_alert_id,
)
from alerts.payload import (
    FIRING,
    INTEGER_COLUMN_MAX,
    RESOLVED,
    ParsedAlert,
    ParsedPayload,
    PayloadError,
    Rejection,
    parse_payload,
)
from incidents.models import (
    AUTO_RESOLVER,
    TITLE_MAX_CHARS,
    Incident,
    IncidentStatus,
    highest_severity,
    severity_rank,
)
from incidents.services import (
    IncidentAlreadyResolved,
    IncidentNotFound,
    NewIncident,
    incident_reopen,
    incident_resolve,
    incidents_open,
)
from kuberca import metrics, prepared
from kuberca.batches import BATCH_SIZE, delete_in_batches
from kuberca.errors import InvalidInput, NotFound
from kuberca.transactions import atomic_retrying

logger = logging.getLogger(__name__)

GLOBAL_KEY = "global"
# What the admin shows of an over-limit body (SPEC §3.1).
OVERSIZE_KEEP_BYTES = 64 * 1024
SECRET_HEADERS = {
    "authorization",
    "cookie",
    "x-webhook-signature",
    "proxy-authorization",
}


class AlertNotFound(NotFound):
    code = "alert not found"
    default_message = "alert not found"


class DeliveryNotFound(NotFound):
    code = "delivery not found"
    default_message = "webhook delivery not found"


@dataclass
class IngestResult:
    """What the webhook answers for one delivery (SPEC §3.2)."""

    http_status: int
    delivery_id: int | None = None
    alert_count: int = 0
    stored: int = 0
    ignored: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    rejected_count: int = 0
    slack_sent: int = 0
    slack_failed: int = 0
    error: str = ""
    detail: str = ""
    fired_ids: list[str] = field(default_factory=list)
    resolved_ids: list[str] = field(default_factory=list)
    incidents_opened: list[str] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        if self.http_status == 200:
            return {
                "status": "received",
                "alertCount": self.alert_count,
                "slackSent": self.slack_sent,
                "slackFailed": self.slack_failed,
                "stored": self.stored,
                "ignored": self.ignored,
                "duplicates": self.duplicates,
                "rejected": self.rejected,
                "deliveryId": self.delivery_id,
            }
        body: dict[str, Any] = {"error": self.error}
        if self.detail:
            body["detail"] = self.detail
        if self.delivery_id is not None:
            body["deliveryId"] = self.delivery_id
        return body


# Grouping -------------------------------------------------------------------


_GROUP_KEY_MAX = 512


def group_key_for(labels: dict[str, str]) -> str:
    """The correlation key of INCIDENT_GROUP_BY; a missing label is empty."""
    names = settings.INCIDENT_GROUP_BY
    if [n.lower() for n in names] == [GLOBAL_KEY] or not names:
        return GLOBAL_KEY
    key = ",".join(f"{name}={_key_value(labels.get(name, ''))}" for name in names)
    if len(key) > _GROUP_KEY_MAX:
        # Indexed columns hold the key: past btree's row limit a huge label
        # value would fail every delivery of that alert. Keep a readable
        # start and a digest of the whole, which stays unique.
        digest = hashlib.sha256(key.encode()).hexdigest()
        key = f"{key[: _GROUP_KEY_MAX - 72]}…sha256:{digest}"
    return key


def _key_value(value: str) -> str:
    """A label value as the group key writes it: a backslash, comma or equals
    sign escaped by a backslash, so a value holding `,namespace=x` cannot
    make another group's key. Values without them, all Kubernetes label
    values among them, are written as they are."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _is_global() -> bool:
    return group_key_for({}) == GLOBAL_KEY


def incident_title(labels: dict[str, str], annotations: dict[str, Any]) -> str:
    summary = annotations.get("summary")
    if isinstance(summary, str) and summary.strip():
        return summary.strip()
    name = labels.get("alertname") or "alert"
    namespace = labels.get("namespace")
    return f"{name} in {namespace}" if namespace else name


_LOCK = "SELECT count(pg_advisory_xact_lock(k)) FROM unnest(%s::bigint[]) AS k"
# Parameters of the delivery's statements travel as JSON documents: one quoted
# string costs far less to send than arrays quoted element by element.
_LOCK_JSON = prepared.Statement(
    "lock_keys",
    """
SELECT count(pg_advisory_xact_lock(k::bigint))
FROM jsonb_array_elements_text(%s::jsonb) AS t(k)
""",
)


# Keys are spread over a fixed number of advisory locks, so one delivery
# takes at most this many, however many alerts it holds: PostgreSQL's lock
# table is shared and small (max_locks_per_transaction), and a body of 100,000
# distinct alerts must not exhaust it. Two keys in one bucket only wait for
# each other; exclusion is kept.
_LOCK_BUCKETS = 256
_LOCK_BASE = 0x6B75626572636100  # "kuberca\0": apart from other users' locks


def _lock_hashes(
    *, group_keys: Iterable[str] = (), fingerprints: Iterable[str] = ()
) -> list[int]:
    """The advisory lock ids of these group keys and alert fingerprints, in
    the one order used everywhere (a key and a fingerprint never share a name).
    """
    names = {"g:" + key for key in group_keys} | {"f:" + fp for fp in fingerprints}
    return sorted(
        {
            _LOCK_BASE
            + int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8).digest())
            % _LOCK_BUCKETS
            for k in names
        }
    )


def _lock_keys(
    *, group_keys: Iterable[str] = (), fingerprints: Iterable[str] = ()
) -> None:
    """Take transaction-scoped advisory locks, in one order everywhere."""
    hashes = _lock_hashes(group_keys=group_keys, fingerprints=fingerprints)
    if not hashes:
        return
    with connection.cursor() as cursor:
        cursor.execute(_LOCK, [hashes])


# Ingestion ------------------------------------------------------------------


@dataclass(slots=True)
class _Row:
    alert_id: str
    incident_id: str | None
    fingerprint: str
    status: str
    fired_at: datetime
    resolved_at: datetime | None
    grouping_reason: str
    resolved_as_stale: bool
    last_seen_at: datetime
    group_key: str
    labels: dict[str, str] | None = None
    annotations: dict[str, Any] | None = None
    generator_url: str = ""
    is_new: bool = False
    dirty: bool = False

    @property
    def severity(self) -> str:
        return ((self.labels or {}).get("severity") or "warning").strip().lower()


# Three index lookups, one per way a stored row can match an alert of the
# delivery: its occurrence (fingerprint, fired_at), its fingerprint's firing
# row (the partial unique index), and, for the _timeless alerts (a second
# list, most often empty), the fingerprint's latest occurrence fired by then.
# Each reads only the rows it returns: one condition OR-ing the three walked
# every stored row of the fingerprint, tens of thousands for a flapping alert.
# The shape holds the plan to those lookups at any table size, also the
# generic plan of the prepared statement, made on the first few deliveries
# (kuberca.prepared): each lookup is a LATERAL subquery, kept apart by its
# LIMIT (one row at most matches), where a join could be planned as a hash of
# the whole table; the rows are then read by key from an array of their ids.
# "Fired by then" is a row comparison on (fingerprint, fired_at), which only
# the occurrence index can take: written as fired_at <= ts, an index led by
# fired_at served it too, and with statistics of a few fingerprints the
# planner walked that index back from ts, reading every alert fired before.
_SELECT_KNOWN = prepared.Statement(
    "select_known",
    """
SELECT a.alert_id, a.incident_id, a.fingerprint, a.status, a.fired_at,
       a.resolved_at, a.grouping_reason, a.resolved_as_stale, a.last_seen_at,
       a.group_key
FROM alerts_alert a
WHERE a.alert_id = ANY(ARRAY(
    SELECT seen.alert_id
    FROM jsonb_to_recordset(%s::jsonb) AS u(fp text, ts timestamptz)
    CROSS JOIN LATERAL (
        SELECT c.alert_id FROM alerts_alert c
        WHERE c.fingerprint = u.fp AND c.fired_at = u.ts
        LIMIT 1) AS seen
    UNION ALL
    SELECT firing.alert_id
    FROM unnest(%s::text[]) AS f(fp)
    CROSS JOIN LATERAL (
        SELECT c.alert_id FROM alerts_alert c
        WHERE c.fingerprint = f.fp AND c.status = 'firing'
        LIMIT 1) AS firing
    UNION ALL
    SELECT latest.alert_id
    FROM jsonb_to_recordset(%s::jsonb) AS t(fp text, ts timestamptz)
    CROSS JOIN LATERAL (
        SELECT c.alert_id FROM alerts_alert c
        WHERE c.fingerprint = t.fp AND (c.fingerprint, c.fired_at) <= (t.fp, t.ts)
        ORDER BY c.fingerprint DESC, c.fired_at DESC
        LIMIT 1) AS latest))
FOR UPDATE OF a
""",
)

# The incidents a delivery's alerts may join or reopen; `Incident.from_db`
# builds (deferred) instances from these columns.
_INCIDENT_COLUMNS = (
    "incident_id",
    "group_key",
    "status",
    "is_enabled",
    "severity",
    "resolved_by",
    "resolved_at",
    "last_alert_at",
    "created_at",
    "truncated_alerts",
)
# Model.from_db takes the values in the model's field order.
_INCIDENT_ORDER = [
    _INCIDENT_COLUMNS.index(f.attname)
    for f in Incident._meta.concrete_fields
    if f.attname in _INCIDENT_COLUMNS
]


def _incident(record: tuple[Any, ...]) -> Incident:
    return Incident.from_db(
        connection.alias, _INCIDENT_COLUMNS, [record[i] for i in _INCIDENT_ORDER]
    )


# Locked only when some alert of the delivery matches no stored row (so it may
# need grouping): a delivery of repeats leaves its incidents alone. Python
# decides the same thing from the rows _SELECT_KNOWN returned (_unmatched).
# OFFSET 0 keeps each inner EXISTS a subplan, an index probe per alert and
# way of matching (as in _SELECT_KNOWN): as an anti-join under EXISTS the
# planner, costing for the first row only, scans the whole alerts table.
# "Fired by then" is a row comparison for the reason given at _SELECT_KNOWN.
_CANDIDATES_IF_NEW = prepared.Statement(
    "candidates_if_new",
    """
SELECT incident_id, group_key, status, is_enabled, severity, resolved_by,
       resolved_at, last_alert_at, created_at, truncated_alerts
FROM incidents_incident
WHERE group_key = ANY(%s::text[]) AND is_enabled
  AND (status = 'firing'
       OR (status = 'resolved' AND resolved_by = %s AND resolved_at > %s))
  AND EXISTS (
    SELECT 1
    FROM jsonb_to_recordset(%s::jsonb) AS u(fp text, ts timestamptz, latest boolean)
    WHERE NOT EXISTS (
        SELECT 1 FROM alerts_alert a
        WHERE a.fingerprint = u.fp AND a.fired_at = u.ts OFFSET 0)
      AND NOT EXISTS (
        SELECT 1 FROM alerts_alert a
        WHERE a.fingerprint = u.fp AND a.status = 'firing' OFFSET 0)
      AND NOT (coalesce(u.latest, false) AND EXISTS (
        SELECT 1 FROM alerts_alert a
        WHERE a.fingerprint = u.fp AND (a.fingerprint, a.fired_at) <= (u.fp, u.ts)
        OFFSET 0)))
ORDER BY incident_id
FOR NO KEY UPDATE
""",
)
_CANDIDATES = """
SELECT incident_id, group_key, status, is_enabled, severity, resolved_by,
       resolved_at, last_alert_at, created_at, truncated_alerts
FROM incidents_incident
WHERE incident_id = ANY(%s::text[])
   OR (group_key = ANY(%s::text[]) AND is_enabled
  AND (status = 'firing'
       OR (status = 'resolved' AND resolved_by = %s AND resolved_at > %s)))
ORDER BY incident_id
FOR NO KEY UPDATE
"""
# A firing alert seen again writes last_seen_at at most once a minute (the
# stale sweep works in hours): a repeat that changes nothing else leaves the
# row, and all its indexes, alone.
LAST_SEEN_RESOLUTION = timedelta(seconds=60)  # the interval in _UPSERT
_UPSERT = prepared.Statement(
    "upsert_alerts",
    """
INSERT INTO alerts_alert (
    alert_id, incident_id, fingerprint, alarm_title, severity, status, fired_at,
    resolved_at, labels, annotations, generator_url, namespace, group_key,
    analysis_summary, analysis_detail, thread_ts, grouping_reason, is_enabled,
    resolved_as_stale, last_seen_at, created_at, updated_at)
SELECT u.alert_id, u.incident_id, u.fingerprint, u.alarm_title, u.severity,
       u.status, u.fired_at, u.resolved_at, u.labels, u.annotations,
       u.generator_url, u.namespace, u.group_key, '', '', '', u.grouping_reason,
       true, u.resolved_as_stale, u.last_seen_at, %s, %s
FROM jsonb_to_recordset(%s::jsonb) AS u(
    n int, alert_id text, incident_id text, fingerprint text, alarm_title text,
    severity text, status text, fired_at timestamptz, resolved_at timestamptz,
    labels jsonb, annotations jsonb, generator_url text, namespace text,
    group_key text, grouping_reason text, resolved_as_stale boolean,
    last_seen_at timestamptz)
ORDER BY u.n
ON CONFLICT (alert_id) DO UPDATE SET
    incident_id = EXCLUDED.incident_id,
    alarm_title = EXCLUDED.alarm_title,
    severity = EXCLUDED.severity,
    status = EXCLUDED.status,
    resolved_at = EXCLUDED.resolved_at,
    labels = EXCLUDED.labels,
    annotations = EXCLUDED.annotations,
    generator_url = EXCLUDED.generator_url,
    namespace = EXCLUDED.namespace,
    group_key = EXCLUDED.group_key,
    grouping_reason = EXCLUDED.grouping_reason,
    resolved_as_stale = EXCLUDED.resolved_as_stale,
    last_seen_at = EXCLUDED.last_seen_at,
    updated_at = EXCLUDED.updated_at
WHERE (alerts_alert.incident_id, alerts_alert.status, alerts_alert.resolved_at,
       alerts_alert.grouping_reason, alerts_alert.resolved_as_stale,
       alerts_alert.group_key, alerts_alert.generator_url)
      IS DISTINCT FROM
      (EXCLUDED.incident_id, EXCLUDED.status, EXCLUDED.resolved_at,
       EXCLUDED.grouping_reason, EXCLUDED.resolved_as_stale,
       EXCLUDED.group_key, EXCLUDED.generator_url)
   OR alerts_alert.labels IS DISTINCT FROM EXCLUDED.labels
   OR alerts_alert.annotations IS DISTINCT FROM EXCLUDED.annotations
   OR alerts_alert.last_seen_at
      < EXCLUDED.last_seen_at - interval '60 seconds'
""",
)

# What alerts joining do to their incidents (the window moves, severity and
# truncated_alerts only rise, decided in _note_joined), for every joined
# incident in one statement of the delivery's write.
_INCIDENTS_JOINED = prepared.Statement(
    "incidents_joined",
    """
UPDATE incidents_incident AS i
SET last_alert_at = %s, updated_at = %s, severity = u.severity,
    truncated_alerts = u.truncated_alerts
FROM jsonb_to_recordset(%s::jsonb)
     AS u(incident_id text, severity text, truncated_alerts int)
WHERE i.incident_id = u.incident_id
""",
)

_INCIDENTS_TRUNCATED = prepared.Statement(
    "incidents_truncated",
    """
UPDATE incidents_incident SET truncated_alerts = %s
WHERE incident_id = ANY(%s::text[]) AND truncated_alerts < %s
""",
)

# Whether incidents still have a firing alert is read only once they are
# locked, in the next statement (with its own snapshot): a delivery of another
# group key that is joining an alert to one of them holds its row lock until
# it commits, and its alert is then seen. Read first, an incident could be
# resolved while that new alert fires in it.
_LOCK_INCIDENTS = prepared.Statement(
    "lock_incidents",
    """
SELECT count(*) FROM (
    SELECT 1 FROM incidents_incident WHERE incident_id = ANY(%s::text[])
    ORDER BY incident_id FOR NO KEY UPDATE) AS locked
""",
)
_INCIDENT_STATE = prepared.Statement(
    "incident_state",
    """
SELECT i.incident_id, coalesce(bool_or(a.status = 'firing'), false),
    max(a.resolved_at), i.status
FROM incidents_incident i LEFT JOIN alerts_alert a ON a.incident_id = i.incident_id
WHERE i.incident_id = ANY(%s::text[])
GROUP BY i.incident_id, i.status
""",
)

_UPDATE_PROCESSED = prepared.Statement(
    "delivery_processed",
    """
UPDATE alerts_webhookdelivery SET outcome = 'processed', http_status = 200,
    group_key = %s, receiver = %s, truncated_alerts = %s, alert_count = %s,
    stored = %s, duplicates = %s, ignored = %s, rejected = %s,
    rejections = %s::jsonb, error = '', processed_at = %s
WHERE id = %s
""",
)

_json_encoder = msgspec.json.Encoder()


def _json(value: Any) -> str:
    return _json_encoder.encode(value).decode()


def _upsert_rows(rows: list[_Row]) -> str:
    """The rows as the JSON array _UPSERT reads."""
    # Rows leaving `firing` go first, so a new firing occurrence of the same
    # fingerprint in this batch never meets the old one in the partial index.
    rows = sorted(rows, key=lambda r: r.status != RESOLVED)
    records = []
    for n, row in enumerate(rows):
        labels = row.labels or {}
        namespace = labels.get("namespace")
        records.append(
            {
                "n": n,
                "alert_id": row.alert_id,
                "incident_id": row.incident_id,
                "fingerprint": row.fingerprint,
                # Cut like incident titles (the labels keep it all): the
                # full-text index of titles refuses a text of over 1 MB,
                # which would fail the delivery.
                "alarm_title": labels.get("alertname", "")[:TITLE_MAX_CHARS],
                "severity": row.severity[:32],
                "status": row.status,
                "fired_at": row.fired_at,
                "resolved_at": row.resolved_at,
                "labels": labels,
                "annotations": row.annotations or {},
                "generator_url": row.generator_url,
                "namespace": namespace[:253] if namespace is not None else None,
                "group_key": row.group_key,
                "grouping_reason": row.grouping_reason,
                "resolved_as_stale": row.resolved_as_stale,
                "last_seen_at": row.last_seen_at,
            }
        )
    return _json(records)


class _Batch:
    """Statements sent together in one round trip; only the last may return rows."""

    def __init__(self) -> None:
        self.statements: list[tuple[prepared.Statement, list[Any]]] = []

    def add(self, statement: prepared.Statement, params: list[Any]) -> None:
        self.statements.append((statement, params))

    def run(self) -> list[tuple[Any, ...]]:
        if not self.statements:
            return []
        with connection.cursor() as cursor:
            prepared.execute(cursor, self.statements)
            while cursor.nextset():
                pass
            return cursor.fetchall() if cursor.description else []


@dataclass
class _Plan:
    """Per-delivery bookkeeping while alerts are decided."""

    at: datetime
    now: datetime
    truncated: int
    by_occurrence: dict[tuple[str, datetime], _Row]
    firing_by_fp: dict[str, _Row]
    # Each fingerprint's latest occurrence fired by the time of receipt, for
    # _timeless alerts (_new_row keeps it up to date).
    latest_by_fp: dict[str, _Row]
    written: dict[str, _Row] = field(default_factory=dict)
    fired: list[_Row] = field(default_factory=list)
    resolved: list[_Row] = field(default_factory=list)
    to_group: list[_Row] = field(default_factory=list)
    refired: list[_Row] = field(default_factory=list)
    # Incidents locked with the known rows; None when none were looked up.
    candidates: list[Incident] | None = None
    # Incident id -> (severity, truncated_alerts) to write for joined alerts,
    # and the incident_changed fields to send for each.
    joined: dict[str, tuple[str, int]] = field(default_factory=dict)
    changed: dict[str, list[str]] = field(default_factory=dict)
    stored: int = 0
    duplicates: int = 0

    def touch(self, row: _Row) -> None:
        row.dirty = True
        self.written[row.alert_id] = row


def _fired_at(alert: ParsedAlert, at: datetime) -> datetime:
    if alert.starts_at is not None:
        return alert.starts_at
    if alert.status == RESOLVED and alert.ends_at is not None:
        return alert.ends_at
    return at


def _resolved_at(alert: ParsedAlert, at: datetime, fired_at: datetime) -> datetime:
    """When a resolved alert ended: its endsAt, capped at `at`, the time of
    receipt, and never before it fired (a sender's clock either way).

    An endsAt past the time of receipt would make its incident's resolved_at
    a future one, which the reopen window never leaves behind.
    """
    ended = at if alert.ends_at is None else min(alert.ends_at, at)
    return max(ended, fired_at)


def _timeless(alert: ParsedAlert) -> bool:
    """A resolved alert with no time at all to know its occurrence by.

    Its fired_at would be the time of receipt, another one at each retry of
    the delivery; it is taken for its fingerprint's latest occurrence fired
    by the time of receipt instead (a duplicate when that is resolved), and
    is stored only when there is none. By the time of receipt, so that a
    replay of the delivery meets what the delivery met, not an occurrence
    that fired later. Alertmanager always sends startsAt; some other senders
    do not.
    """
    return (
        alert.status == RESOLVED and alert.starts_at is None and alert.ends_at is None
    )


def _refresh(row: _Row, alert: ParsedAlert, plan: _Plan) -> None:
    row.labels = alert.labels
    row.annotations = alert.annotations
    row.generator_url = alert.generator_url
    row.last_seen_at = max(row.last_seen_at, plan.at)
    plan.touch(row)


def _decide(alert: ParsedAlert, plan: _Plan) -> None:
    fired_at = _fired_at(alert, plan.at)
    fp = alert.fingerprint
    row = plan.by_occurrence.get((fp, fired_at))

    if alert.status == FIRING:
        if row is not None and row.status == FIRING:
            _refresh(row, alert, plan)
            plan.duplicates += 1
        elif row is not None:
            # A stale guess is undone by a later sighting only: a replayed
            # delivery it was already seen in (or before) tells nothing new.
            # last_seen_at lags a sighting by up to LAST_SEEN_RESOLUTION, and a
            # stale alert was last seen at least ALERT_STALE_AFTER (2 minutes
            # or more) ago, so a live delivery always passes.
            if (
                row.resolved_as_stale
                and fp not in plan.firing_by_fp
                and plan.at > row.last_seen_at + LAST_SEEN_RESOLUTION
            ):
                _refresh(row, alert, plan)
                row.status = FIRING
                row.resolved_at = None
                row.resolved_as_stale = False
                plan.firing_by_fp[fp] = row
                plan.refired.append(row)
                plan.fired.append(row)
                plan.stored += 1
            else:
                plan.duplicates += 1
        elif fp in plan.firing_by_fp:
            # The sender restarted and lost startsAt: the same alert.
            _refresh(plan.firing_by_fp[fp], alert, plan)
            plan.duplicates += 1
        else:
            row = _new_row(alert, fired_at, plan)
            plan.firing_by_fp[fp] = row
            plan.fired.append(row)
            plan.to_group.append(row)
            plan.stored += 1
        return

    timeless = _timeless(alert)
    if row is None:
        row = plan.firing_by_fp.get(fp)
        if row is not None and timeless and row.fired_at > plan.at:
            row = None  # fired after this (replayed) delivery was received
    if row is None and timeless:
        row = plan.latest_by_fp.get(fp)
    if row is not None and row.status == FIRING:
        _refresh(row, alert, plan)
        row.status = RESOLVED
        row.resolved_at = _resolved_at(alert, plan.at, row.fired_at)
        row.resolved_as_stale = False
        plan.firing_by_fp.pop(fp, None)
        plan.resolved.append(row)
        plan.stored += 1
    elif row is not None:
        if row.resolved_as_stale:
            # Alertmanager confirms what the stale sweep guessed: from now on
            # a late firing delivery of this occurrence is only a duplicate.
            _refresh(row, alert, plan)
            row.resolved_as_stale = False
        plan.duplicates += 1
    else:
        row = _new_row(alert, fired_at, plan)
        row.status = RESOLVED
        row.resolved_at = _resolved_at(alert, plan.at, fired_at)
        plan.to_group.append(row)
        plan.stored += 1


def _new_row(alert: ParsedAlert, fired_at: datetime, plan: _Plan) -> _Row:
    row = _Row(
        alert_id=new_alert_id(),
        incident_id=None,
        fingerprint=alert.fingerprint,
        status=FIRING,
        fired_at=fired_at,
        resolved_at=None,
        grouping_reason="",
        resolved_as_stale=False,
        last_seen_at=plan.at,
        group_key=group_key_for(alert.labels),
        labels=alert.labels,
        annotations=alert.annotations,
        generator_url=alert.generator_url,
        is_new=True,
    )
    plan.by_occurrence[(row.fingerprint, fired_at)] = row
    latest = plan.latest_by_fp.get(row.fingerprint)
    if fired_at <= plan.at and (latest is None or fired_at > latest.fired_at):
        plan.latest_by_fp[row.fingerprint] = row
    plan.touch(row)
    return row


def _lock_and_load(
    alerts: list[ParsedAlert], at: datetime, now: datetime
) -> tuple[list[_Row], list[Incident]]:
    """Lock the delivery's keys, then read its known alerts and candidates.

    One round trip. Each statement takes its own snapshot, so the selects see
    every row committed by a delivery that held the locks before us.
    """
    keys = {group_key_for(a.labels) for a in alerts}
    hashes = _lock_hashes(group_keys=keys, fingerprints=(a.fingerprint for a in alerts))
    # Timeless alerts are flagged among the occurrences (_CANDIDATES_IF_NEW)
    # and also listed apart (_SELECT_KNOWN); their fired_at is `at`.
    occurrences: list[dict[str, Any]] = []
    timeless: list[dict[str, Any]] = []
    for a in alerts:
        occurrence: dict[str, Any] = {"fp": a.fingerprint, "ts": _fired_at(a, at)}
        if _timeless(a):
            occurrence["latest"] = True
            timeless.append(occurrence)
        occurrences.append(occurrence)
    occurrences_json = _json(occurrences)
    reopen_since = now - settings.INCIDENT_REOPEN_WINDOW
    with connection.cursor() as cursor:
        prepared.execute(
            cursor,
            [
                (_LOCK_JSON, [_json(hashes)]),
                (
                    _SELECT_KNOWN,
                    [
                        occurrences_json,
                        sorted({a.fingerprint for a in alerts}),
                        _json(timeless),
                    ],
                ),
                (
                    _CANDIDATES_IF_NEW,
                    [sorted(keys), AUTO_RESOLVER, reopen_since, occurrences_json],
                ),
            ],
        )
        cursor.nextset()
        unique = {record[0]: record for record in cursor.fetchall()}
        cursor.nextset()
        incidents = [_incident(record) for record in cursor.fetchall()]
    return [_Row(*record) for record in unique.values()], incidents


def _unmatched(alerts: list[ParsedAlert], known: list[_Row], at: datetime) -> bool:
    """Whether some alert matches no known row, as _CANDIDATES_IF_NEW decides."""
    occurrences = {(r.fingerprint, r.fired_at) for r in known}
    firing = {r.fingerprint for r in known if r.status == FIRING}
    fired_by_then = {r.fingerprint for r in known if r.fired_at <= at}
    return any(
        (a.fingerprint, _fired_at(a, at)) not in occurrences
        and a.fingerprint not in firing
        and not (_timeless(a) and a.fingerprint in fired_by_then)
        for a in alerts
    )


def _latest_by_fp(known: list[_Row], at: datetime) -> dict[str, _Row]:
    """Each fingerprint's latest known occurrence fired by `at`."""
    latest: dict[str, _Row] = {}
    for row in known:
        other = latest.get(row.fingerprint)
        if row.fired_at <= at and (other is None or row.fired_at > other.fired_at):
            latest[row.fingerprint] = row
    return latest


def _candidate_incidents(
    keys: set[str], ids: set[str], now: datetime
) -> list[Incident]:
    """Lock the incidents these alerts may join or reopen, in id order."""
    if not keys and not ids:
        return []
    reopen_since = now - settings.INCIDENT_REOPEN_WINDOW
    with connection.cursor() as cursor:
        cursor.execute(
            _CANDIDATES, [sorted(ids), sorted(keys), AUTO_RESOLVER, reopen_since]
        )
        return [_incident(record) for record in cursor.fetchall()]


@dataclass
class _Target:
    incident: Incident | None
    reason: str
    action: str  # "join", "reopen", "open", "none"
    rows: list[_Row] = field(default_factory=list)


def _joinable(incident: Incident, now: datetime) -> bool:
    young = incident.created_at > now - settings.INCIDENT_MAX_AGE
    if incident.group_key == GLOBAL_KEY:
        # Global mode is one open incident for everything (SPEC §3.3): a
        # quiet hour does not split it. Max age still does, so that a trickle
        # of alerts cannot keep one incident growing for ever.
        return incident.is_open and young
    last = incident.last_alert_at or incident.created_at
    return incident.is_open and last > now - settings.INCIDENT_GROUP_WINDOW and young


def _reopenable(incident: Incident, now: datetime) -> bool:
    """Whether a new alert of its key may still reopen `incident`: resolved by
    its alerts less than INCIDENT_REOPEN_WINDOW ago (SPEC §3.3)."""
    return (
        incident.was_auto_resolved
        and incident.resolved_at is not None
        and incident.resolved_at > now - settings.INCIDENT_REOPEN_WINDOW
    )


def _join_reason(key: str) -> str:
    """Why an alert of `key` is in an incident it did not open or reopen."""
    return GroupingReason.GLOBAL if key == GLOBAL_KEY else GroupingReason.JOINED


def _target_for_key(
    key: str, incidents: list[Incident], now: datetime, firing: bool
) -> _Target:
    same_key = [i for i in incidents if i.group_key == key]
    join_reason = _join_reason(key)
    if not firing:
        open_ones = [i for i in same_key if i.is_open]
        if open_ones:
            best = max(open_ones, key=lambda i: i.last_alert_at or i.created_at)
            return _Target(best, join_reason, "join")
        return _Target(None, GroupingReason.UNGROUPED, "none")
    joinable = [i for i in same_key if _joinable(i, now)]
    if joinable:
        best = max(joinable, key=lambda i: i.last_alert_at or i.created_at)
        return _Target(best, join_reason, "join")
    reopenable = [i for i in same_key if i.is_enabled and _reopenable(i, now)]
    if reopenable:
        best = max(reopenable, key=lambda i: i.resolved_at)
        return _Target(best, GroupingReason.REOPENED, "reopen")
    return _Target(None, GroupingReason.NEW_INCIDENT, "open")


def _group(plan: _Plan) -> list[str]:
    """Place new and re-fired alerts in incidents; return incident ids opened."""
    now = plan.now
    # A re-fired stale alert goes back to its own incident when it can.
    refire_ids = {r.incident_id for r in plan.refired if r.incident_id}
    regroup: list[_Row] = []
    keys = {r.group_key for r in plan.to_group}
    pending_refires = [r for r in plan.refired if r.incident_id]
    regroup.extend(r for r in plan.refired if not r.incident_id)
    keys |= {r.group_key for r in regroup}
    if plan.candidates is not None and not plan.refired:
        incidents = plan.candidates
    else:
        incidents = _candidate_incidents(
            keys | {r.group_key for r in pending_refires}, refire_ids, now
        )
    by_id = {i.pk: i for i in incidents}

    joined: dict[str, list[str]] = {}
    reopened: set[str] = set()
    for row in pending_refires:
        incident = by_id.get(row.incident_id)
        if incident is None:
            regroup.append(row)
        elif incident.is_open:
            joined.setdefault(incident.pk, []).append(row.severity)
        elif _reopenable(incident, now) or row.grouping_reason in PINNED_REASONS:
            if incident.pk not in reopened and incident.is_resolved:
                incident_reopen(incident=incident)
                reopened.add(incident.pk)
            joined.setdefault(incident.pk, []).append(row.severity)
        else:
            regroup.append(row)

    targets: dict[tuple[str, bool], _Target] = {}
    # An alert that fired in this delivery is grouped as firing even when a
    # later alert of the same delivery resolved it: it opens or joins an
    # incident as it would have in a delivery of its own.
    fired = {r.alert_id for r in plan.fired}
    for row in [*plan.to_group, *regroup]:
        firing = row.status == FIRING or row.alert_id in fired
        slot = (row.group_key, firing)
        if slot not in targets:
            targets[slot] = _target_for_key(row.group_key, incidents, now, firing)
        targets[slot].rows.append(row)
    # A resolved-only alert joins the incident its firing neighbours open.
    for (key, firing), target in targets.items():
        if not firing and target.incident is None and (key, True) in targets:
            target.action = "follow"

    opening = [
        (key, target)
        for (key, firing), target in targets.items()
        if firing and target.action == "open"
    ]
    new = []
    for key, target in opening:
        first = min(target.rows, key=lambda r: r.fired_at)
        # The incident's severity is its alerts' highest, resolved ones too.
        following = targets.get((key, False))
        rows = list(target.rows)
        if following is not None and following.action == "follow":
            rows += following.rows
        new.append(
            NewIncident(
                group_key=key,
                title=incident_title(first.labels or {}, first.annotations or {}),
                severity=highest_severity(*(r.severity for r in rows)),
                fired_at=first.fired_at,
                truncated_alerts=plan.truncated,
            )
        )
    for (_key, target), incident in zip(opening, incidents_open(new=new), strict=True):
        target.incident = incident
    opened = [target.incident.pk for _key, target in opening]
    for (_key, firing), target in targets.items():
        if not firing:
            continue
        if target.action == "reopen":
            if target.incident.pk not in reopened:
                incident_reopen(incident=target.incident)
                reopened.add(target.incident.pk)
            joined.setdefault(target.incident.pk, [])
        if target.action in ("join", "reopen"):
            joined.setdefault(target.incident.pk, []).extend(
                r.severity for r in target.rows
            )
    for (key, firing), target in targets.items():
        if firing:
            continue
        if target.action == "follow":
            # Its firing neighbours opened or reopened the incident; it joined.
            # (An incident opened here took these severities when it opened.)
            target.incident = targets[(key, True)].incident
            target.reason = _join_reason(key)
        if target.incident is not None:
            joined.setdefault(target.incident.pk, []).extend(
                r.severity for r in target.rows
            )

    for (key, _firing), target in targets.items():
        first = min(target.rows, key=lambda r: r.fired_at)
        for row in target.rows:
            row.incident_id = target.incident.pk if target.incident else None
            row.grouping_reason = target.reason
            # One alert opened the incident; the others of this delivery joined.
            if target.action == "open" and row is not first:
                row.grouping_reason = _join_reason(key)

    all_incidents = {
        **by_id,
        **{
            t.incident.pk: t.incident
            for t in targets.values()
            if t.incident is not None
        },
    }
    for incident_id, severities in joined.items():
        if incident_id in opened:
            continue
        _note_joined(plan, all_incidents[incident_id], severities)
    return opened


def _note_joined(plan: _Plan, incident: Incident, severities: list[str]) -> None:
    """Queue the change joined alerts make to `incident` for the delivery's write.

    Like an alert's last_seen_at, last_alert_at is written at most once per
    LAST_SEEN_RESOLUTION when nothing else changes: an incident taking an
    alert every few seconds is not rewritten, with all its indexes, each time,
    and the group window (an hour by default) loses at most that minute.
    """
    severity = incident.severity
    changed = ["alert_count"]
    top = max(severities, key=severity_rank, default="")
    if top and severity_rank(top) > severity_rank(severity):
        severity = top
        changed.append("severity")
    truncated = max(incident.truncated_alerts, plan.truncated)
    plan.changed[incident.pk] = changed
    recent = (
        incident.last_alert_at is not None
        and incident.last_alert_at > plan.now - LAST_SEEN_RESOLUTION
    )
    if recent and (severity, truncated) == (
        incident.severity,
        incident.truncated_alerts,
    ):
        return
    plan.joined[incident.pk] = (severity, truncated)


def _incident_states(ids: list[str]) -> list[tuple[prepared.Statement, list[Any]]]:
    """Lock the incidents, then read their alerts' states (the last result)."""
    return [(_LOCK_INCIDENTS, [ids]), (_INCIDENT_STATE, [ids])]


def _lock_incidents(incident_ids: set[str]) -> None:
    """Lock these incidents, in id order, until commit."""
    if incident_ids:
        with connection.cursor() as cursor:
            prepared.execute(cursor, [(_LOCK_INCIDENTS, [sorted(incident_ids)])])


def _auto_resolve(incident_ids: set[str]) -> list[str]:
    """Resolve each firing incident whose alerts are all resolved."""
    if not incident_ids or not settings.INCIDENT_AUTO_RESOLVE:
        return []
    with connection.cursor() as cursor:
        prepared.execute(cursor, _incident_states(sorted(incident_ids)))
        cursor.nextset()
        return _resolve_finished(cursor.fetchall())


def _resolve_finished(states: list[tuple[Any, ...]]) -> list[str]:
    """Auto-resolve the firing incidents of _INCIDENT_STATE with none firing.

    At their alerts' last resolve, but never later than now: an alert that
    claims to have fired in the future (a sender's clock) must not give its
    incident a resolve time that the reopen window never leaves behind.
    """
    resolved = []
    now = timezone.now()
    for incident_id, any_firing, last_resolved, status in sorted(states):
        if any_firing or status != IncidentStatus.FIRING:
            continue
        try:
            incident_resolve(
                incident_id=incident_id,
                resolved_by=AUTO_RESOLVER,
                at=min(last_resolved, now) if last_resolved else None,
                automatic=True,
            )
        except IncidentAlreadyResolved:
            continue
        resolved.append(incident_id)
    return resolved


# Severities this process has warned are not kept: a team paging on
# `severity: page` reads once, not on every delivery, that those alerts are
# dropped. Bounded, as the values come from senders.
_warned_severities: set[str] = set()
_WARNED_SEVERITIES_MAX = 100


def _warn_ignored(severities: set[str]) -> None:
    """Warn of severities INGEST_SEVERITIES drops, each once per process.

    `none` (Alertmanager's Watchdog and other heartbeats) is dropped by design.
    """
    new = sorted(severities - _warned_severities - {"none"})
    room = _WARNED_SEVERITIES_MAX - len(_warned_severities)
    if not new or room <= 0:
        return
    new = [s[:64] for s in new[:room]]
    _warned_severities.update(new)
    logger.warning(
        "webhook alerts ignored: severity %s not in INGEST_SEVERITIES (%s); "
        "add it there to keep such alerts",
        ", ".join(repr(s) for s in new),
        ",".join(settings.INGEST_SEVERITIES),
    )


def _process(
    payload: ParsedPayload, delivery: WebhookDelivery, result: IngestResult
) -> None:
    """Apply a parsed payload; runs inside the caller's transaction.

    Three round trips whatever the number of alerts: locks with the reads,
    then every write (incidents joined, alerts, the ledger row) in one batch.
    Opening or reopening an incident, a re-fired stale alert and an
    auto-resolve add their own statements.
    """
    at = delivery.received_at
    gate = settings.INGEST_SEVERITIES
    kept = [a for a in payload.alerts if a.severity in gate]
    result.ignored = len(payload.alerts) - len(kept)
    if result.ignored:
        _warn_ignored({a.severity for a in payload.alerts if a.severity not in gate})
    batch = _Batch()
    plan: _Plan | None = None
    state_ids: list[str] = []
    if kept:
        now = timezone.now()
        known, candidates = _lock_and_load(kept, at, now)
        plan = _Plan(
            at=at,
            now=now,
            truncated=payload.truncated_alerts,
            by_occurrence={(r.fingerprint, r.fired_at): r for r in known},
            firing_by_fp={r.fingerprint: r for r in known if r.status == FIRING},
            latest_by_fp=_latest_by_fp(known, at),
            candidates=candidates if _unmatched(kept, known, at) else None,
        )
        for alert in kept:
            _decide(alert, plan)
        result.incidents_opened = (
            _group(plan) if (plan.to_group or plan.refired) else []
        )
        result.stored = plan.stored
        result.duplicates = plan.duplicates

        if plan.joined:
            batch.add(
                _INCIDENTS_JOINED,
                [
                    plan.now,
                    plan.now,
                    _json(
                        [
                            {
                                "incident_id": k,
                                "severity": v[0],
                                "truncated_alerts": v[1],
                            }
                            for k, v in sorted(plan.joined.items())
                        ]
                    ),
                ],
            )
        if plan.written:
            batch.add(
                _UPSERT,
                [plan.now, plan.now, _upsert_rows(list(plan.written.values()))],
            )
        if plan.truncated:
            ids = {r.incident_id for r in plan.written.values() if r.incident_id}
            batch.add(
                _INCIDENTS_TRUNCATED, [plan.truncated, sorted(ids), plan.truncated]
            )
        if settings.INCIDENT_AUTO_RESOLVE:
            state_ids = sorted({r.incident_id for r in plan.resolved if r.incident_id})
    batch.add(
        _UPDATE_PROCESSED,
        [
            payload.group_key,
            payload.receiver[:1000],
            payload.truncated_alerts,
            payload.alert_count,
            result.stored,
            result.duplicates,
            result.ignored,
            payload.rejected_count,
            _json(payload.rejected),
            timezone.now(),
            delivery.pk,
        ],
    )
    if state_ids:
        for statement, params in _incident_states(state_ids):
            batch.add(statement, params)
    states = batch.run()
    if plan is None:
        return

    for incident_id, fields in sorted(plan.changed.items()):
        _send_changed(incident_id, fields)
    if state_ids:
        _resolve_finished(states)
    fired_ids = [r.alert_id for r in plan.fired]
    resolved_ids = [r.alert_id for r in plan.resolved]
    if fired_ids:
        events.alerts_fired.send(sender=Alert, alert_ids=fired_ids)
    if resolved_ids:
        events.alerts_resolved.send(sender=Alert, alert_ids=resolved_ids, stale=False)

    result.fired_ids = fired_ids
    result.resolved_ids = resolved_ids
    if settings.SLACK_ENABLED:
        result.slack_sent = (
            len(fired_ids) + len(resolved_ids) + len(result.incidents_opened)
        )


def _ingest_stored(delivery: WebhookDelivery, body: bytes) -> IngestResult:
    """Process a stored delivery's body and record the outcome on it."""
    result = IngestResult(http_status=200, delivery_id=delivery.pk)
    try:
        payload = parse_payload(body)
    except PayloadError as error:
        result.http_status, result.error = 400, "invalid payload"
        result.detail = error.detail[:1000]
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            outcome=DeliveryOutcome.REJECTED,
            http_status=400,
            error=result.detail,
            processed_at=timezone.now(),
        )
        metrics.webhook_deliveries.labels(outcome="rejected").inc()
        logger.warning(
            "webhook delivery rejected delivery_id=%s detail=%s",
            delivery.pk,
            result.detail[:200],
        )
        return result

    result.alert_count = payload.alert_count
    result.rejected = payload.rejected
    result.rejected_count = payload.rejected_count
    atomic_retrying(
        lambda: _process(payload, delivery, result),
        name=f"webhook delivery_id={delivery.pk}",
        also=prepared.lost_statements,
    )

    metrics.webhook_deliveries.labels(outcome="processed").inc()
    metrics.alerts_received.labels(result="stored").inc(result.stored)
    metrics.alerts_received.labels(result="duplicate").inc(result.duplicates)
    metrics.alerts_received.labels(result="ignored").inc(result.ignored)
    metrics.alerts_received.labels(result="rejected").inc(result.rejected_count)
    if payload.truncated_alerts:
        metrics.truncated_groups.inc()
        logger.warning(
            "webhook group truncated delivery_id=%s group_key=%s truncated=%s",
            delivery.pk,
            payload.group_key,
            payload.truncated_alerts,
        )
    logger.info(
        "webhook delivery processed delivery_id=%s alerts=%s stored=%s "
        "duplicates=%s ignored=%s rejected=%s",
        delivery.pk,
        result.alert_count,
        result.stored,
        result.duplicates,
        result.ignored,
        result.rejected_count,
    )
    return result


def _log_database_failure(error: DatabaseError, event: str, **fields: Any) -> None:
    """A lost or refused connection in one line (an outage gives one for
    every delivery Alertmanager retries); any other database error with its
    traceback."""
    context = " ".join(f"{name}={value}" for name, value in fields.items())
    if isinstance(error, OperationalError | InterfaceError):
        name = type(error).__name__
        logger.warning("%s %s error=%s: %s", event, context, name, error)
    else:
        logger.error("%s %s", event, context, exc_info=error)


def _record_failure(delivery_id: int, error: Exception) -> None:
    try:
        WebhookDelivery.objects.filter(pk=delivery_id).update(
            outcome=DeliveryOutcome.FAILED,
            http_status=503,
            error=f"{type(error).__name__}: {error}"[:2000],
            processed_at=timezone.now(),
        )
    except DatabaseError:
        logger.warning("webhook failure not recorded delivery_id=%s", delivery_id)


def _safe_headers(headers: dict[str, str]) -> dict[str, str]:
    return {
        k: v[:1000]
        for k, v in list(headers.items())[:100]
        if k.lower() not in SECRET_HEADERS
    }


def declared_size(headers: dict[str, str]) -> int:
    """The body size a request's Content-Length declares; 0 when it has none
    (a chunked body) or it is not a number."""
    for name, value in headers.items():
        if name.lower() == "content-length":
            try:
                return max(int(value), 0)
            except ValueError:
                return 0
    return 0


_INSERT_DELIVERY = prepared.Statement(
    "delivery_insert",
    """
INSERT INTO alerts_webhookdelivery (
    received_at, body, body_size, body_truncated, headers, source_address,
    group_key, receiver, truncated_alerts, outcome, http_status, alert_count,
    stored, duplicates, ignored, rejected, rejections, error)
VALUES (%s, %s, %s, %s, %s::jsonb, %s, '', '', 0, %s, %s, 0, 0, 0, 0, 0, '[]', %s)
RETURNING id
""",
)
# The ledger row is committed without waiting for its WAL flush. Nothing is
# answered before the processing transaction commits, and that commit flushes
# the WAL up to itself, this row included; a crash before then loses only a
# delivery that was never acknowledged, which Alertmanager sends again. Bodies
# answered from the ledger row alone (over WEBHOOK_MAX_BYTES) wait for it.
_ASYNC_COMMIT = "SET LOCAL synchronous_commit = off"


def _store_delivery(
    *,
    body: bytes,
    size: int,
    truncated: bool,
    headers: dict[str, str],
    source_address: str | None,
) -> WebhookDelivery:
    """Insert the ledger row in autocommit, before any processing.

    On a connection kept from an earlier request this insert is its health
    check (in place of Django's `SELECT 1`, a round trip per delivery): when
    the connection turns out dead, it is opened again and the insert retried.
    """
    received_at = timezone.now()
    params = [
        received_at,
        body,
        # An integer column: a declared Content-Length of 2 GiB or more is
        # recorded as its maximum (the 413 answer still says the size declared).
        min(size, INTEGER_COLUMN_MAX),
        truncated,
        _json(headers),
        source_address,
        DeliveryOutcome.REJECTED if truncated else DeliveryOutcome.RECEIVED,
        413 if truncated else None,
        "body over WEBHOOK_MAX_BYTES" if truncated else "",
    ]
    prefix = "" if truncated else _ASYNC_COMMIT
    checking = (
        connection.connection is not None
        and connection.health_check_enabled
        and not connection.health_check_done
        and not connection.in_atomic_block
    )
    if checking:
        connection.health_check_done = True
        try:
            delivery_id = _insert_delivery(params, prefix)
        except (OperationalError, InterfaceError):
            logger.info("database connection found closed; connecting again")
            connection.close()
            delivery_id = _insert_delivery(params, prefix)
    else:
        delivery_id = _insert_delivery(params, prefix)
    return WebhookDelivery(pk=delivery_id, received_at=received_at)


def _insert_delivery(params: list[Any], prefix: str) -> int:
    with connection.cursor() as cursor:
        prepared.execute(cursor, [(_INSERT_DELIVERY, params)], prefix=prefix)
        (delivery_id,) = cursor.fetchone()
    return delivery_id


def delivery_ingest(
    *, body: bytes, headers: dict[str, str], source_address: str | None
) -> IngestResult:
    """Store a webhook delivery, then process it; never raise for bad input.

    The delivery row is committed on its own first (so the raw body survives
    any later failure). A body that is not a payload gives 400, one over
    WEBHOOK_MAX_BYTES 413 (first 64 KiB kept), a database failure 503 so that
    Alertmanager retries. Sends alerts_fired / alerts_resolved and the incident
    signals inside the processing transaction.
    """
    declared = declared_size(headers)  # none for a chunked body
    size = max(len(body), declared)
    oversize = size > settings.WEBHOOK_MAX_BYTES
    kept = body[:OVERSIZE_KEEP_BYTES] if oversize else body
    try:
        delivery = _store_delivery(
            body=kept,
            size=size,
            truncated=oversize,
            headers=_safe_headers(headers),
            source_address=source_address or None,
        )
    except DatabaseError as error:
        _log_database_failure(
            error, "webhook delivery not stored", source=source_address
        )
        metrics.webhook_deliveries.labels(outcome="failed").inc()
        return IngestResult(
            http_status=503, error="service unavailable", detail="database unavailable"
        )

    if oversize:
        metrics.webhook_deliveries.labels(outcome="rejected").inc()
        logger.warning(
            "webhook delivery too large delivery_id=%s size=%s", delivery.pk, size
        )
        return IngestResult(
            http_status=413,
            delivery_id=delivery.pk,
            error="payload too large",
            detail=(f"body of {size} bytes" if declared else "body")
            + f" is over the limit of {settings.WEBHOOK_MAX_BYTES} bytes",
        )
    return _ingest_or_fail(delivery, body)


def _ingest_or_fail(delivery: WebhookDelivery, body: bytes) -> IngestResult:
    try:
        return _ingest_stored(delivery, body)
    except DatabaseError as error:
        _log_database_failure(error, "webhook delivery failed", delivery_id=delivery.pk)
        _record_failure(delivery.pk, error)
        metrics.webhook_deliveries.labels(outcome="failed").inc()
        return IngestResult(
            http_status=503,
            delivery_id=delivery.pk,
            error="service unavailable",
            detail="database unavailable",
        )


def delivery_replay(*, delivery_id: int) -> IngestResult:
    """Process a stored delivery again; what it already did is not repeated.

    Raises DeliveryNotFound. An over-limit delivery (only its first 64 KiB
    kept) cannot be replayed and answers 413 again.
    """
    try:
        delivery = WebhookDelivery.objects.get(pk=delivery_id)
    except WebhookDelivery.DoesNotExist:
        raise DeliveryNotFound(delivery_id=delivery_id) from None
    if delivery.body_truncated:
        return IngestResult(
            http_status=413,
            delivery_id=delivery.pk,
            error="payload too large",
            detail="only the first 64 KiB of this delivery were kept",
        )
    logger.info("webhook delivery replayed delivery_id=%s", delivery.pk)
    return _ingest_or_fail(delivery, bytes(delivery.body))


def old_deliveries(*, now: datetime, days: int) -> QuerySet[WebhookDelivery]:
    """Deliveries received more than `days` days before `now`."""
    return WebhookDelivery.objects.filter(received_at__lt=now - timedelta(days=days))


def deliveries_prune(
    *, now: datetime | None = None, batch_size: int = BATCH_SIZE
) -> int:
    """Delete deliveries older than WEBHOOK_RETENTION_DAYS; return how many.

    In batches (kuberca.batches), as `manage.py prune` deletes them.
    """
    now = now or timezone.now()
    deleted = delete_in_batches(
        old_deliveries(now=now, days=settings.WEBHOOK_RETENTION_DAYS),
        batch_size=batch_size,
    )
    if deleted:
        logger.info("webhook deliveries pruned count=%s", deleted)
    return deleted


# A request is over long before this (gunicorn's timeout is a minute).
ABANDONED_AFTER = timedelta(minutes=10)


def deliveries_close_abandoned(*, now: datetime | None = None) -> int:
    """Mark failed the deliveries left `received`; return how many.

    A request that ended between storing its delivery and recording the
    outcome (a worker killed or timed out, a connection lost at the wrong
    moment) leaves its delivery `received`. Alertmanager got no 200 for it
    and sent it again, or got a 200 from the retried insert of a second row.
    """
    now = now or timezone.now()
    closed = WebhookDelivery.objects.filter(
        outcome=DeliveryOutcome.RECEIVED, received_at__lt=now - ABANDONED_AFTER
    ).update(
        outcome=DeliveryOutcome.FAILED,
        error="never processed: the request ended before its outcome was "
        "recorded (replay_deliveries --id re-processes it)",
        processed_at=now,
    )
    if closed:
        logger.warning("abandoned webhook deliveries marked failed count=%s", closed)
    return closed


# Stale alerts ---------------------------------------------------------------

STALE_BATCH = 1000


def alerts_resolve_stale(*, now: datetime | None = None) -> int:
    """Resolve firing alerts not seen for ALERT_STALE_AFTER; return how many.

    They are marked resolved_as_stale (a later firing delivery of the same
    occurrence brings them back) and their incidents auto-resolve when no
    firing alert is left. Sends alerts_resolved(stale=True).
    """
    stale_after = settings.ALERT_STALE_AFTER
    if not stale_after or stale_after.total_seconds() <= 0:
        return 0
    now = now or timezone.now()
    cutoff = now - stale_after
    candidates = list(
        Alert.objects.filter(status=AlertStatus.FIRING, last_seen_at__lt=cutoff)
        .order_by("last_seen_at")
        .values_list("alert_id", "fingerprint")[:STALE_BATCH]
    )
    if not candidates:
        return 0
    # Run again after a conflict: a move or merge of one of these alerts may
    # meet the sweep on an incident, and a failed sweep waits for its next run.
    resolved_ids = atomic_retrying(
        lambda: _resolve_stale(candidates, cutoff, now), name="alerts_resolve_stale"
    )
    if resolved_ids:
        logger.info("stale alerts resolved count=%s", len(resolved_ids))
    return len(resolved_ids)


def _resolve_stale(
    candidates: list[tuple[str, str]], cutoff: datetime, now: datetime
) -> list[str]:
    _lock_keys(fingerprints=(fp for _, fp in candidates))
    ids = [alert_id for alert_id, _ in candidates]
    # Re-check under the lock: a delivery may have refreshed them.
    rows = list(
        Alert.objects.select_for_update()
        .filter(pk__in=ids, status=AlertStatus.FIRING, last_seen_at__lt=cutoff)
        .values_list("alert_id", "incident_id")
    )
    if not rows:
        return []
    Alert.objects.filter(pk__in=[r[0] for r in rows]).update(
        status=AlertStatus.RESOLVED,
        resolved_at=now,
        resolved_as_stale=True,
        updated_at=now,
    )
    resolved_ids = [r[0] for r in rows]
    # Incidents first, then what the signal records (their Slack roots),
    # the order of a delivery and of a person's resolve: the other way
    # round, a resolve holding an incident while waiting for its root
    # deadlocked with a sweep holding the root while waiting for the
    # incident, and PostgreSQL failed one of the two. _auto_resolve locks
    # them with its read of their states; off, it does nothing, so they are
    # locked here.
    incident_ids = {r[1] for r in rows if r[1]}
    if settings.INCIDENT_AUTO_RESOLVE:
        _auto_resolve(incident_ids)
    else:
        _lock_incidents(incident_ids)
    events.alerts_resolved.send(sender=Alert, alert_ids=resolved_ids, stale=True)
    return resolved_ids


# Moves by a person ----------------------------------------------------------


def alert_move(*, alert_id: str, incident_id: str, moved_by: str) -> Alert:
    """Put an alert in another incident; later deliveries never move it back.

    Raises AlertNotFound, IncidentNotFound. Moving into its own incident is a
    no-op. Raises the target's severity (never lowers it), brings a resolved
    target back to firing when the alert fires, auto-resolves the incident
    left without a firing alert, and sends alerts_moved and incident_changed
    for both incidents.
    """
    alert, source_id = atomic_retrying(
        lambda: _move(alert_id=alert_id, incident_id=incident_id), name="alert_move"
    )
    if source_id != incident_id:
        logger.info(
            "alert moved alert_id=%s from=%s to=%s by=%s",
            alert_id,
            source_id,
            incident_id,
            moved_by,
        )
    return alert


def _lock_keys_of(*, incident_ids: list[str], alert_filter: Q) -> None:
    """Take the advisory locks a delivery touching these rows would take.

    Ingestion locks its group keys and fingerprints first, then alerts, then
    incidents; a person's move or merge locks incidents, then alerts. Taking
    the same advisory locks first makes the two wait for each other instead
    of deadlocking.
    """
    _lock_keys(
        group_keys=Incident.objects.filter(pk__in=incident_ids).values_list(
            "group_key", flat=True
        ),
        fingerprints=Alert.objects.filter(alert_filter).values_list(
            "fingerprint", flat=True
        ),
    )


def _move(*, alert_id: str, incident_id: str) -> tuple[Alert, str | None]:
    source = Alert.objects.filter(pk=alert_id).values("incident_id")
    _lock_keys_of(
        incident_ids=[
            incident_id,
            *source.exclude(incident_id=None).values_list("incident_id", flat=True),
        ],
        alert_filter=Q(pk=alert_id),
    )
    # Incidents are locked before their alerts, as a merge locks them: the
    # alert's incident is found in the same statement that locks the target.
    locked = {
        i.pk: i
        for i in Incident.objects.select_for_update(no_key=True)
        .filter(Q(pk=incident_id) | Q(pk__in=Subquery(source)))
        .order_by("pk")
    }
    try:
        alert = Alert.objects.select_for_update().get(pk=alert_id)
    except Alert.DoesNotExist:
        raise AlertNotFound(alert_id=alert_id) from None
    source_id = alert.incident_id
    target = locked.get(incident_id)
    if target is None:
        raise IncidentNotFound(incident_id=incident_id)
    if source_id == incident_id:
        return alert, source_id
    if source_id and source_id not in locked:
        # Moved by someone else between the two statements: lock its new one.
        Incident.objects.select_for_update(no_key=True).filter(pk=source_id).exists()

    alert.incident = target
    alert.grouping_reason = GroupingReason.MOVED
    alert.save(update_fields=["incident", "grouping_reason", "updated_at"])
    changed = ["alert_count"]
    if severity_rank(alert.severity) > severity_rank(target.severity):
        target.severity = alert.severity
        target.save(update_fields=["severity", "updated_at"])
        changed.append("severity")
    if target.is_resolved and alert.status == FIRING:
        incident_reopen(incident=target)

    events.alerts_moved.send(
        sender=Alert, alert_ids=[alert.pk], incident_id=target.pk, reason="moved"
    )
    _send_changed(target.pk, changed)
    if source_id:
        _send_changed(source_id, ["alert_count"])
        _auto_resolve({source_id})
    return alert, source_id


def _send_changed(incident_id: str, fields: list[str]) -> None:
    from incidents import events as incident_events

    incident_events.incident_changed.send(
        sender=Incident, incident_id=incident_id, fields=fields
    )


def incident_merge(*, incident_ids: list[str], merged_by: str) -> Incident:
    """Merge incidents into the oldest one (by fired_at) and return it.

    Alerts move with grouping_reason "merged"; the other incidents are
    resolved by `merged_by`, the person's login id. A resolved target with
    firing alerts merged in fires again. Raises InvalidInput for fewer than two
    distinct ids, IncidentNotFound for an unknown one.
    """
    ids = sorted(set(incident_ids))
    if len(ids) < 2:
        raise InvalidInput(
            "select at least two incidents to merge", field="incident_ids"
        )
    target, other_ids = atomic_retrying(
        lambda: _merge(ids, merged_by), name="incident_merge"
    )
    logger.info(
        "incidents merged into=%s merged=%s by=%s", target.pk, other_ids, merged_by
    )
    return target


def _merge(ids: list[str], merged_by: str) -> tuple[Incident, list[str]]:
    _lock_keys_of(incident_ids=ids, alert_filter=Q(incident_id__in=ids))
    incidents = list(
        Incident.objects.select_for_update(no_key=True)
        .filter(pk__in=ids)
        .order_by("pk")
    )
    found = {i.pk for i in incidents}
    missing = [i for i in ids if i not in found]
    if missing:
        raise IncidentNotFound(incident_id=missing[0])
    target = min(incidents, key=lambda i: (i.fired_at, i.pk))
    others = [i for i in incidents if i.pk != target.pk]
    other_ids = [i.pk for i in others]

    moving = list(
        Alert.objects.select_for_update()
        .filter(incident_id__in=other_ids)
        .values_list("alert_id", "severity", "status")
    )
    Alert.objects.filter(incident_id__in=other_ids).update(
        incident=target,
        grouping_reason=GroupingReason.MERGED,
        updated_at=timezone.now(),
    )
    top = highest_severity(
        target.severity, *(i.severity for i in others), *(m[1] for m in moving)
    )
    changed = ["alert_count"]
    if severity_rank(top) > severity_rank(target.severity):
        target.severity = top
        target.save(update_fields=["severity", "updated_at"])
        changed.append("severity")
    if target.is_resolved and any(m[2] == AlertStatus.FIRING for m in moving):
        incident_reopen(incident=target)

    if moving:
        events.alerts_moved.send(
            sender=Alert,
            alert_ids=[m[0] for m in moving],
            incident_id=target.pk,
            reason="merged",
        )
    _send_changed(target.pk, changed)
    for other in others:
        if not other.is_resolved:
            incident_resolve(incident_id=other.pk, resolved_by=merged_by)
        elif _reopenable(other, timezone.now()):
            # Resolved by its alerts just before the merge, it would still be
            # reopened by the next alert of its key: the merge ends it. An
            # older one cannot be reopened and keeps its record.
            other.resolved_by = merged_by
            other.save(update_fields=["resolved_by", "updated_at"])
        _send_changed(other.pk, ["alert_count"])
    return target, other_ids


# Webhook rate limit -----------------------------------------------------------

_RATE_UPSERT = """
INSERT INTO alerts_webhookratecounter (client, window_start, count)
VALUES (%s, %s, 1)
ON CONFLICT (client, window_start) DO UPDATE
SET count = alerts_webhookratecounter.count + 1
RETURNING count
"""


def webhook_rate_check(*, client: str, now: datetime | None = None) -> int | None:
    """Count a request against WEBHOOK_RATE_LIMIT; seconds to wait when over.

    Returns None when the request may go on. The count lives in the database
    so every web process shares it.
    """
    limit = settings.WEBHOOK_RATE_LIMIT
    if not limit:
        return None
    now = now or timezone.now()
    window = now.replace(second=0, microsecond=0)
    with connection.cursor() as cursor:
        cursor.execute(_RATE_UPSERT, [client[:64], window])
        (count,) = cursor.fetchone()
    if count <= limit:
        return None
    return max(1, 60 - now.second)


def rate_counters_prune(*, now: datetime | None = None) -> int:
    """Drop rate counters of past minutes."""
    now = now or timezone.now()
    deleted, _ = WebhookRateCounter.objects.filter(
        window_start__lt=now - timedelta(minutes=2)
    ).delete()
    return deleted
