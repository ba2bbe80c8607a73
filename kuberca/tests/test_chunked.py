"""Bodies sent chunked (no Content-Length) reach the views whole.

gunicorn passes a de-chunked body with no CONTENT_LENGTH, and Django alone
would read it as empty: a PUT answering success while changing nothing.
These go through `kuberca.wsgi.application` with the environ gunicorn hands
over; tests/reliability/test_chunked_live.py sends real chunked requests to a
live gunicorn.
"""

import hashlib
import hmac
import io
import json

import pytest
from gunicorn.http.errors import InvalidChunkSize, NoMoreData
from rest_framework_simplejwt.tokens import RefreshToken

from alerts.models import Alert, WebhookDelivery
from alerts.tests.webhook_helpers import make_alert, make_payload
from incidents.models import Incident
from incidents.tests.factories import IncidentFactory
from kuberca.testing import wsgi

pytestmark = pytest.mark.django_db


def bearer(user) -> str:  # noqa: ANN001
    return f"Bearer {RefreshToken.for_user(user).access_token}"


def test_a_chunked_put_changes_the_incident(user) -> None:  # noqa: ANN001
    incident = IncidentFactory(title="Old title")
    body = json.dumps({"title": "New title", "severity": "critical"}).encode()
    answer = wsgi.call(
        "PUT",
        f"/api/v1/incidents/{incident.pk}",
        body,
        **wsgi.chunked(HTTP_AUTHORIZATION=bearer(user)),
    )
    assert answer.status == 200, answer.body
    incident.refresh_from_db()
    assert (incident.title, incident.severity) == ("New title", "critical")


def test_a_chunked_login_is_checked_not_told_its_fields_are_missing(user) -> None:  # noqa: ANN001
    body = json.dumps({"id": "oncall", "password": "s3cret-pass!"}).encode()
    answer = wsgi.call("POST", "/api/v1/auth/login", body, **wsgi.chunked())
    assert answer.status == 200, answer.body
    assert json.loads(answer.body)["accessToken"]

    body = json.dumps({"id": "oncall", "password": "wrong-password"}).encode()
    answer = wsgi.call("POST", "/api/v1/auth/login", body, **wsgi.chunked())
    assert (answer.status, json.loads(answer.body)) == (401, {"error": "unauthorized"})


def test_a_chunked_body_over_the_upload_limit_is_413_and_changes_nothing(
    user,  # noqa: ANN001
    settings,  # noqa: ANN001
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    incident = IncidentFactory(title="Old title")
    body = json.dumps({"title": "x" * 2000}).encode()
    answer = wsgi.call(
        "PUT",
        f"/api/v1/incidents/{incident.pk}",
        body,
        **wsgi.chunked(HTTP_AUTHORIZATION=bearer(user)),
    )
    assert answer.status == 413
    assert answer.headers["Content-Type"] == "application/json"
    assert json.loads(answer.body)["error"] == "payload too large"
    assert Incident.objects.get(pk=incident.pk).title == "Old title"


def test_a_chunked_body_that_fits_is_read_to_its_last_byte(user, settings) -> None:  # noqa: ANN001
    # One byte under the limit: read ahead whole, nothing cut off.
    incident = IncidentFactory()
    prefix, suffix = b'{"analysis_summary": "', b'"}'
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    summary = b"s" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE - len(prefix + suffix))
    answer = wsgi.call(
        "PUT",
        f"/api/v1/incidents/{incident.pk}",
        prefix + summary + suffix,
        **wsgi.chunked(HTTP_AUTHORIZATION=bearer(user)),
    )
    assert answer.status == 200, answer.body
    assert Incident.objects.get(pk=incident.pk).analysis_summary == summary.decode()


@pytest.fixture
def signed_over_limit(settings) -> tuple[bytes, str]:  # noqa: ANN001
    """A webhook body over WEBHOOK_MAX_BYTES (1000 here) and its signature."""
    settings.WEBHOOK_MAX_BYTES = 1000
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1001
    settings.WEBHOOK_HMAC_SECRET = "s3cret"
    body = json.dumps(make_payload(make_alert(summary="y" * 2000))).encode()
    assert 1000 < len(body) < 4000  # over the limit, within what is read through
    return body, hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()


def test_a_chunked_webhook_over_its_limit_is_413_with_the_signature_over_all(
    signed_over_limit: tuple[bytes, str],
) -> None:
    # The view reads past what it keeps: a signature over the whole body
    # still matches, and the delivery is kept as too large.
    body, signature = signed_over_limit
    answer = wsgi.call(
        "POST",
        "/webhook/alertmanager",
        body,
        **wsgi.chunked(HTTP_X_WEBHOOK_SIGNATURE=f"sha256={signature}"),
    )
    assert answer.status == 413, answer.body
    # Its size is unknown: the sender declared none, nor is one made up.
    assert json.loads(answer.body)["detail"] == "body is over the limit of 1000 bytes"
    delivery = WebhookDelivery.objects.get()
    assert delivery.body_truncated and delivery.outcome == "rejected"
    assert "Content-Length" not in delivery.headers
    assert delivery.headers["Transfer-Encoding"] == "chunked"
    assert not Alert.objects.exists()

    wrong = wsgi.call(
        "POST",
        "/webhook/alertmanager",
        body[:-1] + b" ",
        **wsgi.chunked(HTTP_X_WEBHOOK_SIGNATURE=f"sha256={signature}"),
    )
    assert wrong.status == 401


