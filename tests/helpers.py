"""Helpers shared by unit and integration tests: tiny tokenizers, checkpoint payloads, CLI runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from nmt.config import DataConfig, ModelConfig, TrainJob
from nmt.data.tokenizer import Tokenizer, train_sentencepiece
from nmt.data.toy import make_pairs
from nmt.model.io import load_checkpoint
from nmt.model.seq2seq import Seq2Seq

REPO = Path(__file__).resolve().parent.parent


def train_toy_tokenizers(folder: Path, pairs: int = 500) -> tuple[Tokenizer, Tokenizer]:
    """SentencePiece models for the toy task's source and target sides (a second or so)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = make_pairs(pairs, seed=11)
    toks = []
    for side, lines in (("src", [s for s, _ in data]), ("tgt", [t for _, t in data])):
        text = folder / f"{side}.txt"
        text.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        model = train_sentencepiece(
            [text],
            folder / f"spm.{side}",
            vocab_size=48,
            model_type="unigram",
            character_coverage=1.0,
            input_sentence_size=10_000,
        )
        toks.append(Tokenizer.load(model))
    return toks[0], toks[1]


def tiny_model_config(**kw: Any) -> ModelConfig:
    base: dict[str, Any] = dict(
        emb_dim=16, enc_hidden=8, enc_layers=1, dec_hidden=16, dec_layers=1, dropout=0.0, emb_dropout=0.0
    )
    base.update(kw)
    return ModelConfig(**base)


def checkpoint_payload(
    model: Seq2Seq, model_cfg: ModelConfig, src: Tokenizer, tgt: Tokenizer, step: int = 1
) -> dict:
    """What the trainer saves: weights, the resolved job config, both SentencePiece models."""
    job = TrainJob(data=DataConfig(name="toy", corpus="toy", src_lang="src", tgt_lang="tgt"), model=model_cfg)
    config = OmegaConf.to_container(OmegaConf.structured(job), resolve=True, enum_to_str=True)
    return {
        "model": model.state_dict(),
        "config": config,
        "step": step,
        "spm": {"src": src.proto, "tgt": tgt.proto},
    }


def run_cli(
    verb: str, *args: str, cwd: Path, stdin: bytes | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[bytes]:
    """``python -m nmt.cli.<verb> args...`` in ``cwd``; stdout and stderr captured as bytes."""
    # one thread per process (tiny models gain nothing from more; the machine may be shared)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", f"nmt.cli.{verb}", *args],
        cwd=cwd,
        input=stdin if stdin is not None else b"",  # never the terminal: nmt-translate would go interactive
        capture_output=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def near_tie_lines(ckpt: Path, lines: list[str], search_cfg: Any, clear: float = 1e-4) -> set[int]:
    """Indices of the lines whose float32 search decided between two scores closer than ``clear``.

    ``clear`` is ten times the float32 error of the toy model's scores (sums of ~20 log-probabilities
    down to about -20, each good to ~1e-6 across batch shapes).
    Such a line may be translated either way in a batch of another shape (or on another CPU), so
    tests that compare translations across batchings leave it out (see
    tests/unit/test_search_invariance.py); everything else must agree exactly.
    """
    import math

    import torch

    from nmt.data.batching import pad
    from nmt.model.io import load_model
    from nmt.search import search

    model, src_tok, _, _ = load_model(ckpt, torch.device("cpu"))
    ids = src_tok.encode(lines)
    todo = [i for i, s in enumerate(ids) if s]
    margins = torch.full((len(lines),), math.inf, dtype=torch.float64)
    for start in range(0, len(todo), 256):
        rows = todo[start : start + 256]
        src = pad([ids[i] for i in rows])  # (batch, src_len)
        m = torch.full((len(rows),), math.inf, dtype=torch.float64)
        search(model, src, torch.tensor([len(ids[i]) for i in rows]), search_cfg, margins=m)
        margins[rows] = m
    return {i for i in range(len(lines)) if float(margins[i]) <= clear}


def toy_workdir(folder: Path, train: int = 1000, dev: int = 40, test: int = 40) -> Path:
    """A working directory laid out like the toy recipe: the corpus in ``runs/toy/corpus/toy``."""
    from nmt.data.toy import write_corpus

    write_corpus(folder / "runs" / "toy" / "corpus", train=train, dev=dev, test=test)
    return folder


def stderr_lines(proc: subprocess.CompletedProcess[bytes]) -> list[str]:
    return [line for line in proc.stderr.decode("utf-8", "replace").splitlines() if line.strip()]


def assert_one_line_error(proc: subprocess.CompletedProcess[bytes], prog: str, only_line: bool = True) -> str:
    """Exit status 2, no traceback, one ``<prog>: error: ...`` line (the only stderr line if
    ``only_line``); returns that line."""
    lines = stderr_lines(proc)
    text = "\n".join(lines)
    assert proc.returncode == 2, text
    assert "Traceback" not in text, text
    errors = [line for line in lines if line.startswith(f"{prog}: error:")]
    assert len(errors) == 1, text
    if only_line:
        assert lines == errors, text
    return errors[0]


# wall-clock figures and the resident-set peak (page and allocator timing) differ between any two runs
VOLATILE = {"time", "tok_s", "valid_seconds", "peak_mem_mib"}


def records(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in VOLATILE} for line in lines]


def assert_same_run(a: Path, b: Path) -> None:
    """Same final weights (bit for bit), metrics, checkpoint files, best checkpoint, summary."""
    la, lb = load_checkpoint(a / "checkpoints/last.pt"), load_checkpoint(b / "checkpoints/last.pt")
    assert la["state"]["step"] == lb["state"]["step"]
    for name in la["model"]:
        assert torch.equal(la["model"][name], lb["model"][name]), name
    assert records(a) == records(b)
    assert sorted(p.name for p in (a / "checkpoints").iterdir()) == sorted(
        p.name for p in (b / "checkpoints").iterdir()
    )
    assert json.loads((a / "checkpoints/index.json").read_text()) == json.loads(
        (b / "checkpoints/index.json").read_text()
    )
    assert (
        load_checkpoint(a / "checkpoints/best.pt")["step"]
        == load_checkpoint(b / "checkpoints/best.pt")["step"]
    )
    sa, sb = (json.loads((r / "summary.json").read_text()) for r in (a, b))
    for key in ("steps", "epochs", "best_dev_bleu", "best_step", "target_tokens", "stop_reason"):
        assert sa[key] == sb[key], key
