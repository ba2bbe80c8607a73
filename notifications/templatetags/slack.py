"""Template filters for Slack messages (templates/notifications/)."""

from django import template

from notifications.mrkdwn import cut, escape

register = template.Library()


@register.filter(name="slack")
def slack_escape(value: object) -> str:
    """Escape a value for Slack mrkdwn: `&`, `<`, `>` show as written."""
    return escape("" if value is None else str(value))


@register.filter(name="cut_to")
def cut_to(value: object, limit: int) -> str:
    """At most `limit` characters, ending in "…" when cut."""
    return cut("" if value is None else str(value), int(limit))
