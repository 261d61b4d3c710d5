"""Looking inside the decoder: a source and target sentence in, per-step gates, cell states and attention out.

In the spirit of Karpathy, Johnson & Fei-Fei (2015), "Visualizing and Understanding Recurrent
Networks": follow each LSTM unit's cell state c_t along the output, and measure how often each
gate is saturated (below 0.1: "closed", above 0.9: "open"). Units whose forget gate is almost
always open carry information over many steps; units whose gates sit in the middle act more like
a plain feed-forward layer. For a GRU, "forget" is the update gate z and there is no cell state
apart from h. ``nmt-inspect`` draws all of it; ``trace()`` returns the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nmt.data.tokenizer import BOS, EOS
from nmt.introspect.plotting import japanese_rc
from nmt.model.seq2seq import Seq2Seq


@dataclass
class LayerTrace:
    h: torch.Tensor  # (steps, hidden) hidden state after each output step
    c: torch.Tensor  # (steps, hidden) cell state (GRU: h)
    input: torch.Tensor  # (steps, hidden) gate activations
    forget: torch.Tensor
    output: torch.Tensor

    def saturation(self, low: float = 0.1, high: float = 0.9) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per gate: fraction of steps each unit is below ``low`` and above ``high`` ((hidden,), (hidden,))."""
        return {
            name: ((g < low).float().mean(0), (g > high).float().mean(0))
            for name, g in (("input", self.input), ("forget", self.forget), ("output", self.output))
        }


@dataclass
class Trace:
    src_pieces: list[str]
    tgt_pieces: list[str]  # the pieces produced at each step (EOS last)
    layers: list[LayerTrace]
    attention: torch.Tensor  # (steps, src_len)
    log_probs: torch.Tensor  # (steps,) log-probability of each target piece


@torch.no_grad()
def trace(
    model: Seq2Seq, src_ids: list[int], tgt_ids: list[int], src_pieces: list[str], tgt_pieces: list[str]
) -> Trace:
    """Teacher-force ``tgt_ids`` (without BOS/EOS) through the decoder and record every step."""
    model.eval()
    device = next(model.parameters()).device
    src = torch.tensor([src_ids], device=device)  # (1, src_len)
    mem, state = model.encode(src, torch.tensor([len(src_ids)]))
    inputs, outputs = [BOS, *tgt_ids], [*tgt_ids, EOS]
    per_layer: list[list] = [[] for _ in model.decoder.cells]
    attn, lps = [], []
    for tok_in, tok_out in zip(inputs, outputs):
        steps: list = []
        pre = model.decoder.embed_inputs(torch.tensor([tok_in], device=device))
        out, state, weights = model.decoder.step(pre, state, mem, trace=steps)
        for layer, gates, h, c in steps:
            per_layer[layer].append((gates, h, h if c is None else c))
        attn.append(weights[0])
        lps.append(torch.log_softmax(model.logits(out).float(), -1)[0, tok_out])
    layers = []
    for rows in per_layer:
        gates = [g for g, _, _ in rows]
        layers.append(
            LayerTrace(
                h=torch.stack([h[0] for _, h, _ in rows]).cpu(),
                c=torch.stack([c[0] for _, _, c in rows]).cpu(),
                input=torch.stack([g.input[0] for g in gates]).cpu(),
                forget=torch.stack([g.forget[0] for g in gates]).cpu(),
                output=torch.stack([g.output[0] for g in gates]).cpu(),
            )
        )
    return Trace(src_pieces, [*tgt_pieces, "</s>"], layers, torch.stack(attn).cpu(), torch.stack(lps).cpu())


def plot(tr: Trace, path: str, units: int = 24) -> None:
    """Attention, the top layer's most varying cell units along the output, and gate saturation."""
    import matplotlib.pyplot as plt

    with plt.rc_context(japanese_rc()):
        _plot(tr, path, units)


def _plot(tr: Trace, path: str, units: int) -> None:
    import matplotlib.pyplot as plt

    top = tr.layers[-1]
    pick = top.c.var(0).argsort(descending=True)[:units]  # the units that change most in this sentence
    n = len(tr.tgt_pieces)
    fig = plt.figure(figsize=(max(9, 0.45 * n + 4), 10))
    ax1 = fig.add_subplot(2, 2, 1)
    ax1.imshow(tr.attention.numpy(), aspect="auto", cmap="Greys")
    ax1.set_yticks(range(n), tr.tgt_pieces, fontsize=7)
    ax1.set_xticks(range(len(tr.src_pieces)), tr.src_pieces, rotation=90, fontsize=7)
    ax1.set_title("attention (target piece x source piece)")
    ax2 = fig.add_subplot(2, 2, 2)
    colours = ("C0", "C1", "C2")
    for colour, (name, (low, high)) in zip(colours, top.saturation().items()):
        ax2.scatter(low.numpy(), high.numpy(), s=8, alpha=0.6, c=colour, label=f"{name} gate")
    ax2.plot([0, 1], [1, 0], lw=0.5, c="grey")
    ax2.set_xlabel("fraction of steps < 0.1 (closed)")
    ax2.set_ylabel("fraction of steps > 0.9 (open)")
    ax2.set_title(f"gate saturation, top layer ({top.c.size(1)} units)")
    ax2.legend(fontsize=8)
    ax3 = fig.add_subplot(2, 1, 2)
    values = top.c[:, pick].T.numpy()  # (units, steps)
    lim = max(abs(values.min()), abs(values.max()), 1e-6)
    im = ax3.imshow(values, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax3.set_xticks(range(n), tr.tgt_pieces, fontsize=8, rotation=45)
    ax3.set_yticks(range(len(pick)), [f"unit {int(u)}" for u in pick], fontsize=6)
    ax3.set_title(f"cell state c_t of the top layer's {len(pick)} most varying units, along the output")
    fig.colorbar(im, ax=ax3, fraction=0.02)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