class Endless:
    """A chunked stream that never ends; counts the bytes handed out."""

    def __init__(self) -> None:
        self.served = 0

    def read(self, size: int | None = -1) -> bytes:
        piece = b" " * (size if size and size > 0 else 8192)
        self.served += len(piece)
        return piece

    readline = read


def test_an_endless_signed_chunked_body_is_refused_once_past_four_times_the_limit(
    signed_over_limit: tuple[bytes, str],
) -> None:
    stream = Endless()
    answer = wsgi.call(
        "POST",
        "/webhook/alertmanager",
        **wsgi.chunked(
            HTTP_X_WEBHOOK_SIGNATURE="sha256=" + "0" * 64, **{"wsgi.input": stream}
        ),
    )
    assert answer.status == 413, answer.body
    assert json.loads(answer.body) == {
        "error": "payload too large",
        "detail": "body is over 4000 bytes, too large to check its signature",
    }
    # Reading stopped at the first piece past the cap (pieces are 256 KiB).
    assert 4000 < stream.served < 2**20
    assert not WebhookDelivery.objects.exists()


def test_a_request_with_a_content_length_is_left_as_it_is(user) -> None:  # noqa: ANN001
    incident = IncidentFactory(title="Old title")
    body = json.dumps({"title": "New title"}).encode()
    answer = wsgi.call(
        "PUT",
        f"/api/v1/incidents/{incident.pk}",
        body + b"trailing bytes past the declared length",
        CONTENT_LENGTH=str(len(body)),
        HTTP_AUTHORIZATION=bearer(user),
    )
    assert answer.status == 200, answer.body
    assert Incident.objects.get(pk=incident.pk).title == "New title"


class BrokenChunks:
    """gunicorn's de-chunked stream: `good` bytes, then a malformed chunk.

    With `cut`, the client stops sending (half-closes) before the last chunk.
    """

    def __init__(self, good: bytes, *, cut: bool = False) -> None:
        self._good = io.BytesIO(good)
        self._cut = cut

    def read(self, size: int | None = -1) -> bytes:
        piece = self._good.read(size)
        if piece:
            return piece
        raise NoMoreData() if self._cut else InvalidChunkSize(b"zz")

    def readline(self, size: int | None = -1) -> bytes:
        return self.read(size)


@pytest.mark.parametrize(
    ("method", "path", "error"),
    [
        ("POST", "/webhook/alertmanager", "invalid payload"),
        ("POST", "/api/v1/auth/login", "bad request"),
        ("PATCH", "/api/v1/incidents/INC-0000000000000000", "bad request"),
    ],
)
@pytest.mark.parametrize("cut", [False, True], ids=["bad-size", "cut-short"])
def test_a_chunked_body_with_broken_framing_is_a_json_400(
    method, path, error, cut
) -> None:  # noqa: ANN001
    broken = BrokenChunks(b'{"id": ', cut=cut)
    answer = wsgi.call(method, path, **wsgi.chunked(**{"wsgi.input": broken}))
    assert answer.status == 400, answer.body
    assert answer.headers["Content-Type"] == "application/json"
    body = json.loads(answer.body)
    assert body["error"] == error
    assert "chunk" in body["detail"]
    assert not WebhookDelivery.objects.exists()


@pytest.mark.parametrize("cut", [False, True], ids=["bad-size", "cut-short"])
def test_a_signed_webhook_over_its_limit_with_broken_framing_is_400_not_500(
    signed_over_limit: tuple[bytes, str],
    cut: bool,
) -> None:
    # The framing breaks past what is kept, while the view reads the rest to
    # check the signature.
    body, signature = signed_over_limit
    answer = wsgi.call(
        "POST",
        "/webhook/alertmanager",
        **wsgi.chunked(
            HTTP_X_WEBHOOK_SIGNATURE=f"sha256={signature}",
            **{"wsgi.input": BrokenChunks(body, cut=cut)},
        ),
    )
    assert answer.status == 400, answer.body
    assert json.loads(answer.body)["error"] == "invalid payload"
    assert not Alert.objects.exists()
    assert not WebhookDelivery.objects.exists()


def test_a_webhook_with_a_wrong_token_is_refused_before_its_body_is_read(
    settings,  # noqa: ANN001
) -> None:
    # The wrapper leaves the webhook's body to the view, which checks the
    # token first: reading a large unauthorised body would be wasted.
    settings.WEBHOOK_AUTH_TOKEN = "right-token"
    stream = BrokenChunks(b"x" * 1000)  # reading it to the end would raise
    answer = wsgi.call(
        "POST",
        "/webhook/alertmanager",
        **wsgi.chunked(**{"wsgi.input": stream}, HTTP_AUTHORIZATION="Bearer wrong"),
    )
    assert answer.status == 401
    assert stream.read(10) == b"x" * 10  # nothing read


@pytest.mark.parametrize("method", ["GET", "DELETE", "OPTIONS"])
def test_a_chunked_body_of_a_method_without_one_is_not_read(method: str) -> None:
    stream = BrokenChunks(b"x" * 1000)
    answer = wsgi.call(method, "/ping", **wsgi.chunked(**{"wsgi.input": stream}))
    assert answer.status != 400
    assert stream.read(10) == b"x" * 10
