"""Batch shapes are bounded, and the kernel cache holds every kernel of the steady state.

The first tests count shapes (pure arithmetic on lengths: the same on every machine). The last
runs bf16 training steps with oneDNN's verbose log on and counts the primitives it compiles: with
the cache sized as nmt sizes it, a second pass over the same batch shapes compiles none.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from nmt import NmtError
from nmt.config import Attention, Cell, DataConfig
from nmt.data.batching import (
    SHAPE_MULTIPLES,
    batch_indices,
    batch_shapes,
    bounded_multiple,
    make_batch,
)
from nmt.data.files import data_path, read_lines
from nmt.data.store import EncodedSplit
from nmt.startup import KERNEL_CACHE_TRAIN, PRIMITIVES_PER_SHAPE, TRAIN_SHAPES

ROOT = Path(__file__).resolve().parents[2]


def _corpus_lengths(name: str, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Word counts of a pre-tokenised corpus's first ``limit`` training pairs (what the word
    tokenizer gives, without EOS)."""
    try:
        folder = data_path(DataConfig(name="x", corpus="x"), name)
    except NmtError:
        pytest.skip(f"{name} is not available")
    if not (folder / "train.en").is_file():
        pytest.skip(f"{name} is not available")
    src = [len(x.split()) for x in read_lines(folder / "train.en")[:limit]]
    tgt = [len(x.split()) for x in read_lines(folder / "train.ja")[:limit]]
    return np.array(src, dtype=np.int64), np.array(tgt, dtype=np.int64)


def _cut(src: np.ndarray, tgt: np.ndarray, budget: int, by_tokens: bool, epoch: int):  # noqa: ANN202
    return lambda m: batch_indices(src, tgt, budget, by_tokens, np.random.default_rng(epoch), multiple=m)


def test_an_epoch_of_real_batches_makes_few_shapes() -> None:
    """small_parallel_enja, as en_ja_small batches it (4,096 tokens): a few dozen shapes, within
    the bound without padding, and the same bound in a later epoch."""
    src, tgt = _corpus_lengths("small_parallel_enja", 50_000)
    for epoch in (1, 2):
        cut = _cut(src, tgt, 4096, True, epoch)
        m, n = bounded_multiple(src, tgt, TRAIN_SHAPES, cut)
        assert m == 1 and 5 <= n <= TRAIN_SHAPES
        assert len(batch_shapes(src, tgt, cut(1))) == n


def test_padding_bounds_the_shapes_of_varied_batches() -> None:
    """Sentence batches of widely varied lengths (every source and target length up to 80 mixed)
    make several times the bound; the chosen multiple brings them within the bound, and a larger bound
    needs less padding."""
    rng = np.random.default_rng(0)
    src = rng.integers(1, 81, 20_000)
    tgt = rng.integers(1, 81, 20_000)

    def cut(m: int) -> list[np.ndarray]:
        return batch_indices(src, tgt, 64, False, rng=np.random.default_rng(1), sort_window=640, multiple=m)

    assert len(batch_shapes(src, tgt, cut(1))) > 2 * TRAIN_SHAPES
    m, n = bounded_multiple(src, tgt, TRAIN_SHAPES, cut)
    assert n <= TRAIN_SHAPES and m > 1 and m in SHAPE_MULTIPLES
    assert len(batch_shapes(src, tgt, cut(m), m)) == n
    m_loose, _ = bounded_multiple(src, tgt, 100, cut)
    assert m_loose < m


def test_batch_shapes_are_the_shapes_make_batch_builds() -> None:
    rng = np.random.default_rng(3)
    srcs = [rng.integers(4, 50, int(k)) for k in rng.integers(1, 30, 300)]
    tgts = [rng.integers(4, 50, int(k)) for k in rng.integers(1, 30, 300)]
    split = EncodedSplit.from_lists([list(x) for x in srcs], [list(x) for x in tgts], list(range(300)))
    for m in (1, 4, 8):
        batches = batch_indices(
            split.src_lens, split.tgt_lens, 256, True, np.random.default_rng(0), multiple=m
        )
        built = set()
        for idx in batches:
            b = make_batch(split, idx, multiple=m)
            assert b.src.size(1) % m == 0 and b.tgt_in.size(1) % m == 0
            assert b.src.size(1) * len(b) <= max(256, b.src.size(1)) and b.tgt_in.size(1) * len(b) <= max(
                256, b.tgt_in.size(1)
            )
            assert int(b.src_lens.max()) == max(len(srcs[i]) for i in idx)  # real lengths, not padded
            built.add((len(b), b.src.size(1), b.tgt_in.size(1)))
        assert built == batch_shapes(split.src_lens, split.tgt_lens, batches, m)


def test_the_training_cache_holds_the_bounded_set() -> None:
    assert KERNEL_CACHE_TRAIN >= PRIMITIVES_PER_SHAPE * TRAIN_SHAPES


