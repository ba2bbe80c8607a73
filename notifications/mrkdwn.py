"""Markdown (from the Agent) to Slack mrkdwn, escaping, and cutting to Slack's limits.

Slack reads `&`, `<` and `>` as control characters everywhere, so every text
from outside is escaped first (an analysis quoting `<!channel>` must not ping
anyone); then Markdown emphasis, headings, links and lists become mrkdwn.
Code spans and fenced blocks keep their content as written; a `~~~` fence,
which Slack does not know, is shown with backticks.
"""

import re

FENCE = "```"
_FENCE_LINE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(?=\S)")
_BOLD_ITALIC = re.compile(r"(\*\*\*|___)(?=\S)(.+?)(?<=\S)\1")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_HR = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
# Marks standing for Slack bold while italics are converted (never in text).
_B_OPEN, _B_CLOSE = "\x00B\x01", "\x00b\x01"
_SPAN = "\x00S{}\x01"


def escape(text: str) -> str:
    """Escape Slack's control characters; the text then shows as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _inline(line: str, *, bold: str = "*") -> str:
    """Convert one line's emphasis, strikes and links; code spans stay as written.

    `bold` replaces Markdown's bold marks: "" in a heading, which is bold as a
    whole, where any asterisk outside code would end the bold early.
    """
    spans: list[str] = []

    def keep(match: re.Match[str]) -> str:
        spans.append(match.group(0))
        return _SPAN.format(len(spans) - 1)

    line = _CODE_SPAN.sub(keep, line)
    line = _BOLD_ITALIC.sub(lambda m: f"{_B_OPEN}_{m.group(2)}_{_B_CLOSE}", line)
    line = _BOLD.sub(lambda m: _B_OPEN + m.group(2) + _B_CLOSE, line)
    line = _ITALIC.sub(r"_\1_", line)
    line = _STRIKE.sub(r"~\1~", line)
    line = _LINK.sub(r"<\2|\1>", line)
    line = line.replace(_B_OPEN, bold).replace(_B_CLOSE, bold)
    if not bold:
        line = line.replace("*", "")
    for index, span in enumerate(spans):
        line = line.replace(_SPAN.format(index), span)
    return line


def markdown_to_mrkdwn(markdown: str) -> str:
    """Convert Markdown to Slack mrkdwn (escaped); code is left as written."""
    out: list[str] = []
    fence = ""  # the marker of the fence we are in
    for raw in escape(markdown.replace("\r\n", "\n")).split("\n"):
        marker = _FENCE_LINE.match(raw)
        if marker and marker.group(1) == (fence or marker.group(1)):
            fence = "" if fence else marker.group(1)
            out.append(FENCE + raw.strip()[len(FENCE) :].lstrip("~"))
            continue
        if fence:
            out.append(raw)
            continue
        heading = _HEADING.match(raw)
        if heading:
            text = _inline(heading.group(1), bold="").strip()
            out.append(f"*{text}*")
            continue
        if _HR.match(raw):
            out.append("―――")
            continue
        bullet = _BULLET.match(raw)
        if bullet:
            raw = bullet.group(1) + "• " + raw[bullet.end() :]
        out.append(_inline(raw))
    return "\n".join(out)


def cut(text: str, limit: int, tail: str = "…") -> str:
    """`text` if it fits in `limit` characters, else its start and `tail`."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(tail))].rstrip() + tail


def _opens_or_closes_fence(line: str) -> bool:
    """Whether a converted mrkdwn line is a code fence's (markdown_to_mrkdwn
    writes every fence at the start of its line)."""
    return line.startswith(FENCE)


def ends_in_fence(text: str) -> bool:
    """Whether mrkdwn `text` ends inside a code fence."""
    fences = sum(_opens_or_closes_fence(line) for line in text.split("\n"))
    return fences % 2 == 1


def split_chunks(text: str, limit: int) -> list[str]:
    """Split mrkdwn into pieces of at most `limit` characters, at line ends.

    A piece that ends inside a code fence is closed and the next reopens it,
    so each piece renders alone. A line longer than `limit` is cut in pieces.
    """
    room = limit - len(FENCE) - 1  # space kept for closing a fence
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    in_fence = False

    def flush() -> None:
        nonlocal current, size
        if current:
            body = "\n".join(current)
            chunks.append(body + ("\n" + FENCE if in_fence else ""))
        current = [FENCE] if in_fence else []
        size = len(FENCE) + 1 if in_fence else 0

    for line in text.split("\n"):
        while len(line) > room:
            head_room = max(1, room - size - 1)
            if size and head_room < room // 4:
                flush()
                continue
            current.append(line[:head_room])
            size += head_room + 1
            line = line[head_room:]
            flush()
        if size + len(line) + 1 > room and current:
            flush()
        current.append(line)
        size += len(line) + 1
        if _opens_or_closes_fence(line):
            in_fence = not in_fence
    if current and any(part.strip() for part in current):
        chunks.append("\n".join(current) + ("\n" + FENCE if in_fence else ""))
    return chunks or [""]
