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
from torch.nn.utils.rnn import pack_padded_sequence

from nmt.data.tokenizer import PAD
from nmt.model.bilstm import BiLSTMLayer, plan
from nmt.model.dropout import dropout
from nmt.model.encoder import Encoder

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
    assert torch.autograd.gradcheck(lambda x, *p: BiLSTMLayer.apply(x, rows, *p), (x, *params))


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
