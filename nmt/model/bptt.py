"""Backpropagation through time written out by hand for the input-feeding decoder.

Under teacher forcing, the Luong decoder with input feeding runs a Python loop of small steps:
per target position, every LSTM layer, attention over the source, the combine layer. Autograd
records each of the step's ~45 operations as a node, keeps a reference to every input it needs,
and in backward runs one node at a time, each allocating its results, including a small weight
gradient product per step and layer (an inner dimension of one batch). ``DecoderLoop`` is the
same function as a single autograd node: forward runs the loop with autograd off and writes the
activations backward needs into preallocated (steps, batch, ...) buffers; backward runs the
loop in reverse with the classic BPTT recurrences, then forms each weight's gradient as one
product over all steps at once (Werbos 1990; Williams & Zipser 1995). Per step t and layer l
(gates i, f, g, o; ``*`` element-wise):

    forward                                   backward (dh, dc arrive from step t+1)
    x_t   = [input_t; h_{t-1}]                dc    += dh * o * (1 - tanh(c_t)^2)
    gates = W x_t + b (+ pre_t)               do     = dh * tanh(c_t) * o (1 - o)
    c_t   = f * c_{t-1} + i * g               di, dg = dc * g * i (1 - i),  dc * i * (1 - g^2)
    h_t   = o * tanh(c_t)                     df     = dc * c_{t-1} * f (1 - f)
                                              dx_t   = W^T dgates -> (d input_t, dh_{t-1})
                                              dc_{t-1} = dc * f;   dW = sum_t dgates_t x_t^T

The factors that take dh and dc to the gate gradients depend only on what forward saved, so
backward computes them for every step at once before its loop (``gate_factors``, shared with the
encoder's ``nmt.model.bilstm``). Attention (Luong dot or general: keys are the memory, or W_a
times it, computed outside) and the combine layer h~_t = tanh(W_c [h_t; ctx_t]) are reversed the
same way; h~_t is both the step's output and the next step's input feed, so its gradient is the
loss's plus the next step's.
Dropout masks are drawn in the same order from the same generator as the autograd loop
(``nmt.model.dropout``), so both give the same numbers up to rounding.

Used by ``Decoder.forward`` where it applies (``Decoder.loop_applies``): LSTM cells, Luong dot or general
attention, input feeding, on a CPU, no attention weights asked for. In float32 or float64 every
tensor has the model's dtype. Under bf16 autocast the products take bf16 inputs, as autocast
would give them, and the state, the gates, attention's softmax and every gradient stay in
float32 (autocast's own loop runs the element-wise work in bf16 too, so the loop is the more
accurate of the two; tests/unit/test_bptt.py). Attention's per-step products (a row against
each sentence's memory, batched) run in float32: MKL takes them with no per-shape kernel and,
on a Zen 4 at 64 sentences x 16 source words x 256, in 22 us against bf16's 47-55 us.
Everything else runs the autograd loop, which computes the same function.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch

from nmt.model.dropout import keep_mask

_tanh_backward = torch.ops.aten.tanh_backward
_sigmoid_backward = torch.ops.aten.sigmoid_backward
_softmax_backward = torch.ops.aten._softmax_backward_data


class DecoderLoop(torch.autograd.Function):
    """The teacher-forced step loop of an input-feeding Luong LSTM decoder as one autograd node.

    Inputs: pre (batch, steps, 4H), the first layer's gate inputs from the target embeddings (bias
    included); h0, c0 (layers, batch, H); feed0 (batch, H); values (batch, src, M) and keys
    (batch, src, H) of the memory; valid (batch, src) bool; combine (H, H + M), W_c; p, the dropout
    between layers and on the output; training; then per layer its weight W_l (4H, in_l + H), and
    for layers above the first its bias (4H,). Output: attentional vectors (batch, steps, H).
    """

    @staticmethod
    def forward(  # noqa: PLR0913
        ctx,
        pre: torch.Tensor,
        h0: torch.Tensor,
        c0: torch.Tensor,
        feed0: torch.Tensor,
        values: torch.Tensor,
        keys: torch.Tensor,
        valid: torch.Tensor,
        combine: torch.Tensor,
        p: float,
        training: bool,
        *params: torch.Tensor,
    ) -> torch.Tensor:
        sd, cd = _dtypes(pre)
        ctx.in_dtypes = [x.dtype for x in (pre, h0, c0, feed0, values, keys)]
        with _no_autocast():  # every product below is handed cd inputs (attention's per step: sd)
            state = (x.to(sd) for x in (pre, h0, c0, feed0))
            return _forward(ctx, *state, values.to(sd), keys.to(sd), valid, combine, p, training, params, cd)

    @staticmethod
    def backward(ctx, d_out: torch.Tensor):  # noqa: ANN205
        with _no_autocast():
            grads = _backward(ctx, d_out)
        d_inputs = [g.to(dt) for g, dt in zip(grads[:6], ctx.in_dtypes)]
        d_params = [g.to(dt) for g, dt in zip(grads[6:], ctx.param_dtypes)]
        return (*d_inputs, None, d_params[0], None, None, *d_params[1:])


def _no_autocast() -> contextlib.AbstractContextManager:
    """CPU autocast switched off inside the loop while it is on (the loop casts for itself)."""
    on = torch.is_autocast_enabled("cpu")
    return torch.autocast("cpu", enabled=False) if on else contextlib.nullcontext()


def _dtypes(pre: torch.Tensor) -> tuple[torch.dtype, torch.dtype]:
    """(state dtype, product dtype) of ``DecoderLoop``: the model's float32 or float64 for both;
    under CPU autocast float32 for the state and the element-wise work, and autocast's dtype (bf16)
    for the products, whose inputs autocast's own loop casts too."""
    sd = torch.promote_types(pre.dtype, torch.float32)
    lowp = torch.is_autocast_enabled("cpu") and sd == torch.float32  # autocast leaves float64 alone
    return sd, torch.get_autocast_dtype("cpu") if lowp else sd


