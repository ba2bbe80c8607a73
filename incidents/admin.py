"""The incidents' part of the admin triage console (SPEC §8).

Every action and edit calls the same service as the API (incidents.services,
or the merge service named by settings.INCIDENT_MERGER), so the admin and the
API behave alike. Alerts are reached through the reverse relation and the Slack
thread through kuberca.admin's name lookup: this module imports neither the
alerts nor the notifications app.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db import transaction
from django.db.models import (
    BooleanField,
    Count,
    Exists,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
)
from django.db.models.functions import Cast, Coalesce
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.module_loading import import_string
from django.utils.safestring import SafeString
from django.utils.text import smart_split, unescape_string_literal

from incidents import events, selectors
from incidents.models import TITLE_MAX_CHARS, Incident, IncidentStatus, Severity
from incidents.services import (
    EDITABLE_FIELDS,
    IncidentAlreadyResolved,
    IncidentNotFound,
    incident_changes_check,
    incident_hide,
    incident_resolve,
    incident_unhide,
    incident_update,
)
from kuberca.admin import (
    ConsoleModelAdmin,
    EstimatedCountPaginator,
    badge,
    confirmation_page,
    confirmed,
    label_chips,
    slack_message_model,
    slack_messages_of,
    slack_thread_url,
)
from kuberca.errors import DomainError, InvalidInput

logger = logging.getLogger(__name__)

# The alert model, reached through the reverse relation (no import of alerts).
Alert = Incident._meta.get_field("alerts").related_model

# The change page shows at most this many alerts in its analyses and timeline.
ALERTS_SHOWN = 1000
TIMELINE_SHOWN = 500
NAMESPACES_LISTED = 50


def label_value_match(term: str) -> Func:
    """True when some label of the alert has exactly the value `term`."""
    return Func(
        F("labels"),
        Value("$.* ? (@ == $v)"),
        Func(Value("v"), Cast(Value(term), TextField()), function="jsonb_build_object"),
        function="jsonb_path_exists",
        output_field=BooleanField(),
    )


def alerts_matching(queryset: QuerySet, term: str, also: Q | None = None) -> QuerySet:
    """The alerts one search word matches: id, name, namespace, label value.

    `key=value` matches that label exactly (jsonb containment); a bare word
    matches an alert name by substring, or a namespace or label value exactly.
    `also` adds conditions of the caller's own, OR-ed with these.
    """
    if "=" in term:
        key, value = term.split("=", 1)
        match = Q(labels__contains={key: value})
    else:
        queryset = queryset.alias(label_value_hit=label_value_match(term))
        match = (
            Q(alert_id=normalised_id(term, "ALR-"))
            | Q(alarm_title__icontains=term)
            | Q(namespace=term)
            | Q(label_value_hit=True)
        )
    return queryset.filter(match | also if also is not None else match)


def search_terms(search_term: str) -> list[str]:
    terms = []
    for bit in smart_split(search_term):
        if bit[:1] in {'"', "'"} and bit[-1:] == bit[:1]:
            bit = unescape_string_literal(bit)
        if bit:
            terms.append(bit)
    return terms


def normalised_id(term: str, prefix: str) -> str:
    """`inc-ABC` → `INC-abc`: ids are an upper prefix and lowercase hex."""
    if term[: len(prefix)].upper() == prefix:
        return prefix + term[len(prefix) :].lower()
    return term


def severity_choices() -> list[tuple[str, str]]:
    """The three known severities, and any other INGEST_SEVERITIES lets in:
    an incident or alert can hold one of those too."""
    labels = dict(Severity.choices)
    return [(value, labels.get(value, value)) for value in selectors.severities()]


class SeverityFilter(admin.SimpleListFilter):
    title = "severity"
    parameter_name = "severity"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple]:
        return severity_choices()

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(severity=self.value())
        return queryset


class HiddenFilter(admin.SimpleListFilter):
    title = "visibility"
    parameter_name = "hidden"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple]:
        return [("no", "visible"), ("yes", "hidden")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "no":
            return queryset.filter(is_enabled=True)
        if self.value() == "yes":
            return queryset.filter(is_enabled=False)
        return queryset


class NamespaceFilter(admin.SimpleListFilter):
    """Incidents with an alert in the namespace."""

    title = "namespace"
    parameter_name = "namespace"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple]:
        names = Alert.objects.namespaces(limit=NAMESPACES_LISTED)
        if self.value() and self.value() not in names:
            names.append(self.value())
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            in_namespace = Alert.objects.filter(
                incident=OuterRef("pk"), namespace=self.value()
            )
            return queryset.filter(Exists(in_namespace))
        return queryset


class IncidentForm(forms.ModelForm):
    severity = forms.ChoiceField(choices=severity_choices)
    # Not stripped, as the API takes it: the service tells a blank new title
    # from one kuberca gave the incident (an alertname of only spaces).
    title = forms.CharField(
        max_length=TITLE_MAX_CHARS,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    class Meta:
        model = Incident
        fields = list(EDITABLE_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A field counts as edited when it differs from what the page showed,
        # not from the row as it is now: alerts may have raised the severity,
        # or the final analysis landed, while the page was open, and saving
        # an edit of the title must not put back the values read then.
        # A person who may only view gets a form without the undeclared ones.
        for name in EDITABLE_FIELDS:
            if name in self.fields:
                self.fields[name].show_hidden_initial = True
        # The incident's own severity, even one INGEST_SEVERITIES no longer
        # lets in: without its option a browser would send the first one.
        field = self.fields["severity"]
        current = self.instance.severity
        if current and current not in dict(field.choices):
            field.choices = [*field.choices, (current, current)]

    def clean(self) -> dict[str, Any]:
        # The service's rules, so save_model never meets a refusal: a title of
        # only invisible characters passes the form's own checks.
        cleaned = super().clean()
        data = {f: cleaned[f] for f in self.changed_data if f in cleaned}
        try:
            incident_changes_check(data=data, incident=self.instance)
        except InvalidInput as error:
            field = error.context.get("field")
            self.add_error(field if field in self.fields else None, error.message)
        return cleaned


class AlertInline(admin.TabularInline):
    """The incident's alerts, read-only: moving one is the alert admin's action."""

    model = Alert
    fk_name = "incident"
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = "alerts"
    fields = (
        "alarm_title",
        "severity_badge",
        "status_badge",
        "fired_at",
        "resolved_at",
        "label_chips",
        "grouping_reason",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).order_by("fired_at", "alert_id")

    @admin.display(description="severity")
    def severity_badge(self, obj: Any) -> SafeString:
        return badge(obj.severity)

    @admin.display(description="status")
    def status_badge(self, obj: Any) -> SafeString:
        return badge(obj.status)

    @admin.display(description="labels")
    def label_chips(self, obj: Any) -> SafeString:
        return label_chips(obj.labels)


@dataclass
class TimelineEntry:
    at: datetime
    kind: str
    text: str
    link: str = ""


def incident_timeline(
    incident: Incident, alerts: list[Any], slack_messages: list[Any]
) -> list[TimelineEntry]:
    """What happened to the incident, oldest first, from the rows' own times.

    Alerts need their analyses prefetched. Slack messages count only when
    their model records when they were sent.
    """
    entries = [TimelineEntry(incident.fired_at, "opened", "incident fired")]
    for alert in alerts:
        link = reverse("admin:alerts_alert_change", args=[alert.pk])
        name = f"{alert.pk} {alert.alarm_title}"
        if alert.grouping_reason in {"moved", "merged"}:
            entries.append(
                TimelineEntry(
                    alert.updated_at,
                    "joined",
                    f"alert {alert.grouping_reason} here: {name}",
                    link,
                )
            )
        else:
            entries.append(
                TimelineEntry(alert.created_at, "joined", f"alert joined: {name}", link)
            )
        if alert.grouping_reason == "reopened":
            entries.append(
                TimelineEntry(
                    alert.created_at, "reopened", f"incident reopened by {alert.pk}"
                )
            )
        if alert.resolved_at:
            stale = " (stale)" if alert.resolved_as_stale else ""
            entries.append(
                TimelineEntry(
                    alert.resolved_at,
                    "resolved",
                    f"alert resolved{stale}: {name}",
                    link,
                )
            )
        for analysis in alert.analyses.all():
            entries.append(
                TimelineEntry(
                    analysis.created_at,
                    "analysis",
                    f"{analysis.trigger} {analysis.status} analysis requested"
                    f" for {alert.pk}",
                    link,
                )
            )
            finished = analysis.state in {"done", "failed"}
            if analysis.completed_at or finished:
                entries.append(
                    TimelineEntry(
                        analysis.completed_at or analysis.updated_at,
                        "analysed" if analysis.state == "done" else "failed",
                        f"{analysis.status} analysis of {alert.pk} {analysis.state}",
                        link,
                    )
                )
    for message in slack_messages:
        sent_at = getattr(message, "sent_at", None) or getattr(
            message, "posted_at", None
        )
        if sent_at:
            entries.append(
                TimelineEntry(sent_at, "notified", f"Slack {message.kind} posted")
            )
    if incident.resolved_at:
        entries.append(
            TimelineEntry(
                incident.resolved_at,
                "resolved",
                f"incident resolved by {incident.resolved_by or 'unknown'}",
            )
        )
    entries.sort(key=lambda entry: entry.at)
    return entries


def similar_incidents(incident: Incident) -> list[dict[str, Any]]:
    """The embeddings app's similar incidents, or [] when it is not there."""
    try:
        finder = import_string(settings.SIMILAR_INCIDENTS_FINDER)
    except ImportError:
        return []
    try:
        return list(finder(incident, limit=5))
    except Exception:
        # A boundary: similar incidents are a hint, never a reason for a 500.
        logger.exception("similar incidents failed incident_id=%s", incident.pk)
        return []


