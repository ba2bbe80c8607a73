import io
import json
import logging
from logging.config import dictConfig

import pytest
from django.db import transaction
from django_tasks import task
from django_tasks_db.models import DBTaskResult

from kuberca import tasking
from kuberca.logging import JsonFormatter, RequestIdFilter, request_id_var

pytestmark = pytest.mark.django_db

task_logger = logging.getLogger("kuberca.tests.task")


@task()
@tasking.with_request_id
def log_something(value: int) -> str:
    task_logger.warning("task ran value=%s", value)
    return request_id_var.get()


@pytest.fixture
def json_lines(settings):
    """Configure logging as LOG_FORMAT=json does, into a buffer; yield a reader."""
    stream = io.StringIO()
    config = {**settings.LOGGING}
    config["formatters"] = {"json": {"()": "kuberca.logging.JsonFormatter"}}
    config["handlers"] = {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id"],
            "stream": stream,
        }
    }
    config["root"] = {"handlers": ["console"], "level": "INFO"}
    dictConfig(config)

    def read() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield read
    dictConfig(settings.LOGGING)


def test_json_formatter_writes_one_object_with_the_fields():
    record = logging.LogRecord(
        "kuberca.x", logging.WARNING, __file__, 1, "a b=%s", ("c",), None
    )
    token = request_id_var.set("req-1")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)

    line = JsonFormatter().format(record)

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "kuberca.x"
    assert entry["message"] == "a b=c"
    assert entry["request_id"] == "req-1"
    assert entry["time"].endswith("+00:00")


def test_json_formatter_keeps_a_traceback_on_one_line():
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = logging.LogRecord(
            "k", logging.ERROR, __file__, 1, "failed", (), exc_info=True
        )
        import sys

        record.exc_info = sys.exc_info()

    line = JsonFormatter().format(record)

    assert "\n" not in line
    assert "ValueError" in json.loads(line)["exception"]


def test_settings_pick_the_json_formatter_for_log_format_json(monkeypatch):
    import importlib

    from kuberca import settings as settings_module

    monkeypatch.setenv("LOG_FORMAT", "json")
    try:
        reloaded = importlib.reload(settings_module)
        assert reloaded.LOGGING["handlers"]["console"]["formatter"] == "json"
    finally:
        monkeypatch.delenv("LOG_FORMAT")
        importlib.reload(settings_module)


def test_request_log_lines_carry_the_incoming_request_id(client, json_lines):
    response = client.get("/no/such/page", HTTP_X_REQUEST_ID="abc-123")

    assert response["X-Request-ID"] == "abc-123"
    entries = [e for e in json_lines() if e["logger"].startswith("django")]
    assert entries
    assert all(e["request_id"] == "abc-123" for e in entries), entries


def test_request_id_is_generated_when_missing_or_unsafe(client):
    generated = client.get("/ping")["X-Request-ID"]
    unsafe = client.get("/ping", HTTP_X_REQUEST_ID="bad id\n")["X-Request-ID"]

    assert len(generated) == 32
    assert unsafe != "bad id\n"
    assert len(unsafe) == 32


def test_enqueue_on_commit_carries_the_request_id_into_the_task_log_line(
    json_lines, django_capture_on_commit_callbacks
):
    token = request_id_var.set("req-from-webhook")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            with transaction.atomic():
                tasking.enqueue_on_commit(log_something, 7)
                assert not DBTaskResult.objects.exists()  # not before commit
    finally:
        request_id_var.reset(token)
    stored = DBTaskResult.objects.get()
    assert stored.args_kwargs == {
        "args": [7],
        "kwargs": {"request_id": "req-from-webhook"},
    }

    # What the worker does with the row: call the task with its arguments.
    returned = log_something.call(*stored.task_result.args, **stored.task_result.kwargs)

    assert returned == "req-from-webhook"
    line = next(e for e in json_lines() if e["message"] == "task ran value=7")
    assert line["request_id"] == "req-from-webhook"
    assert request_id_var.get() == "-"  # reset after the task body


def test_task_called_without_request_id_gets_a_fresh_one(json_lines):
    first = log_something.call(1)
    second = log_something.call(2)

    assert first.startswith("task-")
    assert first != second
    lines = [e for e in json_lines() if e["message"].startswith("task ran")]
    assert [e["request_id"] for e in lines] == [first, second]


def test_enqueue_inside_a_task_passes_the_task_request_id_on():
    with tasking.request_id_context("req-9"):
        result = tasking.enqueue(log_something, 3)

    assert DBTaskResult.objects.get(pk=result.id).args_kwargs["kwargs"] == {
        "request_id": "req-9"
    }


def test_explicit_request_id_kwarg_wins_over_the_current_one():
    with tasking.request_id_context("req-outer"):
        result = tasking.enqueue(log_something, 3, request_id="req-given")

    kwargs = DBTaskResult.objects.get(pk=result.id).args_kwargs["kwargs"]
    assert kwargs == {"request_id": "req-given"}


def test_text_format_keeps_a_sender_chosen_line_break_on_its_record(
    settings,  # noqa: ANN001
    client,  # noqa: ANN001
) -> None:
    stream = io.StringIO()
    config = {**settings.LOGGING}
    config["handlers"] = {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "text",
            "filters": ["request_id"],
            "stream": stream,
        }
    }
    dictConfig(config)
    forged = (
        "g\n2026-12-04 10:00:00,000 ERROR kuberca.auth admin logged in\u2028x\x1b[31m"
    )
    try:
        response = client.post(
            "/webhook/alertmanager",
            data=json.dumps({"groupKey": forged, "truncatedAlerts": 2, "alerts": []}),
            content_type="application/json",
        )
    finally:
        dictConfig(settings.LOGGING)

    assert response.status_code == 200
    (line,) = [
        line for line in stream.getvalue().splitlines() if "group truncated" in line
    ]
    assert (
        r"group_key=g\n2026-12-04 10:00:00,000 ERROR kuberca.auth admin logged in"
        r"\u2028x\x1b[31m" in line
    )
    assert "\x1b" not in stream.getvalue()
    assert not any(
        line.startswith("2026-12-04 10:00:00,000")
        for line in stream.getvalue().splitlines()
    )


def test_text_format_leaves_a_traceback_on_lines_of_its_own() -> None:
    from kuberca.logging import TextFormatter

    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "k", logging.ERROR, __file__, 1, "failed\nhere", (), sys.exc_info()
        )

    text = TextFormatter("%(levelname)s %(message)s").format(record)

    assert text.splitlines()[0] == r"ERROR failed\nhere"
    assert text.splitlines()[1] == "Traceback (most recent call last):"
    assert record.getMessage() == "failed\nhere"
