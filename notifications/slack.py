"""The Slack Web API as kuberca uses it: chat.postMessage and chat.update.

Built on slack-sdk's WebClient (SLACK_API_URL overrides its base URL). Every
failure becomes a SlackError that says whether trying again can help: rate
limits (429, with Retry-After), 5xx and network errors are transient and
retried by the delivery task with backoff; the rest (invalid_auth,
channel_not_found, …) are permanent. The client itself never retries, so one
call is one attempt and the outbox row records each.
"""

import http.client
import logging
import re
import urllib.error
from typing import Any, NotRequired, TypedDict

from django.conf import settings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://slack.com/api/"

# Error codes Slack answers with that mean "try again later".
TRANSIENT_ERRORS = {
    "ratelimited",
    "rate_limited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "team_added_to_org",
}


_ERROR_CODE = re.compile(r"^[a-z0-9_.]{1,64}$")


class Attachment(TypedDict):
    color: str
    fallback: str
    blocks: list[dict[str, Any]]


class SlackPayload(TypedDict):
    text: str
    attachments: list[Attachment]
    thread_ts: NotRequired[str]


class SlackError(Exception):
    """A Slack call failed; `transient` says whether a retry can help."""

    def __init__(
        self, code: str, *, transient: bool, retry_after: float | None = None
    ) -> None:
        self.code = code
        self.transient = transient
        self.retry_after = retry_after
        super().__init__(code)


def _retry_after(headers: Any) -> float | None:
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            if isinstance(value, list):
                value = value[0] if value else ""
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


def _error_from_api(exc: SlackApiError) -> SlackError:
    response = exc.response
    status = getattr(response, "status_code", 200)
    data = getattr(response, "data", None)
    code = data.get("error", "") if isinstance(data, dict) else ""
    if not isinstance(code, str) or not _ERROR_CODE.match(code):
        code = ""  # e.g. slack-sdk's words for a body that is not JSON
    if status == 429:
        return SlackError(
            code or "ratelimited",
            transient=True,
            retry_after=_retry_after(getattr(response, "headers", {})),
        )
    if status >= 500:
        return SlackError(code or f"http_{status}", transient=True)
    if code in TRANSIENT_ERRORS:
        return SlackError(code, transient=True)
    return SlackError(code or f"http_{status}", transient=False)


class SlackClient:
    """Post and edit messages in one channel."""

    def __init__(
        self,
        *,
        token: str,
        channel: str,
        base_url: str = "",
        timeout: int = 10,
    ) -> None:
        self.channel = channel
        self._web = WebClient(
            token=token,
            base_url=base_url or DEFAULT_API_URL,
            timeout=timeout,
            retry_handlers=[],
        )

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._web.api_call(method, json=kwargs)
        except SlackApiError as exc:
            raise _error_from_api(exc) from None
        except (
            urllib.error.URLError,
            http.client.HTTPException,
            ConnectionError,
            TimeoutError,
        ) as exc:
            raise SlackError(f"network: {type(exc).__name__}", transient=True) from None
        except SlackClientError as exc:
            # e.g. a body that is not JSON (a proxy's error page)
            raise SlackError(f"client: {type(exc).__name__}", transient=True) from None
        data = response.data if isinstance(response.data, dict) else {}
        return data

    def post_message(
        self, payload: SlackPayload, *, channel: str = "", thread_ts: str = ""
    ) -> tuple[str, str]:
        """Post; return (ts, channel id) as Slack answered them."""
        channel = channel or self.channel
        body: dict[str, Any] = {
            "channel": channel,
            "text": payload["text"],
            "attachments": payload["attachments"],
            "unfurl_links": False,
            "unfurl_media": False,
        }
        if thread_ts:
            body["thread_ts"] = thread_ts
        data = self._call("chat.postMessage", **body)
        ts = str(data.get("ts") or "")
        if not ts:
            raise SlackError("no ts in response", transient=True)
        return ts, str(data.get("channel") or channel)

    def update_message(self, payload: SlackPayload, *, channel: str, ts: str) -> None:
        self._call(
            "chat.update",
            channel=channel,
            ts=ts,
            text=payload["text"],
            attachments=payload["attachments"],
        )


def slack_client() -> SlackClient:
    """The client for the configured workspace and channel."""
    return SlackClient(
        token=settings.SLACK_BOT_TOKEN,
        channel=settings.SLACK_CHANNEL_ID,
        base_url=settings.SLACK_API_URL,
        timeout=settings.SLACK_TIMEOUT_SECONDS,
    )