@admin.register(Incident)
class IncidentAdmin(ConsoleModelAdmin):
    form = IncidentForm
    list_display = (
        "incident_id",
        "status_badge",
        "severity_badge",
        "title",
        "alert_count",
        "group_key",
        "fired_at",
        "resolved_at",
        "slack_link",
    )
    list_display_links = ("incident_id", "title")
    list_filter = (
        "status",
        SeverityFilter,
        HiddenFilter,
        NamespaceFilter,
        ("fired_at", admin.DateFieldListFilter),
    )
    search_fields = ("incident_id", "title")
    search_help_text = (
        "Incident id, title, alert id or name, namespace, label value,"
        " or key=value for one label."
    )
    date_hierarchy = "fired_at"
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100
    actions = ["resolve", "hide", "unhide", "rerun_analysis", "merge"]
    inlines = [AlertInline]
    change_form_template = "admin/incidents/incident/change_form.html"
    readonly_fields = (
        "incident_id",
        "status_badge",
        "fired_at",
        "resolved_at",
        "resolved_by",
        "created_by",
        "is_enabled",
        "group_key",
        "last_alert_at",
        "truncated_alerts",
        "summary_status",
        "summary_generation",
        "summary_attempts",
        "summary_error",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "incident_id",
                    "title",
                    "severity",
                    "status_badge",
                    "is_enabled",
                    "group_key",
                )
            },
        ),
        (
            "Times",
            {
                "fields": (
                    ("fired_at", "resolved_at"),
                    ("resolved_by", "created_by"),
                    "last_alert_at",
                )
            },
        ),
        (
            "Final analysis (Markdown)",
            {
                "classes": ("collapse",),
                "fields": ("analysis_summary", "analysis_detail"),
            },
        ),
        (
            "Machine state",
            {
                "classes": ("collapse",),
                "fields": (
                    ("summary_status", "summary_generation", "summary_attempts"),
                    "summary_error",
                    "truncated_alerts",
                    ("created_at", "updated_at"),
                ),
            },
        ),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        count = (
            Alert.objects.filter(incident=OuterRef("pk"))
            .order_by()
            .values("incident")
            .annotate(n=Count("*"))
            .values("n")
        )
        queryset = (
            super()
            .get_queryset(request)
            .annotate(
                alert_count=Coalesce(
                    Subquery(count, output_field=IntegerField()), Value(0)
                )
            )
        )
        slack = slack_message_model()
        if slack is not None:
            root = slack.objects.filter(
                incident=OuterRef("pk"), kind="incident_root"
            ).order_by("pk")
            queryset = queryset.annotate(
                slack_channel=Subquery(root.values("channel")[:1]),
                slack_ts=Subquery(root.values("ts")[:1]),
            )
        return queryset

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """Each word must match the incident or one of its alerts."""
        for term in search_terms(search_term):
            alerts = alerts_matching(
                Alert.objects.filter(incident=OuterRef("pk")), term
            )
            incident_id = normalised_id(term, "INC-")
            incident_q = Q(title__icontains=term) | Q(incident_id=incident_id)
            if incident_id.startswith("INC-"):
                incident_q |= Q(incident_id__startswith=incident_id)
            queryset = queryset.filter(incident_q | Exists(alerts))
        return queryset, False

    # --- list columns ---------------------------------------------------

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Incident) -> SafeString:
        if not obj.is_enabled:
            return format_html("{} {}", badge(obj.status), badge("hidden"))
        return badge(obj.status)

    @admin.display(description="severity", ordering="severity")
    def severity_badge(self, obj: Incident) -> SafeString:
        return badge(obj.severity)

    @admin.display(description="alerts", ordering="alert_count")
    def alert_count(self, obj: Incident) -> int:
        return obj.alert_count

    @admin.display(description="Slack")
    def slack_link(self, obj: Incident) -> SafeString | str:
        channel = getattr(obj, "slack_channel", None)
        ts = getattr(obj, "slack_ts", None)
        if not (channel and ts):
            return "—"
        return format_html(
            '<a href="{}" target="_blank" rel="noopener">thread</a>',
            slack_thread_url(channel, ts),
        )

    # --- edits go through the service -------------------------------------

    def save_model(
        self, request: HttpRequest, obj: Incident, form: forms.ModelForm, change: bool
    ) -> None:
        data = {
            field: form.cleaned_data[field]
            for field in form.changed_data
            if field in EDITABLE_FIELDS
        }
        if data:
            incident_update(incident_id=obj.pk, data=data)

    # --- the change page ----------------------------------------------------

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = dict(extra_context or {})
        incident = Incident.objects.filter(pk=unquote(object_id)).first()
        if incident is not None:
            context.update(self.console_context(incident))
        return super().change_view(request, object_id, form_url, context)

    def console_context(self, incident: Incident) -> dict[str, Any]:
        alerts = list(
            incident.alerts.order_by("fired_at", "alert_id").prefetch_related(
                "analyses__artifacts"
            )[: ALERTS_SHOWN + 1]
        )
        more_alerts = len(alerts) > ALERTS_SHOWN
        alerts = alerts[:ALERTS_SHOWN]
        slack_messages = slack_messages_of(incident.pk)
        root = next(
            (m for m in slack_messages if m.kind == "incident_root" and m.ts), None
        )
        timeline = incident_timeline(incident, alerts, slack_messages)
        return {
            "console_alerts": [a for a in alerts if a.analyses.all()],
            "console_more_alerts": more_alerts,
            "slack_thread": slack_thread_url(root.channel, root.ts) if root else "",
            "similar_incidents": [
                {
                    **item,
                    "url": reverse(
                        "admin:incidents_incident_change", args=[item["incident_id"]]
                    ),
                }
                for item in similar_incidents(incident)
            ],
            "timeline": timeline[-TIMELINE_SHOWN:],
            "timeline_cut": max(len(timeline) - TIMELINE_SHOWN, 0),
            "alerts_url": reverse("admin:alerts_alert_changelist")
            + f"?incident={incident.pk}",
        }

    # --- actions ------------------------------------------------------------

    @admin.action(
        description="Resolve selected incidents (starts the final analysis)",
        permissions=["change"],
    )
    def resolve(
        self, request: HttpRequest, queryset: QuerySet
    ) -> TemplateResponse | None:
        if not confirmed(request):
            firing = queryset.filter(status=IncidentStatus.FIRING).count()
            if not firing:
                self.message_user(
                    request,
                    "None of the selected incidents is firing: nothing to resolve.",
                    messages.WARNING,
                )
                return None
            return confirmation_page(
                request,
                self,
                queryset,
                action="resolve",
                title="Resolve incidents",
                question=f"Resolve {firing} firing incident(s)? Their alerts stay"
                " as they are; the final analysis starts for each.",
                button="Yes, resolve",
            )
        by = request.user.get_username()
        resolved, skipped, gone = [], [], []
        for incident_id in queryset.values_list("pk", flat=True):
            try:
                incident_resolve(incident_id=incident_id, resolved_by=by)
            except InvalidInput as error:
                # The person's name itself (the same for every incident).
                self.message_user(
                    request, f"Not resolved: {error.message}.", messages.ERROR
                )
                return None
            except IncidentAlreadyResolved:
                skipped.append(incident_id)
            except IncidentNotFound:
                gone.append(incident_id)
            else:
                resolved.append(incident_id)
        # AGENT_ENABLED is off without an AGENT_URL: the resolves then ask
        # for no final analysis.
        self._report(
            request,
            resolved,
            "Resolved {count} incident(s): {ids}; final analysis requested."
            if settings.AGENT_ENABLED
            else "Resolved {count} incident(s): {ids}; no final analysis, as no "
            "Agent is configured.",
        )
        self._report(
            request,
            skipped,
            "Skipped {count} already resolved: {ids}.",
            messages.WARNING,
        )
        self._report_gone(request, gone)
        return None

    @admin.action(description="Hide selected incidents", permissions=["change"])
    def hide(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_visibility(request, queryset, incident_hide, "Hid")

    @admin.action(description="Unhide selected incidents", permissions=["change"])
    def unhide(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_visibility(request, queryset, incident_unhide, "Unhid")

    def _set_visibility(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        change: Callable[..., Incident],
        verb: str,
    ) -> None:
        done, gone = [], []
        for incident_id in queryset.values_list("pk", flat=True):
            try:
                change(incident_id=incident_id)
            except IncidentNotFound:
                gone.append(incident_id)
            else:
                done.append(incident_id)
        self._report(request, done, verb + " {count} incident(s): {ids}.")
        self._report_gone(request, gone)

    @admin.action(description="Re-run the final analysis", permissions=["change"])
    def rerun_analysis(self, request: HttpRequest, queryset: QuerySet) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        try:
            with transaction.atomic():
                for incident_id in ids:
                    events.incident_analysis_requested.send(
                        sender=Incident, incident_id=incident_id
                    )
        except DomainError as exc:
            self.message_user(
                request, f"Analysis not requested: {exc.message}.", messages.ERROR
            )
            return
        logger.info("incident analysis requested count=%s", len(ids))
        self.message_user(
            request,
            f"Final analysis requested for {len(ids)} incident(s): {', '.join(ids)}.",
            messages.SUCCESS,
        )

    @admin.action(
        description="Merge selected incidents into the oldest", permissions=["change"]
    )
    def merge(
        self, request: HttpRequest, queryset: QuerySet
    ) -> TemplateResponse | None:
        ordered = list(queryset.order_by("fired_at", "incident_id"))
        if len(ordered) < 2:
            self.message_user(
                request, "Select at least two incidents to merge.", messages.WARNING
            )
            return None
        target, others = ordered[0], ordered[1:]
        if not confirmed(request):
            return confirmation_page(
                request,
                self,
                queryset.order_by("fired_at", "incident_id"),
                action="merge",
                title="Merge incidents",
                question=f"Merge {len(others)} incident(s) into the oldest,"
                f" {target.pk} ({target.title})?",
                button="Yes, merge",
                notes=[
                    "Their alerts move to the oldest incident (grouping reason"
                    " “merged”); the others are resolved by you"
                    + (
                        ", and each incident's Slack message is updated."
                        if settings.SLACK_ENABLED
                        else "."
                    )
                ],
            )
        try:
            merger = import_string(settings.INCIDENT_MERGER)
        except ImportError:
            self.message_user(request, "Merging is not available yet.", messages.ERROR)
            return None
        try:
            merged = merger(
                incident_ids=[i.pk for i in ordered],
                merged_by=request.user.get_username(),
            )
        except DomainError as exc:
            self.message_user(request, f"Merge refused: {exc.message}", messages.ERROR)
            return None
        # Counted after the merge: the list page's counts may be out of date.
        total = merged.alerts.count()
        self.message_user(
            request,
            f"Merged {', '.join(o.pk for o in others)} into {merged.pk};"
            f" it has {total} alert(s) now.",
            messages.SUCCESS,
        )
        return None
