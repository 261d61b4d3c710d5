"""The classic RNN pieces: the simple RNN cell, char-rnn (training, sampling, cells over text),
gradients through time, and pictures with Japanese in them."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nmt import NmtError
from nmt.config import Cell, LMConfig, LMTrainConfig
from nmt.introspect.activations import bracket_depth, follow, html, inside_quotes, line_position
from nmt.introspect.gradients import Recurrent, Task, gradient_profile
from nmt.lm import CharLM, CharVocab, load_lm, sample, save_lm, train_lm
from nmt.model.cells import RNNCell, run_stack, stack_weights


def test_rnn_cell_is_elmans_tanh_step() -> None:
    """h' = tanh(W x + U h + b): the cell equals torch's nn.RNNCell with the same weights."""
    torch.manual_seed(0)
    cell = RNNCell(0, 6, 5)
    ref = nn.RNNCell(6, 5, nonlinearity="tanh")
    with torch.no_grad():
        ref.weight_ih.copy_(cell.w_step[:, :6])
        ref.weight_hh.copy_(cell.w_step[:, 6:])
        ref.bias_ih.copy_(cell.bias)
        ref.bias_hh.zero_()
    x, h = torch.randn(3, 6), torch.randn(3, 5)
    out, c = cell(None, x, h, None)
    assert c is None
    torch.testing.assert_close(out, ref(x, h))


@pytest.mark.parametrize("cell", list(Cell))
def test_fused_stack_runs_like_the_cells_step_by_step(cell: Cell) -> None:
    """run_stack (one nn.LSTM/GRU/RNN call for a stack of nmt cells) = the cells, step by step."""
    torch.manual_seed(1)
    model = CharLM(LMConfig(cell=cell, emb_dim=7, hidden=6, layers=2, dropout=0.0), 11).double().eval()
    x = torch.randint(1, 11, (2, 9))
    h, c = model.start(2, torch.device("cpu"))
    h, c = h.double(), None if c is None else c.double()
    fused, h1, c1 = run_stack(model.cells, model.embed(x), h, c, 0.0, False)  # (2, 9, 6)
    hs, cs = list(h.unbind(0)), list(c.unbind(0)) if c is not None else [None, None]
    for t in range(9):
        inp = None
        for k, layer in enumerate(model.cells):
            pre = layer.project(model.embed(x[:, t])) if k == 0 else None
            hs[k], cs[k] = layer(pre, inp, hs[k], cs[k])
            inp = hs[k]
        torch.testing.assert_close(fused[:, t], hs[-1])
    torch.testing.assert_close(h1, torch.stack(hs))
    assert len(stack_weights(model.cells, 6)) == 8  # W_ih, W_hh, b_ih, b_hh per layer


# ----------------------------------------------------------------------------- char-rnn

PERIODIC = "the cat (sat) on the mat. " * 400  # 10,400 characters with one period of 26


def tiny_lm(tmp_path: Path, cell: Cell = Cell.lstm, steps: int = 150) -> dict:
    return train_lm(
        PERIODIC,
        LMConfig(cell=cell, emb_dim=16, hidden=48, layers=1, dropout=0.0),
        LMTrainConfig(seq_len=26, batch=8, lr=0.01, max_time=0, max_steps=steps, eval_every=50, seed=3),
        tmp_path,
        torch.device("cpu"),
    )


def test_char_lm_learns_a_periodic_text_and_samples_it(tmp_path: Path) -> None:
    summary = tiny_lm(tmp_path)
    uniform = math.log2(len(set(PERIODIC)) + 1)
    assert summary["best_valid_bpc"] < 0.3 < uniform  # it predicts the text almost surely
    model, vocab, ckpt = load_lm(tmp_path / "lm.pt", torch.device("cpu"))
    assert ckpt["metrics"]["best_valid_bpc"] == pytest.approx(summary["best_valid_bpc"])
    text = sample(model, vocab, "the cat (", 60, temperature=0.2)
    assert text.startswith("the cat (sat) on the mat. the cat (sat)")
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 3


def test_a_non_finite_gradient_skips_the_update(tmp_path: Path, monkeypatch, caplog) -> None:
    """One step whose loss is NaN: without the skip Adam writes NaN into every weight it touches
    and every later step and the saved model stay NaN."""
    calls = {"n": 0}
    cross_entropy = F.cross_entropy

    def poisoned(*args, **kwargs) -> torch.Tensor:
        calls["n"] += 1
        loss = cross_entropy(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr("nmt.lm.F.cross_entropy", poisoned)
    with caplog.at_level(logging.WARNING, logger="nmt.lm"):
        summary = tiny_lm(tmp_path, steps=100)
    assert "step 3: gradient norm nan, update skipped" in caplog.text
    assert math.isfinite(summary["best_valid_bpc"]) and summary["best_valid_bpc"] < 1.5
    model, _, _ = load_lm(tmp_path / "lm.pt", torch.device("cpu"))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_sampling_is_seeded_and_temperature_spreads_it(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = CharLM(LMConfig(hidden=16, emb_dim=8, layers=1, dropout=0.0), 12).eval()
    vocab = CharVocab(["\ufffd", *"abcdefghijk"])
    a = sample(model, vocab, "ab", 200, temperature=1.0, seed=5)
    assert a == sample(model, vocab, "ab", 200, temperature=1.0, seed=5)
    assert a != sample(model, vocab, "ab", 200, temperature=1.0, seed=6)
    assert "\ufffd" not in a  # the unknown character is never drawn
    cold, hot = (sample(model, vocab, "ab", 400, temperature=t, seed=5)[2:] for t in (0.05, 5.0))
    assert len(set(cold)) < len(set(hot))  # near-greedy repeats a few characters; hot uses them all


def test_a_translation_checkpoint_is_not_a_language_model(tmp_path: Path) -> None:
    from nmt.model.io import save_checkpoint

    save_checkpoint(tmp_path / "x.pt", {"kind": "nmt", "model": {}})
    with pytest.raises(NmtError, match="not a character language model"):
        load_lm(tmp_path / "x.pt", torch.device("cpu"))
    model = CharLM(LMConfig(hidden=8, emb_dim=4, layers=1), 5)
    save_lm(tmp_path / "lm.pt", model, CharVocab(list("\ufffdabcd")), {})
    ck = torch.load(tmp_path / "lm.pt", weights_only=True)
    del ck["model"]["output.weight"]
    save_checkpoint(tmp_path / "bad.pt", ck)
    with pytest.raises(NmtError, match="damaged language model"):
        load_lm(tmp_path / "bad.pt", torch.device("cpu"))


# ----------------------------------------------------------------------------- cells over text


def test_features_of_the_text() -> None:
    assert inside_quotes('a "bc" d') == [0, 0, 1, 1, 1, 1, 0, 0]
    assert bracket_depth("a(b[c])d") == [0, 1, 1, 2, 2, 2, 1, 0]  # closing brackets count as inside
    assert line_position("ab\ncd") == [0, 1, 2, 0, 1]


def test_follow_finds_the_unit_that_tracks_the_feature() -> None:
    text = 'he said "yes" and (then) "no, not (that)" and left.\n' * 20
    g = torch.Generator().manual_seed(0)
    acts = torch.randn(len(text), 30, generator=g)  # (steps, units)
    acts[:, 17] = torch.tensor(inside_quotes(text)) + 0.3 * torch.randn(len(text), generator=g)
    acts[:, 4] = -torch.tensor(bracket_depth(text)) + 0.3 * torch.randn(len(text), generator=g)
    r = follow(acts, text, "quotes")
    assert int(r.abs().argmax()) == 17 and float(r[17]) > 0.8
    r = follow(acts, text, "brackets")
    assert int(r.abs().argmax()) == 4 and float(r[4]) < -0.8
    with pytest.raises(NmtError, match="choose one of"):
        follow(acts, text, "vowels")


def test_html_colours_every_character_and_escapes_it() -> None:
    page = html("a<b>\nc", [-1.0, 0.0, 1.0, 0.5, 0.2, 0.0], "unit 3", ["unit 3: r = +0.9"])
    assert page.count("<span") == 6 and "&lt;" in page and "<b>" not in page.split("<p>")[1]


# ----------------------------------------------------------------------------- gradients through time


def test_gradients_vanish_in_a_contractive_rnn_and_not_in_an_lstm() -> None:
    task = Task(steps=30)
    x, y = task.batch(64, torch.Generator().manual_seed(0))
    ratio = {}
    for kind, gain in (("rnn", 0.5), ("rnn", 2.0), ("lstm", 1.0)):
        torch.manual_seed(0)
        prof = gradient_profile(Recurrent(kind, task, hidden=32, recurrent_scale=gain), x, y)
        assert len(prof) == 30
        ratio[kind, gain] = prof[0] / prof[-1]  # the first step's gradient over the last one's
    assert ratio["rnn", 0.5] < 1e-4  # vanishes geometrically
    assert ratio["lstm", 1.0] > 100 * ratio["rnn", 0.5]
    assert ratio["rnn", 2.0] > ratio["rnn", 0.5] * 1e4  # an expanding RNN keeps (or grows) it


@pytest.mark.slow
def test_the_gradients_recipe_writes_its_figures(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "nmt.introspect.gradients", "--out", str(tmp_path), "--steps", "12",
           "--train-steps", "60"]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    for name in ("gradients_through_time.png", "training_with_and_without_clipping.png", "results.json"):
        assert (tmp_path / name).stat().st_size > 1000 or name == "results.json"


# ----------------------------------------------------------------------------- Japanese in pictures


def glyph_warnings(family: list[str] | None) -> list[str]:
    import matplotlib.pyplot as plt

    from nmt.introspect.plotting import japanese_rc

    rc = japanese_rc()
    if family is not None:
        rc = {**rc, "font.family": family}
    with warnings.catch_warnings(record=True) as caught, plt.rc_context(rc):
        warnings.simplefilter("always")
        fig, ax = plt.subplots()
        ax.set_title("駅はどこですか。 Where is the station?")
        ax.set_xticks([0, 1], ["東京", "カタカナ"])
        fig.canvas.draw()
        plt.close(fig)
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def test_japanese_is_drawn_with_a_font_that_has_it() -> None:
    assert glyph_warnings(["DejaVu Sans"])  # the check can fail: the default font lacks kana
    assert glyph_warnings(None) == []


def test_attention_heatmap_png(tmp_path: Path) -> None:
    from nmt.introspect.plotting import plot_attention

    att = torch.softmax(torch.randn(4, 3), dim=1)
    plot_attention(["where", "station", "?"], ["駅", "は", "どこ", "?"], att, str(tmp_path / "a.png"), "test")
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
