"""nmt.model.io: the checkpoint format; atomic saves, strict loads, one-line refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nmt import NmtError
from nmt.data.tokenizer import Tokenizer
from nmt.model import io as io_mod
from nmt.model.io import FORMAT, VERSION, load_checkpoint, load_model, model_config, save_checkpoint
from nmt.model.peek import peek_config
from nmt.model.seq2seq import Seq2Seq
from tests.helpers import checkpoint_payload, tiny_model_config

# files that are not checkpoints, whatever their name says
NOT_CHECKPOINTS = [b"", os.urandom(4096), b"PK\x03\x04 a zip that ends here", b"\x80\x04K\x01."]
NOT_CHECKPOINT_IDS = ["empty", "random", "cut_zip", "plain_pickle"]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


# --------------------------------------------------------------------------- save / load


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "c.pt"
    save_checkpoint(path, {"model": {"w": torch.arange(3.0)}, "step": 7})
    ck = load_checkpoint(path)
    assert ck["format"] == FORMAT and ck["version"] == VERSION and ck["step"] == 7
    assert torch.equal(ck["model"]["w"], torch.arange(3.0))
    assert leftovers(path.parent) == []


def test_crash_during_save_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1})
    before = path.read_bytes()

    def crash(obj: object, f, *args: object, **kwargs: object) -> None:
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(io_mod.torch, "save", crash)
    with pytest.raises(NmtError, match="cannot write the checkpoint: disk full") as e:
        save_checkpoint(path, {"step": 2})
    assert str(path) in str(e.value) and "previous file is intact" in str(e.value)
    assert path.read_bytes() == before
    assert load_checkpoint(path)["step"] == 1
    assert leftovers(tmp_path) == []


def test_crash_during_the_first_save_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(obj: object, f, *args: object, **kwargs: object) -> None:
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(io_mod.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "c.pt", {"step": 1})
    assert list(tmp_path.iterdir()) == []


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(NmtError, match="checkpoint not found") as e:
        load_checkpoint(tmp_path / "none.pt")
    assert str(tmp_path / "none.pt") in str(e.value)


def test_non_torch_file_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("just some text\n")
    with pytest.raises(NmtError, match="not an nmt checkpoint") as e:
        load_checkpoint(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_truncated_checkpoint_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"model": {"w": torch.randn(1000)}})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(NmtError) as e:
        load_checkpoint(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_torch_file_that_is_not_an_nmt_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(NmtError, match="not an nmt checkpoint") as e:
        load_checkpoint(path)
    assert str(path) in str(e.value)
    torch.save(torch.zeros(3), path)  # not even a dict
    with pytest.raises(NmtError, match="not an nmt checkpoint"):
        load_checkpoint(path)


def test_wrong_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.pt"
    torch.save({"format": FORMAT, "version": VERSION + 1, "nmt_version": "9.9"}, path)
    with pytest.raises(NmtError, match=f"version {VERSION + 1}") as e:
        load_checkpoint(path)
    assert str(path) in str(e.value)


class Evil:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.marker,))


def test_pickled_code_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "version": VERSION, "model": {}, "x": Evil(marker)}, path)
    with pytest.raises(NmtError) as e:
        load_checkpoint(path)
    assert not marker.exists()
    msg = str(e.value)
    assert str(path) in msg and "not an nmt checkpoint" in msg and "never loads" in msg
    assert "weights_only" not in msg and "\n" not in msg  # never PyTorch's advice to load unsafely


@pytest.mark.parametrize("content", NOT_CHECKPOINTS, ids=NOT_CHECKPOINT_IDS)
def test_files_that_are_not_checkpoints_get_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "odd.pt"
    path.write_bytes(content)
    with pytest.raises(NmtError, match="not an nmt checkpoint") as e:
        load_checkpoint(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value) and "weights_only" not in str(e.value)


def test_a_plain_pickle_with_code_is_refused_without_running_it(tmp_path: Path) -> None:
    import pickle

    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(Evil(marker)))
    with pytest.raises(NmtError, match="not an nmt checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def test_refusing_a_file_prints_no_pytorch_warning(tmp_path: Path) -> None:
    """In a fresh process (warnings are printed once per process): stderr stays empty."""
    path = tmp_path / "evil.pt"
    torch.save({"x": Evil(tmp_path / "m")}, path)
    code = f"from nmt.model.io import load_checkpoint\ntry:\n load_checkpoint({str(path)!r})\nexcept Exception as e:\n print(e)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stderr == "" and "not an nmt checkpoint" in proc.stdout


def test_an_unreadable_checkpoint_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "folder.pt"
    path.mkdir()
    with pytest.raises(NmtError, match="checkpoint not found"):
        load_checkpoint(path)


def test_newer_format_says_to_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "future.pt"
    torch.save({"format": FORMAT, "version": VERSION + 1, "nmt_version": "9.9"}, path)
    with pytest.raises(NmtError, match="upgrade nmt") as e:
        load_checkpoint(path)
    assert f"version {VERSION + 1}" in str(e.value) and "9.9" in str(e.value)


def test_a_file_size_limit_ends_the_save_in_one_line_and_keeps_the_old_file(tmp_path: Path) -> None:
    """A full disk, simulated with RLIMIT_FSIZE in a child process (Python ignores SIGXFSZ)."""
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1})
    code = (
        "import resource, torch\n"
        "from nmt import NmtError\nfrom nmt.model.io import save_checkpoint\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))\n"
        f"try:\n save_checkpoint(__import__('pathlib').Path({str(path)!r}), {{'w': torch.zeros(100_000)}})\n"
        "except NmtError as e:\n print(e)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert str(path) in proc.stdout and "File too large" in proc.stdout and "intact" in proc.stdout
    assert load_checkpoint(path)["step"] == 1 and leftovers(tmp_path) == []


def test_a_read_only_folder_ends_the_save_in_one_line(tmp_path: Path, read_only) -> None:  # noqa: ANN001
    folder = read_only(tmp_path / "ro")
    with pytest.raises(NmtError, match="cannot write the checkpoint") as e:
        save_checkpoint(folder / "c.pt", {"step": 1})
    assert str(folder / "c.pt") in str(e.value)


# --------------------------------------------------------------------------- models


@pytest.fixture
def saved_model(tmp_path: Path, toy_tokenizers: tuple[Tokenizer, Tokenizer]) -> tuple[Path, Seq2Seq]:
    src_tok, tgt_tok = toy_tokenizers
    cfg = tiny_model_config(tie_embeddings=True, init_range=0.3)
    torch.manual_seed(0)
    model = Seq2Seq(cfg, len(src_tok), len(tgt_tok)).eval()
    path = tmp_path / "model.pt"
    save_checkpoint(path, checkpoint_payload(model, cfg, src_tok, tgt_tok))
    return path, model


def test_reloaded_model_gives_identical_outputs(
    saved_model: tuple[Path, Seq2Seq], toy_tokenizers: tuple[Tokenizer, Tokenizer]
) -> None:
    path, model = saved_model
    loaded, src_tok, tgt_tok, ck = load_model(path, torch.device("cpu"))
    assert not loaded.training
    assert src_tok.proto == toy_tokenizers[0].proto and tgt_tok.proto == toy_tokenizers[1].proto
    assert loaded.output.weight.data_ptr() == loaded.decoder.embed.weight.data_ptr()  # still tied
    src = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    src_lens = torch.tensor([4, 2])
    tgt = torch.tensor([[2, 5, 6], [2, 7, 0]])
    with torch.no_grad():
        assert torch.equal(loaded(src, src_lens, tgt), model(src, src_lens, tgt))
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


def test_model_config_comes_back_as_the_dataclass(saved_model: tuple[Path, Seq2Seq]) -> None:
    cfg = model_config(load_checkpoint(saved_model[0]))
    assert cfg == tiny_model_config(tie_embeddings=True, init_range=0.3)


def test_checkpoint_with_a_config_this_version_cannot_read(
    tmp_path: Path, saved_model: tuple[Path, Seq2Seq]
) -> None:
    ck = load_checkpoint(saved_model[0])
    ck["config"]["model"]["attention"] = "transformer"
    path = tmp_path / "odd.pt"
    save_checkpoint(path, {k: v for k, v in ck.items() if k not in ("format", "version", "nmt_version")})
    with pytest.raises(NmtError, match="model config does not fit") as e:
        load_model(path, torch.device("cpu"))
    assert str(path) in str(e.value)


def test_checkpoint_whose_weights_do_not_fit_its_config(
    tmp_path: Path, saved_model: tuple[Path, Seq2Seq]
) -> None:
    ck = load_checkpoint(saved_model[0])
    ck["config"]["model"]["dec_hidden"] = 32
    path = tmp_path / "mismatch.pt"
    save_checkpoint(path, {k: v for k, v in ck.items() if k not in ("format", "version", "nmt_version")})
    with pytest.raises(NmtError, match="weights do not fit") as e:
        load_model(path, torch.device("cpu"))
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_building_a_model_to_load_draws_no_random_numbers() -> None:
    """``initialize=False`` (used by load_model) skips PyTorch's own random fills as well."""
    cfg = tiny_model_config()
    state = torch.get_rng_state()
    Seq2Seq(cfg, 40, 50, initialize=False)
    assert torch.equal(torch.get_rng_state(), state)
    Seq2Seq(cfg, 40, 50)
    assert not torch.equal(torch.get_rng_state(), state)


