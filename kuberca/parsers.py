"""The JSON parser of every API view (REST_FRAMEWORK DEFAULT_PARSER_CLASSES).

DRF's JSONParser turns a ValueError into a 400 but lets two bodies through
that later fail as a 500: one nested thousands of levels deep (RecursionError)
and one with a lone UTF-16 surrogate escape such as "\\udc00", which JSON
allows but no UTF-8 text (hence no PostgreSQL column) can hold. This one
answers both as the same "invalid request" ParseError. A number past Python's
digit limit is refused in words of the request, not Python's advice to call
sys.set_int_max_str_digits().
"""

import sys
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def _has_lone_surrogate(data: Any) -> bool:
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    return True
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


class SafeJSONParser(JSONParser):
    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: dict[str, Any] | None = None,
    ) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
        except ParseError as exc:
            if "integer string conversion" not in str(exc.detail):
                raise
            raise ParseError(
                "JSON parse error - a number has more than "
                f"{sys.get_int_max_str_digits()} digits"
            ) from None
        if _has_lone_surrogate(data):
            raise ParseError(
                "JSON parse error - a string holds a lone surrogate (\\ud800-\\udfff)"
            )
        return data
