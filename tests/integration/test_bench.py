"""The benchmark scripts in bench/ run as docs/benchmarks.md writes them.

Each script, made tiny (the toy recipe's checkpoint and data, a few steps), runs on the CPU to
the end and reports its figures; the GPU commands of docs/benchmarks.md, run word for word on a
machine without CUDA, get through their argument parsing and stop with a one-line error. No
figure is judged: benchmarks print, they do not assert, and nor does this on their numbers.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ToyRun
from tests.helpers import REPO, assert_one_line_error

NO_CUDA = "error: device=cuda but CUDA is not available here (use device=auto or cpu)"


def bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[bytes]:
    """``python bench/<args>`` in the repository, one thread (the machine is shared with tests)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, timeout=timeout, env=env, check=False
    )


def ok(proc: subprocess.CompletedProcess[bytes]) -> str:
    """The stdout of a run that ended well."""
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return proc.stdout.decode()


def gpu_commands() -> list[str]:
    """The shell lines of the code block under "## GPU" in docs/benchmarks.md."""
    text = (REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    section = text.split("\n## GPU\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "docs/benchmarks.md: no ```bash block under ## GPU"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here: the commands would run for minutes")
def test_the_documented_gpu_commands_parse_and_refuse_in_one_line_without_cuda() -> None:
    commands = gpu_commands()
    assert len(commands) >= 3
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "python" and argv[1].startswith("bench/"), command
        # an unknown or misspelt option would be argparse's "unrecognized arguments" instead
        assert assert_one_line_error(bench(*argv[1:]), argv[1]) == f"{argv[1]}: {NO_CUDA}", command


def test_train_speed_and_floor_print_tokens_per_second(tmp_path: Path, toy_run: ToyRun) -> None:
    tiny = ["--size", "small", "--batch", "4", "--src-len", "6", "--tgt-len", "5", "--device", "cpu"]
    out = tmp_path / "synthetic.json"
    ok(bench("bench/train_speed.py", *tiny, "--steps", "2", "--warmup", "1", "--json", str(out)))
    res = json.loads(out.read_text())
    assert res["steps"] == 2 and res["target_tokens_per_s"] > 0 and res["data"] == "synthetic 4x6/5"
    out = tmp_path / "real.json"
    data = toy_run.run_dir / "data"
    ok(bench("bench/train_speed.py", "--data", str(data), "--batch", "8", "--steps", "2", "--warmup", "1",
             "--device", "cpu", "--json", str(out)))  # fmt: skip
    assert json.loads(out.read_text())["target_tokens_per_s"] > 0
    floor = ok(bench("bench/floor.py", *tiny, "--reps", "2"))
    assert re.search(r"^floor: [\d.]+ ms per step = [\d,]+ target tokens/s", floor, re.M), floor


def test_step_ab_compares_two_ways_of_the_step(toy_run: ToyRun) -> None:
    stdout = ok(bench("bench/step_ab.py", "--data", str(toy_run.run_dir / "data"), "--batch", "8",
                      "--steps", "2", "--warmup", "1", "--compare", "both", "--products"))  # fmt: skip
    assert re.search(r"^B / A: \d+\.\d{3} ", stdout, re.M), stdout
    assert re.search(r"^products' share of the step: \d+\.\d%", stdout, re.M), stdout


def test_shapes_counts_each_multiple(toy_run: ToyRun) -> None:
    out = ok(
        bench("bench/shapes.py", "--data", str(toy_run.run_dir / "data"), "--batch", "256", "--pairs", "5000")
    )
    rows = [line.split() for line in out.splitlines() if line.split() and line.split()[0].isdigit()]
    assert [int(r[0]) for r in rows] == [1, 2, 4, 8, 16]
    shapes = [int(r[2]) for r in rows]
    assert shapes[0] >= shapes[-1] >= 1  # padding never adds shapes overall
    assert "5,000 training pairs" in out and "bounded_multiple(max_shapes=32): multiple" in out


def test_decode_speed_reports_every_setting(tmp_path: Path, toy_run: ToyRun) -> None:
    src = toy_run.corpus / "toy" / "test.src"
    ref = toy_run.corpus / "toy" / "test.tgt"
    out = tmp_path / "decode.json"
    ok(bench("bench/decode_speed.py", "--ckpt", str(toy_run.best), "--input", str(src), "--device", "cpu",
             "--max-sentences", "6", "--batches", "3", "--beams", "1,2", "--precisions", "fp32,int8",
             "--ref", str(ref), "--json", str(out), "--latency-runs", "5",
             "--latency-sentence", "the red cat"))  # fmt: skip
    report = json.loads(out.read_text())
    rows = report["results"]
    assert [(r["arithmetic"], r["search"]) for r in rows] == [
        ("fp32", "greedy"), ("fp32", "beam2"), ("int8", "greedy"), ("int8", "beam2"),
    ]  # fmt: skip
    assert all(r["sentences"] == 6 and r["sentences_per_s"] > 0 and "bleu_tok_none" in r for r in rows)
    latency = report["latency"]  # one sentence alone: p50/p99, decoder steps, the products alone
    assert [(r["arithmetic"], r["search"]) for r in latency] == [(r["arithmetic"], r["search"]) for r in rows]
    assert all(0 < r["p50_ms"] <= r["p99_ms"] and r["steps"] >= 1 and r["ms_per_step"] > 0 for r in latency)
    assert all(0 < r["products_ms_per_step"] < r["ms_per_step"] for r in latency if r["arithmetic"] == "fp32")


def test_beam_stop_tunes_alpha_for_each_rule(tmp_path: Path, toy_run: ToyRun) -> None:
    toy = toy_run.corpus / "toy"
    cut = tmp_path / "cut"
    cut.mkdir()
    for split in ("dev", "test"):  # a few sentences are enough to run every path
        for side in ("src", "tgt"):
            lines = (toy / f"{split}.{side}").read_text(encoding="utf-8").splitlines()[:8]
            (cut / f"{split}.{side}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "stop.json"
    ok(bench("bench/beam_stop.py", "--ckpt", str(toy_run.best), "--dev", str(cut / "dev"),
             "--test", str(cut / "test"), "--src", "src", "--tgt", "tgt", "--alphas", "0.0,1.0",
             "--beam", "2", "--out", str(out)))  # fmt: skip
    rules = json.loads(out.read_text())["rules"]
    assert set(rules) == {"exact", "first_k"}
    for rule in rules.values():
        assert [r["alpha"] for r in rule["dev"]] == [0.0, 1.0]
        assert rule["test_at_best_dev_alpha"]["test_steps"] > 0


def test_a_missing_checkpoint_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("a b c\n", encoding="utf-8")
    proc = bench("bench/decode_speed.py", "--ckpt", str(tmp_path / "none.pt"), "--input", str(src),
                 "--device", "cpu")  # fmt: skip
    assert "none.pt" in assert_one_line_error(proc, "bench/decode_speed.py")
