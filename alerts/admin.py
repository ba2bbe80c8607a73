"""The alerts' part of the admin triage console (SPEC §8): alerts, analyses, deliveries.

Rows here are written by machines (ingestion, the Agent), so every field is
read-only; the actions (move, re-run analysis, replay) call the same services
as the API and the commands.
"""

import json
import logging
import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from alerts.analysis import analysis_request_alert
from alerts.models import Alert, AlertAnalysis, AnalysisArtifact, WebhookDelivery
from alerts.services import AlertNotFound, alert_move, delivery_replay
from incidents.admin import (
    NamespaceFilter as IncidentNamespaceFilter,
)
from incidents.admin import (
    SeverityFilter,
    alerts_matching,
    normalised_id,
    search_terms,
)
from incidents.models import Incident, IncidentStatus
from kuberca.admin import (
    EstimatedCountPaginator,
    MachineWrittenAdmin,
    badge,
    confirmation_page,
    confirmed,
    key_value_table,
    label_chips,
    pretty_json,
)
from kuberca.errors import DomainError
from kuberca.templatetags.kuberca_admin import markdown

logger = logging.getLogger(__name__)

# The most of a webhook body the change page shows.
BODY_SHOWN_BYTES = 256 * 1024
# A lone surrogate escape ("\\ud800") is valid JSON, but no UTF-8 page holds it.
_SURROGATE = re.compile("[\ud800-\udfff]")
INCIDENTS_LISTED = 20


class NamespaceFilter(IncidentNamespaceFilter):
    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(namespace=self.value())
        return queryset


class IncidentFilter(admin.SimpleListFilter):
    """Alerts of one incident; lists the latest firing incidents to pick from."""

    title = "incident"
    parameter_name = "incident"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple]:
        recent = list(
            Incident.objects.filter(status=IncidentStatus.FIRING).values_list(
                "incident_id", "title"
            )[:INCIDENTS_LISTED]
        )
        choices = [("none", "no incident")]
        choices += [(pk, f"{pk} {title[:40]}") for pk, title in recent]
        if self.value() and self.value() not in {c[0] for c in choices}:
            choices.append((self.value(), self.value()))
        return choices

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "none":
            return queryset.filter(incident__isnull=True)
        if self.value():
            return queryset.filter(incident_id=self.value())
        return queryset


class AnalysisInline(admin.StackedInline):
    """An alert's Agent analyses, newest first, each with its artifacts."""

    model = AlertAnalysis
    fk_name = "alert"
    extra = 0
    can_delete = False
    fields = (
        ("status", "trigger", "state_badge", "attempts"),
        ("created_at", "completed_at"),
        "summary_html",
        "detail_html",
        "error",
        "artifact_list",
    )
    readonly_fields = (
        "status",
        "trigger",
        "state_badge",
        "attempts",
        "created_at",
        "completed_at",
        "summary_html",
        "detail_html",
        "error",
        "artifact_list",
    )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).prefetch_related("artifacts")

    @admin.display(description="state")
    def state_badge(self, obj: AlertAnalysis) -> SafeString:
        return badge(obj.state)

    @admin.display(description="summary")
    def summary_html(self, obj: AlertAnalysis) -> SafeString:
        return markdown(obj.summary or obj.analysis)

    @admin.display(description="detail")
    def detail_html(self, obj: AlertAnalysis) -> SafeString:
        return markdown(obj.detail)

    @admin.display(description="artifacts")
    def artifact_list(self, obj: AlertAnalysis) -> SafeString | str:
        artifacts = obj.artifacts.all()
        if not artifacts:
            return "—"
        return format_html_join(
            "",
            "<div style='margin-bottom:8px'><b>{}</b> {}<pre>{}</pre>"
            "<details><summary>result</summary><pre>{}</pre></details></div>",
            (
                (
                    a.artifact_type or "artifact",
                    a.summary,
                    a.query,
                    pretty_json(a.result),
                )
                for a in artifacts
            ),
        )


