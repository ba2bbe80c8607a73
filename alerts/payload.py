"""Parse an Alertmanager webhook body into typed alerts (SPEC §3.1).

The webhook calls `parse_payload`; it raises PayloadError only for a body that
is not a payload at all, and lists each bad alert as a rejection so the others
are kept. msgspec decodes the envelope and then each alert on its own.
"""

import codecs
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

import msgspec

from kuberca.timefmt import read_date_time

FIRING = "firing"
RESOLVED = "resolved"
_STATUSES = {FIRING, RESOLVED}
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = 0xFFFFFFFFFFFFFFFF
_GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


# The largest value PostgreSQL's integer columns hold.
INTEGER_COLUMN_MAX = 2**31 - 1
# PostgreSQL stores no NUL character in text or jsonb; JSON can carry one as
# \u0000. It becomes U+FFFD, so the alert is kept and the spot stays visible.
_NUL_ESCAPE = b"\\u0000"


# JSON's grammar allows a lone UTF-16 surrogate escape ("\\ud800"), which
# msgspec refuses and no UTF-8 text holds. Like NUL it becomes U+FFFD, so one
# such string costs no alert. An escaped backslash and a surrogate pair are
# matched too, and kept, so that only a real lone escape is replaced.
_ESCAPES = re.compile(
    rb"\\\\"
    rb"|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    rb"|\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
)
_LONE_SURROGATE_LENGTH = len(rb"\ud800")


def _without_lone_surrogates(body: bytes) -> bytes:
    def replace(match: re.Match[bytes]) -> bytes:
        escape = match.group()
        return rb"\ufffd" if len(escape) == _LONE_SURROGATE_LENGTH else escape

    return _ESCAPES.sub(replace, body)


# Alertmanager's labels and annotations are flat string maps. A value nested
# deeper than this rejects its alert: storing it, the API, the admin, Slack and
# the Agent would each recurse through it, some past Python's limit.
NESTING_MAX = 100
# Bad alerts listed by reason in the answer and on the delivery. A body of
# millions of `{}` would otherwise hold a dict for each, a gigabyte of them,
# and answer with every one.
REJECTIONS_LISTED = 1000


def _nested_too_deeply(value: Any) -> bool:
    """Whether a JSON value holds lists or objects more than NESTING_MAX deep."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > NESTING_MAX:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


class PayloadError(ValueError):
    """The body is not an Alertmanager payload; `detail` says what and where."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class Rejection(TypedDict):
    index: int
    reason: str


class _Envelope(msgspec.Struct):
    # Grafana and old Alertmanagers add or drop fields: all optional, extras
    # ignored. The ones kuberca does not use (version, groupLabels,
    # commonLabels, commonAnnotations, externalURL) are not declared, so they
    # are skipped unread, like unknown ones: a value there msgspec could not
    # decode (a number out of range) must not cost the delivery its alerts.
    # The ones used stay raw and are read one by one (_loose); groupKey also
    # because some senders send it as a number.
    alerts: list[msgspec.Raw]
    groupKey: msgspec.Raw = msgspec.Raw(b'""')  # noqa: N815
    truncatedAlerts: msgspec.Raw = msgspec.Raw(b"0")  # noqa: N815
    status: msgspec.Raw = msgspec.Raw(b"null")
    receiver: msgspec.Raw = msgspec.Raw(b"null")


class _Alert(msgspec.Struct):
    labels: dict[str, Any]
    status: str | None = None
    annotations: dict[str, Any] | None = None
    startsAt: str | None = None  # noqa: N815
    endsAt: str | None = None  # noqa: N815
    generatorURL: str | None = None  # noqa: N815
    fingerprint: str | None = None


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_alert_decoder = msgspec.json.Decoder(_Alert)


@dataclass(slots=True)
class ParsedAlert:
    index: int
    status: str
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, Any]
    starts_at: datetime | None
    ends_at: datetime | None
    generator_url: str

    @property
    def severity(self) -> str:
        return (self.labels.get("severity") or "warning").strip().lower()

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")


@dataclass(slots=True)
class ParsedPayload:
    group_key: str
    receiver: str
    status: str
    truncated_alerts: int
    alert_count: int
    alerts: list[ParsedAlert]
    # The first REJECTIONS_LISTED bad alerts; rejected_count counts them all.
    rejected: list[Rejection]
    rejected_count: int = 0


def parse_time(text: str | None) -> datetime | None:
    """Read an RFC 3339 time in UTC; None for missing, empty or Go's zero time.

    Raises ValueError when it is not an RFC 3339 time (its seconds may be
    left out) with an offset. Nanoseconds are cut to microseconds; any offset
    is accepted.
    """
    if not text:
        return None
    value = read_date_time(text)
    if value.tzinfo is None:
        raise ValueError("time has no offset")
    if value == _GO_ZERO_TIME:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:30+01:00 is a valid text but no UTC time exists for it.
        raise ValueError("time is out of range in UTC") from None


def compute_fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's fingerprint: FNV-1a 64 over the sorted label set."""
    value = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode():
                value = ((value ^ byte) * _FNV_PRIME) & _MASK
            value = ((value ^ 0xFF) * _FNV_PRIME) & _MASK
    return f"{value:016x}"


def _label_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if _nested_too_deeply(value):
        raise ValueError("a label is nested too deeply")
    return msgspec.json.encode(value).decode()


