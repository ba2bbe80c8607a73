"""drf-spectacular hooks shared by every app's routes.

API routes take an optional trailing slash (`^/hidden/?$`, since APPEND_SLASH
is off); the document names each path once, in its slash-less form.
"""

from typing import Any

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema


class AutoSchema(SpectacularAutoSchema):
    """An operation is described by its `extend_schema(description=...)` only.

    drf-spectacular falls back on the docstrings of the method and of the
    view's class, inherited ones included: notes written for the code's
    readers (a mixin's, say) would be published in the API's documentation.
    """

    def get_description(self) -> str:
        return ""


def strip_optional_slash(endpoints: list[tuple], **kwargs: Any) -> list[tuple]:
    """Preprocessing hook: document `/x/?$` routes as `/x`."""
    result = []
    for path, path_regex, method, callback in endpoints:
        if path_regex.endswith("/?$") and path.endswith("/") and path != "/":
            path = path[:-1]
        result.append((path, path_regex, method, callback))
    return result


def allow_empty_query_values(result: dict, **kwargs: Any) -> dict:
    """Postprocessing hook: document that an empty query value means "absent".

    Every query parameter of the API is read by kuberca.pagination, which takes
    `?until=` or `?limit=` as if the parameter were left out.
    """
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query":
                    parameter["allowEmptyValue"] = True
    return result
