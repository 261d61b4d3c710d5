"""nmt.model.bptt: the hand-written backpropagation through time equals autograd's.

``DecoderLoop`` replaces autograd over the input-feeding decoder's step loop in training. Every
check runs the same model twice from the same seed, once through the loop (``explicit_bptt``)
and once through autograd (``explicit_bptt = False``), in float64 so that rounding cannot hide a
wrong term: the outputs, the loss and the gradient of every parameter must agree to 1e-10,
dropout included (both draw the same masks), and padding in the source must get no gradient.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from nmt.config import Attention, Cell
from nmt.data.tokenizer import PAD
from nmt.model.bptt import DecoderLoop
from tests.unit.test_seq2seq import config, data, model

CASES = list(itertools.product([Attention.luong_general, Attention.luong_dot], [1, 2, 3], [0.0, 0.3]))
CASE_IDS = [f"{a.value}-{n}layers-drop{p}" for a, n, p in CASES]


def run(m: torch.nn.Module, explicit: bool, seed: int, *batch: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Loss (label smoothing 0.1) and every parameter's gradient, with dropout drawn from ``seed``."""
    m.decoder.explicit_bptt = explicit
    m.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    loss, _ = m(*batch, 0.1)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}


def dot_config(layers: int, p: float):
    # dot attention needs the decoder size to equal the memory's (2 x enc_hidden)
    return config(
        Attention.luong_dot, dec_hidden=16, enc_hidden=8, dec_layers=layers, dropout=p, emb_dropout=p
    )


@pytest.mark.parametrize(("attention", "layers", "p"), CASES, ids=CASE_IDS)
def test_gradients_equal_autograd(attention: Attention, layers: int, p: float) -> None:
    cfg = (
        dot_config(layers, p)
        if attention == Attention.luong_dot
        else config(attention, dec_layers=layers, dropout=p, emb_dropout=p)
    )
    m = model(cfg).double().train()
    src, src_lens, tgt_in = data([6, 4, 1, 5], tgt_len=7)
    tgt_out = torch.roll(tgt_in, -1, 1)
    tgt_out[1, 5:] = PAD  # padded targets: no loss, no gradient
    batch = (src, src_lens, tgt_in, tgt_out)
    assert m.decoder.loop_applies(m.decoder.embed_inputs(tgt_in), m.encode(src, src_lens)[1])
    loss_a, grads_a = run(m, False, 7, *batch)
    loss_b, grads_b = run(m, True, 7, *batch)
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-12, atol=0)
    assert grads_a.keys() == grads_b.keys()
    assert len(grads_a) == len(list(m.parameters()))  # every parameter took part
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-10, atol=1e-12, msg=name)


def test_dropout_changes_the_result_and_the_seed_repeats_it() -> None:
    """The equality above is not dropout switched off: other seeds give other losses."""
    m = model(config(dropout=0.3, emb_dropout=0.0)).double().train()
    src, src_lens, tgt_in = data([5, 3], tgt_len=6)
    batch = (src, src_lens, tgt_in, torch.roll(tgt_in, -1, 1))
    first, _ = run(m, True, 1, *batch)
    again, _ = run(m, True, 1, *batch)
    other, _ = run(m, True, 2, *batch)
    assert torch.equal(first, again)
    assert abs(float(first - other)) > 1e-6


def test_gradcheck_of_the_loop() -> None:
    """Finite differences against the loop's backward, every input at once (no dropout)."""
    g = torch.Generator().manual_seed(3)
    B, T, H, S, L = 3, 4, 5, 6, 2
    f64 = dict(dtype=torch.float64)
    r = lambda *s: (0.5 * torch.randn(*s, generator=g, **f64)).requires_grad_()  # noqa: E731
    valid = torch.ones(B, S, dtype=torch.bool)
    valid[1, 4:] = False
    valid[2, 1:] = False
    params = [r(4 * H, 2 * H), r(4 * H, 2 * H), r(4 * H)]
    inputs = (r(B, T, 4 * H), r(L, B, H), r(L, B, H), r(B, H), r(B, S, H), r(B, S, H), valid, r(H, 2 * H))
    fn = lambda *a: DecoderLoop.apply(*a[:8], 0.0, True, *a[8:])  # noqa: E731
    assert torch.autograd.gradcheck(fn, (*inputs, *params), eps=1e-6, atol=1e-7)


def test_padding_gets_no_gradient() -> None:
    m = model(config()).double().train()
    src, src_lens, tgt_in = data([6, 2], tgt_len=5)
    mem, state = m.encode(src, src_lens)
    values = mem.values.detach().requires_grad_()
    keys = mem.keys.detach().requires_grad_()
    out = DecoderLoop.apply(
        m.decoder.embed_inputs(tgt_in), state.h, state.c, state.feed, values, keys, mem.mask,
        m.decoder.combine.weight, 0.0, True, *[m.decoder.cells[0].w_step, m.decoder.cells[1].w_step,
                                               m.decoder.cells[1].bias],
    )  # fmt: skip
    out.sum().backward()
    assert torch.all(values.grad[1, 2:] == 0) and torch.all(keys.grad[1, 2:] == 0)
    assert values.grad[1, :2].abs().sum() > 0 and keys.grad[0].abs().sum() > 0


