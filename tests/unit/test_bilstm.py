"""nmt.model.bilstm: the encoder's hand-written backpropagation through time equals nn.LSTM's.

Every check runs in float64, so that rounding cannot hide a wrong term: the encoder's states,
its final h and c, and the gradient of every parameter and of the embeddings must agree with
``nn.LSTM`` over the same packed batch to 1e-10, whatever the lengths (equal, one word long,
unsorted), for one to three layers; with dropout between layers, against single-layer
``nn.LSTM``s joined by the same dropout draws.
"""

from __future__ import annotations

import pytest
import torch
import torch.utils._python_dispatch
from torch.nn.utils.rnn import pack_padded_sequence

from nmt.data.tokenizer import PAD
from nmt.model.bilstm import BiLSTMLayer, Products, plan
from nmt.model.dropout import dropout
from nmt.model.encoder import Encoder
from nmt.startup import packed_rows

LENGTHS = [[7, 3, 5, 1], [4, 4, 4], [1], [1, 1, 2], [2, 6, 6, 3, 1]]


def encoder(layers: int, p: float = 0.0) -> Encoder:
    torch.manual_seed(0)
    enc = Encoder(vocab=20, emb_dim=6, hidden=5, layers=layers, dropout=p, emb_dropout=0.0, cell="lstm")
    return enc.double().train()


def batch(lens: list[int], seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, 20, (len(lens), max(lens)), generator=g)  # (batch, src_len)
    for r, n in enumerate(lens):
        src[r, n:] = PAD
    return src, torch.tensor(lens)


def run(enc: Encoder, explicit: bool, src: torch.Tensor, lens: torch.Tensor, seed: int = 5) -> tuple:
    """States, final h and c, and every parameter's gradient under a fixed random upstream gradient."""
    enc.explicit_bptt = explicit
    enc.zero_grad(set_to_none=True)
    assert enc.loop_applies(enc.embed(src)) == explicit
    torch.manual_seed(seed)
    states, h, c = enc(src, lens)
    g = torch.Generator().manual_seed(9)
    weights = [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in (states, h, c)]
    sum((t * w).sum() for t, w in zip((states, h, c), weights)).backward()
    grads = {n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None}
    return states.detach(), h.detach(), c.detach(), grads


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("lens", LENGTHS, ids=["-".join(map(str, x)) for x in LENGTHS])
def test_equals_nn_lstm(layers: int, lens: list[int]) -> None:
    enc = encoder(layers)
    src, src_lens = batch(lens)
    *want, grads_want = run(enc, False, src, src_lens)
    *got, grads_got = run(enc, True, src, src_lens)
    for a, b, name in zip(got, want, ("states", "h", "c")):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14, msg=name)
    assert grads_got.keys() == grads_want.keys() == {n for n, _ in enc.named_parameters()}
    for name in grads_want:
        torch.testing.assert_close(grads_got[name], grads_want[name], rtol=1e-10, atol=1e-12, msg=name)
    assert (grads_got["embed.weight"][PAD] == 0).all()  # padding is never read


