"""nmt-train end to end on the toy task: outputs, quality, every architecture, sweeps, resume, seeding."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nmt.model.io import load_checkpoint
from tests.conftest import ToyRun
from tests.helpers import assert_one_line_error, run_cli, stderr_lines, toy_workdir

pytestmark = pytest.mark.slow

QUICK = ("experiment=toy", "train.valid_max_sents=20", "train.log_every=5")
# the toy data config finds its corpus under ${run_dir}/corpus: runs in other folders point at it
CORPUS = "data.root=runs/toy/corpus"


def model_weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def assert_same_weights(a: Path, b: Path, atol: float = 0.0) -> None:
    wa, wb = model_weights(a), model_weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        if atol == 0.0:
            assert torch.equal(wa[name], wb[name]), name
        else:
            torch.testing.assert_close(wa[name], wb[name], atol=atol, rtol=0.0, msg=name)


# --------------------------------------------------------------------------- the toy recipe


def test_toy_training_writes_its_outputs(toy_run: ToyRun) -> None:
    rd = toy_run.run_dir
    for rel in ("checkpoints/best.pt", "checkpoints/last.pt", "train.log", "metrics.jsonl", "summary.json"):
        assert (rd / rel).is_file(), rel
    assert (rd / "data" / "manifest.json").is_file()  # prepared on the way
    summary = json.loads((rd / "summary.json").read_text())
    assert summary["steps"] == 800 and summary["stop_reason"] == "max_steps=800"
    index = json.loads((rd / "checkpoints" / "index.json").read_text())
    assert [e["step"] for e in index] == [200, 400, 600, 800]
    log = (rd / "train.log").read_text()
    assert "validation at step 800" in log and "done (max_steps=800)" in log


def test_toy_model_learns_the_task(toy_run: ToyRun) -> None:
    summary = json.loads((toy_run.run_dir / "summary.json").read_text())
    assert summary["best_dev_bleu"] > 90
    best = load_checkpoint(toy_run.best)
    assert best["metrics"]["dev_bleu"] == pytest.approx(summary["best_dev_bleu"])
    assert best["step"] == summary["best_step"]
    records = [json.loads(line) for line in (toy_run.run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    valid = [r for r in records if r["kind"] == "valid"]
    assert len(train) == 800 // 50 and len(valid) == 4
    assert train[-1]["loss"] < train[0]["loss"] / 10
    assert all(math.isfinite(r["loss"]) for r in train)
    assert valid[-1]["dev_nll"] < valid[0]["dev_nll"]


def test_last_checkpoint_can_resume(toy_run: ToyRun) -> None:
    last = load_checkpoint(toy_run.run_dir / "checkpoints" / "last.pt")
    assert {"optimizer", "state", "keeper", "spm", "config"} <= set(last)
    assert {"schedule", "scaler", "ranks", "step", "epoch", "batch_in_epoch"} <= set(last["state"])
    assert last["state"]["step"] == 800
    assert last["config"]["model"]["emb_dim"] == 32


# --------------------------------------------------------------------------- every architecture


@pytest.mark.parametrize(
    "overrides",
    [
        ("model.attention=bahdanau",),
        ("model.attention=luong_dot",),
        ("model.attention=luong_general",),
        ("model.attention=luong_concat",),
        ("model.cell=gru",),
        (
            "model.cell=gru",
            "model.attention=bahdanau",
            "model.input_feeding=false",
            "model.tie_embeddings=true",
        ),
    ],
    ids=["bahdanau", "luong_dot", "luong_general", "luong_concat", "gru", "gru-bahdanau-nofeed-tied"],
)
def test_every_architecture_trains(tmp_path: Path, overrides: tuple[str, ...]) -> None:
    cwd = toy_workdir(tmp_path)
    proc = run_cli(
        "train",
        *QUICK,
        "train.max_steps=10",
        "train.valid_every=10",
        "run_dir=runs/arch",
        CORPUS,
        *overrides,
        cwd=cwd,
    )
    assert proc.returncode == 0, "\n".join(stderr_lines(proc)[-20:])
    ck = load_checkpoint(cwd / "runs/arch/checkpoints/last.pt")
    for o in overrides:
        key, value = o.split("=")
        assert str(ck["config"]["model"][key.split(".")[1]]).lower() == value
    records = [json.loads(line) for line in (cwd / "runs/arch/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [5, 10]
    assert all(math.isfinite(r["loss"]) for r in records if r["kind"] == "train")
    assert all(math.isfinite(r["dev_nll"]) for r in records if r["kind"] == "valid")
    assert all(torch.isfinite(w).all() for w in ck["model"].values() if w.is_floating_point())


def test_multirun_sweep_runs_one_job_per_value(tmp_path: Path) -> None:
    cwd = toy_workdir(tmp_path)
    proc = run_cli(
        "train",
        "-m",
        *QUICK,
        "model.attention=bahdanau,luong_dot",
        "train.max_steps=20",
        "train.valid_every=20",
        cwd=cwd,
    )
    assert proc.returncode == 0, "\n".join(stderr_lines(proc)[-20:])
    jobs = sorted(p.parent.parent for p in (cwd / "multirun").rglob("checkpoints/last.pt"))
    assert len(jobs) == 2
    attentions = sorted(
        load_checkpoint(j / "checkpoints/last.pt")["config"]["model"]["attention"] for j in jobs
    )
    assert attentions == ["bahdanau", "luong_dot"]
    for j in jobs:
        assert json.loads((j / "summary.json").read_text())["steps"] == 20
        assert (j / "data" / "manifest.json").is_file()  # each job prepared its data in its own folder


# --------------------------------------------------------------------------- resume and seeding


def test_resume_continues_exactly(tmp_path: Path) -> None:
    """200 steps + resume to 400 == 400 steps in one go (dropout on, so the RNG state matters),
    with lengths padded to a multiple of 4 (the batches of a bounded shape set, nmt.data.batching)."""
    cwd = toy_workdir(tmp_path, train=6000)
    common = ("experiment=toy", CORPUS, "model.dropout=0.1", "model.emb_dropout=0.1", "train.valid_every=100")
    common += ("train.valid_max_sents=10", "train.batch_size=512")  # half the recipe's batch: twice as fast
    common += ("train.shape_multiple=4",)
    first = run_cli("train", *common, "train.max_steps=200", "run_dir=runs/split", cwd=cwd)
    assert first.returncode == 0, "\n".join(stderr_lines(first)[-20:])
    assert "lengths padded to a multiple of 4" in first.stderr.decode()
    state = load_checkpoint(cwd / "runs/split/checkpoints/last.pt")["state"]
    assert state["step"] == 200 and state["batch_in_epoch"] > 0  # stopped in the middle of an epoch
    second = run_cli(
        "train", *common, "train.max_steps=400", "train.resume=true", "run_dir=runs/split", cwd=cwd
    )
    assert second.returncode == 0, "\n".join(stderr_lines(second)[-20:])
    assert "resumed from" in second.stderr.decode() and "step 200" in second.stderr.decode()
    whole = run_cli("train", *common, "train.max_steps=400", "run_dir=runs/whole", cwd=cwd)
    assert whole.returncode == 0, "\n".join(stderr_lines(whole)[-20:])
    assert_same_weights(cwd / "runs/split/checkpoints/last.pt", cwd / "runs/whole/checkpoints/last.pt")
    split_last = load_checkpoint(cwd / "runs/split/checkpoints/last.pt")
    whole_last = load_checkpoint(cwd / "runs/whole/checkpoints/last.pt")
    assert split_last["state"]["step"] == whole_last["state"]["step"] == 400
    assert split_last["state"]["tokens"] == whole_last["state"]["tokens"]  # the same batches were seen
    assert split_last["metrics"]["dev_nll"] == pytest.approx(whole_last["metrics"]["dev_nll"], abs=1e-5)


def test_resuming_a_finished_run_trains_no_further(tmp_path: Path) -> None:
    cwd = toy_workdir(tmp_path)
    args = (*QUICK, CORPUS, "train.max_steps=10", "train.valid_every=10", "run_dir=runs/done")
    assert run_cli("train", *args, cwd=cwd).returncode == 0
    again = run_cli("train", *args, "train.resume=true", cwd=cwd)
    assert again.returncode == 0, "\n".join(stderr_lines(again)[-20:])
    assert load_checkpoint(cwd / "runs/done/checkpoints/last.pt")["state"]["step"] == 10
    assert json.loads((cwd / "runs/done/summary.json").read_text())["steps"] == 10


def test_resume_without_a_checkpoint_starts_from_scratch(tmp_path: Path) -> None:
    cwd = toy_workdir(tmp_path)
    proc = run_cli("train", *QUICK, "train.max_steps=5", "train.valid_every=5", "train.resume=true", cwd=cwd)
    assert proc.returncode == 0
    assert "does not exist: starting from scratch" in proc.stderr.decode()


def test_same_seed_same_checkpoint(tmp_path: Path) -> None:
    cwd = toy_workdir(tmp_path)
    args = (
        *QUICK,
        CORPUS,
        "model.dropout=0.1",
        "model.emb_dropout=0.1",
        "train.max_steps=30",
        "train.valid_every=30",
    )
    for name in ("a", "b"):
        proc = run_cli("train", *args, f"run_dir=runs/{name}", cwd=cwd)
        assert proc.returncode == 0, "\n".join(stderr_lines(proc)[-20:])
    assert_same_weights(cwd / "runs/a/checkpoints/last.pt", cwd / "runs/b/checkpoints/last.pt")
    other = run_cli("train", *args, "seed=7", "run_dir=runs/c", cwd=cwd)
    assert other.returncode == 0
    wa, wc = (
        model_weights(cwd / "runs/a/checkpoints/last.pt"),
        model_weights(cwd / "runs/c/checkpoints/last.pt"),
    )
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)


def test_sigint_stops_cleanly_after_saving(tmp_path: Path) -> None:
    cwd = toy_workdir(tmp_path)
    cmd = [
        sys.executable,
        "-m",
        "nmt.cli.train",
        *QUICK,
        CORPUS,
        "train.max_steps=100000",
        "run_dir=runs/sig",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    try:
        for line in proc.stderr:  # wait until training runs, then interrupt
            if b" step 10 | " in line:
                proc.send_signal(signal.SIGINT)
                break
        rest = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 0, rest
    finally:
        if proc.poll() is None:
            proc.kill()
    summary = json.loads((cwd / "runs/sig/summary.json").read_text())
    assert summary["stop_reason"] == "interrupted" and summary["steps"] >= 10
    last = load_checkpoint(cwd / "runs/sig/checkpoints/last.pt")
    assert last["state"]["step"] == summary["steps"]  # validated and saved at the step it stopped
    assert "SIGINT received" in rest


# --------------------------------------------------------------------------- configuration on the command line


def test_unknown_key_names_it(tmp_path: Path) -> None:
    proc = run_cli("train", "experiment=toy", "model.atention=bahdanau", cwd=tmp_path)
    assert proc.returncode != 0
    assert "model.atention" in proc.stderr.decode()
    assert not (tmp_path / "runs").exists()


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    proc = run_cli("train", "experiment=toy", "train.max_steps=many", cwd=tmp_path)
    assert proc.returncode != 0
    assert "train.max_steps" in proc.stderr.decode()


def test_cfg_job_prints_the_resolved_config(tmp_path: Path) -> None:
    proc = run_cli("train", "experiment=toy", "model.attention=bahdanau", "--cfg", "job", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    assert "attention: bahdanau" in out and "emb_dim: 32" in out and "name: toy" in out
    assert not (tmp_path / "runs").exists()  # printing the config trains nothing


def test_invalid_combination_is_a_one_line_error(tmp_path: Path) -> None:
    cwd = toy_workdir(tmp_path)
    proc = run_cli("train", "experiment=toy", "model.attention=luong_dot", "model.dec_hidden=48", cwd=cwd)
    assert proc.returncode == 2
    lines = stderr_lines(proc)
    assert lines[-1].startswith("nmt-train: error: model.attention=luong_dot")
    assert "Traceback" not in proc.stderr.decode()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_trains_on_cuda_and_translates_on_cpu(tmp_path: Path, precision: str) -> None:
    cwd = toy_workdir(tmp_path)
    proc = run_cli(
        "train",
        *QUICK,
        CORPUS,
        "device=cuda",
        f"train.precision={precision}",
        "train.max_steps=20",
        "train.valid_every=20",
        "run_dir=runs/gpu",
        cwd=cwd,
    )
    assert proc.returncode == 0, "\n".join(stderr_lines(proc)[-20:])
    records = [json.loads(line) for line in (cwd / "runs/gpu/metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in records if r["kind"] == "train")
    out = run_cli(
        "translate",
        "ckpt=runs/gpu/checkpoints/last.pt",
        "device=cpu",
        cwd=cwd,
        stdin=b"red cat big\n\nblue dog\n",
    )
    assert out.returncode == 0, out.stderr.decode()
    assert len(out.stdout.decode().splitlines()) == 3


def test_subword_sampling_resumes_exactly_and_segments_each_epoch_afresh(tmp_path: Path) -> None:
    """train.subword_alpha: every epoch its own segmentation (more pieces than the prepared one,
    different from the last epoch's), dev never sampled, and 150 steps + resume to 300 == 300 in one go."""
    cwd = toy_workdir(tmp_path, train=3000)
    common = (
        "experiment=toy",
        CORPUS,
        "tokenizer=unigram",
        "tokenizer.vocab_size=64",
        "train.subword_alpha=0.3",
    )
    common += (
        "train.valid_every=75",
        "train.valid_max_sents=10",
        "train.batch_size=512",
        "model.dropout=0.1",
    )
    first = run_cli("train", *common, "train.max_steps=150", "run_dir=runs/split", cwd=cwd)
    assert first.returncode == 0, "\n".join(stderr_lines(first)[-20:])
    segmented = [line for line in stderr_lines(first) if "segmented afresh" in line]
    assert segmented and "pieces: source +" in segmented[0] and "target +" in segmented[0]
    second = run_cli(
        "train", *common, "train.max_steps=300", "train.resume=true", "run_dir=runs/split", cwd=cwd
    )
    assert second.returncode == 0, "\n".join(stderr_lines(second)[-20:])
    whole = run_cli("train", *common, "train.max_steps=300", "run_dir=runs/whole", cwd=cwd)
    assert whole.returncode == 0, "\n".join(stderr_lines(whole)[-20:])
    assert_same_weights(cwd / "runs/split/checkpoints/last.pt", cwd / "runs/whole/checkpoints/last.pt")
    split_last = load_checkpoint(cwd / "runs/split/checkpoints/last.pt")
    whole_last = load_checkpoint(cwd / "runs/whole/checkpoints/last.pt")
    assert split_last["state"]["tokens"] == whole_last["state"]["tokens"]  # the same pieces were seen


def test_subword_sampling_needs_a_model_with_segmentations(tmp_path: Path) -> None:
    cwd = toy_workdir(tmp_path)
    proc = run_cli(
        "train", *QUICK, CORPUS, "tokenizer=word", "train.subword_alpha=0.2", "run_dir=runs/w", cwd=cwd
    )
    assert "a word model does not have: use tokenizer=unigram or tokenizer=bpe" in assert_one_line_error(
        proc, "nmt-train"
    )
