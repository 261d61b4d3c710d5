"""Gradients through time, made visible: simple RNN, LSTM and GRU on the same long-range task.

The task (Hochreiter & Schmidhuber 1997's "remember the first symbol"): a sequence of T symbols,
the first one of ``classes`` kinds, then noise; at the end, say which kind came first. The loss
sits at the last step, so what the first step learns reaches it only through T steps of
backpropagation through time. The models are nmt's own cells (``nmt.model.cells``) run step by
step: embedding -> one recurrent layer -> a linear read-out of the last state.

Two measurements:
- ``gradient_profile``: the norm of dL/dh_t for every step t, averaged over a batch, at
  initialisation: for a simple RNN it shrinks (or grows) geometrically with the distance from the
  loss, by how contractive its recurrent weights are (Bengio et al. 1994; Pascanu et al. 2013);
  the LSTM's additive cell state and the GRU's update gate keep it flat for much longer.
- ``train``: SGD with momentum, with and without clipping the gradient to a global L2 norm: the
  simple RNN's updates explode without it.

    python -m nmt.introspect.gradients --out recipes/bptt    # writes the PNGs and results.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from nmt.model.cells import GRUCell, LSTMCell, RNNCell

CELLS = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


@dataclass
class Task:
    steps: int = 40
    classes: int = 4
    noise: int = 16  # noise symbols (ids classes .. classes + noise - 1)

    @property
    def vocab(self) -> int:
        return self.classes + self.noise

    def batch(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, steps) sequences and their (n,) labels: the kind of the first symbol."""
        x = torch.randint(self.classes, self.vocab, (n, self.steps), generator=gen)
        y = torch.randint(0, self.classes, (n,), generator=gen)
        x[:, 0] = y
        return x, y


