"""The JSON parser of every API view (REST_FRAMEWORK DEFAULT_PARSER_CLASSES).

DRF's JSONParser turns a ValueError into a 400 but lets the RecursionError of
a body nested thousands of levels deep escape as a 500; this one answers it
as the same "invalid request" ParseError.
"""

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class SafeJSONParser(JSONParser):
    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: dict[str, Any] | None = None,
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
