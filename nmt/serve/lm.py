"""The char-rnn routes of nmt-serve, for a character language model (``nmt-serve lm=lm.pt``):

    GET  /lm/info     the model: cell, layers, units, symbols, validation bits per character
    POST /lm/sample   {"prime": "Kyoto is", "temperature": 0.8, "length": 200, "seed": 1, "top_k": 0}
                      -> {"text": prime + what was drawn after it}
    POST /lm/look     {"text": "...", "layer": -1, "unit": null}
                      -> {"chars", "layer", "layers", "units", "unit", "activations", "ranking", "next"}

``/lm/look`` is Karpathy's two views of a text: one unit's activation under each character
(tanh of the cell state for an LSTM, the hidden state otherwise, in [-1, 1]), and the model's
five likeliest next characters after each one, with their probabilities. ``ranking`` orders the
layer's units by how well they follow a feature of the text (nmt-cells' features: quotes,
brackets, position in the line, word boundaries; |Pearson r|, the best feature named), so the
most interpretable cells come first; ``unit: null`` picks the top one. The work runs on the
translation thread, so it never competes with a translation for the cores.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from nmt import NmtError
from nmt.introspect.activations import FEATURES, follow
from nmt.lm import CharLM, CharVocab, sample
from nmt.serve.body import Limits, Refused, error, parse_json, read_body

MAX_SAMPLE = 2000  # characters drawn per request
MAX_LOOK = 3000  # characters looked at per request
TOP_NEXT = 5


@dataclass
class ServedLM:
    """The character model behind the /lm/ routes."""

    checkpoint: str
    model: CharLM
    vocab: CharVocab
    metrics: dict  # what the checkpoint recorded (step, valid_bpc, ...)


@torch.no_grad()
def look(model: CharLM, vocab: CharVocab, text: str, layer: int, unit: int | None) -> dict:
    """One layer's units over ``text``: the chosen unit's activation under each character, the
    units ranked by the feature they follow best, and the five likeliest next characters."""
    device = next(model.parameters()).device
    x = torch.from_numpy(vocab.encode(text)).to(device)  # (steps,)
    layers = model.trace(x)  # per layer (steps, hidden)
    acts = layers[layer].float().cpu()
    if model.has_cell_state:
        acts = torch.tanh(acts)  # an LSTM's memory c, squashed as the output gate sees it
    best_r = torch.zeros(acts.size(1), dtype=torch.float64)
    best_feature = [""] * acts.size(1)
    for name in FEATURES:
        try:
            r = follow(acts, text, name)  # (units,)
        except NmtError:  # the text never changes this feature
            continue
        for u in torch.nonzero(r.abs() > best_r.abs()).flatten().tolist():
            best_r[u], best_feature[u] = r[u], name
    order = best_r.abs().argsort(descending=True, stable=True).tolist()
    chosen = order[0] if unit is None else unit
    logits, _, _ = model(x.unsqueeze(0), *model.start(1, device))  # (1, steps, vocab)
    probs = F.softmax(logits[0].float(), dim=-1)  # (steps, vocab)
    p, ids = probs.topk(min(TOP_NEXT, probs.size(1)), dim=-1)  # (steps, 5)
    return {
        "chars": list(text),
        "layer": layer % len(layers),
        "layers": len(layers),
        "units": acts.size(1),
        "unit": chosen,
        "activations": [round(float(v), 4) for v in acts[:, chosen]],
        "ranking": [
            {"unit": u, "r": round(float(best_r[u]), 4), "feature": best_feature[u] or None} for u in order
        ],
        "next": [
            [[vocab.chars[i], round(float(q), 4)] for i, q in zip(row_ids, row_p)]
            for row_ids, row_p in zip(ids.tolist(), p.tolist())
        ],
    }


def _number(body: dict, key: str, default: float, low: float, high: float, integer: bool) -> float:
    value = body.get(key, default)
    kind = int if integer else (int, float)
    if not isinstance(value, kind) or isinstance(value, bool) or not low <= value <= high:
        raise Refused(
            400, f'"{key}" must be {"an integer" if integer else "a number"} from {low:g} to {high:g}'
        )
    return value


def _text(body: dict, key: str, default: str | None) -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise Refused(400, f'"{key}" must be a string')
    if len(value) > MAX_LOOK:
        raise Refused(400, f'"{key}" has {len(value)} characters; at most {MAX_LOOK}')
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Refused(400, f'"{key}" is not valid Unicode (a lone surrogate)') from None
    return value


def lm_routes(lm: ServedLM, executor: Executor, checker: Executor, limits: Limits) -> list[Route]:
    """The /lm/ routes; ``executor``: the translation thread, ``checker``: where bodies are parsed."""
    layers = len(lm.model.cells)

    async def receive(request: Request) -> dict:
        body = await asyncio.wait_for(read_body(request, limits.max_body_bytes), limits.body_timeout_s)
        got = await asyncio.get_running_loop().run_in_executor(checker, parse_json, body)
        if not isinstance(got, dict):
            raise Refused(400, "the body must be a JSON object")
        return got

    async def run(request: Request, work) -> JSONResponse:  # noqa: ANN001 - work(body) -> a callable
        try:
            job = work(await receive(request))
            got = await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(executor, job), limits.timeout_s
            )
        except Refused as e:
            return error(e.status, e.message)
        except asyncio.TimeoutError:
            return error(504, f"not answered within timeout_s={limits.timeout_s:g} s")
        except ClientDisconnect:
            return error(400, "the client closed the connection before sending the whole body")
        return JSONResponse(got)

    def sampling(body: dict):  # noqa: ANN202
        prime = _text(body, "prime", "")
        temperature = _number(body, "temperature", 1.0, 0.01, 10, integer=False)
        length = _number(body, "length", 200, 1, MAX_SAMPLE, integer=True)
        seed = _number(body, "seed", 1, 0, 2**31 - 1, integer=True)
        top_k = _number(body, "top_k", 0, 0, len(lm.vocab), integer=True)
        return lambda: {
            "text": sample(lm.model, lm.vocab, prime, int(length), float(temperature), int(top_k), int(seed)),
            "prime": prime,
        }

    def looking(body: dict):  # noqa: ANN202
        text = _text(body, "text", None)
        if len(text) < 2:
            raise Refused(400, '"text" needs at least 2 characters')
        layer = int(_number(body, "layer", -1, -layers, layers - 1, integer=True))
        unit = body.get("unit")
        if unit is not None:
            unit = int(_number(body, "unit", 0, 0, lm.model.cfg.hidden - 1, integer=True))
        return lambda: look(lm.model, lm.vocab, text, layer, unit)

    async def info(request: Request) -> JSONResponse:
        cfg = lm.model.cfg
        return JSONResponse(
            {
                "checkpoint": lm.checkpoint,
                "cell": getattr(cfg.cell, "value", cfg.cell),
                "layers": layers,
                "units": cfg.hidden,
                "symbols": len(lm.vocab),
                "valid_bpc": lm.metrics.get("best_valid_bpc", lm.metrics.get("valid_bpc")),
                "features": list(FEATURES),
                "max_sample": MAX_SAMPLE,
                "max_look": MAX_LOOK,
            }
        )

    async def sample_route(request: Request) -> JSONResponse:
        return await run(request, sampling)

    async def look_route(request: Request) -> JSONResponse:
        return await run(request, looking)

    return [
        Route("/lm/info", info, methods=["GET"]),
        Route("/lm/sample", sample_route, methods=["POST"]),
        Route("/lm/look", look_route, methods=["POST"]),
    ]
