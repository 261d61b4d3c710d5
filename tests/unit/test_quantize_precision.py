"""int8 inference (nmt.model.quantize) and the choice of precision (nmt.runtime)."""

from __future__ import annotations

import json

import pytest
import torch

from nmt import NmtError
from nmt import runtime as rt
from nmt.config import Cell, Precision, Quantize, SearchConfig, SearchMethod
from nmt.data.batching import pad
from nmt.data.tokenizer import BOS
from nmt.model.quantize import quantize_int8
from nmt.model.seq2seq import Seq2Seq
from nmt.search import search
from nmt.translator import Options, Translator
from tests.helpers import tiny_model_config

CPU = torch.device("cpu")


def tiny(cell: Cell = Cell.lstm, **kw: object) -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(
        tiny_model_config(cell=cell, enc_layers=2, dec_layers=2, init_range=0.3, **kw), 30, 25
    ).eval()


@pytest.mark.parametrize("cell", list(Cell))
@pytest.mark.parametrize("tied", [False, True])
def test_int8_model_computes_what_the_float_model_does(cell: Cell, tied: bool) -> None:
    m = tiny(cell, tie_embeddings=tied)
    q = quantize_int8(m, CPU)
    assert any("Quantized" in type(mod).__name__ for mod in q.modules())
    src = pad([[5, 6, 7, 8], [9, 10]])
    lens = torch.tensor([4, 2])
    with torch.inference_mode():
        mem_f, st_f = m.encode(src, lens)
        mem_q, st_q = q.encode(src, lens)
        tok = torch.full((2,), BOS)
        for _ in range(4):
            lp_f, st_f, _ = m.decode_step(tok, st_f, mem_f)
            lp_q, st_q, _ = q.decode_step(tok, st_q, mem_q)
            # int8 weights: log-probabilities close to, not equal to, the float ones
            assert (lp_f - lp_q).abs().max() < 0.1
            tok = lp_f.argmax(-1)
    assert type(m.output).__name__ == "Linear"  # the float model is left as it was


def test_int8_search_runs_every_method() -> None:
    q = quantize_int8(tiny(), CPU)
    src, lens = pad([[5, 6, 7], [8]]), torch.tensor([3, 1])
    for method in SearchMethod:
        out = search(q, src, lens, SearchConfig(method=method, beam_size=3, max_len_a=0.0, max_len_b=5))
        assert len(out) == 2 and all(h[0].log_prob <= 0 for h in out)


def test_int8_is_refused_on_a_gpu_and_with_bf16() -> None:
    with pytest.raises(NmtError, match="CPU only"):
        quantize_int8(tiny(), torch.device("cuda"))