class Recurrent(nn.Module):
    """embedding -> one cell, step by step -> linear read-out of the last state."""

    def __init__(self, kind: str, task: Task, hidden: int = 64, recurrent_scale: float = 1.0) -> None:
        super().__init__()
        self.kind, self.hidden = kind, hidden
        self.embed = nn.Embedding(task.vocab, 32)
        self.cell = CELLS[kind](32, 0, hidden)
        self.cell.init_forget_bias()
        with torch.no_grad():  # the recurrent weights: orthogonal, times the scale (1: norm-preserving)
            w = self.cell.w_hid if kind == "gru" else self.cell.w_step  # (gates*hidden, [in +] hidden)
            for g in range(w.size(0) // hidden):
                nn.init.orthogonal_(w[g * hidden : (g + 1) * hidden, -hidden:], gain=recurrent_scale)
        self.readout = nn.Linear(hidden, task.classes)

    def forward(self, x: torch.Tensor, keep: list | None = None) -> torch.Tensor:
        """x (batch, steps) -> logits (batch, classes); ``keep`` gets every step's h (grad retained)."""
        pre = self.cell.project(self.embed(x))  # (batch, steps, gates*hidden)
        h = x.new_zeros(x.size(0), self.hidden, dtype=torch.float32)
        c = torch.zeros_like(h) if self.kind == "lstm" else None
        for t in range(x.size(1)):
            h, c = self.cell(pre[:, t], None, h, c)
            if keep is not None:
                h.retain_grad()
                keep.append(h)
        return self.readout(h)


def gradient_profile(model: Recurrent, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """||dL/dh_t|| for t = 0 .. steps-1 (mean over the batch), L the loss at the last step."""
    hs: list[torch.Tensor] = []
    loss = F.cross_entropy(model(x, hs), y)
    model.zero_grad()
    loss.backward()
    return [float(h.grad.norm(dim=1).mean()) for h in hs]


def train(model: Recurrent, task: Task, steps: int, lr: float, clip: float, seed: int) -> dict:
    """SGD (momentum 0.9) on fresh batches; loss, accuracy and gradient norm at every step."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses, norms, accs = [], [], []
    for _ in range(steps):
        x, y = task.batch(64, gen)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip if clip > 0 else math.inf))
        if math.isfinite(norm):
            opt.step()
        value = loss.item()
        losses.append(value if math.isfinite(value) else float("nan"))
        norms.append(norm)
        accs.append(float((logits.argmax(-1) == y).float().mean()))
    tail = accs[-50:]
    return {"loss": losses, "grad_norm": norms, "final_accuracy": sum(tail) / len(tail)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=40, help="sequence length T")
    ap.add_argument("--train-steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(1)
    import matplotlib.pyplot as plt

    from nmt.introspect.plotting import japanese_rc

    task = Task(steps=a.steps)
    a.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    x, y = task.batch(256, torch.Generator().manual_seed(a.seed))
    profiles = {}
    for label, kind, scale in (
        ("simple RNN, recurrent gain 0.7", "rnn", 0.7),
        ("simple RNN, recurrent gain 1.0", "rnn", 1.0),
        ("simple RNN, recurrent gain 1.8", "rnn", 1.8),
        ("LSTM (forget-gate bias 1)", "lstm", 1.0),
        ("GRU", "gru", 1.0),
    ):
        torch.manual_seed(a.seed)
        profiles[label] = gradient_profile(Recurrent(kind, task, recurrent_scale=scale), x, y)
    runs = {}
    for kind in CELLS:
        for clip in (0.0, a.clip):
            torch.manual_seed(a.seed)
            model = Recurrent(kind, task, recurrent_scale=1.0)
            label = f"{kind.upper() if kind != 'rnn' else 'simple RNN'}, " + (
                f"clip {clip:g}" if clip else "no clipping"
            )
            runs[label] = train(model, task, a.train_steps, a.lr, clip, a.seed)
            print(f"{label:<28} accuracy over the last 50 steps {runs[label]['final_accuracy']:.2f}")

    with plt.rc_context(japanese_rc()):
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
        for label, prof in profiles.items():
            back = list(range(len(prof) - 1, -1, -1))  # steps back from the loss
            ax.semilogy(back, prof, label=label, lw=1.6)
        ax.set_xlabel("steps back from the loss (t = T - k)")
        ax.set_ylabel("||dL / dh_t||  (mean over 256 sequences)")
        ax.set_title(f"Gradient reaching each time step, at initialisation (T = {task.steps})")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(a.out / "gradients_through_time.png", dpi=120)
        plt.close(fig)

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
        for label, r in runs.items():
            style = "-" if "clip" in label and "no" not in label else "--"
            ax1.plot(r["loss"], style, lw=1, label=label)
            ax2.semilogy(r["grad_norm"], style, lw=0.8, label=label)
        ax1.set_xlabel("update")
        ax1.set_ylabel("training loss (cross-entropy)")
        ax1.set_title(f"Learning to remember the first of {task.steps} symbols (SGD, lr {a.lr:g})")
        ax1.axhline(math.log(task.classes), color="grey", lw=0.6, ls=":")
        ax1.legend(fontsize=7)
        ax1.grid(alpha=0.3)
        ax2.set_xlabel("update")
        ax2.set_ylabel("global gradient norm (before clipping)")
        ax2.set_title("Gradient norm during training")
        ax2.grid(alpha=0.3, which="both")
        fig.tight_layout()
        fig.savefig(a.out / "training_with_and_without_clipping.png", dpi=120)
        plt.close(fig)

    results = {
        "task": {"steps": task.steps, "classes": task.classes, "noise": task.noise},
        "gradient_at_first_step_over_last_step": {k: v[0] / v[-1] for k, v in profiles.items()},
        "final_accuracy": {k: r["final_accuracy"] for k, r in runs.items()},
        "max_grad_norm": {k: max(r["grad_norm"]) for k, r in runs.items()},
        "settings": vars(a) | {"out": str(a.out)},
        "seconds": round(time.perf_counter() - started, 1),
    }
    (a.out / "results.json").write_text(json.dumps(results, indent=1))
    print(
        json.dumps(
            {k: results[k] for k in ("gradient_at_first_step_over_last_step", "max_grad_norm")}, indent=1
        )
    )


if __name__ == "__main__":
    main()
