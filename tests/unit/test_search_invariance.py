"""A sentence translates alike alone and inside a batch of longer ones, on real (random) models.

The search is batch invariant by construction: every row of a batch computes its own
probabilities, padding gets attention exactly 0, and finished sentences leave the batch. The
arithmetic is not: a batch of another shape may run other kernel blocking, and two candidates
whose scores are a few float32 ulps apart can be ranked either way (seen on an Intel Xeon with
AVX-512: -7.1300154 vs -7.1300163 alone, one rounded value in the batch). So the property is
tested where it holds exactly:

- in float64 (rounding error ~1e-16), for every cell, every attention and every search method
  with every penalty: the same hypotheses, and scores to 1e-9;
- in float32, on the sentences whose decisions all had a clear margin (the search reports, per
  sentence, the smallest gap between two scores it compared): the same hypotheses there, and at
  least half of the sentences must qualify, so the check cannot pass empty;
- CPU against CUDA the same two ways (skipped without CUDA).
"""

from __future__ import annotations

import math

import pytest
import torch

from nmt import NmtError
from nmt.config import Attention, Cell, DataConfig, LengthPenalty, ModelConfig, SearchConfig, SearchMethod
from nmt.data.files import data_path, read_lines
from nmt.data.tokenizer import PAD, Tokenizer, train_sentencepiece
from nmt.model.seq2seq import Seq2Seq
from nmt.search import Hypothesis, search
from nmt.translator import decode_ids
from tests.helpers import tiny_model_config

# float32 decisions closer than this are treated as ties: float32 scores of these models differ
# between batch shapes by ~1e-6 (sums of ~15 log-probabilities of size ~3, each good to ~1e-7)
CLEAR = 1e-3


def cfg(method: str, **kw: object) -> SearchConfig:
    base: dict[str, object] = dict(method=SearchMethod(method), max_len_a=1.5, max_len_b=4)
    base.update(kw)
    if isinstance(base.get("length_penalty"), str):
        base["length_penalty"] = LengthPenalty(base["length_penalty"])
    return SearchConfig(**base)  # type: ignore[arg-type]


SEARCHES = {
    "greedy": cfg("greedy"),
    "greedy-minlen-norepeat": cfg("greedy", min_len=2, no_repeat_ngram=2),
    "beam-none": cfg("beam", beam_size=4, length_penalty="none"),
    "beam-average-nbest": cfg("beam", beam_size=4, nbest=3, length_penalty="average"),
    "beam-gnmt-nbest": cfg("beam", beam_size=4, nbest=2, length_penalty="gnmt", alpha=0.8),
    "beam-coverage-norepeat": cfg("beam", beam_size=3, coverage_penalty=0.2, no_repeat_ngram=2),
    "beam-minlen": cfg("beam", beam_size=5, min_len=3, length_penalty="gnmt"),
    "sample": cfg("sample", seed=11),
    "sample-topk-hot": cfg("sample", seed=12, top_k=4, temperature=1.7),
}


def tiny_model(seed: int, dtype: torch.dtype = torch.float64, **kw: object) -> Seq2Seq:
    """A random model with large weights (init 0.5), so that its distributions are far from flat."""
    torch.manual_seed(seed)
    mc = ModelConfig(
        emb_dim=16,
        enc_hidden=8,
        enc_layers=1,
        dec_hidden=16,
        dec_layers=2,
        dropout=0.0,
        emb_dropout=0.0,
        init_range=0.5,
    )
    for k, v in kw.items():
        setattr(mc, k, v)
    return Seq2Seq(mc, 30, 12).to(dtype).eval()


