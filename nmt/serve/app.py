"""The HTTP routes of nmt-serve, OpenNMT-py's, so that existing clients work unchanged:

    POST /translator/translate   [{"id": 100, "src": "Where is the station?"}, ...]
         -> [[{"src": ..., "tgt": ..., "n_best": 1, "pred_score": -1.23}, ...]]   (one list per n-best rank)
    GET  /translator/models      the models served, with their checkpoints and search
    GET  /translator/health      {"status": "ok"}

``id`` names the model (as in OpenNMT-py; default: the first model). An item may also ask for
its own search, nmt's additions: ``"beam_size"`` (1: greedy), ``"alpha"`` (GNMT length
penalty), ``"n_best"``, and ``"attention": true`` for the pieces, the attention matrix and the
words ``replace_unk`` copied (``src_pieces``, ``tgt_pieces``, ``attention``, ``replaced`` in the
first rank's answer), and ``"constraints": ["term", ...]`` (with ``"ordered_constraints"``),
target terms the translation must contain (constrained beam search). Besides these: the page at ``/`` (nmt/serve/page.py) and, with a character
model (``lm=``), the char-rnn routes under ``/lm/`` (nmt/serve/lm.py).

Every request is checked
before it joins a batch, so a bad one is answered alone and never disturbs the others. Every
error is JSON, ``{"status": "error", "error": "..."}``, with its status: malformed JSON, fields
or nesting 400, an unknown model or route 404, a wrong method 405, a body that does not arrive
within ``body_timeout_s`` 408, a body over ``max_body_bytes`` 413 (refused as soon as the
declared length or the bytes read pass it, never read whole), too many sentences 413, a sentence
too long 400, a full queue 503 (with Retry-After), a request that waited longer than
``timeout_s`` 504, a translation that failed 500. Every answer carries a Content-Security-Policy
that allows only this server's own scripts, styles and connections (no inline script, nothing
from another host), ``nosniff`` and no referrer.

The event loop only moves bytes: parsing the JSON and checking each sentence (text processing
such as Moses, SentencePiece) run on a thread of their own, translations on another, so
``/translator/health`` answers while a large request is checked or translated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from nmt import NmtError
from nmt.config import SearchMethod
from nmt.serve.batcher import Batcher, QueueFull, Settings
from nmt.serve.body import Limits, Refused, error, parse_json, read_body
from nmt.serve.lm import ServedLM, lm_routes
from nmt.serve.page import page_routes
from nmt.translator import Translation, Translator

log = logging.getLogger(__name__)


@dataclass
class Served:
    """One model behind the server."""

    model_id: int
    checkpoints: list[str]
    translator: Translator


SECURITY_HEADERS = {
    # the page's own files only: no inline script or style element, no other host, no plugins,
    # no framing; element.style set from a script is allowed (the attention and cell colours)
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


class SecurityHeaders:
    """An ASGI middleware adding SECURITY_HEADERS to every HTTP answer, errors included."""

    def __init__(self, app: object) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: object, send: object) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.decode().lower() not in SECURITY_HEADERS
                ]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    models: list[Served], limits: Limits, lm: ServedLM | None = None, page: bool = True
) -> Starlette:
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nmt-translate")
    checker = ThreadPoolExecutor(max_workers=2, thread_name_prefix="nmt-check")
    batchers = {
        m.model_id: Batcher(m.translator, executor, limits.wait_ms, limits.batch_words, limits.queue_limit)
        for m in models
    }
    by_id = {m.model_id: m for m in models}
    default_id = models[0].model_id if models else None

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
                    *(
                        batchers[m].translate(
                            [payload[i]["src"] for i in rows],
                            settings,
                            [payload[i].get("constraints", []) for i in rows],
                        )
                        for (m, settings), rows in groups.items()
                    )
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
        results: list[tuple[Translation, Settings, int]] = [None] * len(payload)  # type: ignore[list-item]
        for ((m, settings), rows), got in zip(groups.items(), answers):
            wanted = settings.n_best or by_id[m].translator.cfg.nbest
            for i, t in zip(rows, got):
                results[i] = (t, settings, wanted)
        return JSONResponse(answer(payload, results))

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
    if lm is not None:
        routes += lm_routes(lm, executor, checker, limits)
    if page:
        routes += page_routes()
    handlers = {HTTPException: http_error, Exception: server_error}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    app.add_middleware(SecurityHeaders)
    return app


def answer(payload: list[dict], results: list[tuple[Translation, Settings, int]]) -> list[list[dict]]:
    """OpenNMT-py's answer: one list per n-best rank, each with an entry per item (a rank an
    item's search did not give: empty text, score None); the first rank carries the attention
    of the items that asked for it."""
    n_best = max(wanted for _, _, wanted in results)
    out: list[list[dict]] = [[] for _ in range(n_best)]
    for item, (t, settings, _) in zip(payload, results):
        for k in range(n_best):
            text, score = (
                (t.nbest[k][0], t.nbest[k][1])
                if k < len(t.nbest)
                else ((t.text, t.score) if k == 0 else ("", None))
            )
            entry = {"src": item["src"], "tgt": text, "n_best": n_best, "pred_score": score}
            if k == 0 and settings.attention:
                entry.update(
                    src_pieces=t.src_pieces or [],
                    tgt_pieces=t.tgt_pieces or [],
                    attention=t.attention or [],
                    replaced=t.replaced or [],
                )
            out[k].append(entry)
    return out


def check_request(
    body: bytes, models: dict[int, Served], default_id: int | None, limits: Limits
) -> tuple[list[dict], dict[tuple[int, Settings], list[int]]]:
    """Parse and check a request (off the event loop): its items and their rows per model, or
    ``Refused`` naming the first problem. Each sentence runs through its model's text processing
    and SentencePiece here, alone, so that a bad one never gets into a batch."""
    payload = parse_json(body)
    check_payload(payload, models, default_id, limits)
    groups: dict[tuple[int, Settings], list[int]] = {}
    for i, item in enumerate(payload):
        model_id = item.get("id", default_id)
        key = (model_id, item_settings(item, i, models[model_id].translator, limits))
        groups.setdefault(key, []).append(i)
    for (model_id, _), rows in groups.items():
        translator = models[model_id].translator
        for i in rows:
            try:
                translator.encode([translator.prepare([payload[i]["src"]])[0].text], "item", i)
            except NmtError as e:
                raise Refused(400, str(e).replace("item:", "item ", 1)) from None
    return payload, groups


def check_payload(payload: object, models: dict, default_id: int | None, limits: Limits) -> None:
    """Refused unless the request is a list of well-formed items."""
    if not isinstance(payload, list) or not payload:
        raise Refused(400, 'the body must be a non-empty JSON list: [{"id": 100, "src": "..."}]')
    if not models:
        raise Refused(404, "no translation model is served (this server has a character model: /lm/)")
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
            serving = f"serving {', '.join(map(str, models))}" if models else "no translation model is served"
            raise Refused(404, f"item {i}: no model with id {model_id} ({serving})")


MAX_TERMS = 16  # target terms ("constraints") per sentence


def item_settings(item: dict, i: int, translator: Translator, limits: Limits) -> Settings:
    """The search an item asks for: the model's own unless it names beam_size, alpha or n_best
    (beam_size 1 is greedy search); ``Refused`` for a value out of range."""
    attention, ordered = item.get("attention", False), item.get("ordered_constraints", False)
    for key, value in (("attention", attention), ("ordered_constraints", ordered)):
        if not isinstance(value, bool):
            raise Refused(400, f'item {i}: "{key}" must be true or false')
    terms = item.get("constraints", [])
    if not isinstance(terms, list) or not all(isinstance(t, str) and t.strip() for t in terms):
        raise Refused(400, f'item {i}: "constraints" must be a list of non-empty strings (target terms)')
    if len(terms) > MAX_TERMS or sum(len(t) for t in terms) > limits.max_input_chars:
        raise Refused(
            400, f"item {i}: at most {MAX_TERMS} terms of {limits.max_input_chars} characters in all"
        )
    for term in terms:
        try:
            translator.constraint_ids(term, f"item {i}")
        except NmtError as e:
            raise Refused(400, str(e)) from None
    if not any(k in item for k in ("beam_size", "alpha", "n_best")):
        return Settings(attention=attention, ordered=ordered)
    base = translator.cfg
    beam = item.get("beam_size", base.beam_size if base.method == SearchMethod.beam else 1)
    if not isinstance(beam, int) or isinstance(beam, bool) or not 1 <= beam <= limits.max_beam:
        raise Refused(400, f'item {i}: "beam_size" must be an integer from 1 to {limits.max_beam}')
    alpha = item.get("alpha", base.alpha)
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0 <= alpha <= 5:
        raise Refused(400, f'item {i}: "alpha" must be a number from 0 to 5')
    n_best = item.get("n_best", min(base.nbest, beam))
    if not isinstance(n_best, int) or isinstance(n_best, bool) or not 1 <= n_best <= beam:
        raise Refused(400, f'item {i}: "n_best" must be an integer from 1 to beam_size ({beam})')
    return Settings(beam, float(alpha), n_best, attention, ordered)
