"""nmt-inspect: look inside the decoder's LSTM cells for one sentence (gates, cell states, attention).

nmt-inspect ckpt=runs/en_ja_small/checkpoints/best.pt text="i like green tea ." output=cells.png
"""

from __future__ import annotations

import logging

from nmt import NmtError
from nmt.cli.common import hydra_cli
from nmt.config import InspectJob, SearchConfig
from nmt.data.text import TextProcessor
from nmt.introspect.decoder import plot, trace
from nmt.introspect.plotting import plot_attention
from nmt.model.io import load_model
from nmt.model.peek import text_processing
from nmt.runtime import resolve_device
from nmt.search import search

log = logging.getLogger(__name__)


def task(cfg: InspectJob) -> None:
    device = resolve_device(cfg.device)
    model, src_tok, tgt_tok, ck = load_model(cfg.ckpt, device)
    text = TextProcessor.from_data(text_processing(ck, cfg.ckpt))
    src_ids = src_tok.encode([text.source(cfg.text).text])[0]
    if not src_ids:
        raise NmtError("text= is empty")
    if cfg.target is None:
        import torch

        hyp = search(
            model, torch.tensor([src_ids], device=device), torch.tensor([len(src_ids)]), SearchConfig()
        )[0][0]
        tgt_ids = hyp.tokens
    else:
        tgt_ids = tgt_tok.encode([text.target_corpus(cfg.target)])[0]
    tr = trace(model, src_ids, tgt_ids, src_tok.pieces(src_ids), tgt_tok.pieces(tgt_ids))
    plot(tr, cfg.output, cfg.units)
    if cfg.attention_png:
        translation = text.target(tgt_tok.decode([tgt_ids])[0])
        plot_attention(
            tr.src_pieces, tr.tgt_pieces, tr.attention, cfg.attention_png, f"{cfg.text} → {translation}"
        )
        log.info("wrote %s", cfg.attention_png)
    print(
        f"source: {cfg.text}\ntarget: {text.target(tgt_tok.decode([tgt_ids])[0])}  (log-prob {float(tr.log_probs.sum()):.2f})"
    )
    for i, layer in enumerate(tr.layers):
        sat = layer.saturation()
        f_open = float((sat["forget"][1] > 0.5).float().mean())
        f_closed = float((sat["forget"][0] > 0.5).float().mean())
        print(
            f"layer {i + 1}: {100 * f_open:.0f}% of units keep the forget gate open (> 0.9) most of the time, "
            f"{100 * f_closed:.0f}% keep it closed (< 0.1); mean |c| {float(layer.c.abs().mean()):.2f}"
        )
    log.info("wrote %s", cfg.output)


main = hydra_cli("inspect", task, direct=True)

if __name__ == "__main__":
    main()