# --------------------------------------------------------------------------- peeking (no torch)


def test_peek_reads_the_config_without_importing_torch(saved_model: tuple[Path, Seq2Seq]) -> None:
    path = saved_model[0]
    code = (
        "import json, sys\nfrom nmt.model.peek import peek_config\n"
        f"c = peek_config({str(path)!r})\nprint(json.dumps([c, 'torch' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    config, torch_imported = json.loads(out)
    assert config == load_checkpoint(path)["config"] and not torch_imported


def test_peek_runs_no_code_from_the_file(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "config": {"data": Evil(marker)}, "x": Evil(marker)}, path)
    peek_config(path)
    assert not marker.exists()


@pytest.mark.parametrize("content", NOT_CHECKPOINTS, ids=NOT_CHECKPOINT_IDS)
def test_peek_gives_none_for_what_is_not_a_checkpoint(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "odd.pt"
    path.write_bytes(content)
    assert peek_config(path) is None
    assert peek_config(tmp_path / "missing.pt") is None
    torch.save([1, 2], tmp_path / "list.pt")
    assert peek_config(tmp_path / "list.pt") is None


# --------------------------------------------------------------------------- a file changed under a loaded model

LIVE = """
import sys, torch
from pathlib import Path
from nmt.api import load_translator
from nmt.config import SearchConfig
path, other, how = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
translator, _ = load_translator(path, torch.device("cpu"), SearchConfig(max_len_b=5))
model = translator.model
before = {k: v.clone() for k, v in model.state_dict().items()}
lines = ["red cat big", "a b c d"]
out = [t.score for t in translator.translate_detailed(lines)]
if how == "overwrite":  # cp other path: the same inode, new bytes
    with open(path, "r+b") as f:
        f.write(other.read_bytes())
else:  # truncated to nothing in place
    with open(path, "r+b") as f:
        f.truncate(0)
again = [t.score for t in translator.translate_detailed(lines)]
same = all(torch.equal(v, before[k]) for k, v in model.state_dict().items()) and out == again
print("same" if same else "changed")
"""


@pytest.mark.parametrize("how", ["overwrite", "truncate"])
def test_a_loaded_model_keeps_its_weights_when_its_file_changes(
    tmp_path: Path, toy_tokenizers: tuple[Tokenizer, Tokenizer], how: str
) -> None:
    """A running translator or server keeps the model it loaded: overwriting the checkpoint in
    place gives it no new weights, truncating it no SIGBUS (run in a process of its own)."""
    src_tok, tgt_tok = toy_tokenizers
    cfg = tiny_model_config(init_range=0.3)
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = Seq2Seq(cfg, len(src_tok), len(tgt_tok))
        paths.append(tmp_path / f"m{seed}.pt")
        save_checkpoint(paths[-1], checkpoint_payload(model, cfg, src_tok, tgt_tok))
    proc = subprocess.run(
        [sys.executable, "-c", LIVE, str(paths[0]), str(paths[1]), how],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["same"]
