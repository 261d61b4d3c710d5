"""Encoded sentences in, padded ``Batch`` tensors out; batches built to a token budget.

Sentences are sorted by length (after a random shuffle, so equal lengths are mixed) and cut into
batches whose padded size ``sentences x longest`` stays within the budget; the batch order is then
shuffled. Padding per batch stays small, and every batch costs about the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nmt.data.corpus import EncodedSplit
from nmt.data.tokenizer import BOS, EOS, PAD


@dataclass
class Batch:
    """One batch, sorted by source length (longest first) so packing needs no reordering.

    ``src_lens`` stays on the CPU (``pack_padded_sequence`` wants it there). ``index`` holds each
    row's position in the split (or input) so callers can restore the original order.
    """

    src: torch.Tensor  # (batch, src_len) long, PAD-padded
    src_lens: torch.Tensor  # (batch,) long, CPU
    tgt_in: torch.Tensor | None  # (batch, tgt_len) long: BOS y1 .. yn
    tgt_out: torch.Tensor | None  # (batch, tgt_len) long: y1 .. yn EOS
    index: np.ndarray  # (batch,) positions in the split
    n_tgt_tokens: int  # real target tokens (including EOS)

    def __len__(self) -> int:
        return self.src.size(0)

    def to(self, device: torch.device) -> Batch:
        if device.type == "cpu":
            return self
        move = lambda t: None if t is None else t.pin_memory().to(device, non_blocking=True)  # noqa: E731
        return Batch(
            move(self.src),
            self.src_lens,
            move(self.tgt_in),
            move(self.tgt_out),
            self.index,
            self.n_tgt_tokens,
        )


def batch_indices(
    src_lens: np.ndarray,
    tgt_lens: np.ndarray | None,
    batch_size: int,
    by_tokens: bool,
    rng: np.random.Generator | None = None,
    sort_window: int = 0,
    max_sents: int = 0,
) -> list[np.ndarray]:
    """Group sentence indices into batches; shuffled when ``rng`` is given, in length order otherwise.

    ``by_tokens``: ``batch_size`` bounds padded tokens, ``len(batch) * max(src_len, tgt_len + 1)``
    (a sentence longer than the budget gets a batch of its own); else it counts sentences.
    ``max_sents`` (> 0) caps the sentences of a token batch as well.
    ``sort_window``: sort within windows of this many shuffled sentences (0: the whole split), so
    batches of very different lengths still mix between epochs on huge corpora.
    """
    n = len(src_lens)
    cost = src_lens if tgt_lens is None else np.maximum(src_lens, tgt_lens + 1)
    order = rng.permutation(n) if rng is not None else np.arange(n)
    window = sort_window if sort_window > 0 else max(n, 1)
    chunks = []
    for start in range(0, n, window):
        part = order[start : start + window]
        # stable sort by cost: ties keep the shuffled order
        chunks.append(part[np.argsort(cost[part], kind="stable")])
    order = np.concatenate(chunks) if chunks else order

    batches, start, longest = [], 0, 0
    for i in range(n):
        c = int(cost[order[i]])
        longest_if_added = max(longest, c)
        size = i - start + 1
        full = size * longest_if_added > batch_size if by_tokens else size > batch_size
        full = full or 0 < max_sents < size
        if full and i > start:
            batches.append(order[start:i])
            start, longest_if_added = i, c
        longest = longest_if_added
    if start < n:
        batches.append(order[start:n])
    if rng is not None:
        rng.shuffle(batches)
    return batches


def pad(seqs: list[np.ndarray], bos: bool = False, eos: bool = False) -> torch.Tensor:
    """Sequences to a PAD-padded (batch, max_len) long tensor, optionally with BOS/EOS added."""
    extra = int(bos) + int(eos)
    out = np.full((len(seqs), max(len(s) for s in seqs) + extra), PAD, dtype=np.int64)
    for r, s in enumerate(seqs):
        o = int(bos)
        out[r, o : o + len(s)] = s
        if bos:
            out[r, 0] = BOS
        if eos:
            out[r, o + len(s)] = EOS
    return torch.from_numpy(out)


def make_batch(split: EncodedSplit, idx: np.ndarray, with_target: bool = True) -> Batch:
    """Collate the sentences ``idx`` of a split (any order) into a batch sorted by source length."""
    idx = idx[np.argsort(-split.src_lens[idx], kind="stable")]
    srcs = [split.src(i) for i in idx]
    src = pad(srcs)  # (batch, src_len)
    src_lens = torch.tensor([len(s) for s in srcs], dtype=torch.long)
    if not with_target:
        return Batch(src, src_lens, None, None, idx, 0)
    tgts = [split.tgt(i) for i in idx]
    tgt_in = pad(tgts, bos=True)  # (batch, tgt_len + 1)
    tgt_out = pad(tgts, eos=True)  # (batch, tgt_len + 1)
    return Batch(src, src_lens, tgt_in, tgt_out, idx, sum(len(t) + 1 for t in tgts))
