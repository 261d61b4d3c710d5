"""nmt-cells: which cells of a character language model follow a feature of the text, as HTML.

nmt-cells ckpt=runs/char_rnn/lm.pt input=some.txt feature=brackets output=cells.html
"""

from __future__ import annotations

import logging
from pathlib import Path

from nmt import NmtError
from nmt.cli.common import hydra_cli
from nmt.config import CellsJob

log = logging.getLogger(__name__)


def task(cfg: CellsJob) -> None:
    import torch

    from nmt.data.files import read_lines
    from nmt.introspect.activations import follow, html
    from nmt.lm import load_lm
    from nmt.runtime import resolve_device

    device = resolve_device(cfg.device)
    model, vocab, ck = load_lm(cfg.ckpt, device)
    text = "\n".join(read_lines(Path(cfg.input)))[: cfg.max_chars]
    if len(text) < 2:
        raise NmtError(f"{cfg.input}: no text to look at")
    with torch.no_grad():
        layers = model.trace(torch.from_numpy(vocab.encode(text)).to(device))  # per layer (steps, hidden)
    if not -len(layers) <= cfg.layer < len(layers):
        raise NmtError(f"layer={cfg.layer}: the model has {len(layers)} layers")
    acts = layers[cfg.layer].cpu()
    if model.has_cell_state:
        acts = torch.tanh(acts)  # an LSTM's memory c, squashed as the output gate sees it
    r = follow(acts, text, cfg.feature)  # (units,)
    order = r.abs().argsort(descending=True)[: cfg.top].tolist()
    report = [f"unit {u}: r = {float(r[u]):+.3f} with {cfg.feature}" for u in order]
    unit = order[0] if cfg.unit < 0 else cfg.unit
    if not 0 <= unit < acts.size(1):
        raise NmtError(f"unit={cfg.unit}: the layer has {acts.size(1)} units")
    layer_no = cfg.layer % len(layers) + 1
    title = f"layer {layer_no}, unit {unit} (r = {float(r[unit]):+.3f} with {cfg.feature}), {len(text)} characters"
    Path(cfg.output).write_text(html(text, acts[:, unit].tolist(), title, report), encoding="utf-8")
    print(f"cells of layer {layer_no} that follow {cfg.feature} best:")
    for line in report:
        print("  " + line)
    log.info("wrote %s (unit %d coloured)", cfg.output, unit)


main = hydra_cli("cells", task, direct=True)

if __name__ == "__main__":
    main()
