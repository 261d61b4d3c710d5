"""A request's body, read within limits, and the JSON errors every route answers with.

``read_body`` refuses (413) a body as soon as its declared length or the bytes read pass
``max_body_bytes``, never reading it whole; ``parse_json`` turns bytes into JSON or a 400 that
names the problem. ``Refused`` carries a status and a message to ``error``, the one shape of
every error answer: ``{"status": "error", "error": "..."}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse


@dataclass
class Limits:
    wait_ms: float = 10.0
    batch_words: int = 2048
    queue_limit: int = 2048  # sentences waiting, all requests together
    max_sentences: int = 256  # per request
    timeout_s: float = 30.0
    max_body_bytes: int = 2 << 20  # a request's body
    max_input_chars: int = 16000  # a sentence's characters, checked before any text processing
    body_timeout_s: float = 10.0  # the whole body must arrive within this
    max_beam: int = 16  # the largest beam_size a request may ask for


class Refused(Exception):
    """A request answered with an error before it is translated."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"status": "error", "error": message}, status_code=status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as its declared length or the bytes read pass ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise Refused(413, f"the body is {declared} bytes; at most max_body_bytes={limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"the body is over max_body_bytes={limit}")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> object:
    """The body as JSON, or ``Refused`` (400) saying why not."""
    try:
        return json.loads(body)
    except RecursionError:
        raise Refused(400, "the body is not JSON we read (nested too deeply)") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise Refused(400, f"the body is not JSON ({e})") from None
