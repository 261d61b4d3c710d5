"""Batch shapes are bounded, and the kernel cache holds every kernel of the steady state.

Training: the first tests count shapes (pure arithmetic on lengths: the same on every machine);
one runs bf16 training steps with oneDNN's verbose log on and counts the primitives it compiles:
with the cache sized as nmt sizes it, a second pass over the same batch shapes compiles none.
Decoding: the same, for the rows a decoder step's products run on (``step_rows``) over a beam
search of real sentence lengths, and for the primitives a bf16 decode compiles.
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
from nmt.startup import (
    DECODE_MAX_ROWS,
    KERNEL_CACHE_DECODE,
    KERNEL_CACHE_TRAIN,
    PRIMITIVES_PER_PACKED_ROWS,
    PRIMITIVES_PER_SHAPE,
    PRIMITIVES_PER_STEP,
    TRAIN_MAX_PACKED_ROWS,
    TRAIN_SHAPES,
    packed_rows,
    step_row_sizes,
    step_rows,
)

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
    packed = step_row_sizes(TRAIN_MAX_PACKED_ROWS, packed_rows)
    assert (
        PRIMITIVES_PER_SHAPE * TRAIN_SHAPES + PRIMITIVES_PER_PACKED_ROWS * len(packed) <= KERNEL_CACHE_TRAIN
    )


def test_packed_rows_pad_at_most_an_eighth_and_make_few_sizes() -> None:
    sizes = step_row_sizes(TRAIN_MAX_PACKED_ROWS, packed_rows)
    assert sizes[:64] == list(range(1, 65)) and sizes[64:68] == [72, 80, 88, 96]
    assert sizes[-1] == TRAIN_MAX_PACKED_ROWS and len(sizes) == 64 + 8 * 10
    for rows in range(1, 20_000):
        padded = packed_rows(rows)
        assert rows <= padded <= 1.125 * rows
        assert packed_rows(padded) == padded


def test_an_epoch_of_real_batches_makes_few_packed_row_sizes() -> None:
    """The encoder's products over all steps run on packed_rows(source tokens) rows: over an epoch
    of small_parallel_enja's batches (en_ja_small's 4,096 tokens, the peers' 64 sentences) a
    dozen sizes or fewer, at about 5 % more rows than tokens."""
    src, tgt = _corpus_lengths("small_parallel_enja", 50_000)
    for budget, by_tokens in ((4096, True), (64, False)):
        batches = batch_indices(src, tgt, budget, by_tokens, np.random.default_rng(1))
        tokens = np.array([int(src[idx].sum()) for idx in batches])  # the packed rows (no EOS on the source)
        padded = np.array([packed_rows(int(n)) for n in tokens])
        assert len(set(padded.tolist())) <= 12
        assert padded.sum() <= 1.08 * tokens.sum()


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


def _verbose_child(code: str, capacity: int) -> str:
    """The standard output of ``python -c code`` run with oneDNN's verbose log on, both kernel
    caches at ``capacity`` and one thread."""
    env = dict(
        os.environ,
        ONEDNN_VERBOSE="2",
        ONEDNN_PRIMITIVE_CACHE_CAPACITY=str(capacity),
        LRU_CACHE_CAPACITY=str(capacity),
        OMP_NUM_THREADS="1",
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd="/"
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _primitive_log(capacity: int, feeding: bool) -> list[list[list[str]]]:
    """Per pass, per step: the oneDNN 'create' lines (cache_miss / cache_hit) of a child process."""
    stdout = _verbose_child(_STEPS.format(root=str(ROOT), feeding=feeding), capacity)
    passes: list[list[list[str]]] = []
    step: list[str] = []
    for line in stdout.splitlines():
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


# ----------------------------------------------------------------------------------- decoding


def test_step_rows_pad_at_most_a_quarter_and_make_few_sizes() -> None:
    sizes = step_row_sizes(DECODE_MAX_ROWS)
    assert sizes[:8] == list(range(1, 9)) and sizes[8:12] == [10, 12, 14, 16] and sizes[-1] == DECODE_MAX_ROWS
    assert len(sizes) == 44
    for rows in range(1, 5000):
        padded = step_rows(rows)
        assert rows <= padded <= 1.25 * rows
        assert padded == rows or step_rows(padded) == padded  # a size pads to itself
    assert PRIMITIVES_PER_STEP * len(sizes) <= KERNEL_CACHE_DECODE


def _step_sizes(model, decode) -> tuple[set[int], set[int]]:  # noqa: ANN001
    """(rows the search asked a step for, rows the step's products ran on) over ``decode()``."""
    asked, ran = set(), set()
    decode_step, step = model.decode_step, model.decoder.step

    def count_asked(tokens, state, mem):  # noqa: ANN001, ANN202
        asked.add(tokens.size(0))
        return decode_step(tokens, state, mem)

    def count_ran(pre, state, mem, trace=None):  # noqa: ANN001, ANN202
        ran.add(pre.size(0))
        return step(pre, state, mem, trace)

    model.decode_step, model.decoder.step = count_asked, count_ran
    try:
        decode()
    finally:
        del model.decode_step, model.decoder.step
    return asked, ran


def test_a_beam_search_over_real_lengths_runs_its_steps_on_few_row_sizes() -> None:
    """kyoto_wiki's test sentences, as nmt-translate batches them (4,096 source pieces x beam 5):
    a beam search's rows shrink one sentence at a time and every batch starts with its own count,
    so the search asks for many row counts; under bf16 autocast on a CPU the step's products run
    on a handful of sizes, all from ``step_row_sizes``. Without autocast nothing is padded."""
    from nmt.config import SearchConfig, SearchMethod
    from nmt.model.seq2seq import Seq2Seq
    from nmt.translator import decode_ids
    from tests.helpers import tiny_model_config

    try:
        folder = data_path(DataConfig(name="x", corpus="x"), "kyoto_wiki")
    except NmtError:
        pytest.skip("kyoto_wiki is not available")
    if not (folder / "test.en").is_file():
        pytest.skip("kyoto_wiki is not available")
    words = [min(len(x.split()), 60) or 1 for x in read_lines(folder / "test.en")[:600]]
    rng = np.random.default_rng(0)
    src = [list(rng.integers(4, 40, n)) for n in words]  # real lengths; the pieces do not matter
    torch.manual_seed(0)
    model = Seq2Seq(tiny_model_config(init_range=1.0), 40, 30).eval()  # wide weights: EOS comes early or late
    cfg = SearchConfig(method=SearchMethod.beam, beam_size=5, max_len_a=0.5, max_len_b=5)

    def decode() -> None:
        decode_ids(model, src, cfg, torch.device("cpu"), batch_size=4096)

    with torch.autocast("cpu", dtype=torch.bfloat16):
        asked, ran = _step_sizes(model, decode)
    assert ran <= set(step_row_sizes(DECODE_MAX_ROWS))
    assert len(asked) > 2 * len(ran)  # 68 against 23 here
    assert all(step_rows(rows) in ran for rows in asked)
    asked32, ran32 = _step_sizes(model, decode)
    assert ran32 == asked32 == asked


@pytest.mark.parametrize("kind", [Attention.luong_general, Attention.bahdanau])
def test_a_padded_step_gives_what_the_unpadded_step_gives(kind: Attention) -> None:
    """float64 (which autocast leaves alone, so only the padding differs): 9, 13 and 37 hypotheses
    run on 10, 14 and 40 rows under autocast and give the same log-probabilities, attention and
    state as without it."""
    from nmt.model.seq2seq import Seq2Seq
    from tests.helpers import tiny_model_config

    torch.manual_seed(1)
    model = Seq2Seq(tiny_model_config(attention=kind, dec_layers=2, init_range=0.3), 40, 50).double().eval()
    src = torch.randint(4, 40, (5, 7))
    lens = torch.tensor([7, 6, 6, 3, 1])
    for rows in (9, 13, 37):
        pick = torch.arange(rows) % 5
        tokens = torch.randint(4, 50, (rows,))
        with torch.no_grad():
            mem, state = model.encode(src, lens)
            mem, state = mem.select(pick), state.select(pick)
            want = model.decode_step(tokens, state, mem)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                got = model.decode_step(tokens, state, mem)
        torch.testing.assert_close(got[0], want[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got[2], want[2], rtol=1e-12, atol=1e-12)
        for a, b in zip(got[1], want[1]):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


# A child process: bf16 beam search with the recipes' small model over three batches, twice.
_DECODE = textwrap.dedent(
    """
    import ctypes, os, sys
    import numpy as np, torch
    sys.path.insert(0, {root!r})
    from nmt.config import Attention, ModelConfig, SearchConfig, SearchMethod
    from nmt.model.seq2seq import build_model
    from nmt.translator import decode_ids

    torch.manual_seed(0)
    cfg = ModelConfig(emb_dim=256, enc_hidden=128, enc_layers=2, dec_hidden=256, dec_layers=2,
                      attention=Attention.luong_general, input_feeding=True, dropout=0.2, emb_dropout=0.2)
    model = build_model(cfg, 500, 600).eval()
    rng = np.random.default_rng(0)
    src = [list(rng.integers(4, 500, n)) for n in rng.integers(1, 30, 60)]
    search = SearchConfig(method=SearchMethod.beam, beam_size=5, max_len_a=0.5, max_len_b=3)
    sizes = set()
    step = model.decoder.step
    def counted(pre, state, mem, trace=None):
        sizes.add(pre.size(0))
        return step(pre, state, mem, trace)
    model.decoder.step = counted
    libc = ctypes.CDLL(None)
    for p in range(2):
        libc.fflush(None)
        os.write(1, b"=== pass %d\\n" % p)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            decode_ids(model, src, search, torch.device("cpu"), batch_size=400)
        libc.fflush(None)
    os.write(1, b"=== sizes %d\\n" % len(sizes))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")
def test_a_second_decoding_pass_compiles_nothing() -> None:
    """bf16 beam search over batches whose rows shrink as sentences finish: at most
    PRIMITIVES_PER_STEP primitives per step size, none compiled again in the second pass with the
    cache nmt sizes for decoding."""
    stdout = _verbose_child(_DECODE.format(root=str(ROOT)), KERNEL_CACHE_DECODE)
    passes: list[list[str]] = []
    sizes = 0
    for line in stdout.splitlines():
        if line.startswith("=== pass"):
            passes.append([])
        elif line.startswith("=== sizes"):
            sizes = int(line.split()[-1])
        elif re.match(r"onednn_verbose,(v1,)?primitive,create:cache_(miss|hit)", line):
            passes[-1].append(line)
    assert len(passes) == 2 and sizes >= 5
    made = {_key(line) for line in passes[0] if "cache_miss" in line}
    if not made:
        pytest.skip("no oneDNN primitives in the verbose log (bf16 products not in oneDNN here)")
    assert len(made) <= PRIMITIVES_PER_STEP * sizes
    assert sum(1 for line in passes[1] if "cache_miss" in line) == 0
