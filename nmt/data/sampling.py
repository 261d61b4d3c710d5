"""Subword regularisation: the training pairs segmented afresh every epoch.

Kudo (2018) trains on a new segmentation of every sentence each epoch, drawn from the unigram
model's distribution over segmentations (SentencePiece's sampling: ``alpha`` smooths it, smaller
is flatter; ``nbest`` samples among the n best, -1 among all); BPE-dropout (Provilkov et al.
2020) drops each merge with probability ``alpha``. Either way the model sees the same word in
many pieces and learns its parts, which helps most on small and out-of-domain data.

How: the prepared ids are decoded to the normalised text they came from and segmented again,
word by word (SentencePiece never lets a piece cross a space, so a sentence's segmentation is
its words' segmentations side by side), in worker processes, chunk by chunk. A unigram word is
drawn from its 32 best segmentations with probability proportional to P(segmentation)^alpha
(computed once per word and kept: words repeat); a BPE word is merged pair by pair, the best
merge first, each possible merge dropped with probability alpha at every step. The draws come
from a numpy generator seeded by (seed, epoch, chunk) alone, so a resumed run sees the very
segmentations it would have seen, on any machine. (SentencePiece's own sampling cannot promise
that: with the same seed it draws differently in every process.) A language written without
spaces is one "word" a sentence: its draws come from the sentence's 32 best. An epoch's pieces are written to
``<run_dir>/data/sampled/epoch_<e>/`` (flat ids on disk, memory-mapped: memory does not grow
with the corpus), and the next epoch is segmented in the background while this one trains.
A pair keeps its prepared segmentation where sampling cannot apply: a piece the vocabulary
lacks (its text would not come back), or a sampled side longer than ``max_len``. Dev and test
are never sampled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sentencepiece as spm

from nmt.data.encode import run_in, start_pool
from nmt.data.store import EncodedSplit, Pairs
from nmt.data.tokenizer import UNK

log = logging.getLogger(__name__)

CHUNK = 4096  # pairs per task: the unit of the seeds


def chunk_seed(seed: int, epoch: int, chunk: int) -> int:
    """SentencePiece's seed for one chunk of one epoch (a 32-bit number from the three)."""
    digest = hashlib.blake2b(f"{seed}:{epoch}:{chunk}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


NBEST = 32  # unigram: segmentations of a word drawn from (the rest carry a negligible share)
CACHE_WORDS = 500_000  # unigram: words whose n-best lists a worker keeps


@dataclass
class Resegmenter:
    """What a worker process needs: the two SentencePiece models and the sampling settings."""

    src_model: bytes
    tgt_model: bytes
    alpha: float
    nbest: int  # unigram: draw among this many best segmentations of a word (-1: NBEST)
    sides: str  # "src", "tgt" or "both"
    max_len: int  # a sampled side longer than this keeps its prepared pieces (0: no limit)
    _sides: list | None = field(default=None, init=False, repr=False)

    def samplers(self) -> list[WordSampler]:
        if self._sides is None:
            n = NBEST if self.nbest < 0 else self.nbest
            self._sides = [
                WordSampler(self.src_model, self.alpha, n),
                WordSampler(self.tgt_model, self.alpha, n),
            ]
        return self._sides

    def chunk(self, seed: int, src: list[np.ndarray], tgt: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        """One chunk's pairs segmented afresh: (src ids, src lens, tgt ids, tgt lens), flat."""
        rng = np.random.default_rng(seed)
        out = []
        for side, seqs, sampler in (("src", src, self.samplers()[0]), ("tgt", tgt, self.samplers()[1])):
            lists = [s.tolist() for s in seqs]
            if self.sides in (side, "both"):
                texts = sampler.sp.decode(lists)
                lists = [
                    new if new and UNK not in old and (not self.max_len or len(new) <= self.max_len) else old
                    for old, new in ((old, sampler.sentence(text, rng)) for old, text in zip(lists, texts))
                ]
            lens = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
            out += [np.fromiter((t for s in lists for t in s), dtype=np.int32, count=int(lens.sum())), lens]
        return tuple(out)


class WordSampler:
    """One SentencePiece model's draws: a sentence's words segmented at random, by ``rng``."""

    def __init__(self, model: bytes, alpha: float, nbest: int) -> None:
        self.sp = spm.SentencePieceProcessor(model_proto=model)
        self.alpha, self.nbest = alpha, nbest
        self.bpe = self.sp.get_piece_size() > 0 and _model_type(model) == "bpe"
        self.cache: dict[str, tuple[list[list[int]], np.ndarray]] = {}
        if self.bpe:  # piece -> (id, score): a merge's rank is its piece's score
            self.pieces = {
                self.sp.id_to_piece(i): (i, self.sp.get_score(i))
                for i in range(self.sp.get_piece_size())
                if not (self.sp.is_control(i) or self.sp.is_unknown(i))
            }

    def sentence(self, text: str, rng: np.random.Generator) -> list[int]:
        out: list[int] = []
        for word in text.split(" "):
            if word:
                out += self.bpe_word(word, rng) if self.bpe else self.unigram_word(word, rng)
        return out

    def unigram_word(self, word: str, rng: np.random.Generator) -> list[int]:
        """One of the word's n best segmentations, drawn with probability proportional to
        P(segmentation)^alpha (Kudo 2018's sampling over the n-best)."""
        hit = self.cache.get(word)
        if hit is None:
            nbest = self.sp.nbest_encode(word, nbest_size=self.nbest, return_type="proto").nbests
            scores = np.array([n.score for n in nbest], dtype=np.float64) * self.alpha
            probs = np.exp(scores - scores.max())
            hit = ([[p.id for p in n.pieces] for n in nbest], probs / probs.sum())
            if len(self.cache) >= CACHE_WORDS:
                self.cache.clear()
            self.cache[word] = hit
        segmentations, probs = hit
        return segmentations[0] if len(probs) == 1 else segmentations[int(rng.choice(len(probs), p=probs))]

    def bpe_word(self, word: str, rng: np.random.Generator) -> list[int]:
        """BPE with dropout (Provilkov et al. 2020): merge the best-ranked adjacent pair whose
        merge is in the vocabulary, each candidate merge dropped with probability alpha."""
        symbols = ["\u2581", *word]
        while len(symbols) > 1:
            best, best_score = -1, -np.inf
            drops = rng.random(len(symbols) - 1) < self.alpha
            for i in range(len(symbols) - 1):
                hit = self.pieces.get(symbols[i] + symbols[i + 1])
                if hit is not None and not drops[i] and hit[1] > best_score:
                    best, best_score = i, hit[1]
            if best < 0:
                break
            symbols[best : best + 2] = [symbols[best] + symbols[best + 1]]
        return [self.pieces[s][0] if s in self.pieces else UNK for s in symbols]


def _model_type(model: bytes) -> str:
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString(model)
    return pb.TrainerSpec.ModelType.Name(proto.trainer_spec.model_type).lower()


class Resegmented:
    """The training split with the pairs ``picked`` segmented afresh (an epoch's view): the same
    interface as the split (``src_lens``, ``src(i)``, ...), the others as prepared."""

    def __init__(self, base: EncodedSplit | Pairs, picked: np.ndarray, folder: Path) -> None:
        self.base, self.folder = base, folder
        meta = json.loads((folder / "meta.json").read_text())
        n = len(picked)
        self.row = np.full(len(base), -1, dtype=np.int64)
        self.row[picked] = np.arange(n)
        self.src_offsets = np.load(folder / "src.offsets.npy", mmap_mode="r")
        self.tgt_offsets = np.load(folder / "tgt.offsets.npy", mmap_mode="r")
        self.src_ids = np.memmap(folder / "src.ids", dtype=np.int32, mode="r", shape=(meta["src_pieces"],))
        self.tgt_ids = np.memmap(folder / "tgt.ids", dtype=np.int32, mode="r", shape=(meta["tgt_pieces"],))
        self._src_lens = base.src_lens.astype(np.int64)
        self._src_lens[picked] = np.diff(self.src_offsets)
        self._tgt_lens = base.tgt_lens.astype(np.int64)
        self._tgt_lens[picked] = np.diff(self.tgt_offsets)
        self.pieces = meta  # pieces of the picked pairs before and after (for the log)

    def __len__(self) -> int:
        return len(self.base)

    @property
    def src_lens(self) -> np.ndarray:
        return self._src_lens

    @property
    def tgt_lens(self) -> np.ndarray:
        return self._tgt_lens

    @property
    def lines(self) -> np.ndarray:
        return self.base.lines

    def src(self, i: int) -> np.ndarray:
        r = self.row[i]
        return self.base.src(i) if r < 0 else self.src_ids[self.src_offsets[r] : self.src_offsets[r + 1]]

    def tgt(self, i: int) -> np.ndarray:
        r = self.row[i]
        return self.base.tgt(i) if r < 0 else self.tgt_ids[self.tgt_offsets[r] : self.tgt_offsets[r + 1]]

    def release(self) -> None:
        self.base.release()


class SampledEpochs:
    """Epoch e's segmentation of the pairs it draws (``picks(e)``: indices, or None for all),
    made in ``workers`` processes, written under ``folder``, the next epoch's started in the
    background as soon as one is handed out."""

    def __init__(
        self,
        base: EncodedSplit | Pairs,
        worker: Resegmenter,
        seed: int,
        folder: Path,
        picks,  # noqa: ANN001 - epoch -> np.ndarray | None
        workers: int = 1,
    ) -> None:
        self.base, self.worker, self.seed, self.folder, self.picks, self.workers = (
            base,
            worker,
            seed,
            folder,
            picks,
            workers,
        )
        self.key = {"seed": seed, "alpha": worker.alpha, "nbest": worker.nbest, "sides": worker.sides,
                    "max_len": worker.max_len, "pairs": len(base)}  # fmt: skip
        self._next: tuple[int, threading.Thread] | None = None
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._pool = None  # the worker processes, started once: they keep each word's n-best
        self._lock = threading.Lock()  # one epoch at a time on the pool

    def epoch(self, epoch: int) -> Resegmented:
        """Epoch ``epoch``'s view (made now if the background has not made it), and the next
        epoch's started."""
        if self._next is not None and self._next[0] == epoch:
            self._next[1].join()
        if self._error is not None:
            raise self._error
        picked = self._picked(epoch)
        folder = self.folder / f"epoch_{epoch}"
        if not self._complete(folder):
            self._make(epoch, picked, folder)
        view = Resegmented(self.base, picked, folder)
        self._forget(keep={epoch, epoch + 1})
        self._start(epoch + 1)
        return view

    def close(self) -> None:
        """Stop the background segmentation after its current chunk: an epoch half made is left
        as ``.tmp`` (never read; made again when needed)."""
        self._stop.set()
        if self._next is not None:
            self._next[1].join()
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def _picked(self, epoch: int) -> np.ndarray:
        drawn = self.picks(epoch)
        return np.arange(len(self.base)) if drawn is None else np.unique(drawn)

    def _complete(self, folder: Path) -> bool:
        meta = folder / "meta.json"
        return meta.is_file() and json.loads(meta.read_text()).get("key") == self.key

    def _start(self, epoch: int) -> None:
        folder = self.folder / f"epoch_{epoch}"
        if self._complete(folder) or (self._next is not None and self._next[0] == epoch):
            return

        def work() -> None:
            try:
                self._make(epoch, self._picked(epoch), folder)
            except BaseException as e:  # noqa: BLE001 - raised by the next epoch() in the trainer
                self._error = e

        thread = threading.Thread(target=work, name=f"nmt-subwords-{epoch}", daemon=True)
        self._next = (epoch, thread)
        thread.start()

    def _make(self, epoch: int, picked: np.ndarray, folder: Path) -> None:
        t0 = time.perf_counter()
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        chunks = [picked[i : i + CHUNK] for i in range(0, len(picked), CHUNK)]
        tasks = (
            (chunk_seed(self.seed, epoch, k), [self.base.src(i) for i in c], [self.base.tgt(i) for i in c])
            for k, c in enumerate(chunks)
        )
        src_lens, tgt_lens = [], []
        with self._lock, open(tmp / "src.ids", "wb") as fs, open(tmp / "tgt.ids", "wb") as ft:
            # in processes of their own (spawned once): the training loop keeps this one's interpreter
            if self._pool is None:
                self._pool = start_pool(self.worker, self.workers)
            for s_ids, s_lens, t_ids, t_lens in run_in(self._pool, self.workers, "chunk", tasks):
                if self._stop.is_set():
                    return
                fs.write(s_ids.tobytes())
                ft.write(t_ids.tobytes())
                src_lens.append(s_lens)
                tgt_lens.append(t_lens)
        self.base.release()
        meta = {"key": self.key, "epoch": epoch, "pairs": len(picked)}
        for side, lens in (("src", src_lens), ("tgt", tgt_lens)):
            flat = np.concatenate(lens) if lens else np.zeros(0, dtype=np.int64)
            offsets = np.zeros(len(flat) + 1, dtype=np.int64)
            np.cumsum(flat, out=offsets[1:])
            np.save(tmp / f"{side}.offsets.npy", offsets)
            meta[f"{side}_pieces"] = int(offsets[-1])
            before = getattr(self.base, f"{side}_lens")[picked]
            meta[f"{side}_pieces_prepared"] = int(before.sum())
        meta["seconds"] = round(time.perf_counter() - t0, 1)
        (tmp / "meta.json").write_text(json.dumps(meta))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)  # committed: complete or absent
        log.info(
            "subword sampling: epoch %d segmented afresh in %.1f s | %d pairs | pieces: source %+.1f %%, target %+.1f %%",
            epoch,
            meta["seconds"],
            len(picked),
            100 * (meta["src_pieces"] / max(meta["src_pieces_prepared"], 1) - 1),
            100 * (meta["tgt_pieces"] / max(meta["tgt_pieces_prepared"], 1) - 1),
        )

    def _forget(self, keep: set[int]) -> None:
        if not self.folder.is_dir():
            return
        for path in self.folder.glob("epoch_*"):
            name = path.name.removesuffix(".tmp").removeprefix("epoch_")
            if name.isdigit() and int(name) not in keep:
                shutil.rmtree(path, ignore_errors=True)