def _forward(  # noqa: PLR0913, PLR0915
    ctx,
    pre: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor,
    feed0: torch.Tensor,
    values: torch.Tensor,
    keys: torch.Tensor,
    valid: torch.Tensor,
    combine: torch.Tensor,
    p: float,
    training: bool,
    params: tuple[torch.Tensor, ...],
    cd: torch.dtype,
) -> torch.Tensor:
    """``DecoderLoop.forward``: pre, h0, c0, feed0, values and keys in the state dtype."""
    B, T, G = pre.shape
    H, L, M = G // 4, h0.size(0), values.size(2)
    sd = pre.dtype
    ws, bs = _layer_params(params, L)
    drop = training and p > 0.0
    new = lambda *shape: pre.new_empty(shape)  # noqa: E731
    new_cd = lambda *shape: pre.new_empty(shape, dtype=cd)  # noqa: E731
    # x_l,t = [input_l,t; h_l,t-1] (slot t + 1's right half receives h_l,t as it is computed;
    # slot T's left half the last h~, unused); like U, a product's input, so kept in cd
    X = [new_cd(T + 1, B, w.size(1)) for w in ws]  # (steps + 1, batch, in_l + H)
    act = [new(T, B, G) for _ in ws]  # sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)
    C = [new(T + 1, B, H) for _ in ws]  # C[l][0] = c0, C[l][t + 1] = c_t
    tanh_c = [new(T, B, H) for _ in ws]
    U = new_cd(T, B, H + M)  # [h_top,t; ctx_t], the combine layer's input
    A = new(T, B, values.size(1))  # attention weights
    tilde = new(T, B, H)  # h~_t = tanh(W_c u_t), before dropout
    for layer in range(L):
        X[layer][0, :, -H:] = h0[layer]
        C[layer][0] = c0[layer]
    X[0][0, :, :H] = feed0
    # per-step views, made once: [layer][t]
    x_in = [x.unbind(0) for x in X]
    h_out = [x[1:, :, -H:].unbind(0) for x in X]  # where h_l,t goes
    below = [x[:, :, :H].unbind(0) for x in X]  # the input part of x_l,t
    gate = [_gate_steps(a) for a in act]
    c_t, tc_t = [c.unbind(0) for c in C], [c.unbind(0) for c in tanh_c]
    pre_t, U_t, A_t, tilde_t = pre.unbind(1), U.unbind(0), A.unbind(0), tilde.unbind(0)
    wt = [w.to(cd).t() for w in ws]
    masks: list[list[torch.Tensor | None]] = [[None] * T for _ in range(L + 1)]  # [l][t]; L: output
    pad = ~valid  # (batch, src)
    keys_t, combine_t = keys.transpose(1, 2), combine.to(cd).t()  # (batch, H, src), (H + M, H)
    for t in range(T):
        for layer in range(L):
            g = gate[layer]
            _affine(pre_t[t] if layer == 0 else bs[layer], x_in[layer][t], wt[layer], g.all[t])
            lstm_gates_(g.all[t], g.g[t])  # sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)
            c = c_t[layer][t + 1]
            torch.mul(g.f[t], c_t[layer][t], out=c)
            c.addcmul_(g.i[t], g.g[t])  # c_t = f * c_{t-1} + i * g
            torch.tanh(c, out=tc_t[layer][t])
            h = h_out[layer][t]
            torch.mul(g.o[t], tc_t[layer][t], out=h)  # h_t = o * tanh(c_t)
            if layer + 1 < L:  # the next layer's input, through dropout
                _dropout_into(h, below[layer + 1][t], masks[layer + 1], t, p, drop, sd)
        top = h_out[L - 1][t]  # (batch, H), the query
        scores = torch.bmm(top.to(sd).unsqueeze(1), keys_t).squeeze(1)  # (batch, src)
        A_t[t].copy_(torch.softmax(scores.masked_fill_(pad, float("-inf")), dim=1, dtype=sd))
        u = U_t[t]
        u[:, :H] = top
        u[:, H:] = torch.bmm(A_t[t].unsqueeze(1), values).squeeze(1)  # ctx_t (batch, M)
        _affine(None, u, combine_t, tilde_t[t])
        tilde_t[t].tanh_()
        _dropout_into(tilde_t[t], below[0][t + 1], masks[L], t, p, drop, sd)  # h~_t: output and next feed
    ctx.save_for_backward(values, keys, combine, *params, *X, *act, *C, *tanh_c, U, A, tilde)
    ctx.param_dtypes = [combine.dtype] + [w.dtype for w in params]
    ctx.masks, ctx.dims, ctx.dtypes = masks, (B, T, H, L, M), (sd, cd)
    return X[0][1:, :, :H].transpose(0, 1).contiguous()  # (batch, steps, H)


