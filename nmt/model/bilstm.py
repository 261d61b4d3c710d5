"""Backpropagation through time written out by hand for the bidirectional LSTM encoder.

Packed sentences in (PyTorch's layout, below), both directions' states and final states out, one
autograd node per layer. ``nn.LSTM`` over packed sequences runs, on a CPU, a C++ loop of small
operations per time step and direction, each recorded by autograd, whose backward then runs as
many nodes. Here three things make the loop short:

- The backward direction (Schuster & Paliwal 1997) is the forward recurrence over each sentence
  reversed within its own length, so at every step both directions advance the same sentences:
  one batched product (2 directions x running sentences) and one set of element-wise
  operations a step for both.
- The input projections of all steps are one product before the loop, each weight's gradient
  one product after it (as ``nmt.model.bptt`` does for the decoder).
- Backward computes, for all steps at once, the factors that turn the gradients of h_t and c_t
  into the gate gradients (``nmt.model.bptt.gate_factors``; gates i, f, g, o, ``*`` element-wise):

      d o   = dh * P,   P = tanh(c_t) * o (1 - o)
      d c  += dh * Q,   Q = o (1 - tanh(c_t)^2)
      d i, d f, d g = dc * (g i (1 - i),  c_{t-1} f (1 - f),  i (1 - g^2))
      d c_{t-1} = dc * f,   d h_{t-1} = W_hh^T d gates

  leaving about six operations per step.

Under CPU autocast (bf16) the four products over all steps (the input projection, the
gradients of x, W_ih and W_hh) take bf16 inputs, as autocast would give them, on the packed rows
padded with zeros to ``nmt.startup.packed_rows``: the packed row count (the batch's source
tokens) differs from batch to batch, the padded one takes a few sizes per doubling, so oneDNN
compiles a bounded set of kernels (the weight and input gradients they give are rounded to
bf16, as under autocast, then kept in float32). The recurrence, the gates, the state and the
gradients carried through time stay float32, the per-step products too: at a few dozen rows bf16
is no faster there (docs/benchmarks.md, 2026-12-07, midnight).

Packed layout: step k holds the sentences longer than k, sorted longest first, at rows
off_k .. off_k + bs_k - 1, so a running sentence keeps its position within the step's block and
the sentences still running at step k are the first bs_k of step k - 1. Used by
``Encoder.forward`` where it applies (``Encoder.loop_applies``); the result equals ``nn.LSTM``'s
(tests/unit/test_bilstm.py), with the dropout between layers drawn by ``nmt.model.dropout``.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import torch

from nmt.model.bptt import gate_factors, lstm_gates_
from nmt.model.dropout import dropout


class Products(NamedTuple):
    """How ``BiLSTMLayer`` runs its products over all steps: in ``dtype`` (bf16 under CPU autocast,
    else the data's own), on ``rows`` rows (at least the packed row count N; the rows past N are
    zeros), so that their shapes take few sizes (``nmt.startup.packed_rows``)."""

    dtype: torch.dtype
    rows: int


class Plan(NamedTuple):
    """Where each packed row goes, from the packed ``batch_sizes``; shared by every layer."""

    offsets: list[int]  # off_k, then the row count N: the rows of step k are offsets[k]:offsets[k+1]
    rev: torch.Tensor  # (N,) the row of the same sentence at the mirrored position (an involution)
    prev: torch.Tensor  # (N - bs_0,) for the rows of steps k >= 1: the sentence's row at step k - 1
    last: torch.Tensor  # (bs_0,) each sentence's row at its last step (final states)


def plan(batch_sizes: torch.Tensor) -> Plan:
    """batch_sizes (steps,) on the CPU, as in a ``PackedSequence`` -> the ``Plan`` of its rows."""
    sizes = batch_sizes.tolist()
    offsets = list(itertools.accumulate(sizes, initial=0))
    B, N = sizes[0], offsets[-1]
    off = torch.tensor(offsets[:-1])  # (steps,)
    step = torch.repeat_interleave(torch.arange(len(sizes)), batch_sizes)  # (N,) each row's step
    sent = torch.arange(N) - off[step]  # (N,) each row's sentence
    lens = (batch_sizes.unsqueeze(0) > torch.arange(B).unsqueeze(1)).sum(1)  # (B,)
    rev = off[lens[sent] - 1 - step] + sent  # (N,)
    prev = off[step[B:] - 1] + sent[B:]  # (N - B,)
    last = off[lens - 1] + torch.arange(B)  # (B,)
    return Plan(offsets, rev, prev, last)


def bilstm(  # noqa: PLR0913
    data: torch.Tensor,
    batch_sizes: torch.Tensor,
    layers: list[tuple[torch.Tensor, ...]],
    p: float,
    training: bool,
    products: Products | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A stacked bidirectional LSTM over packed ``data`` (N, in) with ``batch_sizes`` (steps,).

    ``layers``: per layer ``nn.LSTM``'s eight parameters, forward direction then reverse:
    weight_ih, weight_hh, bias_ih, bias_hh. Dropout ``p`` between layers (not after the last).
    ``products``: the dtype and padded row count of the bulk products (None: data's dtype, N rows).
    Returns the top layer's outputs (N, 2H) and the final h and c (layers*2, bs_0, H), ordered as
    ``nn.LSTM`` orders them (layer by layer, forward then backward), sentences in packed order."""
    rows = plan(batch_sizes)
    prod = products or Products(data.dtype, rows.offsets[-1])
    hs, cs = [], []
    for k, params in enumerate(layers):
        if k > 0:
            data = dropout(data, p, training)
        data, h, c = BiLSTMLayer.apply(data, rows, prod, *params)
        hs.append(h)
        cs.append(c)
    return data, torch.cat(hs), torch.cat(cs)


