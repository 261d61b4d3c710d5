"""char-rnn (Karpathy 2015): a character-level recurrent language model, trained and sampled.

A decoder without attention is a language model: characters in, the next character's
distribution out, through a stack of nmt's own cells (``model.cells``: LSTM, GRU or the simple
RNN), so what is learnt here can be looked at with the same tools as a translation model.
Training is truncated backpropagation through time over one long text: the text is cut into
``batch`` parallel streams, each read ``seq_len`` characters at a time; the state is carried from
one window to the next (detached), as in char-rnn. Validation reports bits per character
(cross-entropy in bits) on the text's last part. Sampling primes the state with a text and draws
each next character from softmax(logits / T), through the translator's sampler.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nmt import NmtError
from nmt.config import Cell, LMConfig, LMTrainConfig
from nmt.model.cells import GRUCell, LSTMCell, RNNCell, run_stack
from nmt.model.dropout import Dropout
from nmt.model.io import load_checkpoint, save_checkpoint
from nmt.search.greedy import Sampler

log = logging.getLogger(__name__)

UNK_CHAR = 0  # id of characters the vocabulary does not have


class CharVocab:
    """The characters of a text (the most frequent ``size`` - 1 of them); id 0 is the unknown character."""

    def __init__(self, chars: list[str]) -> None:
        self.chars = chars
        self.index = {c: i for i, c in enumerate(chars)}

    @classmethod
    def build(cls, text: str, size: int) -> CharVocab:
        common = [c for c, _ in Counter(text).most_common(size - 1)]
        return cls(["\ufffd", *sorted(common)])

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        return np.fromiter((self.index.get(c, UNK_CHAR) for c in text), dtype=np.int64, count=len(text))

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)


class CharLM(nn.Module):
    def __init__(self, cfg: LMConfig, vocab: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(vocab, cfg.emb_dim)
        Cell_ = {"lstm": LSTMCell, "gru": GRUCell, "rnn": RNNCell}[Cell(cfg.cell).value]
        self.cells = nn.ModuleList(
            [Cell_(cfg.emb_dim, 0, cfg.hidden)]
            + [Cell_(0, cfg.hidden, cfg.hidden) for _ in range(cfg.layers - 1)]
        )
        for cell in self.cells:
            cell.init_forget_bias()
        self.dropout = Dropout(cfg.dropout)
        self.output = nn.Linear(cfg.hidden, vocab)

    @property
    def has_cell_state(self) -> bool:
        return isinstance(self.cells[0], LSTMCell)

    def start(self, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = torch.zeros(len(self.cells), batch, self.cfg.hidden, device=device)  # (layers, batch, hidden)
        return h, (h.clone() if self.has_cell_state else None)

    def forward(
        self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """x (batch, steps) -> logits (batch, steps, vocab) and the final state (one fused RNN call)."""
        emb = self.dropout(self.embed(x))  # (batch, steps, emb)
        out, h, c = run_stack(self.cells, emb, h, c, self.cfg.dropout, self.training)
        return self.output(self.dropout(out)), h, c

    def trace(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Step by step through the cells for one sequence x (steps,): per layer the state each
        unit holds after each character, (steps, hidden): c for an LSTM (its memory), h otherwise."""
        h, c = self.start(1, x.device)
        hs, cs = list(h.unbind(0)), list(c.unbind(0)) if c is not None else [None] * len(self.cells)
        per_layer: list[list[torch.Tensor]] = [[] for _ in self.cells]
        for t in range(x.size(0)):
            inp = None
            for k, cell in enumerate(self.cells):
                pre = cell.project(self.embed(x[t : t + 1])) if k == 0 else None
                hs[k], cs[k] = cell(pre, inp, hs[k], cs[k])
                inp = hs[k]
                per_layer[k].append((cs[k] if cs[k] is not None else hs[k])[0])
        return [torch.stack(v) for v in per_layer]


# ----------------------------------------------------------------------------- training


def streams(ids: np.ndarray, batch: int) -> torch.Tensor:
    """A long id sequence cut into ``batch`` contiguous streams: (batch, len // batch)."""
    n = len(ids) // batch
    if n < 2:
        raise NmtError(f"the text is too short for {batch} streams")
    return torch.from_numpy(ids[: n * batch].reshape(batch, n))