def _group_key(raw: msgspec.Raw) -> str:
    text = bytes(raw)
    if text.startswith(b'"'):
        try:
            value = msgspec.json.decode(text)
        except msgspec.DecodeError as error:  # bytes that are not UTF-8
            raise PayloadError(f"malformed JSON: `groupKey`: {error}") from None
        return value if isinstance(value, str) else str(value)
    if text == b"null":
        return ""
    # A number (or anything else): its JSON text, exactly as sent.
    return text.decode(errors="replace")


def _loose(raw: msgspec.Raw) -> Any:
    """An envelope value, or None when it cannot be decoded."""
    try:
        return msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None


def _truncated(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    text = value.strip() if isinstance(value, str) else ""
    # ASCII digits only: "²" is a digit to str.isdigit, and int() refuses it.
    if text.isascii() and text.isdigit():
        # More digits than the column's maximum has is over it; int() would
        # refuse thousands of them (Python's limit on digits it converts).
        digits = text.lstrip("0") or "0"
        too_many = len(digits) > len(str(INTEGER_COLUMN_MAX))
        value = INTEGER_COLUMN_MAX if too_many else int(digits)
    if isinstance(value, int):
        # Kept in an integer column: a larger count says no more than this.
        return min(max(value, 0), INTEGER_COLUMN_MAX)
    return 0


def _alert(
    index: int, raw: msgspec.Raw, group_status: str | None, *, has_nul: bool = False
) -> ParsedAlert:
    item = _alert_decoder.decode(raw)
    if has_nul:
        item = _without_nul(msgspec.structs.asdict(item))
        item = _Alert(**item)
    status = (item.status or group_status or "").strip().lower()
    if status not in _STATUSES:
        raise ValueError(f"unknown status {item.status!r}")
    labels = {str(k): _label_text(v) for k, v in item.labels.items()}
    try:
        starts_at = parse_time(item.startsAt)
    except ValueError:
        raise ValueError(f"startsAt is not a time: {item.startsAt!r}") from None
    try:
        ends_at = parse_time(item.endsAt)
    except ValueError:
        raise ValueError(f"endsAt is not a time: {item.endsAt!r}") from None
    annotations = item.annotations or {}
    for value in annotations.values():
        if not isinstance(value, str) and _nested_too_deeply(value):
            raise ValueError("an annotation is nested too deeply")
    fingerprint = (item.fingerprint or "").strip() or compute_fingerprint(labels)
    return ParsedAlert(
        index=index,
        status=status,
        fingerprint=fingerprint[:255],
        labels=labels,
        annotations=annotations,
        starts_at=starts_at,
        ends_at=ends_at,
        generator_url=item.generatorURL or "",
    )


def _reason(error: Exception) -> str:
    text = str(error)
    if text.startswith("Object missing required field `labels`"):
        return "labels are missing"
    return text.replace("`$.", "`")


def parse_payload(body: bytes) -> ParsedPayload:
    """Decode a webhook body; bad alerts become rejections, not errors.

    Raises PayloadError when the body is not JSON or not an object with an
    `alerts` list. A UTF-8 byte order mark before the JSON is passed over
    (RFC 8259 lets a parser ignore it; some Windows senders write one).
    """
    body = body.removeprefix(codecs.BOM_UTF8)
    try:
        envelope = _envelope_decoder.decode(body)
    except msgspec.ValidationError as error:
        raise PayloadError(_envelope_detail(body, error)) from None
    except msgspec.DecodeError as error:
        repaired = _without_lone_surrogates(body) if b"\\u" in body else body
        if repaired == body:
            raise PayloadError(f"malformed JSON: {error}") from None
        return parse_payload(repaired)
    except RecursionError:
        # Even skipping a value walks its nesting; Alertmanager's labels and
        # annotations are flat string maps, so such a body is not its payload.
        raise PayloadError("JSON nested too deeply") from None

    status = _loose(envelope.status)
    group_status = status if isinstance(status, str) else None
    alerts: list[ParsedAlert] = []
    rejected: list[Rejection] = []
    rejected_count = 0
    has_nul = _NUL_ESCAPE in body
    for index, raw in enumerate(envelope.alerts):
        try:
            alerts.append(_alert(index, raw, group_status, has_nul=has_nul))
            continue
        except (msgspec.ValidationError, ValueError) as error:
            reason = _reason(error)[:500]
        except RecursionError:
            reason = "nested too deeply"
        rejected_count += 1
        if len(rejected) < REJECTIONS_LISTED:
            rejected.append({"index": index, "reason": reason})
    receiver = _loose(envelope.receiver)
    receiver = receiver if isinstance(receiver, str) else ""
    return ParsedPayload(
        group_key=_without_nul(_group_key(envelope.groupKey)),
        receiver=_without_nul(receiver),
        status=group_status or "",
        truncated_alerts=_truncated(_loose(envelope.truncatedAlerts)),
        alert_count=len(envelope.alerts),
        alerts=alerts,
        rejected=rejected,
        rejected_count=rejected_count,
    )


def _envelope_detail(body: bytes, error: msgspec.ValidationError) -> str:
    text = str(error)
    if text.startswith("Expected `object`"):
        return "the body must be a JSON object with an `alerts` list"
    if "`alerts`" in text and text.startswith("Object missing"):
        return "`alerts` is missing"
    if text.endswith("at `$.alerts`"):
        return "`alerts` must be a list"
    return text.replace("`$.", "`")