def random_batch(seed: int, n: int, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lens = torch.randint(1, max_len + 1, (n,), generator=g)
    src = torch.randint(4, 30, (n, max_len), generator=g)  # (batch, src_len)
    src[torch.arange(max_len).unsqueeze(0) >= lens.unsqueeze(1)] = PAD
    return src[:, : int(lens.max())], lens


def searched(
    model: Seq2Seq, src: torch.Tensor, lens: torch.Tensor, c: SearchConfig, keys: torch.Tensor | None = None
) -> tuple[list[list[Hypothesis]], torch.Tensor]:
    """Hypotheses and the decision margin of each sentence."""
    margins = torch.full((src.size(0),), math.inf, dtype=torch.float64)
    return search(model, src, lens, c, keys=keys, margins=margins), margins


def alone_and_together(
    model: Seq2Seq, src: torch.Tensor, lens: torch.Tensor, c: SearchConfig
) -> list[tuple[list[Hypothesis], list[Hypothesis], float]]:
    """(alone, in the batch, the smaller of the two margins) for every sentence of the batch."""
    together, m_together = searched(model, src, lens, c)
    out = []
    for i in range(len(lens)):
        n = int(lens[i])
        alone, m_alone = searched(model, src[i : i + 1, :n], lens[i : i + 1], c, keys=torch.tensor([i]))
        out.append((alone[0], together[i], min(float(m_alone[0]), float(m_together[i]))))
    return out


def assert_same(a: list[Hypothesis], b: list[Hypothesis], tol: float) -> None:
    assert [h.tokens for h in a] == [h.tokens for h in b]
    assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=tol)
    assert [h.log_prob for h in a] == pytest.approx([h.log_prob for h in b], abs=tol)


# --------------------------------------------------------------------------- float64: exactly