@torch.no_grad()
def bits_per_char(model: CharLM, data: torch.Tensor, seq_len: int) -> float:
    """Cross-entropy of the model on ``data`` (batch, n), in bits per character."""
    model.eval()
    h, c = model.start(data.size(0), data.device)
    total, count = 0.0, 0
    for start in range(0, data.size(1) - 1, seq_len):
        x = data[:, start : start + seq_len]
        y = data[:, start + 1 : start + seq_len + 1]
        x = x[:, : y.size(1)]
        logits, h, c = model(x, h, c)
        total += float(F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum"))
        count += y.numel()
    model.train()
    return total / max(count, 1) / math.log(2)


def train_lm(text: str, model_cfg: LMConfig, cfg: LMTrainConfig, out: Path, device: torch.device) -> dict:
    """Train on ``text`` (its last ``valid_fraction`` held out); writes <out>/lm.pt and metrics.jsonl."""
    from nmt.training.optim import clipped_step  # (sampling and nmt-serve never import training)

    torch.manual_seed(cfg.seed)
    split = int(len(text) * (1 - cfg.valid_fraction))
    vocab = CharVocab.build(text[:split], cfg.vocab_size)
    train_ids, valid_ids = vocab.encode(text[:split]), vocab.encode(text[split:])
    train, valid = streams(train_ids, cfg.batch).to(device), streams(valid_ids, min(cfg.batch, 16)).to(device)
    model = CharLM(model_cfg, len(vocab)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    no_scaler = torch.amp.GradScaler(device.type, enabled=False)  # fp32: clipped_step's unscale is a no-op
    out.mkdir(parents=True, exist_ok=True)
    metrics = open(out / "metrics.jsonl", "w")  # noqa: SIM115 (closed below)
    log.info(
        "char-rnn: %d training / %d validation characters, %d symbols | %s %d x %d | %s parameters",
        len(train_ids), len(valid_ids), len(vocab), Cell(model_cfg.cell).value, model_cfg.layers, model_cfg.hidden,
        f"{sum(p.numel() for p in model.parameters()):,}",
    )  # fmt: skip
    start, step, best = time.perf_counter(), 0, math.inf
    h, c = model.start(cfg.batch, device)
    pos, epoch = 0, 1
    try:
        while True:
            if pos + cfg.seq_len + 1 > train.size(1):  # the end of the text: start over, fresh state
                pos, epoch = 0, epoch + 1
                h, c = model.start(cfg.batch, device)
            x, y = train[:, pos : pos + cfg.seq_len], train[:, pos + 1 : pos + cfg.seq_len + 1]
            pos += cfg.seq_len
            h, c = h.detach(), None if c is None else c.detach()  # truncated BPTT: no gradient into the past
            logits, h, c = model(x, h, c)
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            norm = clipped_step(opt, no_scaler, cfg.clip_norm)
            if not math.isfinite(norm):
                log.warning("step %d: gradient norm %s, update skipped", step + 1, norm)
            step += 1
            minutes = (time.perf_counter() - start) / 60
            done = (cfg.max_steps and step >= cfg.max_steps) or (cfg.max_time and minutes >= cfg.max_time)
            if step % cfg.eval_every == 0 or done:
                bpc = bits_per_char(model, valid, cfg.seq_len)
                rec = {"step": step, "epoch": epoch, "train_bpc": loss.item() / math.log(2), "valid_bpc": bpc,
                       "grad_norm": norm, "minutes": round(minutes, 2)}  # fmt: skip
                metrics.write(json.dumps(rec) + "\n")
                metrics.flush()
                left = (
                    f"{cfg.max_time - minutes:.1f} min left"
                    if cfg.max_time
                    else f"{cfg.max_steps - step} steps left"
                )
                log.info(
                    "step %d | epoch %d | train %.3f bpc | valid %.3f bpc | |g| %.2f | %s",
                    step, epoch, rec["train_bpc"], bpc, norm, left,
                )  # fmt: skip
                if bpc < best:
                    best = bpc
                    save_lm(out / "lm.pt", model, vocab, {**rec, "best_valid_bpc": bpc})
            if done:
                break
    finally:
        metrics.close()
    summary = {"steps": step, "minutes": round((time.perf_counter() - start) / 60, 2), "best_valid_bpc": best}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


# ----------------------------------------------------------------------------- files and sampling


def save_lm(path: Path, model: CharLM, vocab: CharVocab, metrics: dict) -> None:
    cfg = {k: getattr(v, "value", v) for k, v in asdict(model.cfg).items()}
    save_checkpoint(
        path,
        {"kind": "char-lm", "model": model.state_dict(), "lm": cfg, "chars": vocab.chars, "metrics": metrics},
    )


def load_lm(path: Path | str, device: torch.device) -> tuple[CharLM, CharVocab, dict]:
    ckpt = load_checkpoint(path)
    if ckpt.get("kind") != "char-lm":
        raise NmtError(f"{path}: not a character language model (train one with nmt-lm)")
    try:
        cfg = LMConfig(**{**ckpt["lm"], "cell": Cell(ckpt["lm"]["cell"])})
        vocab = CharVocab(list(ckpt["chars"]))
        model = CharLM(cfg, len(vocab))
        model.load_state_dict(ckpt["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise NmtError(f"{path}: damaged language model ({type(e).__name__}: {str(e)[:120]})") from None
    return model.to(device).eval(), vocab, ckpt


@torch.no_grad()
def sample(
    model: CharLM,
    vocab: CharVocab,
    prime: str,
    length: int,
    temperature: float,
    top_k: int = 0,
    seed: int = 1,
) -> str:
    """``prime`` and ``length`` characters drawn after it from softmax(logits / temperature)."""
    device = next(model.parameters()).device
    pick = Sampler(temperature, top_k, seed)
    h, c = model.start(1, device)
    ids = vocab.encode(prime or "\n").tolist()
    logits, h, c = model(torch.tensor([ids], device=device), h, c)
    out = []
    key = torch.zeros(1, dtype=torch.long, device=device)
    for t in range(length):
        lp = F.log_softmax(logits[:, -1].float(), dim=-1)  # (1, vocab)
        lp[:, UNK_CHAR] = -math.inf
        tok, _ = pick(lp, t, key)
        out.append(int(tok))
        logits, h, c = model(tok.view(1, 1), h, c)
    return prime + vocab.decode(out)
