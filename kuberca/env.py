"""Typed readers for the environment variables that configure kuberca.

Settings call these at import time. A value that cannot be read raises
ConfigError naming the variable, which manage.py and wsgi turn into one line on
stderr and a non-zero exit instead of a traceback.
"""

import ipaddress
import os
import re
from datetime import timedelta
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ConfigError(ImproperlyConfigured):
    """A configuration variable has a value kuberca cannot use."""

    def __init__(self, name: str, value: str, expected: str) -> None:
        self.name = name
        super().__init__(f"{name}={value!r} is not valid: expected {expected}")


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    """A boolean variable; set but empty is unset, as for every other kind
    (an empty AUTH_COOKIE_SECURE must not turn the secure default off)."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(name, raw, "true or false (also 1/0, yes/no, on/off)")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(name, raw, "a whole number") from None
    if (minimum is not None and value < minimum) or (
        maximum is not None and value > maximum
    ):
        raise ConfigError(name, raw, "a whole number " + _range(minimum, maximum))
    return value


def _range(minimum: int | None, maximum: int | None) -> str:
    if maximum is None:
        return f"of at least {minimum}"
    if minimum is None:
        return f"of at most {maximum}"
    return f"from {minimum} to {maximum}"


def parse_duration(text: str) -> timedelta | None:
    """Read `15m`, `168h`, `7d`, `1h30m` or plain seconds; None when unreadable.

    A length beyond what timedelta holds (about 2.7 million years) is
    unreadable too, so a settings file gets a ConfigError, not a traceback.
    """
    compact = text.strip().lower().replace(" ", "")
    if not compact:
        return None
    seconds = 0.0
    position = 0
    for match in _DURATION_PART.finditer(compact):
        if match.start() != position:
            return None
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(compact):
        return None
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        return None


# What any duration setting (and any count of days) may be at most: a hundred
# years from now or ago is still a date, so no arithmetic on a setting can
# overflow.
DAYS_MAX = 36500
# The highest TCP port (PORT, `serve --port`).
PORT_MAX = 65535
# Every interface (IPv4, or both families), and IPv4 loopback: reached on this
# machine at 127.0.0.1, which a browser knows as localhost.
_LOCAL_HOSTS = {"", "0.0.0.0", "::", "127.0.0.1"}  # noqa: S104


def bare_host(host: str) -> str:
    """`host` without the brackets an IPv6 address may be written in."""
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


def bind_address(host: str, port: int) -> str:
    """`host:port` as gunicorn binds it, an IPv6 address in brackets
    (`::` takes IPv4 connections too, unless the system says otherwise)."""
    host = bare_host(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def url_host(host: str, *, local: str = "localhost") -> str:
    """How a URL on this machine names a server bound to `host`."""
    host = bare_host(host)
    if host in _LOCAL_HOSTS:
        return local
    return f"[{host}]" if ":" in host else host


DURATION_MAX = f"{DAYS_MAX}d"


def env_duration(
    name: str, default: str, *, minimum: str | None = None, maximum: str = DURATION_MAX
) -> timedelta:
    """Read a duration; `minimum` and `maximum`, written the same way, bound it.

    A bound keeps out a length that breaks something later rather than at
    start-up: an instant expiry, or a date so far off that arithmetic on it
    overflows at the first use.
    """
    raw = os.environ.get(name)
    value = parse_duration(raw if raw is not None and raw.strip() else default)
    low = parse_duration(minimum) if minimum else None
    high = parse_duration(maximum)
    if (
        value is None
        or (low is not None and value < low)
        or (high is not None and value > high)
    ):
        expected = "a duration such as 15m, 168h, 7d or 900"
        if minimum:
            expected += f", at least {minimum}"
        expected += f", at most {maximum}"
        raise ConfigError(name, raw or "", expected)
    return value


def env_list(name: str, default: str = "") -> list[str]:
    raw = os.environ.get(name)
    text = default if raw is None else raw
    return [item.strip() for item in text.split(",") if item.strip()]


def _is_http_url(value: str, *, origin: bool = False) -> bool:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    return not origin or not (parts.path or parts.query or parts.fragment)


def env_url(name: str, default: str = "") -> str:
    """Read an http(s) URL; empty (unset) stays empty."""
    value = env_str(name, default)
    if value and not _is_http_url(value):
        raise ConfigError(name, value, "an http:// or https:// URL")
    return value


def env_origins(name: str) -> list[str]:
    """Read a comma-separated list of origins such as https://rca.example.com."""
    items = env_list(name)
    for item in items:
        if not _is_http_url(item, origin=True):
            raise ConfigError(
                name, item, "comma-separated origins such as https://rca.example.com"
            )
    return items


def env_networks(name: str) -> list[str]:
    """Read a comma-separated list of IP addresses or CIDR networks."""
    items = env_list(name)
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(
                name, item, "comma-separated IP addresses or CIDR networks"
            ) from None
    return items


def env_choice(name: str, default: str, choices: set[str]) -> str:
    value = env_str(name, default).lower()
    if value not in choices:
        raise ConfigError(name, value, "one of " + ", ".join(sorted(choices)))
    return value


_LOCALE_MARKS = re.compile(r"[_.:@]")


def env_language(name: str, default: str, choices: set[str]) -> str:
    """A language code from `choices`, also read from a gettext-style value.

    LANGUAGE is GNU gettext's variable too, which desktops set to a list of
    locales such as `en_US:en` or `ko_KR.UTF-8`: from such a value the first
    language kuberca knows is taken, else `default`, since it was set for
    other programs. A plain value must be one of `choices`.
    """
    value = env_str(name, default).lower()
    if not _LOCALE_MARKS.search(value):
        return env_choice(name, default, choices)
    for locale in value.split(":"):
        language = _LOCALE_MARKS.split(locale.strip(), maxsplit=1)[0]
        if language in choices:
            return language
    return default