class MoveForm(forms.Form):
    incident_id = forms.CharField(
        label="Target incident id",
        max_length=32,
        widget=forms.TextInput(attrs={"list": "kuberca-open-incidents", "size": 30}),
    )


@admin.register(Alert)
class AlertAdmin(MachineWrittenAdmin):
    list_display = (
        "alert_id",
        "alarm_title",
        "severity_badge",
        "status_badge",
        "namespace",
        "incident_link",
        "fired_at",
        "resolved_at",
        "grouping_reason",
    )
    list_filter = (
        "status",
        SeverityFilter,
        NamespaceFilter,
        IncidentFilter,
        "grouping_reason",
    )
    search_fields = ("alert_id", "alarm_title")
    search_help_text = (
        "Alert id, name, fingerprint, namespace, label value, or key=value."
    )
    date_hierarchy = "fired_at"
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100
    actions = ["move_to_incident", "rerun_analysis"]
    inlines = [AnalysisInline]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "alert_id",
                    "alarm_title",
                    ("severity_badge", "status_badge"),
                    "incident_link",
                    "grouping_reason",
                    ("fired_at", "resolved_at", "last_seen_at"),
                )
            },
        ),
        ("Labels", {"fields": ("labels_table",)}),
        ("Annotations", {"fields": ("annotations_table", "generator_link")}),
        (
            "Latest analysis",
            {"fields": ("analysis_summary_html", "analysis_detail_html")},
        ),
        (
            "Machine state",
            {
                "classes": ("collapse",),
                "fields": (
                    "fingerprint",
                    "namespace",
                    "group_key",
                    "thread_ts",
                    "is_enabled",
                    "resolved_as_stale",
                    ("created_at", "updated_at"),
                ),
            },
        ),
    )
    readonly_fields = (
        "alert_id",
        "alarm_title",
        "severity_badge",
        "status_badge",
        "incident_link",
        "grouping_reason",
        "fired_at",
        "resolved_at",
        "last_seen_at",
        "labels_table",
        "annotations_table",
        "generator_link",
        "analysis_summary_html",
        "analysis_detail_html",
        "fingerprint",
        "namespace",
        "group_key",
        "thread_ts",
        "is_enabled",
        "resolved_as_stale",
        "created_at",
        "updated_at",
    )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """Each word must match the alert (see incidents.admin.alerts_matching)."""
        for term in search_terms(search_term):
            queryset = alerts_matching(
                queryset,
                term,
                also=Q(fingerprint=term) | Q(incident_id=normalised_id(term, "INC-")),
            )
        return queryset, False

    # --- columns and fields -------------------------------------------------

    @admin.display(description="severity", ordering="severity")
    def severity_badge(self, obj: Alert) -> SafeString:
        return badge(obj.severity)

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Alert) -> SafeString:
        return badge(obj.status)

    @admin.display(description="incident", ordering="incident")
    def incident_link(self, obj: Alert) -> SafeString | str:
        if not obj.incident_id:
            return "—"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:incidents_incident_change", args=[obj.incident_id]),
            obj.incident_id,
        )

    @admin.display(description="labels")
    def labels_table(self, obj: Alert) -> SafeString:
        return key_value_table(obj.labels)

    @admin.display(description="annotations")
    def annotations_table(self, obj: Alert) -> SafeString:
        return key_value_table(obj.annotations)

    @admin.display(description="labels")
    def label_chips(self, obj: Alert) -> SafeString:
        return label_chips(obj.labels)

    @admin.display(description="source")
    def generator_link(self, obj: Alert) -> SafeString | str:
        if not obj.generator_url.startswith(("http://", "https://")):
            return obj.generator_url or "—"
        return format_html(
            '<a href="{}" target="_blank" rel="noopener noreferrer">{}</a>',
            obj.generator_url,
            obj.generator_url,
        )

    @admin.display(description="summary")
    def analysis_summary_html(self, obj: Alert) -> SafeString:
        return markdown(obj.analysis_summary) or "—"

    @admin.display(description="detail")
    def analysis_detail_html(self, obj: Alert) -> SafeString:
        return markdown(obj.analysis_detail) or "—"

    # --- actions ------------------------------------------------------------

    @admin.action(description="Move to incident…", permissions=["change"])
    def move_to_incident(
        self, request: HttpRequest, queryset: QuerySet
    ) -> TemplateResponse | None:
        form = MoveForm(request.POST if confirmed(request) else None)
        if not (confirmed(request) and form.is_valid()):
            response = confirmation_page(
                request,
                self,
                queryset,
                action="move_to_incident",
                title="Move alerts to an incident",
                question=f"Move {queryset.count()} alert(s) to which incident?"
                " A moved alert stays where you put it.",
                button="Move",
                form=form,
            )
            response.context_data["open_incidents"] = list(
                Incident.objects.open().values_list("incident_id", "title")[:50]
            )
            return response
        target = normalised_id(form.cleaned_data["incident_id"].strip(), "INC-")
        by = request.user.get_username()
        moved, gone = [], []
        for alert_id in queryset.values_list("pk", flat=True):
            try:
                alert_move(alert_id=alert_id, incident_id=target, moved_by=by)
            except AlertNotFound:
                gone.append(alert_id)
                continue
            except DomainError as exc:
                self.message_user(
                    request, f"Move refused: {exc.message} ({target}).", messages.ERROR
                )
                break
            moved.append(alert_id)
        self._report(
            request, moved, "Moved {count} alert(s) to {target}: {ids}.", target=target
        )
        self._report_gone(request, gone)
        return None

    @admin.action(description="Re-run the Agent analysis", permissions=["change"])
    def rerun_analysis(self, request: HttpRequest, queryset: QuerySet) -> None:
        requested, gone = [], []
        for alert_id in queryset.values_list("pk", flat=True):
            try:
                analysis_request_alert(alert_id)
            except AlertNotFound:
                gone.append(alert_id)
                continue
            except DomainError as exc:
                self.message_user(
                    request, f"Analysis not requested: {exc.message}.", messages.ERROR
                )
                break
            requested.append(alert_id)
        self._report(
            request, requested, "Analysis requested for {count} alert(s): {ids}."
        )
        self._report_gone(request, gone)


