"""Wire shapes of the alert API (SPEC §7 Alerts).

The alert item is defined in incidents.serializers (the incident detail embeds
it, and incidents never imports alerts); it is re-exported here.
"""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from incidents.serializers import (
    AlertItemSerializer,
    StringMapField,
    SuccessMessageSerializer,
    TimestampField,
)

__all__ = [
    "AlertAnalysisItemSerializer",
    "AlertDetailSerializer",
    "AlertItemSerializer",
    "AlertMessageSerializer",
    "AlertReassignSerializer",
]


@extend_schema_field({"type": "object", "additionalProperties": {}})
class AnnotationsField(serializers.JSONField):
    """Annotations as received: Alertmanager sends strings, but a webhook value
    of another JSON type (a number, an object) is kept as it came."""


class AlertAnalysisItemSerializer(serializers.Serializer):
    analysis_id = serializers.IntegerField()
    status = serializers.CharField(help_text="The alert status analysed.")
    summary = serializers.CharField()
    detail = serializers.CharField()
    created_at = TimestampField()


class AlertDetailSerializer(serializers.Serializer):
    alert_id = serializers.CharField()
    incident_id = serializers.CharField(allow_null=True)
    alarm_title = serializers.CharField()
    namespace = serializers.CharField(allow_null=True)
    severity = serializers.CharField()
    status = serializers.CharField()
    fired_at = TimestampField()
    resolved_at = TimestampField(allow_null=True)
    analysis_summary = serializers.CharField()
    analysis_detail = serializers.CharField()
    fingerprint = serializers.CharField()
    thread_ts = serializers.CharField()
    grouping_reason = serializers.CharField(
        help_text="Why the alert is in its incident, e.g. joined, moved."
    )
    labels = StringMapField()
    annotations = AnnotationsField()
    is_analyzing = serializers.BooleanField(
        help_text="An analysis is pending or running."
    )
    analyses = AlertAnalysisItemSerializer(
        many=True, help_text="The newest analysis per status, newest first."
    )


class AlertReassignSerializer(serializers.Serializer):
    incident_id = serializers.CharField(help_text="The incident to move the alert to.")


class AlertMessageSerializer(SuccessMessageSerializer):
    alert_id = serializers.CharField()
