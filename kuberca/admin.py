"""Pieces the admin console of every app shares, and the worker's task results.

Holds the model admin base that checks an action's selection and a list's
filters, the paginator that never COUNTs a huge table, the coloured badges,
the key/value tables for labels and JSON, the Slack thread link, and the
confirmation page of actions.
Apps' admin modules import from here; this module imports no app.
"""

import json
import logging
from collections.abc import Mapping
from typing import Any

from django import forms
from django.apps import apps
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.paginator import Paginator
from django.db import DataError, connections
from django.db.models import Model, QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest, HttpResponseBase
from django.template.response import TemplateResponse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django_tasks_db.admin import DBTaskResultAdmin
from django_tasks_db.models import DBTaskResult

logger = logging.getLogger(__name__)

# SPEC §4's colours, reused so the admin and Slack look alike.
COLOURS = {
    "resolved": "#36a64f",
    "processed": "#36a64f",
    "done": "#36a64f",
    "successful": "#36a64f",
    "firing": "#dc3545",
    "critical": "#dc3545",
    "failed": "#dc3545",
    "warning": "#ffc107",
    "rejected": "#ffc107",
    "pending": "#6f42c1",
    "running": "#6f42c1",
    "hidden": "#6c757d",
}
OTHER_COLOUR = "#17a2b8"
_DARK_TEXT = {"#ffc107"}


def badge(value: str, label: str | None = None) -> SafeString:
    """A coloured pill for a status, severity or outcome."""
    colour = COLOURS.get((value or "").lower(), OTHER_COLOUR)
    text = "#212529" if colour in _DARK_TEXT else "#fff"
    return format_html(
        '<span class="kuberca-badge" style="background:{};color:{};'
        "padding:1px 8px;border-radius:9px;font-size:11px;font-weight:600;"
        'white-space:nowrap">{}</span>',
        colour,
        text,
        label if label is not None else (value or "—"),
    )


def label_chips(labels: Mapping[str, Any] | None) -> SafeString:
    """Labels as `key=value` chips, sorted by key."""
    if not labels:
        return mark_safe("—")  # noqa: S308 (a constant)
    return format_html_join(
        " ",
        '<span class="kuberca-chip" style="display:inline-block;margin:1px;'
        "padding:0 6px;border:1px solid var(--hairline-color,#ccc);"
        'border-radius:4px;font-size:11px;white-space:nowrap">'
        "<b>{}</b>={}</span>",
        ((key, _scalar(value)) for key, value in sorted(labels.items())),
    )


def key_value_table(data: Mapping[str, Any] | None) -> SafeString:
    """A JSON object as a two-column table; nested values pretty-printed."""
    if not data:
        return mark_safe("—")  # noqa: S308 (a constant)
    if not isinstance(data, Mapping):
        return format_html("<pre>{}</pre>", pretty_json(data))
    rows = format_html_join(
        "",
        '<tr><th scope="row" style="width:25%">{}</th>'
        '<td style="white-space:pre-wrap;word-break:break-word">{}</td></tr>',
        ((key, _scalar(value)) for key, value in sorted(data.items())),
    )
    return format_html('<table class="kuberca-kv">{}</table>', rows)


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    return pretty_json(value)


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def slack_thread_url(channel: str, ts: str) -> str:
    """A link that opens a Slack message (the incident root: its thread)."""
    workspace = getattr(settings, "SLACK_WORKSPACE", "")
    if workspace:
        return (
            f"https://{workspace}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        )
    return f"https://slack.com/app_redirect?channel={channel}&message_ts={ts}"


def slack_message_model() -> type[Model] | None:
    """notifications.SlackMessage when that app provides it, else None.

    Looked up by name so the apps below notifications never import it.
    """
    try:
        model = apps.get_model("notifications", "SlackMessage")
    except LookupError:
        return None
    names = {field.name for field in model._meta.get_fields()}
    if not {"incident", "kind", "channel", "ts"} <= names:
        return None
    return model


def slack_messages_of(incident_id: str) -> list[Model]:
    model = slack_message_model()
    if model is None:
        return []
    return list(model.objects.filter(incident_id=incident_id).order_by("pk"))


class EstimatedCountPaginator(Paginator):
    """A paginator that never COUNTs a huge table.

    Unfiltered, it trusts PostgreSQL's pg_class.reltuples estimate once that is
    above `exact_limit`; filtered, it counts at most `exact_limit + 1` rows, and
    past that reports the larger of the cap and the estimate. Page links beyond
    the real end show an empty page, which is the price of not counting.
    """

    exact_limit = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return super().count
        estimate = table_estimate(queryset)
        if not queryset.query.where and estimate > self.exact_limit:
            return estimate
        capped = queryset.order_by()[: self.exact_limit + 1].count()
        if capped <= self.exact_limit:
            return capped
        return max(estimate, capped)


def table_estimate(queryset: QuerySet) -> int:
    """PostgreSQL's row estimate of the queryset's table (-1 → never analysed)."""
    table = queryset.model._meta.db_table
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            [table],
        )
        row = cursor.fetchone()
    return max(int(row[0]), 0) if row and row[0] is not None else 0


