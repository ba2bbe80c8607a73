"""Every /api/v1 route but the public auth ones answers 401 without a token.

The routes are read from the URL conf, so a route added later is covered
without touching this file. Path parameters get placeholder values that match
their converter; authentication runs before the view looks the id up.
"""

import re
from collections.abc import Iterator

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RegexPattern, RoutePattern

pytestmark = pytest.mark.django_db

API = "/api/v1/"
PUBLIC = {
    f"/api/v1/auth/{name}{slash}"
    for name in ("register", "login", "refresh", "logout", "config")
    for slash in ("", "/")
}
METHODS = ("get", "post", "put", "patch", "delete")
# Tried in order: the first that the parameter's converter accepts is used.
PLACEHOLDERS = ("1", "00000000-0000-0000-0000-000000000001", "placeholder")
_GROUP = re.compile(r"\(\?P<(\w+)>([^)]*)\)")
# Optional parts left out: `(?:/)?`, `/?`.
_OPTIONAL = re.compile(r"\(\?:[^()]*\)\?|\\?.\?")
_CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")


def _placeholder(regex: str) -> str:
    for value in PLACEHOLDERS:
        if re.fullmatch(regex, value):
            return value
    raise AssertionError(f"no placeholder matches {regex!r}: add one to PLACEHOLDERS")


def _route_text(pattern: RoutePattern | RegexPattern) -> str:
    if isinstance(pattern, RoutePattern):
        route = str(pattern)
        for match in _CONVERTER.finditer(route):
            regex = pattern.converters[match.group(2)].regex
            route = route.replace(match.group(0), _placeholder(regex), 1)
        return route
    text = pattern.regex.pattern.lstrip("^").removesuffix("$").removesuffix(r"\Z")
    text = _GROUP.sub(lambda m: _placeholder(m.group(2)), text)
    text = _OPTIONAL.sub("", text)
    return text.replace("\\", "")


def _walk(resolver: URLResolver, prefix: str = "/") -> Iterator[tuple[str, object]]:
    for entry in resolver.url_patterns:
        if not (prefix.startswith(API) or API.startswith(prefix)):
            return  # admin, webhook, health: not under /api/v1/
        text = prefix + _route_text(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _walk(entry, text)
        elif isinstance(entry, URLPattern):
            yield text, entry.callback


def _allowed_methods(callback: object) -> tuple[str, ...]:
    actions = getattr(callback, "actions", None)  # DRF viewset routes
    if actions:
        return tuple(method for method in METHODS if method in actions)
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view_class is not None:
        return tuple(method for method in METHODS if hasattr(view_class, method))
    return METHODS  # a plain function: try everything, 405 means "not allowed"


def _protected_routes() -> dict[str, object]:
    return {
        url: callback
        for url, callback in _walk(get_resolver())
        if url.startswith(API) and url not in PUBLIC
    }


def test_walk_finds_the_protected_auth_route():
    urls = set(_protected_routes())

    assert "/api/v1/auth/me" in urls
    assert not PUBLIC & urls


@pytest.mark.parametrize("url", sorted(_protected_routes()))
def test_api_route_needs_a_token(client, url):
    callback = _protected_routes()[url]
    assert resolve(url).func is callback, f"placeholder URL {url} resolves elsewhere"
    answered = []
    for method in _allowed_methods(callback):
        response = getattr(client, method)(url, content_type="application/json")
        if response.status_code == 405 and not hasattr(callback, "cls"):
            continue  # a plain Django view that does not take this method
        assert response.status_code == 401, f"{method.upper()} {url}"
        assert response.json() == {"error": "unauthorized"}, f"{method.upper()} {url}"
        answered.append(method)

    assert answered, f"no method of {url} answered"


@pytest.mark.parametrize("url", sorted(_protected_routes()))
def test_api_route_rejects_a_bad_token(client, url):
    callback = _protected_routes()[url]
    for method in _allowed_methods(callback):
        response = getattr(client, method)(
            url,
            content_type="application/json",
            HTTP_AUTHORIZATION="Bearer bad.token.value",
        )
        if response.status_code == 405 and not hasattr(callback, "cls"):
            continue
        assert response.status_code == 401, f"{method.upper()} {url}"
        assert response.json() == {"error": "unauthorized"}, f"{method.upper()} {url}"