def _backward(ctx, d_out: torch.Tensor) -> list[torch.Tensor]:  # noqa: PLR0915
    """``DecoderLoop.backward``: the gradients of pre, h0, c0, feed0, values, keys, combine and the
    layers' parameters, each in the dtype it was computed in."""
    B, T, H, L, M = ctx.dims
    sd, cd = ctx.dtypes
    saved = ctx.saved_tensors
    values, keys, combine = saved[:3]
    n_params = 2 * L - 1
    params, rest = saved[3 : 3 + n_params], saved[3 + n_params :]
    ws, _ = _layer_params(params, L)
    ws, combine_cd = [w.to(cd) for w in ws], combine.to(cd)
    X, act, C, tanh_c = rest[:L], rest[L : 2 * L], rest[2 * L : 3 * L], rest[3 * L : 4 * L]
    U, A, tilde = rest[4 * L :]
    masks = ctx.masks
    new = lambda *shape: torch.empty(shape, dtype=sd, device=d_out.device)  # noqa: E731
    zeros = lambda *shape: torch.zeros(shape, dtype=sd, device=d_out.device)  # noqa: E731
    dgates = [new(T, B, 4 * H) for _ in range(L)]
    dz = new(T, B, H)  # gradient of W_c u_t (before the tanh)
    dctx = torch.empty(T, B, M, dtype=cd, device=d_out.device)  # a product's input
    dscores = new(T, B, values.size(1))
    gate, dgate = [_gate_steps(a) for a in act], [_gate_steps(d) for d in dgates]
    # the gate factors of every step at once (``gate_factors``): d o = dh * P, d c += dh * Q,
    # (d i, d f, d g) = dc * R; the loop below then only multiplies
    P, Q, R = zip(*(gate_factors(a, c[:-1], tc) for a, c, tc in zip(act, C, tanh_c)))
    P_t, Q_t, R_t = ([x.unbind(0) for x in xs] for xs in (P, Q, R))
    d_ifg = [d[..., : 3 * H].unflatten(2, (3, H)).unbind(0) for d in dgates]  # [layer][t] (batch, 3, H)
    d_out_t, tilde_t, A_t = d_out.to(sd).unbind(1), tilde.unbind(0), A.unbind(0)
    dz_t, dctx_t, dscores_t = dz.unbind(0), dctx.unbind(0), dscores.unbind(0)
    # a row times the batch's matrices, (batch, 1, M) @ (batch, M, src): MKL runs the other
    # orientation, (batch, src, M) @ (batch, M, 1), about 7x slower on a CPU at these sizes
    values_t = values.transpose(1, 2)  # (batch, M, src)
    dh = [zeros(B, H) for _ in range(L)]  # from step t + 1, through h_t
    dc = [zeros(B, H) for _ in range(L)]  # from step t + 1, through c_t
    dfeed = zeros(B, H)
    for t in reversed(range(T)):
        d = d_out_t[t] + dfeed  # (batch, H), the gradient of h~_t
        if masks[L][t] is not None:
            d.mul_(masks[L][t])
        _tanh_backward(d, tilde_t[t], grad_input=dz_t[t])
        du = (dz_t[t].to(cd) @ combine_cd).to(sd)  # (batch, H + M)
        dctx_t[t].copy_(du[:, H:])
        da = torch.bmm(du[:, H:].unsqueeze(1), values_t).squeeze(1)  # (batch, src)
        _softmax_backward(da, A_t[t], 1, sd, grad_input=dscores_t[t])
        dq = torch.bmm(dscores_t[t].unsqueeze(1), keys).squeeze(1)  # (batch, H)
        d_above = dq.add_(du[:, :H])  # the gradient of the top layer's h_t from this step
        for layer in reversed(range(L)):
            dh_l = d_above.add_(dh[layer])  # (batch, H)
            torch.mul(dh_l, P_t[layer][t], out=dgate[layer].o[t])
            dc_l = torch.addcmul(dc[layer], dh_l, Q_t[layer][t])  # (batch, H), gradient of c_t
            torch.mul(R_t[layer][t], dc_l.unsqueeze(1), out=d_ifg[layer][t])
            dc[layer] = dc_l.mul_(gate[layer].f[t])  # to c_{t-1}
            dx = (dgate[layer].all[t].to(cd) @ ws[layer]).to(sd)  # (batch, in + H)
            dh[layer] = dx[:, -H:]  # to h_{t-1}
            d_in = dx[:, :H]
            if layer > 0:
                m = masks[layer][t]
                d_above = d_in.mul_(m) if m is not None else d_in
            else:
                dfeed = d_in  # to h~_{t-1}
    layer_grads = []
    for layer in range(L):
        g2 = dgates[layer].view(T * B, 4 * H)
        layer_grads.append(g2.to(cd).t() @ X[layer][:T].reshape(T * B, -1))  # dW_l (4H, in + H)
        if layer > 0:
            layer_grads.append(g2.sum(0))  # db_l
    d_pre = dgates[0].transpose(0, 1)  # (batch, steps, 4H)
    d_combine = dz.view(T * B, H).to(cd).t() @ U.view(T * B, H + M)  # (H, H + M)
    d_values = torch.bmm(A.to(cd).permute(1, 2, 0), dctx.transpose(0, 1))  # (batch, src, M)
    d_keys = torch.bmm(dscores.to(cd).permute(1, 2, 0), U[:, :, :H].transpose(0, 1))  # (batch, src, H)
    d_h0, d_c0 = torch.stack(dh), torch.stack(dc)
    return [d_pre, d_h0, d_c0, dfeed, d_values, d_keys, d_combine, *layer_grads]


