"""Attentional decoder: previous target pieces and the encoder memory in, attentional vectors out.

Luong flow (``luong_*``, Luong et al. 2015), per step t:
    s_t  = RNN([E y_{t-1}; h~_{t-1}], s_{t-1})          input feeding: h~_{t-1} joins the input
    c_t  = attention(query = s_t, memory)
    h~_t = tanh(W_c [s_t; c_t])                         attentional vector -> output layer
Bahdanau flow (``bahdanau``, Bahdanau et al. 2015): the query is the previous state s_{t-1}, and
the context enters the RNN, s_t = RNN([E y_{t-1}; c_t (; h~_{t-1})], s_{t-1}).

The embedding part of the first layer's input is projected for all steps at once (teacher
forcing); attention keys are precomputed once per batch (``Attention.memory``). Without input
feeding, the Luong decoder runs its RNN stack over all steps in one fused call and attends over all
steps in one batched product.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from nmt.data.tokenizer import PAD
from nmt.model.attention import Attention, Memory
from nmt.model.bptt import DecoderLoop
from nmt.model.cells import GRUCell, LSTMCell, RNNCell, run_stack
from nmt.model.dropout import Dropout

SCORES = {"bahdanau": "additive", "luong_dot": "dot", "luong_general": "general", "luong_concat": "additive"}


class DecoderState(NamedTuple):
    h: torch.Tensor  # (layers, batch, hidden)
    c: torch.Tensor | None  # (layers, batch, hidden); None for GRU
    feed: torch.Tensor  # (batch, hidden) previous attentional vector h~_{t-1}

    def select(self, idx: torch.Tensor) -> DecoderState:
        """Rows ``idx`` of the batch (beam reordering, dropping finished sentences)."""
        return DecoderState(
            self.h.index_select(1, idx),
            None if self.c is None else self.c.index_select(1, idx),
            self.feed.index_select(0, idx),
        )

    def first(self, rows: int) -> DecoderState:
        """The first ``rows`` rows (views, no copy)."""
        return DecoderState(self.h[:, :rows], None if self.c is None else self.c[:, :rows], self.feed[:rows])


class Decoder(nn.Module):
    def __init__(
        self,
        vocab: int,
        emb_dim: int,
        hidden: int,
        layers: int,
        mem_dim: int,
        attention: str,
        attn_dim: int,
        input_feeding: bool,
        dropout: float,
        emb_dropout: float,
        cell: str,
        forget_bias: float,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, emb_dim, padding_idx=PAD)
        self.emb_dropout = Dropout(emb_dropout)
        self.bahdanau = attention == "bahdanau"
        self.input_feeding = input_feeding
        self.hidden = hidden
        step0 = (hidden if input_feeding else 0) + (mem_dim if self.bahdanau else 0)
        Cell = {"lstm": LSTMCell, "gru": GRUCell, "rnn": RNNCell}[cell]
        self.cells = nn.ModuleList(
            [Cell(emb_dim, step0, hidden, forget_bias)]
            + [Cell(0, hidden, hidden, forget_bias) for _ in range(layers - 1)]
        )
        self.attention = Attention(SCORES[attention], hidden, mem_dim, attn_dim)
        self.combine = nn.Linear(hidden + mem_dim, hidden, bias=False)  # W_c
        self.dropout = Dropout(dropout)
        self.explicit_bptt = True  # teacher forcing through DecoderLoop where it applies (nmt.model.bptt)

    def start(self, h: torch.Tensor, c: torch.Tensor | None) -> DecoderState:
        """Initial state from the bridge's h, c (layers, batch, hidden); the first feed is zeros."""
        return DecoderState(h, c, h.new_zeros(h.size(1), self.hidden))

    def embed_inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        """Target ids (...,) -> the first layer's ahead-of-time gate inputs (..., gates*hidden)."""
        return self.cells[0].project(self.emb_dropout(self.embed(tokens)))

    def _rnn(
        self, pre: torch.Tensor, x: torch.Tensor | None, state: DecoderState, trace: list | None = None
    ) -> tuple[list, list]:
        """Run the stacked cells one step; dropout between layers (Zaremba et al. 2014).
        ``trace``: if a list, gets (layer, Gates, h, c) of every layer (nmt.introspect)."""
        hs = state.h.unbind(0)
        cs = state.c.unbind(0) if state.c is not None else [None] * len(hs)
        new_h, new_c = [], []
        for layer, cell in enumerate(self.cells):
            if layer > 0:
                x = self.dropout(new_h[-1])
            h, c = cell(pre if layer == 0 else None, x, hs[layer], cs[layer])
            if trace is not None:
                trace.append((layer, cell.gates(pre if layer == 0 else None, x, hs[layer]), h, c))
            new_h.append(h)
            new_c.append(c)
        return new_h, new_c

    def step(
        self, pre: torch.Tensor, state: DecoderState, mem: Memory, trace: list | None = None
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """One step: pre (batch, gates*hidden) from ``embed_inputs`` ->
        attentional vector (batch, hidden), new state, attention weights (the memory's rows,
        src_len: ``batch`` unless the step is padded, see ``_attend``)."""
        if self.bahdanau:
            ctx, weights = self._attend(state.h[-1], mem)  # query: previous top state s_{t-1}
            x = torch.cat([ctx, state.feed], 1) if self.input_feeding else ctx  # (batch, mem_dim [+ hidden])
        else:
            x = state.feed if self.input_feeding else None
        new_h, new_c = self._rnn(pre, x, state, trace)
        top = new_h[-1]  # (batch, hidden)
        if not self.bahdanau:
            ctx, weights = self._attend(top, mem)  # (batch, mem_dim), (batch, src_len)
        out = self.dropout(torch.tanh(self.combine(torch.cat([top, ctx], 1))))  # (batch, hidden)
        c = None if new_c[0] is None else torch.stack(new_c)
        return out, DecoderState(torch.stack(new_h), c, out), weights

    def _attend(self, query: torch.Tensor, mem: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """One step's attention, query (rows, hidden) -> context (rows, mem_dim), weights (memory
        rows, src_len). A step padded to more rows than the memory has (``Seq2Seq.decode_step``)
        attends with its first rows; the others get a zero context and no weights."""
        real = mem.mask.size(0)
        if query.size(0) == real:
            return self.attention(query, mem)
        ctx, weights = self.attention(query[:real], mem)  # (real, mem_dim), (real, src_len)
        return F.pad(ctx, (0, 0, 0, query.size(0) - real)), weights

    def forward(
        self, tgt_in: torch.Tensor, state: DecoderState, mem: Memory, with_attention: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher forcing: tgt_in (batch, tgt_len) -> attentional vectors (batch, tgt_len, hidden)
        and, if asked, attention weights (batch, tgt_len, src_len)."""
        if not self.input_feeding and not self.bahdanau:
            return self._forward_fused(tgt_in, state, mem, with_attention)
        pre = self.embed_inputs(tgt_in)  # (batch, tgt_len, gates*hidden), one product for all steps
        if not with_attention and self.loop_applies(pre, state):
            params = []
            for k, cell in enumerate(self.cells):  # layer 0's bias is inside pre
                params += [cell.w_step] if k == 0 else [cell.w_step, cell.bias]
            out = DecoderLoop.apply(
                pre, state.h, state.c, state.feed, mem.values, mem.keys, mem.mask,
                self.combine.weight, self.dropout.p, self.training, *params,
            )  # fmt: skip
            return out, None
        outs, attns = [], []
        for pre_t in pre.unbind(1):
            out, state, weights = self.step(pre_t, state, mem)
            outs.append(out)
            if with_attention:
                attns.append(weights)
        return torch.stack(outs, 1), torch.stack(attns, 1) if with_attention else None

    def loop_applies(self, pre: torch.Tensor, state: DecoderState) -> bool:
        """Whether teacher forcing runs as ``DecoderLoop`` (backpropagation through time by hand,
        one autograd node) rather than autograd over ``step``: see ``training_loop``."""
        bf16 = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        return (
            not self.loop_missing(
                pre.device, torch.bfloat16 if bf16 else pre.dtype, torch.is_autocast_enabled("cpu")
            )
            and state.c is not None
            and not torch.compiler.is_compiling()
        )

    def loop_missing(self, device: torch.device, dtype: torch.dtype, autocast: bool) -> str:
        """Why ``DecoderLoop`` cannot train this decoder on ``device`` ("" when it can). It covers
        input-feeding Luong LSTM decoders with dot or general attention, on a CPU in float32 or
        float64, or under bf16 autocast (``dtype``: the products'; products in bf16, the rest in
        float32); ``explicit_bptt = False`` keeps autograd's loop everywhere."""
        kinds = {LSTMCell: "LSTM", GRUCell: "GRU", RNNCell: "RNN"}
        cells = {kinds.get(type(cell), type(cell).__name__) for cell in self.cells}
        if not self.explicit_bptt:
            return "train.explicit_bptt=false"
        if self.bahdanau or self.attention.kind not in ("dot", "general"):
            return f"{'bahdanau' if self.bahdanau else 'luong_concat'} attention"
        if not self.input_feeding:
            return "no input feeding"
        if cells != {"LSTM"}:
            return f"{'/'.join(sorted(cells))} cells"
        if device.type != "cpu":
            return f"a {device.type} device"
        if dtype not in ((torch.bfloat16,) if autocast else (torch.float32, torch.float64)):
            return f"{str(dtype).removeprefix('torch.')}{' autocast' if autocast else ''}"
        return ""

    def training_loop(self, device: torch.device, dtype: torch.dtype, autocast: bool) -> str:
        """How teacher forcing trains here, in words for the training log."""
        if not self.input_feeding and not self.bahdanau:
            return "one multi-layer RNN call over all steps (no input feeding)"
        missing = self.loop_missing(device, dtype, autocast)
        if not missing:
            return "BPTT by hand (nmt.model.bptt.DecoderLoop)"
        return f"autograd over the step loop ({missing}; the hand-written BPTT does not cover it)"

    def _forward_fused(
        self, tgt_in: torch.Tensor, state: DecoderState, mem: Memory, with_attention: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Luong without input feeding: the RNN does not depend on attention, so the whole stack
        runs over all steps as one multi-layer RNN call (oneDNN on a CPU, cuDNN on a GPU: no Python
        step loop, no per-step products), and attention for every step is one batched product.
        The same weights as the cells of ``step()``: layer 0 reads the embedding (w_pre) and its
        state (w_step), layer k > 0 the layer below and its state (w_step = [W_ih | W_hh])."""
        x = self.emb_dropout(self.embed(tgt_in))  # (batch, tgt_len, emb)
        top, _, _ = run_stack(
            self.cells, x, state.h, state.c, self.dropout.p, self.training
        )  # (batch, tgt_len, hidden)
        ctx, weights = self.attention.attend(top, mem)  # (batch, tgt_len, mem_dim), (batch, tgt_len, src_len)
        out = self.dropout(torch.tanh(self.combine(torch.cat([top, ctx], 2))))  # (batch, tgt_len, hidden)
        return out, weights if with_attention else None
