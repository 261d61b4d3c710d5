"""The Python API (nmt.load) and ensembles (nmt.model.ensemble): the code path of nmt-translate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import nmt
from nmt import NmtError
from nmt.config import Cell, SearchConfig, SearchMethod
from nmt.data.batching import pad
from nmt.data.tokenizer import BOS, Tokenizer, train_sentencepiece
from nmt.model.ensemble import Ensemble
from nmt.model.io import save_checkpoint
from nmt.model.seq2seq import Seq2Seq
from nmt.search import search
from tests.helpers import checkpoint_payload, tiny_model_config

LINES = ["red cat big", "blue dog", "", "green bird runs and sees fish"]


def save(tmp: Path, name: str, toks: tuple[Tokenizer, Tokenizer], seed: int, **kw: object) -> Path:
    torch.manual_seed(seed)
    cfg = tiny_model_config(init_range=0.3, **kw)
    model = Seq2Seq(cfg, len(toks[0]), len(toks[1]))
    path = tmp / name
    save_checkpoint(path, checkpoint_payload(model, cfg, toks[0], toks[1]))
    return path


@pytest.fixture
def ckpts(tmp_path: Path, toy_tokenizers: tuple[Tokenizer, Tokenizer]) -> list[Path]:
    return [
        save(tmp_path, f"m{i}.pt", toy_tokenizers, seed=i, cell=c)
        for i, c in enumerate([Cell.lstm, Cell.gru])
    ]


def test_import_nmt_is_light() -> None:
    code = "import sys, nmt; print('torch' in sys.modules, 'hydra' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_load_and_translate_one_or_many(ckpts: list[Path]) -> None:
    tr = nmt.load(ckpts[0], device="cpu", search="greedy", precision="fp32")
    texts = tr.translate(LINES)
    assert isinstance(texts, list) and len(texts) == len(LINES) and texts[2] == ""
    assert tr.translate(LINES[0]) == texts[0]  # one string in, one string out
    detailed = tr.translate_detailed(LINES)
    assert [t.text for t in detailed] == texts and detailed[0].score is not None


def test_load_takes_search_values_and_options(ckpts: list[Path]) -> None:
    tr = nmt.load(
        ckpts[0], device="cpu", search={"beam_size": 3, "nbest": 2, "max_len_b": 6}, with_attention=True
    )
    assert tr.cfg.method == SearchMethod.beam and tr.cfg.beam_size == 3
    [t] = tr.translate_detailed([LINES[0]])
    assert len(t.nbest) == 2 and t.attention is not None and t.src_pieces is not None
    with pytest.raises(NmtError, match="unknown option"):
        nmt.load(ckpts[0], device="cpu", beam=4)
    with pytest.raises(NmtError, match="search: unknown key"):
        nmt.load(ckpts[0], device="cpu", search={"beam": 4})
    with pytest.raises(NmtError, match="search.beam_size"):
        nmt.load(ckpts[0], device="cpu", search={"beam_size": 0})


def test_translate_file_is_what_the_cli_writes(ckpts: list[Path], tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("".join(line + "\n" for line in LINES))
    tr = nmt.load(ckpts[0], device="cpu", precision="fp32")
    stats = tr.translate_file(src, tmp_path / "out.txt")
    assert stats.lines == len(LINES)
    assert (tmp_path / "out.txt").read_text().split("\n")[:-1] == tr.translate(LINES)
    tr.translate_file(src, tmp_path / "out.jsonl", fmt="jsonl")
    assert (tmp_path / "out.jsonl").read_text().count("\n") == len(LINES)


# --------------------------------------------------------------------------- ensembles


def test_an_ensemble_averages_log_probabilities(ckpts: list[Path]) -> None:
    from nmt.model.io import load_model

    a, b = (load_model(p, torch.device("cpu"))[0] for p in ckpts)
    ens = Ensemble([a, b])
    src, lens = pad([[5, 6, 7], [8, 9]]), torch.tensor([3, 2])
    with torch.no_grad():
        mem, state = ens.encode(src, lens)
        mem_a, st_a = a.encode(src, lens)
        mem_b, st_b = b.encode(src, lens)
        tok = torch.full((2,), BOS)
        for _ in range(3):
            lp, state, att = ens.decode_step(tok, state, mem)
            lp_a, st_a, att_a = a.decode_step(tok, st_a, mem_a)
            lp_b, st_b, att_b = b.decode_step(tok, st_b, mem_b)
            torch.testing.assert_close(lp, (lp_a + lp_b) / 2)
            torch.testing.assert_close(att, (att_a + att_b) / 2)
            tok = lp.argmax(-1)


def test_an_ensemble_of_one_model_twice_is_that_model(ckpts: list[Path]) -> None:
    one = nmt.load(ckpts[0], device="cpu", precision="fp32")
    two = nmt.load([ckpts[0], ckpts[0]], device="cpu", precision="fp32")
    assert isinstance(two.model, Ensemble)
    assert two.translate(LINES) == one.translate(LINES)


@pytest.mark.parametrize("method", ["greedy", "beam", "sample"])
def test_every_search_runs_on_an_ensemble(ckpts: list[Path], method: str) -> None:
    from nmt.model.io import load_model

    ens = Ensemble([load_model(p, torch.device("cpu"))[0] for p in ckpts])
    cfg = SearchConfig(
        method=SearchMethod(method), beam_size=3, coverage_penalty=0.2, max_len_a=0.0, max_len_b=5
    )
    out = search(ens, pad([[5, 6, 7], [8]]), torch.tensor([3, 1]), cfg, with_attention=True)
    assert len(out) == 2 and all(h[0].attention is not None for h in out)


def test_an_ensemble_needs_the_same_vocabularies(ckpts: list[Path], tmp_path: Path) -> None:
    text = tmp_path / "other.txt"
    text.write_text("".join(f"word{i} other{i}\n" for i in range(200)))
    other = Tokenizer.load(
        train_sentencepiece(
            [text],
            tmp_path / "other",
            vocab_size=30,
            model_type="unigram",
            character_coverage=1.0,
            input_sentence_size=1000,
        )
    )
    src_tok = Tokenizer(torch.load(ckpts[0], weights_only=True)["spm"]["src"])
    odd = save(tmp_path, "odd.pt", (src_tok, other), seed=5)
    with pytest.raises(NmtError, match="target vocabulary") as e:
        nmt.load([ckpts[0], odd], device="cpu")
    assert str(odd) in str(e.value)


def test_models_prepared_apart_from_the_same_text_ensemble(ckpts: list[Path], tmp_path: Path) -> None:
    """Two runs each train their SentencePiece models on the same corpus: the files differ (they
    record where they were trained) but the vocabularies are the same, so they ensemble."""
    from tests.helpers import train_toy_tokenizers

    again = train_toy_tokenizers(tmp_path / "elsewhere")
    first = Tokenizer(torch.load(ckpts[0], weights_only=True)["spm"]["tgt"])
    assert again[1].proto != first.proto and again[1].vocabulary() == first.vocabulary()
    other = save(tmp_path, "apart.pt", again, seed=7)
    assert len(nmt.load([ckpts[0], other], device="cpu", search="greedy").translate(LINES)) == len(LINES)
