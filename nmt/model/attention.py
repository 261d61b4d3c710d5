"""Attention: a decoder query and the encoder memory in, a context vector and weights out.

Scores e_j over source positions j, weights a = softmax(e) over real (non-padding) positions,
context c = sum_j a_j h_j over the encoder states h_j (Bahdanau et al. 2015, Luong et al. 2015):

    dot       e_j = q . h_j                          (Luong; needs dim(q) == dim(h_j))
    general   e_j = q . (W_a h_j)                    (Luong; "bilinear")
    additive  e_j = v . tanh(W_q q + W_k h_j)        (Bahdanau's score; Luong's "concat" is the same form)

The parts that depend only on the memory (h_j, W_a h_j or W_k h_j) are computed once per batch by
``keys()``, so a decoder step does one batched product (dot, general) or one add + tanh + product
(additive) over the source. Padding gets weight exactly 0.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class Memory(NamedTuple):
    """Encoder output prepared for attention; rows follow the batch (or batch x beam)."""

    values: torch.Tensor  # (batch, src_len, mem_dim) encoder states h_j
    keys: torch.Tensor  # (batch, src_len, key_dim) what the score compares the query with
    mask: torch.Tensor  # (batch, src_len) bool, True = real token

    def select(self, idx: torch.Tensor) -> Memory:
        """Rows ``idx`` (to expand to beams, or drop finished sentences)."""
        return Memory(
            self.values.index_select(0, idx), self.keys.index_select(0, idx), self.mask.index_select(0, idx)
        )


class Attention(nn.Module):
    """``kind``: "dot", "general" or "additive"; ``query_dim`` is the decoder state size."""

    def __init__(self, kind: str, query_dim: int, mem_dim: int, attn_dim: int = 0) -> None:
        super().__init__()
        if kind not in ("dot", "general", "additive"):
            raise ValueError(f"unknown attention score {kind!r}")
        if kind == "dot" and query_dim != mem_dim:
            raise ValueError(f"dot attention needs query_dim == mem_dim, got {query_dim} != {mem_dim}")
        self.kind = kind
        attn_dim = attn_dim or query_dim
        if kind == "general":
            self.w_a = nn.Linear(mem_dim, query_dim, bias=False)
        elif kind == "additive":
            self.w_k = nn.Linear(mem_dim, attn_dim, bias=False)
            self.w_q = nn.Linear(query_dim, attn_dim, bias=True)
            self.v = nn.Linear(attn_dim, 1, bias=False)

    def memory(self, values: torch.Tensor, mask: torch.Tensor) -> Memory:
        """Precompute the keys once per batch: values (batch, src_len, mem_dim). Decoding on a
        CPU builds the memory with autocast off (``Seq2Seq.encode``), so it stays float32 there."""
        if values.dtype == torch.float32 and torch.is_autocast_enabled(
            values.device.type
        ):  # once, not per step
            values = values.to(torch.get_autocast_dtype(values.device.type))
        if self.kind == "dot":
            keys = values  # (batch, src_len, mem_dim)
        elif self.kind == "general":
            keys = self.w_a(values)  # (batch, src_len, query_dim)
        else:
            keys = self.w_k(values)  # (batch, src_len, attn_dim)
        return Memory(values, keys, mask)

    def scores(self, query: torch.Tensor, mem: Memory) -> torch.Tensor:
        """query (batch, steps, query_dim) -> scores (batch, steps, src_len), -inf on padding."""
        if self.kind == "additive":
            q = self.w_q(query)  # (batch, steps, attn_dim)
            e = self.v(torch.tanh(q.unsqueeze(2) + mem.keys.unsqueeze(1))).squeeze(
                3
            )  # (batch, steps, src_len)
        else:
            e = torch.bmm(query, mem.keys.transpose(1, 2))  # (batch, steps, src_len)
        return e.masked_fill(~mem.mask.unsqueeze(1), float("-inf"))

    def forward(self, query: torch.Tensor, mem: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """One step, query (batch, query_dim) -> context (batch, mem_dim), weights (batch, src_len).

        Decoding on a CPU under autocast (no gradients) runs the step in float32, the dtype of the
        memory ``Seq2Seq.encode`` builds there; training is left as autocast makes it. A step's products
        are one query row per sentence against its source, (rows, 1, dim) x (rows, dim, src_len):
        in bf16 each (rows, src_len) pair is a oneDNN kernel of its own, compiled on first use and
        cached, so beam search, whose rows shrink as sentences finish and whose batches each have
        their own source length, made hundreds of kernels per pass and re-made them once the
        cache was full (900 of a kyoto pass's 1,071, docs/benchmarks.md, 2026-12-07, late). In float32
        the same products run as MKL's batched matrix-vector products, which need no per-shape
        kernel, and took less time than bf16 (same table)."""
        if query.device.type == "cpu" and torch.is_autocast_enabled("cpu") and not torch.is_grad_enabled():
            with torch.autocast("cpu", enabled=False):
                ctx, weights = self.attend(query.unsqueeze(1).to(mem.keys.dtype), mem)
        else:
            ctx, weights = self.attend(query.unsqueeze(1), mem)
        return ctx.squeeze(1), weights.squeeze(1)

    def attend(self, query: torch.Tensor, mem: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """All steps at once, query (batch, steps, query_dim) -> (batch, steps, mem_dim), (batch, steps, src_len)."""
        weights = torch.softmax(self.scores(query, mem), dim=-1)  # (batch, steps, src_len)
        ctx = torch.bmm(weights, mem.values)  # (batch, steps, mem_dim)
        return ctx, weights
