"""The HTTP routes of nmt-serve, OpenNMT-py's, so that existing clients work unchanged:

    POST /translator/translate   [{"id": 100, "src": "Where is the station?"}, ...]
         -> [[{"src": ..., "tgt": ..., "n_best": 1, "pred_score": -1.23}, ...]]   (one list per n-best rank)
    GET  /translator/models      the models served, with their checkpoints and search
    GET  /translator/health      {"status": "ok"}

``id`` names the model (as in OpenNMT-py; default: the first model). Every request is checked
before it joins a batch, so a bad one is answered alone and never disturbs the others; errors are
JSON, ``{"status": "error", "error": "..."}``: malformed JSON or fields 400, an unknown model 404,
too many sentences 413, a sentence too long 400, a full queue 503 (with Retry-After), a request
that waited longer than ``timeout_s`` 504.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
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


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"status": "error", "error": message}, status_code=status, headers=headers)


def create_app(models: list[Served], limits: Limits) -> Starlette:
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nmt-translate")
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
            executor.shutdown(wait=True)

    async def translate(request: Request) -> JSONResponse:
        try:
            payload = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError) as e:
            return error(400, f"the body is not JSON ({e})")
        problem = check_payload(payload, by_id, default_id, limits.max_sentences)
        if problem is not None:
            return problem
        groups: dict[int, list[int]] = {}
        for i, item in enumerate(payload):
            groups.setdefault(item.get("id", default_id), []).append(i)
        for model_id, rows in groups.items():  # checked here, alone, never inside a batch
            translator = by_id[model_id].translator
            for i in rows:
                try:
                    translator.encode([translator.prepare([payload[i]["src"]])[0].text], "item", i)
                except NmtError as e:
                    return error(400, str(e).replace("item:", "item ", 1))
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

    routes = [
        Route("/translator/translate", translate, methods=["POST"]),
        Route("/translator/models", list_models, methods=["GET"]),
        Route("/translator/health", health, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def check_payload(payload: object, models: dict, default_id: int, max_sentences: int) -> JSONResponse | None:
    """None if the request is well formed, else the error response."""
    if not isinstance(payload, list) or not payload:
        return error(400, 'the body must be a non-empty JSON list: [{"id": 100, "src": "..."}]')
    if len(payload) > max_sentences:
        return error(413, f"{len(payload)} sentences in one request; at most {max_sentences}")
    for i, item in enumerate(payload):
        if not isinstance(item, dict):
            return error(400, f"item {i}: not an object")
        if not isinstance(item.get("src"), str):
            return error(400, f'item {i}: "src" must be a string')
        try:
            item["src"].encode("utf-8")
        except UnicodeEncodeError:
            return error(400, f'item {i}: "src" is not valid Unicode (a lone surrogate)')
        model_id = item.get("id", default_id)
        if not isinstance(model_id, int) or isinstance(model_id, bool):
            return error(400, f'item {i}: "id" must be an integer (a model id)')
        if model_id not in models:
            return error(
                404, f"item {i}: no model with id {model_id} (serving {', '.join(map(str, models))})"
            )
    return None