def test_auto_precision_follows_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(rt, "cpu_flags", lambda: {"avx2", "avx512f"})
    assert rt.autocast_dtype(Precision.auto, cpu) is None
    assert "no native bf16" in rt.describe_precision(Precision.auto, cpu)
    monkeypatch.setattr(rt, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert rt.autocast_dtype(Precision.auto, cpu) == torch.bfloat16
    assert (
        rt.describe_precision(Precision.auto, cpu) == "bfloat16 autocast (precision=auto: AVX512-BF16 found)"
    )
    monkeypatch.setattr(rt, "cpu_flags", lambda: {"amx_bf16", "amx_tile", "avx512_bf16"})
    assert "AMX-BF16" in rt.describe_precision(Precision.auto, cpu)
    assert rt.autocast_dtype(Precision.fp32, cpu) is None  # an explicit choice is kept
    assert rt.autocast_dtype(Precision.bf16, cpu) == torch.bfloat16


def test_translator_decodes_in_its_precision(toy_tokenizers: tuple) -> None:
    m = Seq2Seq(tiny_model_config(init_range=0.3), len(toy_tokenizers[0]), len(toy_tokenizers[1])).eval()
    cfg = SearchConfig(method=SearchMethod.greedy, max_len_a=0.0, max_len_b=5)
    lines = ["red cat big", "blue dog"]
    texts = {}
    for p in (Precision.fp32, Precision.bf16):
        tr = Translator(m, toy_tokenizers[0], toy_tokenizers[1], cfg, CPU, Options(precision=p))
        out = tr.translate_detailed(lines)
        texts[p] = [t.text for t in out]
        assert all(t.score is not None for t in out)
    assert len(texts[Precision.bf16]) == 2
    tr = Translator(m, toy_tokenizers[0], toy_tokenizers[1], cfg, CPU, Options(quantize=Quantize.int8))
    with tr.autocast():  # an int8 model never runs under bf16 autocast
        assert not torch.is_autocast_enabled("cpu")


def test_the_decoder_step_can_be_captured_in_one_graph() -> None:
    """fullgraph=True: the whole step traces without a break (the eager backend keeps the test fast;
    inductor and CUDA graphs compile the same graph)."""
    from nmt.model.capture import CapturedModel

    torch._dynamo.reset()
    m = tiny()
    captured = CapturedModel(m, CPU, backend="eager")
    src, lens = pad([[5, 6, 7, 8], [9, 10]]), torch.tensor([4, 2])
    for method in (SearchMethod.greedy, SearchMethod.beam):
        c = SearchConfig(method=method, beam_size=3, max_len_a=0.0, max_len_b=6)
        want = search(m, src, lens, c)
        got = search(captured, src, lens, c)
        assert [h[0].tokens for h in got] == [h[0].tokens for h in want]
        assert [h[0].score for h in got] == pytest.approx([h[0].score for h in want], abs=1e-5)


# ----------------------------------------------------------------------------- decoding's auto


def _timer(times: dict) -> object:
    """A stand-in for step_seconds: fixed seconds per dtype, and a record of the calls."""
    calls = []

    def timer(
        model: object, dtype: torch.dtype | None, sentences: int, beam: int, device: torch.device
    ) -> float:
        calls.append((dtype, sentences, beam))
        return times[dtype]

    timer.calls = calls
    return timer


@pytest.mark.parametrize(
    ("bf16_ms", "want"),
    [(0.5, torch.bfloat16), (0.88, torch.bfloat16), (0.95, None), (1.4, None)],
)
def test_auto_decodes_in_bf16_only_where_it_is_clearly_faster(
    monkeypatch: pytest.MonkeyPatch, bf16_ms: float, want: torch.dtype | None
) -> None:
    from nmt.search import precision as pr

    monkeypatch.setattr(pr, "native_bf16", lambda device: "AVX512-BF16")
    timer = _timer({None: 1e-3, torch.bfloat16: bf16_ms * 1e-3})
    c = pr.choose(tiny(), CPU, 8, 5, timer=timer)
    assert c.dtype == want
    assert "decoder step at 40 rows: bf16" in c.why and "fp32 1.00 ms" in c.why
    assert {call[0] for call in timer.calls} == {None, torch.bfloat16}  # both timed, at 8 x 5 rows
    assert all(call[1:] == (8, 5) for call in timer.calls)


def test_auto_times_nothing_without_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    from nmt.search import precision as pr

    monkeypatch.setattr(pr, "native_bf16", lambda device: None)

    def never(*args: object) -> float:
        raise AssertionError("no probe on a CPU without native bf16")

    c = pr.choose(tiny(), CPU, 8, 5, timer=never)
    assert c.dtype is None and "no native bf16" in c.why


def test_the_probe_times_a_real_step() -> None:
    from nmt.search.precision import step_seconds

    m = tiny()
    for dtype in (None, torch.bfloat16):
        assert 0 < step_seconds(m, dtype, 3, 2, CPU, steps=2) < 10


def test_the_translator_decides_once_at_its_batch_rows(
    monkeypatch: pytest.MonkeyPatch, toy_tokenizers: tuple
) -> None:
    """auto: probed once, at beam x sentences per batch, the choice said and used; an explicit
    precision, an int8 model and a batch with nothing to decode never probe."""
    from nmt.search import precision as pr

    m = Seq2Seq(tiny_model_config(init_range=0.3), len(toy_tokenizers[0]), len(toy_tokenizers[1])).eval()
    cfg = SearchConfig(method=SearchMethod.beam, beam_size=3, max_len_a=0.0, max_len_b=5)
    monkeypatch.setattr(pr, "native_bf16", lambda device: "AMX-BF16")
    timer = _timer({None: 2e-3, torch.bfloat16: 1e-3})
    monkeypatch.setattr(pr, "step_seconds", timer)
    tr = Translator(m, *toy_tokenizers, cfg, CPU, Options(max_sentences=4, workers=1))
    assert tr.translate([""]) == [""]
    assert timer.calls == [] and tr.decided_precision() is None  # nothing decoded: nothing timed
    tr.translate(["red cat big", "blue dog"])
    tr.translate(["red cat"])
    assert {call[1:] for call in timer.calls} == {(4, 3)}
    assert len(timer.calls) == 4  # two rounds of both, once
    assert tr.decided_precision() is tr.precision() and tr.precision().dtype == torch.bfloat16
    assert tr.precision().why == (
        "bfloat16 autocast (precision=auto: AMX-BF16 found; decoder step at 12 rows: bf16 1.00 ms, fp32 2.00 ms)"
    )
    with tr.autocast():
        assert torch.is_autocast_enabled("cpu")
    for options in (
        Options(precision=Precision.fp32),
        Options(precision=Precision.bf16),
        Options(quantize=Quantize.int8),
    ):
        timer.calls.clear()
        t = Translator(m, *toy_tokenizers, cfg, CPU, options)
        t.translate(["red cat"])
        assert timer.calls == []


def test_a_choice_is_remembered_per_machine_model_and_rows(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    """The same model and rows: measured once, then read back (same arithmetic, same bits, no
    probe); other rows or another model shape: measured; a broken file: measured, no error."""
    from nmt.search import precision as pr

    monkeypatch.setenv("NMT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(pr, "native_bf16", lambda device: "AVX512-BF16")
    timer = _timer({None: 2e-3, torch.bfloat16: 1e-3})
    monkeypatch.setattr(pr, "step_seconds", timer)
    m = tiny()
    first = pr.remembered(m, CPU, 8, 5)
    assert first.dtype == torch.bfloat16 and len(timer.calls) == 4
    again = pr.remembered(m, CPU, 8, 5)
    assert again.dtype == torch.bfloat16 and len(timer.calls) == 4  # not timed again
    assert again.why.startswith(first.why) and "remembered from" in again.why
    timer.calls.clear()
    monkeypatch.setattr(pr, "step_seconds", _timer({None: 1e-3, torch.bfloat16: 1e-3}))
    assert pr.remembered(m, CPU, 8, 5).dtype == torch.bfloat16  # still what was measured
    assert pr.remembered(m, CPU, 1, 5).dtype is None  # other rows: measured now (a tie: fp32)
    assert pr.remembered(tiny(tie_embeddings=True), CPU, 8, 5).dtype is None  # another model shape
    pr.cache_file().write_text("{not json", encoding="utf-8")
    assert pr.remembered(m, CPU, 8, 5).dtype is None  # measured again, and written back whole
    assert len(json.loads(pr.cache_file().read_text(encoding="utf-8"))) == 1
