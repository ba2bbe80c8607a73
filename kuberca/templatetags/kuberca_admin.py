"""Template filters of the admin console: Markdown, badges, chips, tables.

Markdown from the Agent is rendered, then cleaned by nh3, so a script or an
event handler in an analysis never reaches an operator's browser.
"""

from collections.abc import Mapping
from typing import Any

import markdown as markdown_lib
import nh3
from django import template
from django.utils.safestring import SafeString, mark_safe

from kuberca import admin as kuberca_admin

register = template.Library()

_MARKDOWN_EXTENSIONS = ["fenced_code", "tables", "sane_lists"]
# No images: an analysis must not make the operator's browser fetch anything.
_ALLOWED_TAGS = set(nh3.ALLOWED_TAGS) - {"img"}


@register.filter
def markdown(text: str | None) -> SafeString:
    """Markdown to HTML, with nh3 keeping only harmless tags and attributes."""
    if not text:
        return mark_safe("")  # noqa: S308 (a constant)
    html = markdown_lib.markdown(text, extensions=_MARKDOWN_EXTENSIONS)
    clean = nh3.clean(html, tags=_ALLOWED_TAGS, link_rel="noopener noreferrer nofollow")
    return mark_safe(clean)  # noqa: S308 (cleaned by nh3)


@register.filter
def badge(value: str) -> SafeString:
    return kuberca_admin.badge(value)


@register.filter
def chips(labels: Mapping[str, Any] | None) -> SafeString:
    return kuberca_admin.label_chips(labels)


@register.filter
def kv_table(data: Mapping[str, Any] | None) -> SafeString:
    return kuberca_admin.key_value_table(data)


@register.filter
def pretty_json(value: Any) -> str:
    return kuberca_admin.pretty_json(value)


@register.simple_tag
def slack_url(channel: str, ts: str) -> str:
    return kuberca_admin.slack_thread_url(channel, ts)
