"""Rates such as `5/min`: read by settings at start-up and by the throttle.

Kept free of Django imports so that settings can validate the value and stop
start-up with a message naming the variable.
"""

from dataclasses import dataclass

from kuberca.env import parse_duration

_PERIOD_NAMES = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}


@dataclass(frozen=True)
class Rate:
    count: int  # 0 = no limit
    seconds: int


def parse_rate(text: str) -> Rate:
    """Read `5/min`, `20/10m`, `100/hour` or `10/30` (seconds); else ValueError.

    A bare `0` is the rate that turns a limit off, as `0/min` is.
    """
    if text.strip() == "0":
        return Rate(0, 60)
    count_text, slash, period = text.strip().partition("/")
    count_text, period = count_text.strip(), period.strip().lower()
    if not slash or not count_text.isdigit() or not period:
        raise ValueError(f"not a rate: {text!r}")
    seconds = _PERIOD_NAMES.get(period) or _PERIOD_NAMES.get(period.removesuffix("s"))
    if seconds is None:
        duration = parse_duration(period)
        if duration is None or duration.total_seconds() < 1:
            raise ValueError(f"not a rate: {text!r}")
        seconds = int(duration.total_seconds())
    return Rate(int(count_text), seconds)
