"""drf-spectacular hooks shared by every app's routes.

API routes take an optional trailing slash (`^/hidden/?$`, since APPEND_SLASH
is off); the document names each path once, in its slash-less form.
"""

from typing import Any


def strip_optional_slash(endpoints: list[tuple], **kwargs: Any) -> list[tuple]:
    """Preprocessing hook: document `/x/?$` routes as `/x`."""
    result = []
    for path, path_regex, method, callback in endpoints:
        if path_regex.endswith("/?$") and path.endswith("/") and path != "/":
            path = path[:-1]
        result.append((path, path_regex, method, callback))
    return result
