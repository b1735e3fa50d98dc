"""Reading untrusted XML callbacks: size first, then declarations, then the parser.

WeChat's callbacks are tiny (a text message is at most a few kilobytes, even
encrypted), so anything larger is refused before it is held in memory.  No
legitimate callback carries a DOCTYPE or an entity declaration; refusing them
outright closes XXE and "billion laughs" regardless of what the parser would do
with them (xmltodict already disables entities — this is the second lock).
"""
from __future__ import annotations

import re
from typing import Any, Optional

import xmltodict
from sanic.request import Request

#: Largest callback body accepted, in bytes (an encrypted 2 KB text is ~3.5 KB).
MAX_BODY_BYTES = 64 * 1024

_DECLARATION_RE = re.compile(rb"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST)", re.IGNORECASE)


class BodyTooLarge(Exception):
    """The request body exceeds the cap (answer 413)."""


class BadXml(Exception):
    """The body is not a well-formed, declaration-free <xml> document (answer 400)."""


async def read_capped_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body of a streaming route, refusing it as soon as it passes `limit`.

    The Content-Length header is checked first, so an honest oversized request
    is refused without reading it; a lying or chunked one is cut off at the cap.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BodyTooLarge(f"declared body of {declared} bytes")
        except ValueError:
            raise BadXml("invalid Content-Length") from None
    if request.body or request.stream is None:  # non-streaming route: Sanic already read it
        body = request.body or b""
        if len(body) > limit:
            raise BodyTooLarge(f"body of {len(body)} bytes")
        return body
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk: Optional[bytes] = await request.stream.read()
        if chunk is None:
            break
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_xml(data: bytes | str) -> dict[str, Any]:
    """The children of the root ``<xml>`` element as a dict, or `BadXml`."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if _DECLARATION_RE.search(raw):
        raise BadXml("DOCTYPE or entity declaration")
    try:
        document = xmltodict.parse(raw, disable_entities=True)
    except Exception as exc:  # expat errors, encoding errors, ...
        raise BadXml(f"malformed XML: {type(exc).__name__}") from None
    root = document.get("xml") if isinstance(document, dict) else None
    if not isinstance(root, dict):
        raise BadXml("root element is not <xml> with children")
    return root
