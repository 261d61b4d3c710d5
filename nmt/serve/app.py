"""The HTTP routes of nmt-serve, OpenNMT-py's, so that existing clients work unchanged:

    POST /translator/translate   [{"id": 100, "src": "Where is the station?"}, ...]
         -> [[{"src": ..., "tgt": ..., "n_best": 1, "pred_score": -1.23}, ...]]   (one list per n-best rank)
    GET  /translator/models      the models served, with their checkpoints and search
    GET  /translator/health      {"status": "ok"}

``id`` names the model (as in OpenNMT-py; default: the first model). Every request is checked
before it joins a batch, so a bad one is answered alone and never disturbs the others. Every
error is JSON, ``{"status": "error", "error": "..."}``, with its status: malformed JSON, fields
or nesting 400, an unknown model or route 404, a wrong method 405, a body that does not arrive
within ``body_timeout_s`` 408, a body over ``max_body_bytes`` 413 (refused as soon as the
declared length or the bytes read pass it, never read whole), too many sentences 413, a sentence
too long 400, a full queue 503 (with Retry-After), a request that waited longer than
``timeout_s`` 504, a translation that failed 500.

The event loop only moves bytes: parsing the JSON and checking each sentence (text processing
such as Moses, SentencePiece) run on a thread of their own, translations on another, so
``/translator/health`` answers while a large request is checked or translated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from nmt import NmtError
from nmt.serve.batcher import Batcher, QueueFull
from nmt.translator import Translator

log = logging.getLogger(__name__)


@dataclass
class Served:
    """One model behind the server."""

    model_id: int
    checkpoints: list[str]
    translator: Translator


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


class Refused(Exception):
    """A request answered with an error before it is translated."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"status": "error", "error": message}, status_code=status, headers=headers)


def create_app(models: list[Served], limits: Limits) -> Starlette:
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nmt-translate")
    checker = ThreadPoolExecutor(max_workers=2, thread_name_prefix="nmt-check")
    batchers = {
        m.model_id: Batcher(m.translator, executor, limits.wait_ms, limits.batch_words, limits.queue_limit)
        for m in models
    }
    by_id = {m.model_id: m for m in models}
    default_id = models[0].model_id

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):  # noqa: ANN202
        tasks = [asyncio.create_task(b.run()) for b in batchers.values()]
        log.info("serving model(s) %s", ", ".join(str(i) for i in by_id))
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            checker.shutdown(wait=True)
            executor.shutdown(wait=True)

    async def translate(request: Request) -> JSONResponse:
        try:
            body = await asyncio.wait_for(read_body(request, limits.max_body_bytes), limits.body_timeout_s)
            loop = asyncio.get_running_loop()
            payload, groups = await loop.run_in_executor(
                checker, check_request, body, by_id, default_id, limits
            )
        except Refused as e:
            return error(e.status, e.message)
        except asyncio.TimeoutError:
            return error(
                408, f"the request body did not arrive within body_timeout_s={limits.body_timeout_s:g} s"
            )
        except ClientDisconnect:
            return error(400, "the client closed the connection before sending the whole body")
        try:
            answers = await asyncio.wait_for(
                asyncio.gather(
                    *(batchers[m].translate([payload[i]["src"] for i in rows]) for m, rows in groups.items())
                ),
                timeout=limits.timeout_s,
            )
        except QueueFull:
            return error(503, "the queue is full: try again shortly", headers={"Retry-After": "1"})
        except asyncio.TimeoutError:
            return error(504, f"not translated within timeout_s={limits.timeout_s:g} s")
        except Exception as e:  # noqa: BLE001 - logged by the batcher; the client gets JSON
            return error(
                500, f"the translation failed ({type(e).__name__}); the server's log has the details"
            )
        results: list = [None] * len(payload)
        for (_, rows), got in zip(groups.items(), answers):
            for i, t in zip(rows, got):
                results[i] = t
        n_best = max(by_id[m].translator.cfg.nbest for m in groups)
        out: list[list[dict]] = [[] for _ in range(n_best)]
        for item, t in zip(payload, results):
            for k in range(n_best):
                text, score = (
                    (t.nbest[k][0], t.nbest[k][1])
                    if k < len(t.nbest)
                    else ((t.text, t.score) if k == 0 else ("", None))
                )
                out[k].append({"src": item["src"], "tgt": text, "n_best": n_best, "pred_score": score})
        return JSONResponse(out)

    async def list_models(request: Request) -> JSONResponse:
        return JSONResponse(
            [
                {
                    "model_id": m.model_id,
                    "checkpoints": m.checkpoints,
                    "loaded": True,
                    "search": {k: getattr(v, "value", v) for k, v in vars(m.translator.cfg).items()},
                    "batches": batchers[m.model_id].batches,
                    "sentences": batchers[m.model_id].sentences,
                }
                for m in models
            ]
        )

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return error(exc.status_code, exc.detail, headers=exc.headers)

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return error(500, f"internal error ({type(exc).__name__}); the server's log has the details")

    routes = [
        Route("/translator/translate", translate, methods=["POST"]),
        Route("/translator/models", list_models, methods=["GET"]),
        Route("/translator/health", health, methods=["GET"]),
    ]
    handlers = {HTTPException: http_error, Exception: server_error}
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)


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


def check_request(
    body: bytes, models: dict[int, Served], default_id: int, limits: Limits
) -> tuple[list[dict], dict[int, list[int]]]:
    """Parse and check a request (off the event loop): its items and their rows per model, or
    ``Refused`` naming the first problem. Each sentence runs through its model's text processing
    and SentencePiece here, alone, so that a bad one never gets into a batch."""
    try:
        payload = json.loads(body)
    except RecursionError:
        raise Refused(400, "the body is not JSON we read (nested too deeply)") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise Refused(400, f"the body is not JSON ({e})") from None
    check_payload(payload, models, default_id, limits)
    groups: dict[int, list[int]] = {}
    for i, item in enumerate(payload):
        groups.setdefault(item.get("id", default_id), []).append(i)
    for model_id, rows in groups.items():
        translator = models[model_id].translator
        for i in rows:
            try:
                translator.encode([translator.prepare([payload[i]["src"]])[0].text], "item", i)
            except NmtError as e:
                raise Refused(400, str(e).replace("item:", "item ", 1)) from None
    return payload, groups


def check_payload(payload: object, models: dict, default_id: int, limits: Limits) -> None:
    """Refused unless the request is a list of well-formed items."""
    if not isinstance(payload, list) or not payload:
        raise Refused(400, 'the body must be a non-empty JSON list: [{"id": 100, "src": "..."}]')
    if len(payload) > limits.max_sentences:
        raise Refused(413, f"{len(payload)} sentences in one request; at most {limits.max_sentences}")
    for i, item in enumerate(payload):
        if not isinstance(item, dict):
            raise Refused(400, f"item {i}: not an object")
        src = item.get("src")
        if not isinstance(src, str):
            raise Refused(400, f'item {i}: "src" must be a string')
        if len(src) > limits.max_input_chars:
            raise Refused(
                400, f"item {i}: {len(src)} characters; at most max_input_chars={limits.max_input_chars}"
            )
        try:
            src.encode("utf-8")
        except UnicodeEncodeError:
            raise Refused(400, f'item {i}: "src" is not valid Unicode (a lone surrogate)') from None
        model_id = item.get("id", default_id)
        if not isinstance(model_id, int) or isinstance(model_id, bool):
            raise Refused(400, f'item {i}: "id" must be an integer (a model id)')
        if model_id not in models:
            raise Refused(
                404, f"item {i}: no model with id {model_id} (serving {', '.join(map(str, models))})"
            )
