"""LSTM and GRU cells for the decoder, with the input projection split in two.

A decoder step's input has a part known for all steps in advance (the target embeddings under
teacher forcing) and a part known only at that step (the previous attentional vector, the layer
below, the recurrent state). ``project()`` maps the first part for every step in one matrix
product outside the step loop; ``forward()`` adds the rest, one matrix product per step.

LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000):
    i, f, g, o = W [x; h_{t-1}] + b            (input, forget, candidate, output gates)
    c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
    h_t = sigmoid(o) * tanh(c_t)
The forget-gate bias starts at ``forget_bias`` (1.0) so the cell remembers by default early in
training, which keeps gradients flowing through c over many steps (Jozefowicz et al. 2015).

GRU (Cho et al. 2014):
    r = sigmoid(W_r x + U_r h + b_r),  z = sigmoid(W_z x + U_z h + b_z)
    n = tanh(W_n x + b_n + r * (U_n h + b'_n)),  h_t = (1 - z) * n + z * h_{t-1}

Simple RNN (Elman 1990):
    h_t = tanh(W x_t + U h_{t-1} + b)
Backpropagated through time, the gradient reaching h_{t-k} is multiplied k times by
U^T diag(1 - h^2): it vanishes or explodes geometrically (Bengio et al. 1994; Pascanu et al.
2013), which the LSTM's additive cell state (the "constant error carousel") and the GRU's update
gate avoid. recipes/bptt shows it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class Gates(NamedTuple):
    """Gate activations of one step, for looking inside the cell (all (batch, hidden))."""

    input: torch.Tensor
    forget: torch.Tensor  # GRU: the update gate z
    output: torch.Tensor  # GRU: the reset gate r
    candidate: torch.Tensor


class LSTMCell(nn.Module):
    """One LSTM layer step. ``pre_size``: inputs projected ahead (0: none); ``step_size``: inputs given per step."""

    n_gates = 4

    def __init__(self, pre_size: int, step_size: int, hidden: int, forget_bias: float = 1.0) -> None:
        super().__init__()
        self.hidden = hidden
        g = self.n_gates * hidden
        self.w_pre = nn.Parameter(torch.empty(g, pre_size)) if pre_size else None
        self.w_step = nn.Parameter(torch.empty(g, step_size + hidden))  # [x_step; h] -> gates
        self.bias = nn.Parameter(torch.empty(g))
        self.forget_bias = forget_bias
        self.reset_parameters()

    def reset_parameters(self, init_range: float = 0.0) -> None:
        r = init_range or 1.0 / math.sqrt(self.hidden)
        for p in self.parameters():
            nn.init.uniform_(p, -r, r)
        self.init_forget_bias()

    def init_forget_bias(self) -> None:
        with torch.no_grad():
            self.bias[self.hidden : 2 * self.hidden].fill_(self.forget_bias)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """(..., pre_size) -> (..., 4*hidden): the ahead-of-time part of the gates, bias included."""
        return F.linear(x, self.w_pre, self.bias)

    def forward(
        self, pre: torch.Tensor | None, x: torch.Tensor | None, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        inp = h if x is None else torch.cat([x, h], 1)  # (batch, step_size + hidden)
        gates = self._gates(pre, inp)  # (batch, 4*hidden)
        i, f, g, o = gates.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)  # (batch, hidden)
        h = torch.sigmoid(o) * torch.tanh(c)  # (batch, hidden)
        return h, c

    def _gates(self, pre: torch.Tensor | None, inp: torch.Tensor) -> torch.Tensor:
        # F.linear with the parameter itself (not a transposed view): autocast casts it once per
        # region and reuses it, where a view would be cast again at every step
        return F.linear(inp, self.w_step, self.bias) if pre is None else F.linear(inp, self.w_step) + pre

    def gates(self, pre: torch.Tensor | None, x: torch.Tensor | None, h: torch.Tensor) -> Gates:
        inp = h if x is None else torch.cat([x, h], 1)
        i, f, g, o = self._gates(pre, inp).chunk(4, 1)
        return Gates(torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o), torch.tanh(g))


class RNNCell(nn.Module):
    """One simple (tanh) RNN layer step, same split of the input as ``LSTMCell``; ``c`` is unused (None)."""

    n_gates = 1

    def __init__(self, pre_size: int, step_size: int, hidden: int, forget_bias: float = 1.0) -> None:
        super().__init__()
        self.hidden = hidden
        self.w_pre = nn.Parameter(torch.empty(hidden, pre_size)) if pre_size else None
        self.w_step = nn.Parameter(torch.empty(hidden, step_size + hidden))  # [x_step; h] -> pre-activation
        self.bias = nn.Parameter(torch.empty(hidden))
        self.reset_parameters()

    def reset_parameters(self, init_range: float = 0.0) -> None:
        r = init_range or 1.0 / math.sqrt(self.hidden)
        for p in self.parameters():
            nn.init.uniform_(p, -r, r)

    def init_forget_bias(self) -> None:
        """A simple RNN has no gates."""

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.w_pre, self.bias)

    def _pre(self, pre: torch.Tensor | None, inp: torch.Tensor) -> torch.Tensor:
        return F.linear(inp, self.w_step, self.bias) if pre is None else F.linear(inp, self.w_step) + pre

    def forward(
        self, pre: torch.Tensor | None, x: torch.Tensor | None, h: torch.Tensor, c: None = None
    ) -> tuple[torch.Tensor, None]:
        inp = h if x is None else torch.cat([x, h], 1)  # (batch, step_size + hidden)
        return torch.tanh(self._pre(pre, inp)), None  # (batch, hidden)

    def gates(self, pre: torch.Tensor | None, x: torch.Tensor | None, h: torch.Tensor) -> Gates:
        """No gates: as an LSTM that always writes (input 1), never keeps (forget 0), always shows (output 1)."""
        inp = h if x is None else torch.cat([x, h], 1)
        cand = torch.tanh(self._pre(pre, inp))
        one = torch.ones_like(cand)
        return Gates(one, torch.zeros_like(cand), one, cand)


class GRUCell(nn.Module):
    """One GRU layer step, same split of the input as ``LSTMCell``; the state ``c`` is unused (None)."""

    n_gates = 3

    def __init__(self, pre_size: int, step_size: int, hidden: int, forget_bias: float = 1.0) -> None:
        super().__init__()
        self.hidden = hidden
        g = self.n_gates * hidden
        self.w_pre = nn.Parameter(torch.empty(g, pre_size)) if pre_size else None
        self.w_step = nn.Parameter(torch.empty(g, step_size)) if step_size else None
        self.w_hid = nn.Parameter(torch.empty(g, hidden))
        self.bias = nn.Parameter(torch.empty(g))
        self.bias_hid = nn.Parameter(torch.empty(g))
        self.reset_parameters()

    def reset_parameters(self, init_range: float = 0.0) -> None:
        r = init_range or 1.0 / math.sqrt(self.hidden)
        for p in self.parameters():
            nn.init.uniform_(p, -r, r)

    def init_forget_bias(self) -> None:
        """GRUs have no forget gate; the update gate plays its part and keeps its initial bias."""

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.w_pre, self.bias)

    def _inputs(
        self, pre: torch.Tensor | None, x: torch.Tensor | None, h: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if x is not None:  # F.linear with the parameters themselves: cached by autocast (see LSTMCell)
            gi = F.linear(x, self.w_step, self.bias) if pre is None else F.linear(x, self.w_step) + pre
        else:
            gi = (self.bias if pre is None else pre).expand(h.size(0), -1)  # (batch, 3*hidden)
        gh = F.linear(h, self.w_hid, self.bias_hid)  # (batch, 3*hidden)
        return gi, gh

    def forward(
        self, pre: torch.Tensor | None, x: torch.Tensor | None, h: torch.Tensor, c: None = None
    ) -> tuple[torch.Tensor, None]:
        gi, gh = self._inputs(pre, x, h)
        i_r, i_z, i_n = gi.chunk(3, 1)
        h_r, h_z, h_n = gh.chunk(3, 1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return torch.lerp(n, h, z), None  # (1 - z) * n + z * h

    def gates(self, pre: torch.Tensor | None, x: torch.Tensor | None, h: torch.Tensor) -> Gates:
        gi, gh = self._inputs(pre, x, h)
        i_r, i_z, i_n = gi.chunk(3, 1)
        h_r, h_z, h_n = gh.chunk(3, 1)
        r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        return Gates(1 - z, z, r, torch.tanh(i_n + r * h_n))


def stack_weights(cells: nn.ModuleList, hidden: int) -> list[torch.Tensor]:
    """A stack of cells' parameters in the layout of ``torch.lstm`` / ``torch.gru`` /
    ``torch.rnn_tanh``: per layer W_ih (gates*hidden, in), W_hh (gates*hidden, hidden), b_ih, b_hh.
    Layer 0 reads its ahead-of-time input (w_pre), layer k > 0 the layer below (w_step = [W_ih | W_hh]);
    views of the parameters, so gradients flow back to them."""
    flat = []
    for layer, cell in enumerate(cells):
        if isinstance(cell, GRUCell):
            flat += [cell.w_pre if layer == 0 else cell.w_step, cell.w_hid, cell.bias, cell.bias_hid]
        else:  # LSTMCell, RNNCell: one matrix for [x; h], one bias
            w_ih = cell.w_pre if layer == 0 else cell.w_step[:, :hidden]
            flat += [w_ih, cell.w_step[:, -hidden:], cell.bias, torch.zeros_like(cell.bias)]
    return [w.contiguous() for w in flat]


def run_stack(
    cells: nn.ModuleList,
    x: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor | None,
    dropout: float,
    training: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """A stack of cells over a whole sequence as one fused multi-layer call (oneDNN / cuDNN):
    x (batch, steps, in), h, c (layers, batch, hidden) -> top outputs (batch, steps, hidden), final h, c.
    The same function as running the cells step by step, with dropout between layers."""
    hidden, layers = cells[0].hidden, len(cells)
    weights = stack_weights(cells, hidden)
    dropout = dropout if layers > 1 else 0.0
    if isinstance(cells[0], LSTMCell):
        out, h, c = torch.lstm(x, (h, c), weights, True, layers, dropout, training, False, True)
        return out, h, c
    rnn = torch.gru if isinstance(cells[0], GRUCell) else torch.rnn_tanh
    out, h = rnn(x, h, weights, True, layers, dropout, training, False, True)
    return out, h, None