def selects_all(request: HttpRequest) -> bool:
    """Whether an action's post selects every row of the list ("select all")."""
    return forms.BooleanField().to_python(request.POST.get("select_across"))


def confirmation_page(
    request: HttpRequest,
    modeladmin: admin.ModelAdmin,
    queryset: QuerySet,
    *,
    action: str,
    title: str,
    question: str,
    button: str,
    form: Any = None,
    notes: list[str] | None = None,
) -> TemplateResponse:
    """The intermediate page of an action that asks before it changes anything.

    Re-posting it sends `post=yes` with the same action and selection, so the
    action runs again and finds its confirmation. A selection of every row of
    the list ("select all") is posted back as that, not as one id per row:
    past DATA_UPLOAD_MAX_NUMBER_FIELDS ids Django refuses the post.
    """
    opts = modeladmin.model._meta
    objects = list(queryset[:200])
    across = selects_all(request)
    if across:
        # One id, as the changelist needs some selection to run an action.
        selected = [obj.pk for obj in objects[:1]]
        count = queryset.count()
    else:
        selected = list(queryset.values_list("pk", flat=True))
        count = len(selected)
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "question": question,
        "button": button,
        "objects": objects,
        "selected": selected,
        "select_across": across,
        "count": count,
        "more": count - len(objects),
        "action": action,
        "form": form,
        "notes": notes or [],
        "opts": opts,
        "app_label": opts.app_label,
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/kuberca/action_confirmation.html", context)


def confirmed(request: HttpRequest) -> bool:
    return request.POST.get("post") == "yes"


class CheckedSelection:
    """For a ModelAdmin (put it first in the bases): the selection is checked.

    The selected ids come from the form as text; one the primary key cannot
    hold (`abc` for an integer id) would fail in the queryset filter with a
    500. Such a selection runs no action, like an empty one, and so does one
    whose rows have all left the list (pruned, or no longer matching its
    filters since the page was loaded): actions would otherwise ask about,
    or report, zero rows.
    """

    model: type[Model]

    def response_action(
        self, request: HttpRequest, queryset: QuerySet
    ) -> HttpResponseBase | None:
        pk = self.model._meta.pk
        selected = request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME)
        try:
            for value in selected:
                pk.to_python(value)
        except ValidationError:
            self.message_user(
                request,
                "The selection holds an id that is not valid here."
                " No items have been changed.",
                messages.WARNING,
            )
            return None
        if (
            selected
            and not selects_all(request)
            and not queryset.filter(pk__in=selected).exists()
        ):
            self.message_user(
                request,
                f"None of the selected {self.model._meta.verbose_name_plural}"
                " are in this list any more. No items have been changed.",
                messages.WARNING,
            )
            return None
        return super().response_action(request, queryset)  # type: ignore[misc]


# The lookups a list's own filters, date drill-down and links write. Any
# other one in a query string (regex, range, trigram, contained_by, iso_year,
# a JSON key) reaches the database as it is, where several fail with a 500: an
# invalid regular expression, a malformed range, an operator that does not
# exist. They are refused before any query, as Django refuses lookups across
# relations no filter offers.
LIST_LOOKUPS = frozenset(
    {"exact", "iexact", "in", "isnull", "gt", "gte", "lt", "lte"}
    | {"year", "month", "day"}
)
# What a lookup Django lets through may still raise while the list is counted:
# a value too big for its column's type, one the database cannot read.
_VALUE_ERRORS = (OverflowError, ValueError, DataError)


