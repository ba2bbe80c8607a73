"""The Slack Web API as kuberca uses it: chat.postMessage and chat.update, and
conversations.history/replies to find a post whose answer was lost.

Built on slack-sdk's WebClient (SLACK_API_URL overrides its base URL). Every
failure becomes a SlackError that says whether trying again can help: rate
limits (429, with Retry-After), 5xx, network errors and answers that are not
Slack's JSON are transient and retried by the delivery task with backoff; the
rest (invalid_auth, channel_not_found, …) are permanent. It also says whether
Slack may have acted on the call anyway (a timeout, a dropped connection, a
5xx, an answer it cannot read). The client itself never retries, so one call
is one attempt and the outbox row records each.

Each post carries message metadata (`kuberca_message`, with the outbox row's
ids), which is how a later attempt recognises a post of its own in the channel.
"""

import http.client
import logging
import re
import urllib.error
from collections.abc import Callable
from typing import Any, NotRequired, TypedDict

from django.conf import settings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

from kuberca.deadline import call_within

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
# What Slack's message timestamps and channel ids look like; anything else
# in an answer (which would not fit the outbox's columns) is not Slack's.
_TS = re.compile(r"^[0-9]{1,20}\.[0-9]{1,20}$")
_CHANNEL_ID = re.compile(r"^[A-Z0-9]{1,64}$")


class Attachment(TypedDict):
    color: str
    fallback: str
    blocks: list[dict[str, Any]]


class SlackPayload(TypedDict):
    text: str
    attachments: list[Attachment]
    thread_ts: NotRequired[str]


# The metadata event type of kuberca's posts.
METADATA_EVENT = "kuberca_message"
# conversations.history/replies pages read when looking for an earlier post.
LOOKUP_PAGE_SIZE = 200
LOOKUP_PAGES = 5


class SlackError(Exception):
    """A Slack call failed; `transient` says whether a retry can help.

    `maybe_done` says that Slack may have carried the call out all the same:
    the answer was lost (network error, timeout), unreadable or a 5xx.
    """

    def __init__(
        self,
        code: str,
        *,
        transient: bool,
        retry_after: float | None = None,
        maybe_done: bool = False,
    ) -> None:
        self.code = code
        self.transient = transient
        self.retry_after = retry_after
        self.maybe_done = maybe_done
        super().__init__(code)


