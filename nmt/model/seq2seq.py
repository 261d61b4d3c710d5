"""The encoder-decoder (Sutskever et al. 2014, with attention): ``encode``, ``decode_step``, ``forward``.

Search code uses only ``encode`` and ``decode_step`` (and the ``select`` of the state and memory
they return), so a scripted fake model with the same two methods can drive it in tests.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from nmt.checks import validate_model
from nmt.config import ModelConfig
from nmt.data.tokenizer import PAD
from nmt.model.attention import Memory
from nmt.model.cells import GRUCell, LSTMCell, RNNCell
from nmt.model.decoder import Decoder, DecoderState
from nmt.model.encoder import Bridge, Encoder
from nmt.model.loss import output_loss
from nmt.startup import step_rows

_RANDOM_FILLS = frozenset(
    ("uniform_", "normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_",
     "trunc_normal_", "orthogonal_")
)  # fmt: skip


class _NoRandomFills(TorchFunctionMode):
    """Layers built inside skip their random initial fills (``Tensor.uniform_``, ``nn.init.*``),
    the costly part of building a model whose weights are about to be replaced."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        if getattr(func, "__name__", None) in _RANDOM_FILLS:  # f(t, ...) or nn.init.f(tensor=t, ...)
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


class Seq2Seq(nn.Module):
    def __init__(self, cfg: ModelConfig, src_vocab: int, tgt_vocab: int, initialize: bool = True) -> None:
        """``initialize=False`` skips all initialisation, the configured one and the random fills
        of PyTorch's own layers (for weights about to be loaded: ~20 ms of a one-line
        translation's start-up for the en_ja_small model); the weights are then undefined."""
        super().__init__()
        validate_model(cfg)
        with contextlib.nullcontext() if initialize else _NoRandomFills():
            self._build(cfg, src_vocab, tgt_vocab)
        if initialize:
            self._init(cfg)
        if cfg.tie_embeddings:  # Press & Wolf 2017; Inan et al. 2017
            self.output.weight = self.decoder.embed.weight

    def _build(self, cfg: ModelConfig, src_vocab: int, tgt_vocab: int) -> None:
        cell = cfg.cell.value
        self.encoder = Encoder(
            src_vocab, cfg.emb_dim, cfg.enc_hidden, cfg.enc_layers, cfg.dropout, cfg.emb_dropout, cell
        )
        mem_dim = self.encoder.out_dim
        self.bridge = Bridge(
            cfg.bridge.value, mem_dim, cfg.dec_hidden, cfg.dec_layers, has_cell=cell == "lstm"
        )
        self.decoder = Decoder(
            tgt_vocab,
            cfg.emb_dim,
            cfg.dec_hidden,
            cfg.dec_layers,
            mem_dim,
            cfg.attention.value,
            cfg.attn_dim,
            cfg.input_feeding,
            cfg.dropout,
            cfg.emb_dropout,
            cell,
            cfg.forget_bias,
        )
        tie = cfg.tie_embeddings
        self.pre_output = (
            nn.Linear(cfg.dec_hidden, cfg.emb_dim, bias=False)
            if tie and cfg.dec_hidden != cfg.emb_dim
            else None
        )
        self.output = nn.Linear(cfg.emb_dim if tie else cfg.dec_hidden, tgt_vocab)

    def _init(self, cfg: ModelConfig) -> None:
        if cfg.init_range > 0:
            for p in self.parameters():
                nn.init.uniform_(p, -cfg.init_range, cfg.init_range)
        for m in self.modules():
            if isinstance(m, (LSTMCell, GRUCell, RNNCell)):
                m.init_forget_bias()
        if cfg.cell.value == "lstm":  # nn.LSTM: gates i, f, g, o; b_ih + b_hh is the effective bias
            h = cfg.enc_hidden
            with torch.no_grad():
                for name, p in self.encoder.rnn.named_parameters():
                    if name.startswith("bias_ih"):
                        p[h : 2 * h].fill_(cfg.forget_bias)
                    elif name.startswith("bias_hh"):
                        p[h : 2 * h].zero_()
        with torch.no_grad():
            self.encoder.embed.weight[PAD].zero_()
            self.decoder.embed.weight[PAD].zero_()

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> tuple[Memory, DecoderState]:
        """src (batch, src_len), src_lens (batch,) on the CPU -> attention memory, initial decoder state.

        Decoding on a CPU (no gradients) runs it all in float32, autocast or not: the encoder's
        RNN always does there (``Encoder.forward``), and the attention keys and the bridge are
        one product each per batch, whose (sentences x source length) shapes would each make a
        oneDNN kernel in bf16, new for nearly every batch."""
        per_batch_fp32 = (
            src.device.type == "cpu" and torch.is_autocast_enabled("cpu") and not torch.is_grad_enabled()
        )
        with torch.autocast("cpu", enabled=False) if per_batch_fp32 else contextlib.nullcontext():
            states, h, c = self.encoder(src, src_lens)  # (batch, src_len, 2*enc_hidden)
            mem = self.decoder.attention.memory(states, src != PAD)
            return mem, self.decoder.start(*self.bridge(h, c))

    def logits(self, out: torch.Tensor) -> torch.Tensor:
        """Attentional vectors (..., dec_hidden) -> vocabulary scores (..., tgt_vocab)."""
        x = self._output_input(out)
        path = output_product(x, self.output)
        if path == "vocab_major":
            # (vocab, d) @ (d, rows): the weight as the left operand, result viewed as (rows, vocab)
            w, b = self.output.weight, self.output.bias
            return (torch.mm(w, x.t()) if b is None else torch.addmm(b.unsqueeze(1), w, x.t())).t()
        if path == "onednn":
            # oneDNN's inner product (the op torch.compile's CPU backend emits for linear layers),
            # rows padded to a multiple of ONEDNN_ROW_STEP: oneDNN builds and caches a kernel per shape
            rows = x.size(0)
            padded = x.new_zeros(-(-rows // ONEDNN_ROW_STEP) * ONEDNN_ROW_STEP, x.size(1))  # (padded rows, d)
            padded[:rows] = x
            scores = torch.ops.mkldnn._linear_pointwise(
                padded, self.output.weight, self.output.bias, "none", [], ""
            )
            return scores[:rows]  # (rows, vocab)
        return self.output(x)

    def _output_input(self, out: torch.Tensor) -> torch.Tensor:
        """Attentional vectors -> the output layer's input (through ``pre_output`` when tied)."""
        return out if self.pre_output is None else self.pre_output(out)

    def features(self, src: torch.Tensor, src_lens: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: (batch, src_len), (batch,), (batch, tgt_len) -> the output layer's input
        (batch, tgt_len, emb_dim if tied else dec_hidden)."""
        mem, state = self.encode(src, src_lens)
        out, _ = self.decoder(tgt_in, state, mem)  # (batch, tgt_len, dec_hidden)
        return self._output_input(out)

    def forward(
        self,
        src: torch.Tensor,
        src_lens: torch.Tensor,
        tgt_in: torch.Tensor,
        tgt_out: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: (batch, src_len), (batch,), (batch, tgt_len) -> logits (batch, tgt_len, tgt_vocab).

        With the gold ``tgt_out`` (batch, tgt_len): (label-smoothed loss sum, NLL sum) over its
        non-pad tokens instead, computed without materialising the logits (``output_loss``).
        """
        out = self.features(src, src_lens, tgt_in)
        if tgt_out is None:
            return self.output(out)
        return output_loss(out, self.output, tgt_out, label_smoothing)

    def decode_step(
        self, tokens: torch.Tensor, state: DecoderState, mem: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """tokens (rows,) -> log-probabilities (rows, tgt_vocab), new state, attention (rows, src_len).

        Log-probabilities are float32 under autocast (bf16/fp16 logits are widened first) and
        float64 for a float64 model.

        Under autocast on a CPU the step's products run on ``step_rows(rows)`` rows: the
        hypotheses are padded with copies of the first (their results are dropped), so a search
        whose rows shrink one sentence at a time meets a few dozen product shapes, and oneDNN
        compiles each shape's kernels once (``nmt.startup``). Attention runs on the real rows."""
        rows = tokens.size(0)
        padded = step_rows(rows) if tokens.device.type == "cpu" and torch.is_autocast_enabled("cpu") else rows
        if padded > rows:
            fill = torch.cat([torch.arange(rows), torch.zeros(padded - rows, dtype=torch.long)]).to(
                tokens.device
            )
            tokens, state = tokens.index_select(0, fill), state.select(fill)  # (padded,), padded rows
        out, state, weights = self.decoder.step(self.decoder.embed_inputs(tokens), state, mem)
        logits = self.logits(out)  # (padded, tgt_vocab)
        if padded > rows:
            logits, state = logits[:rows], state.first(rows)  # weights: the real rows only
        return (
            F.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1),
            state,
            weights,
        )


VOCAB_MAJOR_ROWS = (2, 64)  # decoding rows for which the output product runs vocabulary-major
ONEDNN_ROW_STEP = 16  # rows of oneDNN's output product are padded to a multiple of this


def output_product(x: torch.Tensor, output: nn.Module) -> Literal["vocab_major", "onednn", "linear"]:
    """How decoding computes the output layer's scores for x (rows, d): "vocab_major", "onednn" or
    "linear" (``nn.Linear`` as it is). A fixed rule, not a timed probe, so that the same command on
    the same machine always gives the same bits. Only fp32 decoding on a CPU is rerouted (no
    autograd, no autocast, not quantized, not inside ``torch.compile``); training, bf16 and GPUs
    keep ``nn.Linear``. Measured on AMD CPUs only (below); applied wherever the conditions hold.

    - 2 to 64 rows, "vocab_major": W @ x^T instead of x @ W^T, the same arithmetic with the
      (vocab x d) weight as the left operand; MKL runs x @ W^T far slower with few rows. Per call
      with an 8,000 x 256 weight (docs/benchmarks.md, 2026-12-02): on a Zen 1 2.0-3.5x faster at
      2-10 rows, 1.1-1.7x at 16-64, 0.88x at 128; on a Zen 3 1.67x at 5 rows, 1.00-1.09x at 10-64,
      0.84x at 128; no gain at 1 row.
    - more than 64 rows (beam search over a batch), "onednn": oneDNN's inner product instead of
      MKL's sgemm, where PyTorch has oneDNN. On a Zen 3, per call 1.3x at 65-320 rows (95 against
      72 GFLOP/s at 320); beam 5 over the peers' test set 1.19x in one process, 1.10x whole
      process, identical output (docs/benchmarks.md, 2026-12-02, afternoon). The cells' products
      gained nothing this way. Off when oneDNN is switched off (``torch.backends.mkldnn.flags``).
    """
    lo, hi = VOCAB_MAJOR_ROWS
    fp32_cpu_decoding = (
        x.dim() == 2
        and x.device.type == "cpu"
        and type(output) is nn.Linear
        and x.dtype == output.weight.dtype == torch.float32
        and not torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()  # compiled steps (compile=true) get inductor's own kernels
    )
    if not fp32_cpu_decoding or x.size(0) < lo:
        return "linear"
    if x.size(0) <= hi:
        return "vocab_major"
    return "onednn" if torch.backends.mkldnn.enabled and _has_onednn_linear() else "linear"


@functools.cache
def _has_onednn_linear() -> bool:
    """Whether this PyTorch has oneDNN's inner-product op and it agrees with ``F.linear`` on a small
    fp32 CPU product (x86 and Arm builds have it): a property of the installed PyTorch, so checked
    once per process, the first time decoding would use it."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return False
    f32 = dict(dtype=torch.float32, device="cpu")
    x = torch.linspace(-1, 1, 16 * 8, **f32).view(16, 8)  # (rows, d)
    w = torch.linspace(1, -1, 24 * 8, **f32).view(24, 8)  # (out, d)
    b = torch.ones(24, **f32)
    try:
        got = torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
    except RuntimeError:
        return False
    return bool(torch.allclose(got, F.linear(x, w, b), rtol=1e-4, atol=1e-4))


def build_model(cfg: ModelConfig, src_vocab: int, tgt_vocab: int) -> Seq2Seq:
    return Seq2Seq(cfg, src_vocab, tgt_vocab)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