class ArtifactInline(admin.TabularInline):
    model = AnalysisArtifact
    extra = 0
    can_delete = False
    fields = ("artifact_type", "query", "summary", "result_pretty")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="result")
    def result_pretty(self, obj: AnalysisArtifact) -> SafeString:
        return format_html("<pre>{}</pre>", pretty_json(obj.result))


@admin.register(AlertAnalysis)
class AlertAnalysisAdmin(MachineWrittenAdmin):
    list_display = (
        "id",
        "alert_link",
        "status",
        "trigger",
        "state_badge",
        "attempts",
        "created_at",
        "completed_at",
    )
    list_filter = ("state", "status", "trigger")
    search_fields = ("alert__alert_id", "summary")
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100
    readonly_fields = tuple(
        f.name for f in AlertAnalysis._meta.fields if f.name != "id"
    ) + ("summary_html", "detail_html", "artifact_list")
    inlines = [ArtifactInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).prefetch_related("artifacts")

    @admin.display(description="alert", ordering="alert")
    def alert_link(self, obj: AlertAnalysis) -> SafeString:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:alerts_alert_change", args=[obj.alert_id]),
            obj.alert_id,
        )

    state_badge = AnalysisInline.state_badge
    summary_html = AnalysisInline.summary_html
    detail_html = AnalysisInline.detail_html
    artifact_list = AnalysisInline.artifact_list