def _unreadable(what: str) -> SlackError:
    """An answer that is not Slack's: transient, and Slack may have acted."""
    return SlackError(f"unreadable answer: {what}", transient=True, maybe_done=True)


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
    if status >= 500 or status == 408:  # 408: a proxy gave up waiting
        return SlackError(code or f"http_{status}", transient=True, maybe_done=True)
    if code in TRANSIENT_ERRORS:
        return SlackError(code, transient=True)
    if not code and status < 400:
        # Slack answers every call with JSON naming its error; a success
        # status without one (a proxy's page) says nothing about the post.
        return _unreadable("not Slack's JSON")
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

    def _within(self, call: Callable[[], SlackResponse]) -> SlackResponse:
        """Run `call`, giving up once the timeout has passed in all: an
        answer trickled in would otherwise hold the thread's lease
        (SLACK_LEASE, longer than the timeout) for as long as it liked."""
        return call_within(call, self._web.timeout, name="slack-call")

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        return self._answer(lambda: self._web.api_call(method, json=kwargs))

    def _answer(self, call: Callable[[], SlackResponse]) -> dict[str, Any]:
        try:
            response = self._within(call)
        except SlackApiError as exc:
            raise _error_from_api(exc) from None
        except (
            urllib.error.URLError,
            http.client.HTTPException,
            ConnectionError,
            TimeoutError,
        ) as exc:
            raise SlackError(
                f"network: {type(exc).__name__}", transient=True, maybe_done=True
            ) from None
        except SlackClientError as exc:
            raise SlackError(
                f"client: {type(exc).__name__}", transient=True, maybe_done=True
            ) from None
        except (ValueError, LookupError, RecursionError, AttributeError) as exc:
            # slack-sdk failing to read an answer: bytes not in its charset, an
            # unknown charset, JSON nested too deeply or not an object. Raised
            # from here they would leave the message claimed and untimed, so
            # recovery would post it again every minute, for ever.
            raise _unreadable(type(exc).__name__) from None
        if not isinstance(response.data, dict):  # bytes: a gzip body, say
            raise _unreadable("not Slack's JSON")
        return response.data

    def post_message(
        self,
        payload: SlackPayload,
        *,
        channel: str = "",
        thread_ts: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> tuple[str, str]:
        """Post; return (ts, channel id) as Slack answered them.

        `metadata` goes with the post as its `kuberca_message` event payload.
        """
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
        if metadata:
            body["metadata"] = {"event_type": METADATA_EVENT, "event_payload": metadata}
        data = self._call("chat.postMessage", **body)
        ts = data.get("ts")
        if not (isinstance(ts, str) and _TS.match(ts)):
            # Slack took the message (ok) but gave nothing to thread on;
            # posting it again would only post it again.
            raise SlackError("no ts in response", transient=False)
        answered = data.get("channel")
        if isinstance(answered, str) and _CHANNEL_ID.match(answered):
            channel = answered
        return ts, channel

    def find_post(
        self, *, channel: str, thread_ts: str, oldest: float, match: dict[str, Any]
    ) -> tuple[str, dict[str, Any]] | None:
        """A post of ours since `oldest` whose metadata holds `match`.

        Reads the thread of `thread_ts` (or the channel's top level without
        it), at most LOOKUP_PAGES pages. Returns (ts, the metadata's event
        payload), or None; raises a permanent SlackError when the pages ran
        out before `oldest`.
        """
        cursor = ""
        for _ in range(LOOKUP_PAGES):
            arguments: dict[str, Any] = {
                "channel": channel or self.channel,
                "oldest": f"{oldest:.6f}",
                "include_all_metadata": True,
                "limit": LOOKUP_PAGE_SIZE,
            }
            if cursor:
                arguments["cursor"] = cursor
            if thread_ts:
                data = self._answer(
                    lambda a=arguments: self._web.conversations_replies(
                        ts=thread_ts, **a
                    )
                )
            else:
                data = self._answer(
                    lambda a=arguments: self._web.conversations_history(**a)
                )
            messages = data.get("messages") or []
            if not isinstance(messages, list):
                raise _unreadable("not Slack's JSON")
            for message in messages:
                found = _ours(message, match)
                if found is not None:
                    return found
            next_page = data.get("response_metadata") or {}
            cursor = next_page.get("next_cursor") if isinstance(next_page, dict) else ""
            if not cursor or not data.get("has_more", True):
                return None
        # More messages since `oldest` than the pages read: the post may be
        # among those left unread.
        raise SlackError(f"lookup read {LOOKUP_PAGES} pages", transient=False)

    def update_message(self, payload: SlackPayload, *, channel: str, ts: str) -> None:
        self._call(
            "chat.update",
            channel=channel,
            ts=ts,
            text=payload["text"],
            attachments=payload["attachments"],
        )


def _ours(message: Any, match: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    if not isinstance(message, dict):
        return None
    metadata = message.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("event_type") != METADATA_EVENT:
        return None
    payload = metadata.get("event_payload")
    ts = message.get("ts")
    if not isinstance(payload, dict) or not (isinstance(ts, str) and _TS.match(ts)):
        return None
    if any(payload.get(key) != value for key, value in match.items()):
        return None
    return ts, payload


def slack_client() -> SlackClient:
    """The client for the configured workspace and channel."""
    return SlackClient(
        token=settings.SLACK_BOT_TOKEN,
        channel=settings.SLACK_CHANNEL_ID,
        base_url=settings.SLACK_API_URL,
        timeout=settings.SLACK_TIMEOUT_SECONDS,
    )