@pytest.mark.parametrize("search_name", list(SEARCHES))
@pytest.mark.parametrize("attention", [a.value for a in Attention])
@pytest.mark.parametrize("cell", [c.value for c in Cell])
def test_float64_a_sentence_translates_alike_alone_and_in_a_batch(
    cell: str, attention: str, search_name: str
) -> None:
    model = tiny_model(3, cell=Cell(cell), attention=Attention(attention))
    src, lens = random_batch(7, 12, 10)
    assert len(set(lens.tolist())) > 4  # short sentences sit in a batch of longer ones
    for alone, together, _ in alone_and_together(model, src, lens, SEARCHES[search_name]):
        assert_same(alone, together, 1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float64_beam_one_equals_greedy(seed: int) -> None:
    model = tiny_model(seed)
    src, lens = random_batch(seed, 24, 9)
    c = dict(max_len_a=1.0, max_len_b=5)
    greedy = search(model, src, lens, cfg("greedy", **c))
    beam = search(model, src, lens, cfg("beam", beam_size=1, length_penalty="none", **c))
    for g, b in zip(greedy, beam):
        assert b[0].tokens == g[0].tokens
        assert b[0].log_prob == pytest.approx(g[0].log_prob, abs=1e-9)


def test_float64_scores_are_float64() -> None:
    model = tiny_model(0)
    src, lens = random_batch(0, 4, 6)
    h = search(model, src, lens, cfg("beam"))[0][0]
    # the model's own log-probability of the hypothesis, summed in float64, to float64 precision
    with torch.no_grad():
        mem, state = model.encode(src[:1, : int(lens[0])], lens[:1])
    total, tok = 0.0, torch.tensor([2])
    for nxt in [*h.tokens, 3]:
        with torch.no_grad():
            lp, state, _ = model.decode_step(tok, state, mem)
        assert lp.dtype == torch.float64
        total += float(lp[0, nxt])
        tok = torch.tensor([nxt])
    assert h.log_prob == pytest.approx(total, abs=1e-12)


# --------------------------------------------------------------------------- float32: where the margin is clear


@pytest.mark.parametrize("search_name", ["greedy", "beam-gnmt-nbest", "beam-coverage-norepeat", "sample"])
@pytest.mark.parametrize("cell", [c.value for c in Cell])
def test_float32_a_sentence_translates_alike_alone_and_in_a_batch_where_the_margin_is_clear(
    cell: str, search_name: str
) -> None:
    model = tiny_model(3, torch.float32, cell=Cell(cell))
    src, lens = random_batch(7, 12, 10)
    results = alone_and_together(model, src, lens, SEARCHES[search_name])
    clear = [(a, t) for a, t, margin in results if margin > CLEAR]
    assert len(clear) >= len(results) // 2, [round(m, 6) for _, _, m in results]
    for alone, together in clear:
        assert_same(alone, together, 1e-4)


# --------------------------------------------------------------------------- real sentences


@pytest.fixture(scope="module")
def real_sentences(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tokenizer, list[list[int]]]:
    """A SentencePiece model on 2,000 English lines of small_parallel_enja, and 40 encoded test lines."""
    try:
        folder = data_path(DataConfig(name="x", corpus="x"), "small_parallel_enja")
    except NmtError:  # no corpus folder on this machine
        pytest.skip("small_parallel_enja is not available")
    if not (folder / "train.en").is_file():
        pytest.skip("small_parallel_enja is not available")
    tmp = tmp_path_factory.mktemp("real_spm")
    text = tmp / "train.en"
    text.write_text("".join(line + "\n" for line in read_lines(folder / "train.en")[:2000]), encoding="utf-8")
    tok = Tokenizer.load(
        train_sentencepiece(
            [text],
            tmp / "spm",
            vocab_size=300,
            model_type="unigram",
            character_coverage=1.0,
            input_sentence_size=2000,
        )
    )
    return tok, tok.encode(read_lines(folder / "test.en")[:40])


@pytest.mark.parametrize(
    "search_cfg",
    [
        cfg("greedy", max_len_a=0.5, max_len_b=3),
        cfg("beam", beam_size=5, nbest=2, max_len_a=0.5, max_len_b=3, length_penalty="gnmt"),
        cfg("sample", max_len_a=0.5, max_len_b=3, seed=3),
    ],
    ids=["greedy", "beam", "sample"],
)
def test_float64_real_sentences_translate_alike_alone_and_batched(
    real_sentences: tuple[Tokenizer, list[list[int]]], search_cfg: SearchConfig
) -> None:
    tok, ids = real_sentences
    torch.manual_seed(5)
    cfg_ = tiny_model_config(init_range=0.3, enc_layers=2, dec_layers=2)
    model = Seq2Seq(cfg_, len(tok), 40).double().eval()
    together = decode_ids(model, ids, search_cfg, torch.device("cpu"), batch_size=400)
    assert len({len(s) for s in ids}) > 5  # the batch really mixes lengths
    for k, (seq, got) in enumerate(zip(ids, together)):
        [alone] = decode_ids(model, [seq], search_cfg, torch.device("cpu"), keys=[k])
        assert_same(alone, got, 1e-9)


# --------------------------------------------------------------------------- CPU and CUDA


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", ["greedy", "beam", "sample"])
def test_cuda_search_equals_cpu_search(method: str) -> None:
    c = cfg(method, beam_size=4, nbest=2 if method == "beam" else 1, max_len_a=1.0, max_len_b=4)
    src, lens = random_batch(9, 16, 8)
    # float64: the same hypotheses everywhere
    model = tiny_model(4)
    on_cpu = search(model, src, lens, c)
    on_gpu = search(model.cuda(), src.cuda(), lens, c)
    for a, b in zip(on_cpu, on_gpu):
        assert_same(a, b, 1e-9)
    # float32: the same where both searches decided with a clear margin
    model = tiny_model(4, torch.float32)
    on_cpu, m_cpu = searched(model, src, lens, c)
    on_gpu, m_gpu = searched(model.cuda(), src.cuda(), lens, c)
    clear = [i for i in range(len(lens)) if min(float(m_cpu[i]), float(m_gpu[i])) > CLEAR]
    assert len(clear) >= len(lens) // 2
    for i in clear:
        assert_same(on_cpu[i], on_gpu[i], 1e-4)
