"""Wire shapes of the incident API (SPEC §7), and of the alert items it embeds.

The incident detail embeds alert items, and incidents sits below alerts, so
the alert item shape is defined here and reused by alerts.serializers. Times
are RFC 3339 with `Z` (kuberca.timefmt). The error and envelope serializers
document bodies for the OpenAPI document; the views build them.
"""

from collections.abc import Iterable
from datetime import datetime
from functools import cache
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from incidents.models import (
    ANALYSIS_MAX_CHARS,
    RESOLVED_BY_MAX_CHARS,
    TITLE_MAX_CHARS,
    Severity,
)
from kuberca.timefmt import rfc3339


@extend_schema_field(OpenApiTypes.DATETIME)
class TimestampField(serializers.Field):
    """A read-only RFC 3339 timestamp, second precision, `Z` suffix."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, value: datetime) -> str | None:
        return rfc3339(value)


@extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}})
class StringMapField(serializers.JSONField):
    """Alertmanager labels or annotations: an object of strings."""


def constant_field(value: str, **kwargs: Any) -> serializers.Field:
    """A string field that always holds `value`, documented as a one-value enum."""

    @extend_schema_field({"type": "string", "enum": [value]})
    class Constant(serializers.CharField):
        pass

    return Constant(**kwargs)


@cache
def _plain_fields(serializer_class: type[serializers.Serializer]) -> tuple:
    fields = serializer_class().fields
    for name, field in fields.items():
        if field.source != name or not isinstance(
            field,
            TimestampField
            | serializers.CharField
            | serializers.IntegerField
            | serializers.BooleanField
            | serializers.JSONField,
        ):
            raise TypeError(f"{serializer_class.__name__}.{name} is not a plain field")
    return tuple((name, isinstance(f, TimestampField)) for name, f in fields.items())


def plain_rows(
    serializer_class: type[serializers.Serializer], rows: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Shape `.values()` rows exactly as `serializer_class(many=True)` would.

    Lists of up to 5,000 rows skip DRF's per-field machinery; the serializer
    stays the one definition of the shape (and of the OpenAPI schema).
    """
    fields = _plain_fields(serializer_class)
    return [
        {name: rfc3339(row[name]) if is_time else row[name] for name, is_time in fields}
        for row in rows
    ]


class AlertItemSerializer(serializers.Serializer):
    alert_id = serializers.CharField()
    incident_id = serializers.CharField(allow_null=True)
    alarm_title = serializers.CharField()
    namespace = serializers.CharField(allow_null=True)
    severity = serializers.CharField()
    status = serializers.CharField()
    fired_at = TimestampField()
    resolved_at = TimestampField(allow_null=True)
    labels = StringMapField()


class IncidentListItemSerializer(serializers.Serializer):
    incident_id = serializers.CharField()
    title = serializers.CharField()
    severity = serializers.CharField()
    status = serializers.CharField()
    fired_at = TimestampField()
    resolved_at = TimestampField(allow_null=True)
    alert_count = serializers.IntegerField()


class SimilarIncidentSerializer(serializers.Serializer):
    incident_id = serializers.CharField()
    title = serializers.CharField()
    score = serializers.FloatField(help_text="Similarity, 1 - cosine distance.")


class IncidentDetailSerializer(serializers.Serializer):
    """Detail body; `alerts` is left out when the incident has none."""

    incident_id = serializers.CharField()
    title = serializers.CharField()
    severity = serializers.CharField()
    status = serializers.CharField()
    fired_at = TimestampField()
    resolved_at = TimestampField(allow_null=True)
    analysis_summary = serializers.CharField()
    analysis_detail = serializers.CharField()
    created_by = serializers.CharField()
    resolved_by = serializers.CharField()
    is_analyzing = serializers.BooleanField(
        help_text="The final analysis or an analysis of one of its alerts runs."
    )
    similar_incidents = SimilarIncidentSerializer(many=True)
    alerts = AlertItemSerializer(
        many=True, required=False, help_text="Left out when there are none."
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        if not data.get("alerts"):
            data.pop("alerts", None)
        return data


class IncidentDetailEnvelopeSerializer(serializers.Serializer):
    status = constant_field("success")
    data = IncidentDetailSerializer()


class IncidentUpdateSerializer(serializers.Serializer):
    """PUT body: every key optional; others (the rest of the detail) ignored."""

    title = serializers.CharField(required=False, max_length=TITLE_MAX_CHARS)
    severity = serializers.ChoiceField(choices=Severity.values, required=False)
    analysis_summary = serializers.CharField(
        required=False, allow_blank=True, max_length=ANALYSIS_MAX_CHARS
    )
    analysis_detail = serializers.CharField(
        required=False, allow_blank=True, max_length=ANALYSIS_MAX_CHARS
    )


class IncidentResolveSerializer(serializers.Serializer):
    resolved_by = serializers.CharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        max_length=RESOLVED_BY_MAX_CHARS,
        help_text="Defaults to the caller (also when null or blank).",
    )


class SuccessMessageSerializer(serializers.Serializer):
    status = constant_field("success")
    message = serializers.CharField()


class IncidentMessageSerializer(SuccessMessageSerializer):
    incident_id = serializers.CharField()


class ListErrorSerializer(serializers.Serializer):
    """The error body of list routes."""

    error = serializers.CharField(help_text="Machine text, e.g. 'invalid parameter'.")
    detail = serializers.CharField(
        required=False, help_text="What was wrong, e.g. 'limit: must be ...'."
    )


class UnauthorizedSerializer(serializers.Serializer):
    error = constant_field("unauthorized")


class EnvelopeErrorSerializer(serializers.Serializer):
    """The error body of incident and alert detail routes."""

    status = constant_field("error")
    message = serializers.CharField(help_text="Human text.")
    error = serializers.CharField(help_text="Machine text, e.g. 'incident not found'.")