class CheckedChangeList(ChangeList):
    """A change list that answers Django's error page (`?e=1`) for a filter
    value it cannot use, instead of a 500.

    Django does so for a value it cannot read itself, but a year too big for
    a C long, or 9999 (whose next year, month or day is past datetime's
    range), fails in its date arithmetic, and a value past its column's range
    fails in the database when the list is counted.
    """

    def get_filters(self, request: HttpRequest) -> Any:
        try:
            return super().get_filters(request)
        except (OverflowError, ValueError) as error:
            raise IncorrectLookupParameters(error) from error

    def get_results(self, request: HttpRequest) -> None:
        try:
            super().get_results(request)
        except _VALUE_ERRORS as error:
            raise IncorrectLookupParameters(error) from error


class CheckedLookups:
    """For a ModelAdmin (put it before the base): the lookups of LIST_LOOKUPS
    only, on a list that refuses values it cannot use (CheckedChangeList)."""

    model: type[Model]

    def lookup_allowed(
        self, lookup: str, value: str, request: HttpRequest | None = None
    ) -> bool:
        opts = self.model._meta
        parts = lookup.split(LOOKUP_SEP)
        for depth, part in enumerate(parts):
            try:
                # `pk` is no field's name, but the query takes it as the key's.
                field = opts.pk if part == "pk" else opts.get_field(part)
            except FieldDoesNotExist:
                # A first part that names no field is a list filter's own
                # parameter or one of the list's annotations (a count): what
                # follows it is a lookup, as after a field.
                rest = parts[depth + 1 :] if depth == 0 else parts[depth:]
                if any(name not in LIST_LOOKUPS for name in rest):
                    return False
                break
            if not field.is_relation:
                if any(rest not in LIST_LOOKUPS for rest in parts[depth + 1 :]):
                    return False
                break
            opts = field.related_model._meta
        return super().lookup_allowed(lookup, value, request)  # type: ignore[misc]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return CheckedChangeList


class ConsoleModelAdmin(CheckedSelection, CheckedLookups, admin.ModelAdmin):
    """The base of the console's model admins."""

    def _report(
        self,
        request: HttpRequest,
        ids: list[str],
        text: str,
        level: int = messages.SUCCESS,
        **fields: str,
    ) -> None:
        """One message about `ids` ({count}, {ids} and `fields` in `text`),
        when there are any."""
        if ids:
            self.message_user(
                request,
                text.format(count=len(ids), ids=", ".join(ids), **fields),
                level,
            )

    def _report_gone(self, request: HttpRequest, gone: list[str]) -> None:
        # Deleted (pruned, or by another person) after the list was read.
        self._report(
            request, gone, "Skipped {count} no longer there: {ids}.", messages.WARNING
        )


class MachineWrittenAdmin(ConsoleModelAdmin):
    """For rows only machines write: no add, delete or save, actions still run.

    Actions need the change permission, so it stays; the change page shows
    no save buttons and a stray POST saves nothing.
    """

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().change_view(request, object_id, form_url, context)

    def save_model(
        self, request: HttpRequest, obj: Model, form: Any, change: bool
    ) -> None:
        return None

    def save_related(
        self, request: HttpRequest, form: Any, formsets: Any, change: bool
    ) -> None:
        return None


class TaskResultAdmin(CheckedLookups, DBTaskResultAdmin):
    """The worker's task results: failed ones first to find, searchable by task."""

    list_display = (
        "id",
        "task_name",
        "status_badge",
        "enqueued_at",
        "started_at",
        "finished_at",
        "exception_class_path",
        "queue_name",
    )
    search_fields = ("task_path", "exception_class_path")
    date_hierarchy = "enqueued_at"
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: DBTaskResult) -> SafeString:
        return badge(obj.status.lower(), obj.status)


admin.site.unregister(DBTaskResult)
admin.site.register(DBTaskResult, TaskResultAdmin)
admin.site.site_header = "kuberca triage"
admin.site.site_title = "kuberca"
admin.site.index_title = "On-call triage"
# "View site" leads to the frontend when there is one; kuberca's own `/` is a
# JSON health answer.
admin.site.site_url = settings.FRONTEND_URL or None