def test_dropout_between_layers_as_nmt_draws_it() -> None:
    """With dropout: the same as single-layer nn.LSTMs with ``nmt.model.dropout`` between them,
    drawn from the same seed (nn.LSTM's own dropout draws its masks another way)."""
    enc = encoder(3, p=0.4)
    src, src_lens = batch([6, 2, 5, 5])
    states, h, c, grads = run(enc, True, src, src_lens, seed=11)
    one_layer = []
    for k in range(3):
        m = torch.nn.LSTM(6 if k == 0 else 10, 5, bidirectional=True).double()
        for name, p in m.named_parameters():
            p.data.copy_(getattr(enc.rnn, name.replace("l0", f"l{k}")))
        one_layer.append(m)
    torch.manual_seed(11)
    packed = pack_padded_sequence(enc.embed(src), src_lens, batch_first=True, enforce_sorted=False)
    data, hs, cs = packed.data, [], []
    for k, m in enumerate(one_layer):
        if k > 0:
            data = dropout(data, 0.4, True)
        out, (h_k, c_k) = m(packed._replace(data=data))
        data = out.data
        hs.append(h_k)
        cs.append(c_k)
    want_h = enc._join(torch.cat(hs).detach())
    torch.testing.assert_close(h, want_h, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(c, enc._join(torch.cat(cs).detach()), rtol=1e-12, atol=1e-14)
    other, *_ = run(enc, True, src, src_lens, seed=12)
    assert (other - states).abs().max() > 1e-3  # the dropout is real: another seed, other states


def test_plan_of_packed_rows() -> None:
    """Three sentences of lengths 4, 2, 2: steps hold 3, 3, 1, 1 rows."""
    rows = plan(torch.tensor([3, 3, 1, 1]))
    assert rows.offsets == [0, 3, 6, 7, 8]
    # sentence 0 at steps 0..3 is rows 0, 3, 6, 7; sentences 1, 2 at steps 0, 1 are rows 1, 4 and 2, 5
    assert rows.rev.tolist() == [7, 4, 5, 6, 1, 2, 3, 0]
    assert rows.prev.tolist() == [0, 1, 2, 3, 6]
    assert rows.last.tolist() == [7, 4, 5]
    assert torch.equal(rows.rev[rows.rev], torch.arange(8))


def test_gradcheck_of_one_layer() -> None:
    """Finite differences against the layer's backward: input, weights and biases, all outputs."""
    g = torch.Generator().manual_seed(4)
    batch_sizes = torch.tensor([3, 2, 2, 1])
    rows = plan(batch_sizes)
    H, n_in = 3, 4

    def t(*shape: int) -> torch.Tensor:
        return (0.5 * torch.randn(*shape, generator=g, dtype=torch.float64)).requires_grad_()

    params = [
        t(4 * H, n_in),
        t(4 * H, H),
        t(4 * H),
        t(4 * H),
        t(4 * H, n_in),
        t(4 * H, H),
        t(4 * H),
        t(4 * H),
    ]
    x = t(int(batch_sizes.sum()), n_in)
    prod = Products(torch.float64, int(batch_sizes.sum()))
    assert torch.autograd.gradcheck(lambda x, *p: BiLSTMLayer.apply(x, rows, prod, *p), (x, *params))


def test_where_it_applies() -> None:
    enc = encoder(2)
    x = enc.embed(batch([3, 2])[0])
    assert enc.loop_applies(x)
    with torch.no_grad():
        assert not enc.loop_applies(x)  # translating and validating keep nn.LSTM (oneDNN)
    enc.explicit_bptt = False
    assert not enc.loop_applies(x)
    gru = Encoder(vocab=20, emb_dim=6, hidden=5, layers=2, dropout=0.0, emb_dropout=0.0, cell="gru")
    assert not gru.loop_applies(x.float())


def test_gradients_accumulate_over_two_backward_passes() -> None:
    """Gradient accumulation (train.accum_steps, DDP's buckets) adds into each .grad in place: the
    two biases of a direction, whose gradients are equal, must not share one tensor."""
    enc = encoder(2)
    src, src_lens = batch([5, 3, 3])
    once = run(enc, True, src, src_lens)[3]
    enc.zero_grad(set_to_none=True)
    for _ in range(2):
        states, h, c = enc(src, src_lens)
        g = torch.Generator().manual_seed(9)
        sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum() for t in (states, h, c)).backward()
    for name, p in enc.named_parameters():
        torch.testing.assert_close(p.grad, 2 * once[name], rtol=1e-12, atol=1e-14, msg=name)
    assert enc.rnn.bias_ih_l0.grad.data_ptr() != enc.rnn.bias_hh_l0.grad.data_ptr()