def test_no_grad_forward_equals_autograd_loop() -> None:
    """Validation's teacher-forced loss runs under no_grad through the same loop."""
    m = model(config())
    src, src_lens, tgt_in = data([6, 4, 1], tgt_len=5)
    with torch.no_grad():
        m.decoder.explicit_bptt = False
        want = m(src, src_lens, tgt_in)
        m.decoder.explicit_bptt = True
        got = m(src, src_lens, tgt_in)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kw",
    [
        dict(attention=Attention.bahdanau),
        dict(attention=Attention.luong_concat),
        dict(cell=Cell.gru),
        dict(cell=Cell.rnn),
        dict(feed=False),
    ],
    ids=["bahdanau", "concat", "gru", "rnn", "no-feeding"],
)
def test_other_decoders_keep_autograd(kw: dict) -> None:
    m = model(config(**kw))
    src, src_lens, tgt_in = data([4, 2], tgt_len=3)
    assert not m.decoder.loop_applies(m.decoder.embed_inputs(tgt_in), m.encode(src, src_lens)[1])


def test_fp16_autocast_and_attention_weights_keep_autograd() -> None:
    m = model(config())
    src, src_lens, tgt_in = data([4, 2], tgt_len=3)
    mem, state = m.encode(src, src_lens)
    pre = m.decoder.embed_inputs(tgt_in)
    assert m.decoder.loop_applies(pre, state)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert m.decoder.loop_applies(m.decoder.embed_inputs(tgt_in), state)
    with torch.autocast("cpu", dtype=torch.float16):
        assert not m.decoder.loop_applies(m.decoder.embed_inputs(tgt_in), state)
    m.decoder.explicit_bptt = False
    assert not m.decoder.loop_applies(pre, state)
    m.decoder.explicit_bptt = True
    _, weights = m.decoder(tgt_in, state, mem, with_attention=True)  # the autograd loop returns them
    assert weights is not None and weights.shape == (2, 3, 4)


def test_bf16_autocast_loop_is_as_accurate_as_autocasts_own() -> None:
    """Under bf16 autocast the loop runs its products in bf16 and the rest in float32. Both it and
    autograd's loop under autocast are compared with the same model in float64 without autocast:
    every gradient within bf16's rounding, and the loop no less accurate than autograd's."""
    m = model(config(Attention.luong_general, dec_layers=2, dropout=0.3, emb_dropout=0.3)).train()
    ref = model(config(Attention.luong_general, dec_layers=2, dropout=0.3, emb_dropout=0.3)).double().train()
    ref.load_state_dict(m.state_dict())
    src, src_lens, tgt_in = data([6, 4, 1, 5], tgt_len=7)
    tgt_out = torch.roll(tgt_in, -1, 1)
    tgt_out[1, 5:] = PAD
    batch = (src, src_lens, tgt_in, tgt_out)
    loss_ref, grads_ref = run(ref, True, 7, *batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert m.decoder.loop_applies(m.decoder.embed_inputs(tgt_in), m.encode(src, src_lens)[1])
        loss_a, grads_a = run(m, False, 7, *batch)
        loss_b, grads_b = run(m, True, 7, *batch)
    assert all(g.dtype == torch.float32 for g in grads_b.values())
    assert abs(float(loss_b) - float(loss_ref)) < 1e-3 * float(loss_ref)

    def error(grads: dict) -> tuple[float, float]:  # (largest relative error of one gradient, overall)
        rel = [float((grads[n].double() - g).norm() / g.norm()) for n, g in grads_ref.items()]
        diff = sum(float((grads[n].double() - g).norm() ** 2) for n, g in grads_ref.items())
        return max(rel), (diff / sum(float(g.norm() ** 2) for g in grads_ref.values())) ** 0.5

    worst_a, overall_a = error(grads_a)  # 1.8e-2 and 4.8e-3 on a Zen 4 (bf16 emulated)
    worst_b, overall_b = error(grads_b)  # 1.2e-2 and 3.1e-3
    assert worst_b < 3e-2 and overall_b < 1.5e-2
    assert overall_b < 1.1 * overall_a


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(attention=Attention.luong_dot, dec_hidden=16, enc_hidden=8),
        dict(attention=Attention.bahdanau),
        dict(attention=Attention.luong_concat),
        dict(cell=Cell.gru),
        dict(feed=False),
    ],
    ids=["general", "dot", "bahdanau", "concat", "gru", "no-feeding"],
)
def test_the_training_log_names_the_loop_that_runs(kw: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """``training_loop`` (the trainer logs it once) says BPTT by hand exactly when DecoderLoop runs,
    and names what it lacks when autograd's step loop runs instead."""
    calls = []
    real = DecoderLoop.apply
    monkeypatch.setattr(DecoderLoop, "apply", lambda *a: calls.append(1) or real(*a))
    m = model(config(**kw)).train()
    src, src_lens, tgt_in = data([4, 2], tgt_len=3)
    m(src, src_lens, tgt_in, torch.roll(tgt_in, -1, 1), 0.1)[0].backward()
    said = m.decoder.training_loop(torch.device("cpu"), torch.float32, autocast=False)
    assert ("BPTT by hand" in said) == bool(calls), said
    if "autograd" in said:
        assert said.split("(")[1].split(";")[0] in {
            "bahdanau attention",
            "luong_concat attention",
            "GRU cells",
        }
    assert m.decoder.training_loop(torch.device("cpu"), torch.bfloat16, autocast=True) == said
    if calls:  # what the loop does not cover is named too
        assert "float16 autocast" in m.decoder.training_loop(
            torch.device("cpu"), torch.float16, autocast=True
        )
        assert "cuda device" in m.decoder.training_loop(torch.device("cuda"), torch.float32, autocast=False)