class BiLSTMLayer(torch.autograd.Function):
    """One bidirectional LSTM layer over packed rows as one autograd node.

    Inputs: x (N, in) packed; the ``Plan``; w_ih, w_hh, b_ih, b_hh of the forward direction, then
    of the backward one (``nn.LSTM``'s shapes: (4H, in), (4H, H), (4H,), (4H,)). Outputs: the
    states (N, 2H), [forward; backward] per row, and the final h and c (2, bs_0, H).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, rows: Plan, prod: Products, *params: torch.Tensor):  # noqa: ANN205
        w_ih = torch.stack(params[0::4])  # (2, 4H, in)
        w_hh = torch.stack(params[1::4])  # (2, 4H, H)
        bias = torch.stack(params[2::4]) + torch.stack(params[3::4])  # (2, 4H)
        off, N, H = rows.offsets, x.size(0), w_hh.size(2)
        # the backward direction reads each sentence reversed; act: pre-activations, then gates
        x2 = _rows_in(prod, x, x.index_select(0, rows.rev))  # (2, rows, in) in the products' dtype
        if x2.shape[1] == N and x2.dtype == x.dtype:
            act = torch.baddbmm(bias.unsqueeze(1), x2, w_ih.transpose(1, 2))  # (2, N, 4H)
        else:  # the padded rows' products dropped; under autocast bf16 products, float32 sums
            act = torch.add(bias.unsqueeze(1), torch.bmm(x2, w_ih.to(x2.dtype).transpose(1, 2))[:, :N])
        C, tanh_c, hs = (x.new_empty(2, N, H) for _ in range(3))
        whh_t = w_hh.transpose(1, 2)  # (2, H, 4H)
        for k in range(len(off) - 1):
            now, r = slice(off[k], off[k + 1]), off[k + 1] - off[k]
            before = slice(off[k - 1], off[k - 1] + r) if k > 0 else None  # these sentences at k - 1
            a = act[:, now]  # (2, r, 4H)
            if before is not None:  # h_0 = 0: nothing to add at the first step
                a.baddbmm_(hs[:, before], whh_t)
            i, f, g, o = a.chunk(4, 2)
            lstm_gates_(a, g)  # sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)
            c = C[:, now]
            if before is not None:
                torch.mul(f, C[:, before], out=c)
                c.addcmul_(i, g)  # c_t = f * c_{t-1} + i * g
            else:
                torch.mul(i, g, out=c)
            torch.tanh(c, out=tanh_c[:, now])
            torch.mul(o, tanh_c[:, now], out=hs[:, now])  # h_t = o * tanh(c_t)
        out = torch.cat([hs[0], hs[1].index_select(0, rows.rev)], 1)  # (N, 2H), rows in time order
        ctx.save_for_backward(x2, w_ih, w_hh, act, C, tanh_c, hs)
        ctx.rows = rows
        return out, hs.index_select(1, rows.last), C.index_select(1, rows.last)

    @staticmethod
    def backward(ctx, d_out: torch.Tensor, d_h: torch.Tensor, d_c: torch.Tensor):  # noqa: ANN205
        x2, w_ih, w_hh, act, C, tanh_c, hs = ctx.saved_tensors
        rows = ctx.rows
        off, B, N, H = rows.offsets, rows.offsets[1], act.size(1), w_hh.size(2)
        c_prev = torch.empty_like(C)  # (2, N, H): c_{t-1} of every row, 0 at the first step
        c_prev[:, :B] = 0
        c_prev[:, B:] = C.index_select(1, rows.prev)
        P, Q, R = gate_factors(act, c_prev, tanh_c)  # (2, N, H), (2, N, H), (2, N, 3, H)
        f = act[..., H : 2 * H]  # (2, N, H)
        dh_all = torch.stack([d_out[:, :H], d_out[:, H:].index_select(0, rows.rev)])  # (2, N, H)
        dh_all.index_add_(1, rows.last, d_h)
        d_act = torch.empty_like(act)  # (2, N, 4H), the gate pre-activations' gradients
        d_ifg = d_act[..., : 3 * H].view(2, N, 3, H)
        dc_next = d_c.clone()  # (2, B, H): rows ending at a step take the final state's gradient
        dh_rec = None  # W_hh^T d gates of the step after: the gradient of h_{t-1}
        for k in reversed(range(len(off) - 1)):
            now, r = slice(off[k], off[k + 1]), off[k + 1] - off[k]
            dh = dh_all[:, now]  # (2, r, H)
            if dh_rec is not None:
                dh[:, : dh_rec.size(1)].add_(dh_rec)
            torch.mul(dh, P[:, now], out=d_act[:, now, 3 * H :])  # d o
            dc = torch.addcmul(dc_next[:, :r], dh, Q[:, now])  # (2, r, H)
            torch.mul(R[:, now], dc.unsqueeze(2), out=d_ifg[:, now])  # d i, d f, d g
            torch.mul(dc, f[:, now], out=dc_next[:, :r])  # to c_{t-1}
            if k > 0:
                dh_rec = torch.bmm(d_act[:, now], w_hh)  # (2, r, H)
        d_w_ih, d_w_hh, dx2 = _bulk_grads(d_act, x2, w_ih, hs.index_select(1, rows.prev))
        d_bias = d_act.sum(1)  # (2, 4H)
        dx = dx2[0].index_add_(0, rows.rev, dx2[1])  # (N, in)
        grads = []
        for d in range(2):  # b_ih and b_hh get equal gradients, in tensors of their own: a shared
            # one would become both .grad (AccumulateGrad keeps it) and be scaled or summed twice
            grads += [d_w_ih[d], d_w_hh[d], d_bias[d], d_bias[d].clone()]
        return dx, None, None, *grads


def _rows_in(prod: Products, x: torch.Tensor, x_rev: torch.Tensor) -> torch.Tensor:
    """x and x with each sentence reversed, (N, in) each -> (2, prod.rows, in) in prod.dtype, the
    rows past N zero."""
    N = x.size(0)
    if prod.dtype == x.dtype and prod.rows == N:
        return torch.stack([x, x_rev])
    x2 = x.new_empty(2, prod.rows, x.size(1), dtype=prod.dtype)
    x2[0, :N], x2[1, :N] = x, x_rev
    x2[:, N:] = 0
    return x2


def _bulk_grads(
    d_act: torch.Tensor, x2: torch.Tensor, w_ih: torch.Tensor, h_prev: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradients of W_ih (2, 4H, in), W_hh (2, 4H, H) and of the layer's input rows (2, N, in),
    each one product over all steps in x2's dtype on x2's rows (the rows past N zero; results in
    d_act's dtype), from d_act (2, N, 4H), x2 (2, rows, in) and h_prev (2, N - B, H), the h_{t-1}
    of the rows of steps k >= 1."""
    N, B = d_act.size(1), d_act.size(1) - h_prev.size(1)
    if x2.shape[1] == N and x2.dtype == d_act.dtype:  # no padding
        d_w_hh = torch.bmm(d_act[:, B:].transpose(1, 2), h_prev)  # (2, 4H, H)
        return torch.bmm(d_act.transpose(1, 2), x2), d_w_hh, torch.bmm(d_act, w_ih)
    cd, sd, R = x2.dtype, d_act.dtype, x2.size(1)
    dA = d_act.new_empty(2, R, d_act.size(2), dtype=cd)  # (2, rows, 4H)
    dA[:, :N] = d_act
    dA[:, N:] = 0
    hp = h_prev.new_empty(2, R, h_prev.size(2), dtype=cd)  # (2, rows, H): h_{t-1} by row, 0 at step 0
    hp[:, :B] = 0
    hp[:, B:N] = h_prev
    hp[:, N:] = 0
    d_w_hh = torch.bmm(dA.transpose(1, 2), hp).to(sd)  # the same operands' layout as d_w_ih's
    d_w_ih = torch.bmm(dA.transpose(1, 2), x2).to(sd)
    return d_w_ih, d_w_hh, torch.bmm(dA, w_ih.to(cd))[:, :N].to(sd)
