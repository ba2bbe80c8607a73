"""The API's content negotiation: JSON, whatever the Accept header asks.

DRF picks a renderer before it authenticates, and answers 406 when no
renderer matches Accept: a request without a token but with `Accept:
text/html` got 406 where SPEC §7 promises 401. The API has one format, so a
client that asks for another gets JSON, as HTTP lets a server do.
"""

from typing import Any

from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class FirstRendererNegotiation(DefaultContentNegotiation):
    def select_renderer(
        self,
        request: Request,
        renderers: list[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, Any]:
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type
