"""The Slack outbox in the admin: what was posted, what waits, what failed.

Rows are written by the delivery code only: the console adds, edits and
deletes none (a deleted root makes the next change post a second thread), and
its one action, retry, goes through notifications.services.
"""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from kuberca.admin import MachineWrittenAdmin
from notifications.models import SlackMessage
from notifications.services import messages_retry


@admin.register(SlackMessage)
class SlackMessageAdmin(MachineWrittenAdmin):
    list_display = (
        "id",
        "incident",
        "kind",
        "state",
        "attempts",
        "error",
        "ts",
        "created_at",
        "sent_at",
    )
    list_filter = ("state", "kind")
    search_fields = ("incident__incident_id", "ts", "error")
    list_select_related = ("incident",)
    raw_id_fields = ("incident", "alert", "analysis")
    readonly_fields = [f.name for f in SlackMessage._meta.fields]
    actions = ["retry_failed"]

    @admin.action(
        description="Retry the selected failed messages", permissions=["change"]
    )
    def retry_failed(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = messages_retry(message_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} message(s) queued again.", messages.INFO)