# A child process: bf16 training steps of the recipes' small model over batches of three shapes,
# twice; between the passes a marker line, after flushing C's stdout (oneDNN's verbose log).
_STEPS = textwrap.dedent(
    """
    import ctypes, os, sys
    import numpy as np, torch
    sys.path.insert(0, {root!r})
    from nmt.config import Attention, ModelConfig, TrainConfig
    from nmt.data.batching import make_batch
    from nmt.data.store import EncodedSplit
    from nmt.model.seq2seq import build_model
    from nmt.training.optim import build_optimizer

    feeding = {feeding}
    torch.manual_seed(0)
    cfg = ModelConfig(emb_dim=256, enc_hidden=128, enc_layers=2, dec_hidden=256, dec_layers=2,
                      attention=Attention.luong_general, input_feeding=feeding, dropout=0.2, emb_dropout=0.2)
    model = build_model(cfg, 500, 600).train()
    opt = build_optimizer(model.parameters(), TrainConfig(), torch.device("cpu"))
    rng = np.random.default_rng(0)
    batches = []
    for rows, s, t in ((24, 9, 11), (16, 14, 13), (32, 7, 6)):
        srcs = [rng.integers(4, 500, s) for _ in range(rows)]
        tgts = [rng.integers(4, 600, t - 1) for _ in range(rows)]
        split = EncodedSplit.from_lists([list(x) for x in srcs], [list(x) for x in tgts], list(range(rows)))
        batches.append(make_batch(split, np.arange(rows)))
    libc = ctypes.CDLL(None)
    for p in range(2):
        libc.fflush(None)
        os.write(1, b"=== pass %d\\n" % p)
        for b in batches:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss, _ = model(b.src, b.src_lens, b.tgt_in, b.tgt_out, 0.1)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            libc.fflush(None)
            os.write(1, b"=== step\\n")
    libc.fflush(None)
    """
)


def _primitive_log(capacity: int, feeding: bool) -> list[list[list[str]]]:
    """Per pass, per step: the oneDNN 'create' lines (cache_miss / cache_hit) of a child process."""
    env = dict(
        os.environ,
        ONEDNN_VERBOSE="2",
        ONEDNN_PRIMITIVE_CACHE_CAPACITY=str(capacity),
        LRU_CACHE_CAPACITY=str(capacity),
        OMP_NUM_THREADS="1",
    )
    out = subprocess.run(
        [sys.executable, "-c", _STEPS.format(root=str(ROOT), feeding=feeding)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    passes: list[list[list[str]]] = []
    step: list[str] = []
    for line in out.stdout.splitlines():
        if line.startswith("=== pass"):
            passes.append([])
            step = []
        elif line.startswith("=== step"):
            passes[-1].append(step)
            step = []
        elif re.match(r"onednn_verbose,(v1,)?primitive,create:cache_(miss|hit)", line):
            step.append(line)
    return passes


def _key(line: str) -> str:
    """A verbose 'create' line without its outcome and its time: which primitive it is."""
    fields = line.split(",")
    return ",".join(f for f in fields[:-1] if not f.startswith("create:"))


@pytest.mark.slow
@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")
@pytest.mark.parametrize("feeding", [False, True], ids=["fused_decoder", "input_feeding"])
def test_a_second_pass_over_the_same_shapes_compiles_nothing(feeding: bool) -> None:
    """bf16 products run as oneDNN primitives on any x86 CPU (natively or emulated), so the
    verbose log counts them here whatever the CPU. A step uses at most PRIMITIVES_PER_SHAPE
    distinct primitives; with the cache sized for the three shapes nothing is compiled again in the second
    pass, while the earlier cache of 8 compiled again at every step."""
    sized = _primitive_log(PRIMITIVES_PER_SHAPE * 3, feeding)
    assert len(sized) == 2 and all(len(p) == 3 for p in sized)
    distinct = [len({_key(line) for line in step}) for step in sized[0]]
    if max(distinct) == 0:
        pytest.skip("no oneDNN primitives in the verbose log (bf16 products not in oneDNN here)")
    assert max(distinct) <= PRIMITIVES_PER_SHAPE
    misses = lambda p: sum(1 for step in p for line in step if "cache_miss" in line)  # noqa: E731
    assert misses(sized[0]) > 0
    assert misses(sized[1]) == 0
    small = _primitive_log(8, feeding)
    assert misses(small[1]) > 0


@pytest.mark.parametrize(
    "kw",
    [
        dict(input_feeding=False),
        dict(input_feeding=True),
        dict(attention=Attention.bahdanau, cell=Cell.gru),
        dict(enc_layers=2, dec_layers=2, tie_embeddings=True),
    ],
    ids=["fused", "input_feeding", "bahdanau_gru", "deep_tied"],
)
def test_padding_to_a_multiple_changes_neither_loss_nor_gradients(kw: dict) -> None:
    """The padded positions are masked everywhere (packed encoder, attention mask, the loss), and
    later target positions never reach earlier ones: the same loss and gradients, in float64, with
    lengths padded to 8 as without, through the training loops written by hand."""
    from nmt.model.seq2seq import Seq2Seq
    from tests.helpers import tiny_model_config

    torch.manual_seed(0)
    model = Seq2Seq(tiny_model_config(init_range=0.3, **kw), 40, 50).double().train()
    rng = np.random.default_rng(5)
    srcs = [list(rng.integers(4, 40, int(n))) for n in (7, 3, 5, 1)]
    tgts = [list(rng.integers(4, 50, int(n))) for n in (4, 6, 2, 3)]
    split = EncodedSplit.from_lists(srcs, tgts, [0, 1, 2, 3])
    results = []
    for m in (1, 8):
        b = make_batch(split, np.arange(4), multiple=m)
        assert b.src.size(1) % m == 0 and b.tgt_in.size(1) % m == 0
        model.zero_grad(set_to_none=True)
        loss, nll = model(b.src, b.src_lens, b.tgt_in, b.tgt_out, 0.1)
        loss.backward()
        results.append((loss.item(), nll.item(), [p.grad.clone() for p in model.parameters()]))
    (l1, n1, g1), (l8, n8, g8) = results
    assert l8 == pytest.approx(l1, rel=1e-12) and n8 == pytest.approx(n1, rel=1e-12)
    for a, b in zip(g1, g8):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