def delivery_body_text(delivery: WebhookDelivery) -> tuple[str, bool]:
    """The body as an operator reads it, and whether it was cut for display.

    Decoded with replacement characters, pretty-printed when it is JSON.
    """
    raw = bytes(delivery.body or b"")
    cut = len(raw) > BODY_SHOWN_BYTES
    text = raw.decode("utf-8", errors="replace")
    if not cut and not delivery.body_truncated:
        try:
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            pass
        else:
            text = _SURROGATE.sub("\ufffd", text)
    if len(text) > BODY_SHOWN_BYTES:
        text, cut = text[:BODY_SHOWN_BYTES], True
    return text, cut


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(MachineWrittenAdmin):
    list_display = (
        "id",
        "received_at",
        "outcome_badge",
        "http_status",
        "receiver",
        "alert_count",
        "stored",
        "duplicates",
        "ignored",
        "rejected",
        "body_size",
        "source_address",
    )
    list_filter = ("outcome", "http_status", ("received_at", admin.DateFieldListFilter))
    search_fields = ("=id", "receiver", "group_key")
    date_hierarchy = "received_at"
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100
    actions = ["replay"]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    ("received_at", "processed_at"),
                    ("outcome_badge", "http_status"),
                    "receiver",
                    "group_key",
                    "source_address",
                    "truncated_alerts",
                )
            },
        ),
        (
            "Counts",
            {
                "fields": (
                    ("alert_count", "stored", "duplicates", "ignored", "rejected"),
                )
            },
        ),
        ("Problems", {"fields": ("rejections_table", "error")}),
        (
            "Request",
            {
                "fields": (
                    "headers_table",
                    ("body_size", "body_truncated"),
                    "body_pretty",
                )
            },
        ),
    )
    readonly_fields = (
        "received_at",
        "processed_at",
        "outcome_badge",
        "http_status",
        "receiver",
        "group_key",
        "source_address",
        "truncated_alerts",
        "alert_count",
        "stored",
        "duplicates",
        "ignored",
        "rejected",
        "rejections_table",
        "error",
        "headers_table",
        "body_size",
        "body_truncated",
        "body_pretty",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # The list never needs the (possibly huge) body; the change page
        # loads it on first use.
        return super().get_queryset(request).defer("body")

    @admin.display(description="outcome", ordering="outcome")
    def outcome_badge(self, obj: WebhookDelivery) -> SafeString:
        return badge(obj.outcome)

    @admin.display(description="headers")
    def headers_table(self, obj: WebhookDelivery) -> SafeString:
        return key_value_table(obj.headers)

    @admin.display(description="rejected alerts")
    def rejections_table(self, obj: WebhookDelivery) -> SafeString | str:
        if not obj.rejections:
            return "—"
        return format_html("<pre>{}</pre>", pretty_json(obj.rejections))

    @admin.display(description="body")
    def body_pretty(self, obj: WebhookDelivery) -> SafeString:
        text, cut = delivery_body_text(obj)
        note = ""
        if obj.body_truncated:
            note = "Only the first 64 KiB of this over-limit body were kept."
        elif cut:
            note = f"Showing the first {BODY_SHOWN_BYTES // 1024} KiB."
        return format_html(
            '<p class="help">{}</p><pre style="max-height:40em;overflow:auto;'
            'white-space:pre-wrap;word-break:break-all">{}</pre>',
            note,
            text,
        )

    @admin.action(description="Replay selected deliveries", permissions=["change"])
    def replay(self, request: HttpRequest, queryset: QuerySet) -> None:
        for delivery_id in queryset.order_by("received_at").values_list(
            "pk", flat=True
        ):
            try:
                result = delivery_replay(delivery_id=delivery_id)
            except DomainError as exc:
                self.message_user(
                    request,
                    f"Delivery {delivery_id} not replayed: {exc.message}.",
                    messages.ERROR,
                )
                continue
            if result.http_status == 200:
                self.message_user(
                    request,
                    f"Replayed delivery {delivery_id}: {result.stored} stored,"
                    f" {result.duplicates} duplicate(s), {result.ignored} ignored,"
                    f" {result.rejected_count} rejected.",
                    messages.SUCCESS,
                )
            else:
                self.message_user(
                    request,
                    f"Replay of delivery {delivery_id} answered"
                    f" {result.http_status}: {result.error} {result.detail}".strip(),
                    messages.ERROR,
                )