def _layer_run(prod: Products, lens: list[int], dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    """One layer over a packed batch of ``lens``: its three outputs and the gradients of its input
    and eight parameters under a fixed random upstream gradient."""
    g = torch.Generator().manual_seed(6)
    batch_sizes = torch.tensor([sum(n > k for n in lens) for k in range(max(lens))])
    rows, H, n_in = plan(batch_sizes), 5, 6
    inputs = [
        (0.5 * torch.randn(*shape, generator=g, dtype=torch.float64)).to(dtype).requires_grad_()
        for shape in [(rows.offsets[-1], n_in)] + [(4 * H, n_in), (4 * H, H), (4 * H,), (4 * H,)] * 2
    ]
    outs = BiLSTMLayer.apply(inputs[0], rows, prod, *inputs[1:])
    weights = [torch.randn(o.shape, generator=g, dtype=torch.float64).to(dtype) for o in outs]
    sum((o * w).sum() for o, w in zip(outs, weights)).backward()
    return [o.detach() for o in outs] + [x.grad for x in inputs]


@pytest.mark.parametrize("lens", LENGTHS, ids=["-".join(map(str, x)) for x in LENGTHS])
def test_products_on_padded_rows_give_the_same_layer(
    lens: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The products over all steps on more rows than the packed batch has (the rows past it zero,
    as ``nmt.startup.packed_rows`` asks under bf16) change no output and no gradient. Fresh
    buffers come filled with NaN, so a row left unset would show."""
    new_empty = torch.Tensor.new_empty

    def nan_filled(self: torch.Tensor, *args, **kwargs) -> torch.Tensor:  # noqa: ANN002, ANN003
        t = new_empty(self, *args, **kwargs)
        return t.fill_(float("nan")) if t.is_floating_point() else t

    n = sum(lens)
    want = _layer_run(Products(torch.float64, n), lens)
    monkeypatch.setattr(torch.Tensor, "new_empty", nan_filled)
    for extra in (1, 13):
        got = _layer_run(Products(torch.float64, n + extra), lens)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("lens", [[7, 3, 5, 1], [1, 1, 1]], ids=["7-3-5-1", "1-1-1"])
def test_bf16_products_on_few_rows_stay_close_to_float64(lens: list[int]) -> None:
    """Up to 64 packed rows packed_rows pads nothing, but the products still change dtype: the
    layer's outputs and gradients stay within bf16's rounding of float64's, in float32."""
    n = sum(lens)
    assert packed_rows(n) == n
    want = _layer_run(Products(torch.float64, n), lens)
    got = _layer_run(Products(torch.bfloat16, n), lens, dtype=torch.float32)
    for a, b in zip(got, want):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a.double(), b, rtol=0.03, atol=0.03 * float(b.abs().max()))


class _Products(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the dtype and the shapes of every batched product (bmm, baddbmm) dispatched."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[torch.dtype, tuple, tuple]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        if func in (
            torch.ops.aten.bmm.default,
            torch.ops.aten.baddbmm.default,
            torch.ops.aten.baddbmm_.default,
        ):
            a, b = args[-2:] if func is not torch.ops.aten.bmm.default else args
            self.seen.append((a.dtype, tuple(a.shape), tuple(b.shape)))
        return func(*args, **(kwargs or {}))


def test_under_bf16_autocast_the_bulk_products_take_bf16_on_bucketed_rows() -> None:
    """Training under CPU bf16 autocast: the input projection and the three weight and input
    gradients run on bf16 operands with packed_rows(N) rows (a few sizes per doubling, so few
    oneDNN kernels); the per-step recurrent products stay float32; the encoder's states and
    gradients stay within bf16's rounding of float32's."""
    torch.manual_seed(0)
    enc = Encoder(vocab=50, emb_dim=16, hidden=8, layers=2, dropout=0.0, emb_dropout=0.0, cell="lstm").train()
    lens = [30, 27, 25, 22, 21, 19, 9, 4, 3, 1]  # 161 packed rows: packed_rows gives 176
    src, src_lens = batch(lens)
    src = src.clamp(max=49)
    ref = [t.detach() for t in enc(src, src_lens)]
    ref_grads = torch.autograd.grad(sum(t.sum() for t in enc(src, src_lens)), list(enc.parameters()))
    mode = _Products()
    with mode, torch.autocast("cpu", dtype=torch.bfloat16):
        out = enc(src, src_lens)
    with mode:
        grads = torch.autograd.grad(sum(t.float().sum() for t in out), list(enc.parameters()))
    assert packed_rows(sum(lens)) == 176
    bulk = [s for s in mode.seen if 176 in s[1] + s[2]]
    assert len(bulk) == 2 * 4 and all(dt == torch.bfloat16 for dt, *_ in bulk)  # 4 products a layer
    assert all(dt == torch.float32 for dt, *_ in set(mode.seen) - set(bulk))  # the recurrence
    for a, b in zip(out, ref):
        torch.testing.assert_close(a.float(), b, rtol=0.03, atol=0.02)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=0.05, atol=0.05 * float(b.abs().max()))
