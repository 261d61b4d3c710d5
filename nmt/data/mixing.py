"""Several training corpora mixed by weight: which pairs an epoch draws from each.

Examples are drawn in proportion to the weights (OpenNMT-py's ``weight``): with ``N`` pairs an
epoch (``data.epoch_pairs``, by default all kept pairs of all corpora), corpus ``i`` gives
``N * w_i / sum(w)`` of them, rounded so that they add up to ``N``. Each corpus is read as an
endless sequence of shuffled passes over its pairs, and epoch ``e`` takes the next stretch of it:
a small corpus repeats as needed (every pair as often as every other, give or take one), a large
one gives a different part every epoch. Everything follows from (seed, epoch), so a resumed run
draws exactly what an uninterrupted one would. One corpus with its natural size is the plain
case: every pair once an epoch.
"""

from __future__ import annotations

import numpy as np

from nmt import NmtError
from nmt.data.store import EncodedSplit, Pairs


class Mixture:
    """The training corpora (in order, as ``Pairs`` concatenates them) and their weights."""

    def __init__(
        self, corpora: dict[str, Pairs | EncodedSplit], weights: dict[str, float], epoch_pairs: int, seed: int
    ) -> None:
        self.names = list(corpora)
        self.sizes = np.array([len(c) for c in corpora.values()], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)])
        self.seed = seed
        for name, size in zip(self.names, self.sizes):
            if size == 0 and weights[name] > 0:
                raise NmtError(
                    f"training corpus {name}: no pairs left after filtering, but its weight is {weights[name]:g}"
                )
        w = np.array([weights[n] for n in self.names], dtype=np.float64)
        if not (w >= 0).all() or w.sum() <= 0:
            raise NmtError(
                f"corpus weights must be >= 0 and not all 0, got {dict(zip(self.names, w.tolist()))}"
            )
        total = epoch_pairs or int(self.sizes.sum())
        share = total * w / w.sum()
        draws = np.floor(share).astype(np.int64)
        for k in np.argsort(-(share - draws), kind="stable")[: total - int(draws.sum())]:
            draws[k] += 1  # largest remainders: the draws add up to the epoch
        self.draws = draws

    @property
    def plain(self) -> bool:
        """One pass over every pair of every corpus an epoch: nothing to draw."""
        return bool((self.draws == self.sizes).all())

    def epoch(self, epoch: int) -> np.ndarray | None:
        """The pairs epoch ``epoch`` (1-based) draws, as indices into the concatenated corpora (in
        no particular order: batching shuffles), or None for every pair once (``plain``)."""
        if self.plain:
            return None
        out = [
            self.starts[k] + self._stream(k, (epoch - 1) * int(n), int(n))
            for k, n in enumerate(self.draws)
            if n > 0
        ]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def _stream(self, k: int, start: int, count: int) -> np.ndarray:
        """Items start .. start + count - 1 of corpus k's endless sequence of shuffled passes."""
        size = int(self.sizes[k])
        pieces, pos = [], start
        while pos < start + count:
            p, offset = divmod(pos, size)
            take = min(size - offset, start + count - pos)
            order = np.random.default_rng([self.seed, 7, k, p]).permutation(size)
            pieces.append(order[offset : offset + take])
            pos += take
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)

    def describe(self) -> list[str]:
        """Per corpus: pairs, weight share, draws per epoch and how many passes that is."""
        return [
            f"{name}: {int(size):,} pairs, {int(n):,} drawn an epoch ({n / max(size, 1):.2f} passes)"
            for name, size, n in zip(self.names, self.sizes, self.draws)
        ]
