#!/usr/bin/env python3
"""A training step two ways, alternating batch by batch in one process; and its products alone.

On a shared machine whose speed drifts by 10-30 % within minutes, two runs taken one after the
other do not compare; the same batches trained two ways in turn, on one model, do. This runs the
step as ``nmt-train`` runs it (forward with the fused output loss, backward, clipping folded into
fused Adam) over real batches of a prepared corpus and prints target tokens/s of each way and
their ratio (the median per-batch ratio too). It prints figures and asserts nothing.

  --compare encoder   the encoder through nmt.model.bilstm (B) or nn.LSTM (A)
  --compare decoder   the input-feeding decoder through nmt.model.bptt (B) or autograd (A)
  --compare both      both hand-written loops (B) against autograd for both (A)
  --products          also replay the matrix products of the step's batches alone (shapes
                      recorded by the profiler, fresh operands) against the whole step: the share
                      of the step that is products, i.e. how far other work could still pay

  python bench/step_ab.py --data runs/peers/data --batch 64 --compare both --products
  python bench/step_ab.py --data runs/en_ja_small/data --batch-tokens 4096 --no-input-feeding \
      --dropout 0.3 --label-smoothing 0.1 --compare encoder
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.train_speed import model_config, real_batches  # noqa: E402
from nmt.cli.common import one_line_errors  # noqa: E402
from nmt.config import Bridge, TrainConfig  # noqa: E402
from nmt.data.batching import Batch  # noqa: E402
from nmt.model.seq2seq import build_model  # noqa: E402
from nmt.runtime import hardware  # noqa: E402
from nmt.startup import KERNEL_CACHE_TRAIN, bound_kernel_caches, tune_allocator  # noqa: E402
from nmt.training.optim import build_optimizer, clipped_step  # noqa: E402

# the profiler's product ops -> (the function that replays it, whether it adds to a first operand)
PRODUCTS = {
    "aten::mm": (torch.mm, False),
    "aten::bmm": (torch.bmm, False),
    "aten::addmm": (torch.addmm, True),
    "aten::addmm_": (torch.addmm, True),
    "aten::baddbmm": (torch.baddbmm, True),
    "aten::baddbmm_": (torch.baddbmm, True),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="prepared data dir (runs/<name>/data)")
    ap.add_argument("--batch", type=int, default=64, help="sentences per batch")
    ap.add_argument("--batch-tokens", type=int, default=0, help="token budget per batch instead")
    ap.add_argument("--no-input-feeding", action="store_true")
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--bridge", default="copy", choices=[b.value for b in Bridge])
    ap.add_argument("--steps", type=int, default=56)
    ap.add_argument("--warmup", type=int, default=6)
    ap.add_argument("--compare", default="both", choices=["encoder", "decoder", "both"])
    ap.add_argument("--products", action="store_true")
    a = ap.parse_args()
    tune_allocator()
    bound_kernel_caches(KERNEL_CACHE_TRAIN)
    torch.manual_seed(0)
    size = a.batch_tokens or a.batch
    batches, sv, tv = real_batches(a.data, a.warmup + a.steps, size, a.batch_tokens > 0, seed=3)
    cfg, _ = model_config("small", "luong_general", not a.no_input_feeding)
    cfg.dropout = cfg.emb_dropout = a.dropout
    cfg.bridge = Bridge(a.bridge)
    model = build_model(cfg, sv, tv).train()
    opt = build_optimizer(model.parameters(), TrainConfig(), torch.device("cpu"))
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    parts = {"encoder": [model.encoder], "decoder": [model.decoder], "both": [model.encoder, model.decoder]}

    def way(explicit: bool) -> None:
        for part in parts[a.compare]:
            part.explicit_bptt = explicit

    def step(b: Batch) -> None:
        loss, _ = model(b.src, b.src_lens, b.tgt_in, b.tgt_out, a.label_smoothing)
        (loss / b.n_tgt_tokens).backward()
        clipped_step(opt, scaler, 5.0)
        opt.zero_grad(set_to_none=True)

    for b in batches[: a.warmup]:
        for explicit in (False, True):
            way(explicit)
            step(b)
    times: dict[bool, list[float]] = {False: [], True: []}
    tokens = 0
    for k, b in enumerate(batches[a.warmup :]):
        for explicit in (False, True) if k % 2 == 0 else (True, False):
            way(explicit)
            t0 = time.perf_counter()
            step(b)
            times[explicit].append(time.perf_counter() - t0)
        tokens += b.n_tgt_tokens
    slow, fast = times[False], times[True]
    print(
        f"{hardware(torch.device('cpu'))}; {len(slow)} batches of {size} {'tokens' if a.batch_tokens else 'sentences'}"
    )
    print(f"A autograd ({a.compare}): {tokens / sum(slow):8.0f} target tokens/s")
    print(f"B by hand  ({a.compare}): {tokens / sum(fast):8.0f} target tokens/s")
    ratios = [x / y for x, y in zip(slow, fast)]
    print(f"B / A: {sum(slow) / sum(fast):.3f} (median per-batch ratio {statistics.median(ratios):.3f})")
    if a.products:
        way(True)
        products_alone(step, batches[a.warmup :], tokens, sum(fast))


def products_alone(step, batches: list[Batch], tokens: int, step_seconds: float) -> None:  # noqa: ANN001
    """Record each batch's matrix products (shapes), replay them alone, compare with the step."""
    from torch.profiler import ProfilerActivity, profile

    shapes = []
    for b in batches:
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            step(b)
        shapes.append([(e.name, e.input_shapes) for e in prof.events() if e.name in PRODUCTS])
    seconds = 0.0
    for calls in shapes:
        ops = []
        for name, sh in calls:
            f, adds = PRODUCTS[name]
            args = [torch.randn(*s) for s in sh[: 3 if adds else 2]]  # fresh operands, the step's shapes
            ops.append(lambda f=f, args=args: f(*args))
        for op in ops:  # warm: first call of each shape
            op()
        t0 = time.perf_counter()
        for op in ops:
            op()
        seconds += time.perf_counter() - t0
    print(f"the same steps' matrix products alone: {tokens / seconds:8.0f} target tokens/s")
    print(f"products' share of the step: {seconds / step_seconds:.1%}")


if __name__ == "__main__":
    with one_line_errors("bench/step_ab.py"):
        main()