def lstm_gates_(gates: torch.Tensor, g: torch.Tensor) -> None:
    """An LSTM step's pre-activations (..., 4H) (i, f, g, o) -> in place sigmoid(i), sigmoid(f),
    tanh(g), sigmoid(o); ``g`` is the view of the g quarter. tanh(g) is taken as 2 sigmoid(2g) - 1
    (the same function, within 2e-7): one sigmoid over the whole row, where PyTorch's CPU tanh on a
    quarter of it (a strided view) took 52 us for 64 x 256 against sigmoid's 8.5 (Zen 4)."""
    g.mul_(2.0)
    gates.sigmoid_()
    g.mul_(2.0).sub_(1.0)


def gate_factors(
    act: torch.Tensor, c_prev: torch.Tensor, tanh_c: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """An LSTM layer's saved gates (..., 4H) (i, f, g, o), c_{t-1} and tanh(c_t) (..., H) of every
    step -> P = tanh(c_t) o (1 - o) and Q = o (1 - tanh(c_t)^2) (..., H), and
    R = (g i (1 - i), c_{t-1} f (1 - f), i (1 - g^2)) (..., 3, H): the factors that take dh and dc
    of a step to the gradients of its gate pre-activations (d o = dh P, dc += dh Q,
    (d i, d f, d g) = dc R), computed for all steps at once, before the backward loop."""
    i, f, g, o = act.chunk(4, -1)
    R = act.new_empty(*i.shape[:-1], 3, i.size(-1))  # (..., 3, H)
    _sigmoid_backward(g, i, grad_input=R[..., 0, :])
    _sigmoid_backward(c_prev, f, grad_input=R[..., 1, :])
    _tanh_backward(i, g, grad_input=R[..., 2, :])
    return _sigmoid_backward(tanh_c, o), _tanh_backward(o, tanh_c), R


def _affine(bias: torch.Tensor | None, x: torch.Tensor, wt: torch.Tensor, out: torch.Tensor) -> None:
    """out = bias + x @ wt, the product in x's dtype and out in its own (wider, under autocast)."""
    if out.dtype == x.dtype:
        if bias is None:
            torch.mm(x, wt, out=out)
        else:
            torch.addmm(bias, x, wt, out=out)
    elif bias is None:
        out.copy_(x @ wt)
    else:
        torch.add(bias, x @ wt, out=out)


def _layer_params(params: tuple[torch.Tensor, ...], L: int) -> tuple[list, list]:
    """``DecoderLoop``'s flat parameters -> per layer its weight W_l (4H, in_l + H) and its bias
    (4H,), None for layer 0, whose bias is inside pre."""
    weights = [params[0]] + [params[2 * k - 1] for k in range(1, L)]
    biases = [None] + [params[2 * k] for k in range(1, L)]
    return weights, biases


class _GateSteps(NamedTuple):
    """Per-step views of a (steps, batch, 4H) gate buffer: all four, and each gate."""

    all: tuple[torch.Tensor, ...]
    i: tuple[torch.Tensor, ...]
    f: tuple[torch.Tensor, ...]
    g: tuple[torch.Tensor, ...]
    o: tuple[torch.Tensor, ...]


def _gate_steps(buf: torch.Tensor) -> _GateSteps:
    i, f, g, o = (x.unbind(0) for x in buf.chunk(4, 2))
    return _GateSteps(buf.unbind(0), i, f, g, o)


def _dropout_into(
    x: torch.Tensor, dst: torch.Tensor, masks: list, t: int, p: float, drop: bool, dtype: torch.dtype
) -> None:
    """dst = dropout(x), the mask (of ``dtype``) kept in masks[t] (the same draw as ``nmt.model.dropout``)."""
    if drop:
        masks[t] = m = keep_mask(x.shape, p, dtype, x.device)
        torch.mul(x, m, out=dst)
    else:
        dst.copy_(x)
