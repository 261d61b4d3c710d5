"""A model and the dev split in, dev loss, perplexity and greedy BLEU out."""

from __future__ import annotations

import math
import time

import torch

from nmt.config import SearchConfig, SearchMethod, TrainJob
from nmt.data.batching import batch_indices, make_batch
from nmt.data.corpus import EncodedSplit
from nmt.data.files import read_lines, split_paths, spread_indices
from nmt.data.text import TextProcessor
from nmt.data.tokenizer import Tokenizer
from nmt.metrics import bleu, default_tokenize
from nmt.model.seq2seq import Seq2Seq
from nmt.runtime import autocast
from nmt.translator import decode_ids


def dev_references(cfg: TrainJob, dev: EncodedSplit) -> list[str]:
    """The raw target lines of the dev pairs that were kept."""
    refs = read_lines(split_paths(cfg.data, "dev")[1])
    return [refs[i] for i in dev.lines]


@torch.no_grad()
def validate(
    model: Seq2Seq,
    dev: EncodedSplit,
    refs: list[str],
    tgt_tok: Tokenizer,
    cfg: TrainJob,
    device: torch.device,
    amp: torch.dtype | None,
    multiple: int = 1,
) -> dict:
    """Dev NLL per target piece, perplexity, and greedy BLEU of ``valid_max_sents`` sentences
    spread evenly across the dev set (every document of it: its first lines are a few articles,
    whose BLEU can be far from the whole set's).

    BLEU uses ``-tok none`` when the corpus is pre-segmented (data.segmented), else the target
    language's tokenizer (ja-mecab for Japanese). ``multiple``: the training batches' length
    multiple (``Trainer._shape_multiple``), so the dev loss adds few batch shapes. On a CPU the
    greedy decoding runs in float32 whatever ``amp`` is: its batches shrink as sentences finish,
    and under bf16 every row count would compile (and keep) oneDNN kernels of its own, up to the
    training cache's capacity; float32 products run in MKL, which keeps none.
    """
    t0 = time.perf_counter()
    was_training = model.training
    model.eval()
    nll, tokens = 0.0, 0
    by_tokens = cfg.train.batch_type.value == "tokens"
    for idx in batch_indices(dev.src_lens, dev.tgt_lens, cfg.train.batch_size, by_tokens, multiple=multiple):
        b = make_batch(dev, idx, multiple=multiple).to(device)
        with autocast(device, amp):
            nll += float(model(b.src, b.src_lens, b.tgt_in, b.tgt_out)[1])
        tokens += b.n_tgt_tokens
    out = {"dev_nll": nll / max(tokens, 1), "dev_ppl": math.exp(min(nll / max(tokens, 1), 50))}
    if cfg.train.valid_bleu:
        picked = spread_indices(len(dev), cfg.train.valid_max_sents)
        greedy = SearchConfig(
            method=SearchMethod.greedy, max_len_a=cfg.search.max_len_a, max_len_b=cfg.search.max_len_b
        )
        # Batches no larger than a training batch, so validation never raises the run's peak
        # memory (all 500 dev sentences in one batch held 500 x vocab logits per step).
        tokens = cfg.train.batch_size if by_tokens else 1 << 30  # sentence batches: no token bound
        sents = 0 if by_tokens else cfg.train.batch_size
        src = [dev.src(i) for i in picked]
        with autocast(device, amp if device.type != "cpu" else None):
            hyps = decode_ids(model, src, greedy, device, tokens, max_sentences=sents)
        texts = tgt_tok.decode([h[0].tokens for h in hyps])
        tok = "none" if cfg.data.segmented else default_tokenize(cfg.data.tgt_lang)
        if not cfg.data.segmented:  # the references are raw text: undo a target tokenisation
            processor = TextProcessor.from_data(cfg.data)
            texts = [processor.target(t) for t in texts]
        s = bleu(texts, [refs[i] for i in picked], tok)
        out.update(dev_bleu=s.score, bleu_signature=s.signature, example=texts[0] if texts else "")
    model.train(was_training)
    out["valid_seconds"] = time.perf_counter() - t0
    return out
