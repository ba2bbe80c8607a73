"""RFC 3339 timestamps as the API writes and reads them.

Every time in an API body is UTC at second precision with a `Z` suffix
(`2026-01-02T03:04:05Z`), whatever the database holds. Query parameters
accept any RFC 3339 date-time; one without an offset is taken as UTC.
"""

import re
from datetime import UTC, datetime

# RFC 3339's date-time (a space for the T, as its note allows), its seconds
# and offset optional, as some senders leave them out; the API's parameters
# and alerts' times both check their text with it first. fromisoformat alone
# also reads ISO 8601 forms RFC 3339 has not (week dates, the basic format,
# `,5` fractions, `+01` and `+0100` offsets), skips a stray character before
# the offset, a NUL too, and takes an offset's minutes past 59.
DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:[0-5]\d)?",
    re.ASCII,
)


def rfc3339(value: datetime | None) -> str | None:
    """Format an aware datetime as `YYYY-MM-DDTHH:MM:SSZ`; None stays None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    # Not strftime: its %Y writes the year 999 as "999", not RFC 3339's "0999".
    utc = value.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(sep="T", timespec="seconds") + "Z"


def read_date_time(text: str) -> datetime:
    """The datetime an RFC 3339 date-time (DATE_TIME) writes: aware with its
    offset, naive without one. Raises ValueError for any other text."""
    if not DATE_TIME.fullmatch(text):
        raise ValueError("expected an RFC 3339 date-time")
    if text[-1] in "zZ":  # fromisoformat does not take a lower-case z
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


class DateTimeOutOfRange(ValueError):
    """An RFC 3339 date-time that is before year 1 or after 9999 in UTC."""


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 date-time into an aware UTC datetime.

    Raises ValueError for anything else (dates alone, free text), and its
    DateTimeOutOfRange for one outside datetime's years once in UTC.
    """
    text = text.strip()
    if text.startswith("0000") and DATE_TIME.fullmatch(text):
        return _year_zero_in_utc(text)
    value = read_date_time(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise DateTimeOutOfRange("date-time out of range") from None


def _year_zero_in_utc(text: str) -> datetime:
    """A date-time of RFC 3339's year 0000, which datetime cannot hold: year 1
    in UTC only when its offset is west of UTC and takes it past new year.

    Read as the year 2000, whose calendar is the same (both leap years).
    """
    value = read_date_time("2000" + text[4:])
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    if value.year != 2001:  # still year 0000, or year -1 east of UTC
        raise DateTimeOutOfRange("date-time out of range")
    return value.replace(year=1)
