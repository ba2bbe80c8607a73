"""A stand-in for the Gemini embedding REST API, served by kuberca.testing.http.

google-genai 3.6.1 (Gemini Developer API mode) sends every
`client.models.embed_content(model=M, contents=[...], config=...)` as
`POST /{api_version}/models/M:batchEmbedContents` (api_version "v1" unless
GOOGLE_GENAI_API_VERSION says otherwise) with the key in `x-goog-api-key` and
`{"requests": [{"content": {"parts": [{"text": ...}], "role": "user"},
"outputDimensionality": N, "model": "models/M"}]}`; it reads
`{"embeddings": [{"values": [...]}]}`. `:embedContent` (one `content`) is
answered too. Vectors are a hashed bag of words, normalised, so texts sharing
words are close; `fail()` queues error statuses for the next calls.
"""

import hashlib
import math
import re
import threading
from collections import deque
from collections.abc import Callable

from kuberca.testing.http import LocalHTTPServer, RecordedRequest, Reply

_WORD = re.compile(r"[^\W_]+")
_PATH = re.compile(r"^/[^/]+/models/(?P<model>[^/:]+):(?P<method>\w+)$")


def fake_vector(text: str, dimensions: int) -> list[float]:
    """The vector FakeGemini returns for `text`: hashed words, unit length."""
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        slot = int.from_bytes(digest[:6], "big") % dimensions
        vector[slot] += 1.0 if digest[7] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if not norm:
        vector[0] = 1.0
        return vector
    return [v / norm for v in vector]


class FakeGemini:
    """Answers embedding calls like Gemini; `.calls` counts the ones answered."""

    def __init__(self, start_server: Callable[..., LocalHTTPServer]) -> None:
        self._lock = threading.Lock()
        self._failures: deque[int] = deque()
        self.fail_always: int | None = None
        self.calls = 0
        self.texts: list[str] = []
        self.server = start_server(self.respond)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.server.requests

    def fail(self, *statuses: int) -> None:
        """Answer the next calls with these statuses, one each, in order."""
        with self._lock:
            self._failures.extend(statuses)

    def respond(self, request: RecordedRequest) -> Reply:
        match = _PATH.match(request.path.split("?")[0])
        if request.method != "POST" or not match:
            return Reply(404, {"error": {"code": 404, "message": "not found"}})
        if not request.headers.get("x-goog-api-key"):
            return Reply(403, {"error": {"code": 403, "message": "no key"}})
        with self._lock:
            status = self._failures.popleft() if self._failures else self.fail_always
        if status:
            return Reply(
                status,
                {"error": {"code": status, "message": "injected", "status": "ERR"}},
            )

        body = request.json() or {}
        if match["method"] == "batchEmbedContents":
            items = body.get("requests") or []
        elif match["method"] == "embedContent":
            items = [body]
        else:
            return Reply(404, {"error": {"code": 404, "message": "no such method"}})
        embeddings = []
        texts = []
        for item in items:
            parts = (item.get("content") or {}).get("parts") or []
            text = " ".join(part.get("text", "") for part in parts)
            dimensions = int(item.get("outputDimensionality") or 3072)
            texts.append(text)
            embeddings.append({"values": fake_vector(text, dimensions)})
        with self._lock:
            self.calls += 1
            self.texts.extend(texts)
        if match["method"] == "embedContent":
            return Reply(200, {"embedding": embeddings[0]})
        return Reply(200, {"embeddings": embeddings})
