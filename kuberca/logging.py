"""Log record plumbing: the request id on every record, and the formatters.

The request id lives in a context variable set by RequestIdMiddleware for web
requests and by tasks for the job they run, so one id follows a webhook from
its request into the worker's log lines.
"""

import contextvars
import json
import logging
import re
from datetime import UTC, datetime

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar(
    "request_id", default="-"
)


class RequestIdFilter(logging.Filter):
    """Put the current request id on every record as `request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_id_var.get()
        if request_id == "-":
            # Django logs 4xx/5xx responses ("Not Found: /x") after the
            # middleware chain has returned, but passes the request along.
            request = getattr(record, "request", None)
            request_id = getattr(request, "request_id", request_id)
        record.request_id = request_id
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id_var.get()),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


# Line breaks and the other control characters (the C0 set but tab, DEL, and
# Unicode's line and paragraph separators).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\u2028\u2029]")
_NAMED = {"\n": r"\n", "\r": r"\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def _escaped(text: str) -> str:
    return _CONTROL.sub(_escape, text)


class TextFormatter(logging.Formatter):
    """LOG_FORMAT=text: one line a record.

    A value a sender chose (a group key, a label, a receiver name) may hold a
    line break; written as it is, it would start a line that reads as a log
    record of its own. The message's control characters are escaped; a
    traceback still follows on lines of its own.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802
        message = record.message
        record.message = _escaped(message)
        try:
            return super().formatMessage(record)
        finally:
            record.message = message
