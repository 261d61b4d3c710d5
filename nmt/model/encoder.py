"""Source ids in, encoder states and the decoder's initial state out.

A bidirectional multi-layer LSTM (or GRU) over packed sequences: padding is never read, so a
padded sentence gets the same states as the sentence alone, and the backward direction starts at
each sentence's real last token (Schuster & Paliwal 1997; Bahdanau et al. 2015). In training on a
CPU an LSTM encoder runs through ``nmt.model.bilstm`` (the same function, its backward pass written
by hand); the bridge maps the final encoder states to the decoder's initial state.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from nmt.data.tokenizer import PAD
from nmt.model.bilstm import Products, bilstm
from nmt.model.dropout import Dropout
from nmt.startup import packed_rows


class Encoder(nn.Module):
    def __init__(
        self,
        vocab: int,
        emb_dim: int,
        hidden: int,
        layers: int,
        dropout: float,
        emb_dropout: float,
        cell: str,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, emb_dim, padding_idx=PAD)
        self.emb_dropout = Dropout(emb_dropout)
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell]  # nn.RNN: tanh
        self.rnn = rnn(
            emb_dim,
            hidden,
            num_layers=layers,
            bidirectional=True,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.layers, self.hidden = layers, hidden
        self.explicit_bptt = True  # training through nmt.model.bilstm where it applies

    @property
    def out_dim(self) -> int:
        return 2 * self.hidden

    def forward(
        self, src: torch.Tensor, src_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """src (batch, src_len), src_lens (batch,) on the CPU ->
        states (batch, src_len, 2*hidden) (zeros on padding), final h and c (layers, batch, 2*hidden)."""
        x = self.emb_dropout(self.embed(src))  # (batch, src_len, emb)
        packed = pack_padded_sequence(x, src_lens, batch_first=True, enforce_sorted=False)
        # On a CPU the packed RNN runs one matrix product per time step with as many rows as
        # sentences are still running: under bf16 autocast every distinct row count becomes a
        # oneDNN primitive of its own, cached, and real batches (every one a new set of lengths)
        # grew training memory by 2.3x (bench/train_speed.py --data ... --precision bf16). So the
        # encoder's recurrence stays float32 on the CPU; in training, nmt.model.bilstm runs its
        # products over all steps in bf16 on packed_rows(source tokens) rows (a few sizes per
        # doubling). CUDA autocast (cuDNN handles packed sequences natively) is not affected.
        lowp = torch.is_autocast_enabled("cpu") and x.dtype == torch.float32
        tokens = packed.data.size(0)
        products = Products(torch.get_autocast_dtype("cpu"), packed_rows(tokens)) if lowp else None
        with torch.autocast("cpu", enabled=False):
            out, final = self._loop(packed, products) if self.loop_applies(x) else self.rnn(packed)
        states, _ = pad_packed_sequence(
            out, batch_first=True, total_length=src.size(1)
        )  # (batch, src_len, 2*hidden)
        h, c = final if isinstance(final, tuple) else (final, None)
        return states, self._join(h), None if c is None else self._join(c)

    def loop_applies(self, x: torch.Tensor) -> bool:
        """Whether the RNN runs as ``nmt.model.bilstm`` (backpropagation through time by hand, both
        directions advanced together) rather than ``nn.LSTM``: the same function, for an LSTM
        being trained on a CPU in float32 or float64; ``explicit_bptt = False`` keeps ``nn.LSTM``.
        Without gradients (translating, validating) ``nn.LSTM`` runs, through oneDNN."""
        return (
            torch.is_grad_enabled()
            and not self.loop_missing(x.device, x.dtype)
            and not torch.compiler.is_compiling()
        )

    def loop_missing(self, device: torch.device, dtype: torch.dtype) -> str:
        """Why ``nmt.model.bilstm`` cannot train this encoder ("" when it can)."""
        if not self.explicit_bptt:
            return "train.explicit_bptt=false"
        if type(self.rnn) is not nn.LSTM:
            return f"{type(self.rnn).__name__.removeprefix('nn.')} cells"
        if device.type != "cpu":
            return f"a {device.type} device"
        if dtype not in (torch.float32, torch.float64):
            return str(dtype).removeprefix("torch.")
        return ""

    def training_loop(self, device: torch.device, dtype: torch.dtype) -> str:
        """How the encoder trains here, in words for the training log."""
        missing = self.loop_missing(device, dtype)
        if not missing:
            return "BPTT by hand (nmt.model.bilstm)"
        where = "cuDNN" if device.type == "cuda" else "oneDNN" if device.type == "cpu" else device.type
        return f"{type(self.rnn).__name__} through {where} ({missing})"

    def _loop(
        self, packed: PackedSequence, products: Products | None
    ) -> tuple[PackedSequence, tuple[torch.Tensor, torch.Tensor]]:
        """``self.rnn(packed)`` through ``nmt.model.bilstm``: the same outputs and final states."""
        w = self.rnn.all_weights  # per layer, forward then reverse: [weight_ih, weight_hh, bias_ih, bias_hh]
        layers = [tuple(w[2 * k] + w[2 * k + 1]) for k in range(self.layers)]
        data, h, c = bilstm(
            packed.data, packed.batch_sizes, layers, self.rnn.dropout, self.training, products
        )
        order = packed.unsorted_indices  # final states in the batch's own order, as nn.LSTM gives them
        if order is not None:
            h, c = h.index_select(1, order), c.index_select(1, order)
        return packed._replace(data=data), (h, c)

    def _join(self, s: torch.Tensor) -> torch.Tensor:
        """(layers*2, batch, hidden) -> (layers, batch, 2*hidden): [forward; backward] per layer."""
        s = s.view(self.layers, 2, s.size(1), self.hidden)  # (layers, 2, batch, hidden)
        return torch.cat([s[:, 0], s[:, 1]], dim=2)  # (layers, batch, 2*hidden)


class Bridge(nn.Module):
    """Final encoder states (layers_enc, batch, enc_dim) -> initial decoder h, c (layers_dec, batch, dec_hidden).

    ``learned``: tanh(W [h_fwd; h_bwd]) of the top encoder layer, one slice per decoder layer
    (separate weights for h and c). ``zero``: zeros. ``copy``: layer by layer, as is.
    """

    def __init__(self, kind: str, enc_dim: int, dec_hidden: int, dec_layers: int, has_cell: bool) -> None:
        super().__init__()
        self.kind, self.dec_hidden, self.dec_layers = kind, dec_hidden, dec_layers
        if kind == "learned":
            self.to_h = nn.Linear(enc_dim, dec_layers * dec_hidden)
            self.to_c = nn.Linear(enc_dim, dec_layers * dec_hidden) if has_cell else None

    def _map(self, proj: nn.Linear, s: torch.Tensor) -> torch.Tensor:
        out = torch.tanh(proj(s[-1]))  # (batch, dec_layers*dec_hidden)
        return (
            out.view(-1, self.dec_layers, self.dec_hidden).transpose(0, 1).contiguous()
        )  # (dec_layers, batch, dec_hidden)

    def forward(self, h: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.kind == "copy":
            return h, c
        if self.kind == "zero":
            z = h.new_zeros(self.dec_layers, h.size(1), self.dec_hidden)  # (dec_layers, batch, dec_hidden)
            return z, None if c is None else z.clone()
        return self._map(self.to_h, h), None if c is None else self._map(self.to_c, c)
