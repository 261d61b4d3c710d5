#!/usr/bin/env python3
"""Preparing and opening corpora of 1, 5 and 21 million pairs: time, memory, disk.

The corpora are made from kyoto_wiki, deterministically: its 439,811 training pairs repeated in
order, and the first N lines of that taken (so sentences repeat; dev and test are kyoto_wiki's).
For each size it runs, in fresh processes:

1. ``nmt-prepare experiment=en_ja_kyoto_cpu`` on it (SentencePiece trained on a fixed sample,
   ``--spm-sample`` pairs, so that only reading and encoding grow with N): wall time, pairs/s,
   the peak resident memory of the main process (VmHWM), the peak of the whole process tree
   (sampled every 0.2 s: main process, worker processes, SentencePiece's process) with and
   without the phase where SentencePiece trains, SentencePiece's own training time and peak
   (reported by it), and bytes on disk per pair;
2. ``nmt-train`` for ``--train-steps`` updates on what was prepared (then stopped: the final
   validation is not part of the measure): the start-up (from the start to the first update,
   less that update's own time) and the training process's peak memory.

``--old SRC`` does the same with another checkout of nmt (run with PYTHONPATH=SRC), where its
estimated memory (``--old-bytes-per-pair``, 2.2 KB measured before memory-mapped data) fits.
Prints a table (and ``--json`` writes the figures); asserts nothing.

  python bench/data_scale.py --data /work/shared/data --work /tmp/nmt_scale
  python bench/data_scale.py --data ... --work ... --sizes 1000000 --old /tmp/before
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

KYOTO_TRAIN = 439_811


def make_corpus(data: Path, out: Path, n: int) -> Path:
    """``out/kyoto_x<n>``: kyoto_wiki's training pairs repeated in order, the first n lines;
    its dev and test linked. Reused when it is there with n lines."""
    folder = out / f"kyoto_x{n}"
    done = folder / ".complete"
    if done.is_file() and done.read_text() == str(n):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    src = data / "kyoto_wiki"
    for lang in ("en", "ja"):
        lines = (src / f"train.{lang}").read_bytes().splitlines(keepends=True)
        assert len(lines) == KYOTO_TRAIN, f"{src}/train.{lang}: {len(lines)} lines"
        with open(folder / f"train.{lang}", "wb") as f:
            left = n
            while left > 0:
                f.writelines(lines[: min(left, len(lines))])
                left -= len(lines)
        for split in ("dev", "test"):
            link = folder / f"{split}.{lang}"
            if not link.exists():
                link.symlink_to(src / f"{split}.{lang}")
    done.write_text(str(n))
    return folder


class Watch:
    """Peak memory of a process (VmHWM, read until it exits) and of its whole tree (sampled),
    the latter by phase (``phase`` is set by the reader of the process's log)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc, self.main_mib, self.tree_mib = proc, 0.0, 0.0
        self.phase, self.by_phase = "start", {}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            p = psutil.Process(self.proc.pid)
        except psutil.NoSuchProcess:
            return
        while self.proc.poll() is None:
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.main_mib = max(self.main_mib, int(line.split()[1]) / 1024)
                tree = (
                    p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))
                ) / 2**20
                self.tree_mib = max(self.tree_mib, tree)
                self.by_phase[self.phase] = max(self.by_phase.get(self.phase, 0.0), tree)
            except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
                pass
            time.sleep(0.2)

    def join(self) -> None:
        self.thread.join()


# log lines that start a phase of nmt-prepare
PHASES = {"SentencePiece sample:": "sentencepiece", "SentencePiece trained": "encoding"}


def run(cmd: list[str], env: dict, log: Path, cwd: Path, kill_at: str | None = None) -> dict:
    """Run a command in ``cwd`` (stderr to ``log``), watching its memory; with ``kill_at``, stop
    it (SIGKILL) at the first stderr line holding that text. Returns the seconds, the stderr
    lines with the second each arrived, and the peaks."""
    t0 = time.perf_counter()
    lines: list[tuple[float, str]] = []
    with open(log, "w") as f:
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        watch = Watch(proc)
        assert proc.stderr is not None
        for line in proc.stderr:
            f.write(line)
            lines.append((time.perf_counter() - t0, line))
            for marker, phase in PHASES.items():
                if marker in line:
                    watch.phase = phase
            if kill_at and kill_at in line:
                time.sleep(0.3)  # a last memory reading
                proc.kill()
                break
        proc.wait()
        watch.join()
    if proc.returncode != 0 and not kill_at:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}); see {log}")
    return {
        "seconds": time.perf_counter() - t0,
        "lines": lines,
        "main_mib": watch.main_mib,
        "tree_mib": watch.tree_mib,
        "phases": watch.by_phase,
    }


def startup_seconds(lines: list[tuple[float, str]]) -> float | None:
    """From the start to the first update: the arrival of the "step 1 |" log line less that
    step's own duration (its "ms/step"), which holds first-step costs such as compiling kernels."""
    for t, line in lines:
        if "step 1 |" in line:
            ms = float(line.split(" ms/step")[0].rsplit("|", 1)[1].replace(",", ""))
            return t - ms / 1000
    return None


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def measure(
    python: str, pythonpath: str | None, corpora: Path, n: int, run_dir: Path, a: argparse.Namespace
) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    common = [
        "experiment=en_ja_kyoto_cpu",
        f"data.root={corpora}",
        f"data.corpus=kyoto_x{n}",
        f"tokenizer.input_sentence_size={a.spm_sample}",
        f"run_dir={run_dir}",
    ]
    run_dir.mkdir(parents=True, exist_ok=True)
    cwd = run_dir.parent  # not a checkout: `python -m nmt...` must find the nmt asked for
    prep = run([python, "-m", "nmt.cli.prepare", *common], env, run_dir / "bench_prepare.log", cwd)
    manifest = json.loads((run_dir / "data" / "manifest.json").read_text())
    spm = manifest.get("sentencepiece", {})
    steps = a.train_steps
    train = run(
        [python, "-m", "nmt.cli.train", *common, f"train.max_steps={steps + 1}", "train.log_every=1",
         "train.valid_every=100000", "train.max_time=0"],
        env,
        run_dir / "bench_train.log",
        cwd,
        kill_at=f"step {steps} |",  # the measure is taken; the final validation is not wanted
    )  # fmt: skip
    last = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"train"' in x]
    up = startup_seconds(train["lines"])
    return {
        "pairs": n,
        "prepare_seconds": round(prep["seconds"], 1),
        "pairs_per_second": round(n / prep["seconds"]),
        "prepare_main_peak_mib": round(prep["main_mib"]),
        "prepare_tree_peak_mib": round(prep["tree_mib"]),
        "prepare_tree_peak_outside_spm_mib": round(
            max(v for k, v in prep["phases"].items() if k != "sentencepiece") if prep["phases"] else 0
        ),
        "spm_train_seconds": spm.get("train_seconds"),
        "spm_peak_mib": spm.get("peak_rss_mib"),
        "disk_bytes_per_pair": round(disk_bytes(run_dir / "data") / n, 1),
        "train_startup_seconds": None if up is None else round(up, 1),
        "train_peak_mib_at_last_step": last[-1].get("peak_mem_mib") if last else None,
        "train_main_peak_mib": round(train["main_mib"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the folder holding kyoto_wiki")
    ap.add_argument("--work", type=Path, required=True, help="where the corpora and runs go (GBs)")
    ap.add_argument("--sizes", default="1000000,5000000,21000000")
    ap.add_argument("--spm-sample", type=int, default=KYOTO_TRAIN)
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--old", default=None, help="a checkout of another nmt to measure too")
    ap.add_argument("--old-bytes-per-pair", type=float, default=2200.0)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    corpora = a.work / "corpora"
    rows = []
    for n in [int(x) for x in a.sizes.split(",")]:
        t0 = time.perf_counter()
        make_corpus(a.data, corpora, n)
        print(f"# {n:,} pairs: corpus ready ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
        rows.append(
            {"code": "this", **measure(sys.executable, None, corpora, n, a.work / f"runs/new_{n}", a)}
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        if a.old:
            need = n * a.old_bytes_per_pair / 2**20
            free = psutil.virtual_memory().available / 2**20
            if need > 0.8 * free:
                rows.append(
                    {"code": "old", "pairs": n, "skipped": f"needs ~{need:,.0f} MiB, {free:,.0f} available"}
                )
            else:
                rows.append(
                    {"code": "old", **measure(sys.executable, a.old, corpora, n, a.work / f"runs/old_{n}", a)}
                )
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    cols = [
        ("code", "code"), ("pairs", "pairs"), ("prepare_seconds", "prepare s"), ("pairs_per_second", "pairs/s"),
        ("prepare_main_peak_mib", "main peak MiB"), ("prepare_tree_peak_outside_spm_mib", "all processes but SPM's, MiB"),
        ("prepare_tree_peak_mib", "all processes MiB"),
        ("spm_train_seconds", "SPM s"), ("spm_peak_mib", "SPM MiB"), ("disk_bytes_per_pair", "disk B/pair"),
        ("train_startup_seconds", "train start-up s"), ("train_main_peak_mib", "train peak MiB"),
    ]  # fmt: skip
    print("| " + " | ".join(h for _, h in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        if "skipped" in r:
            print(f"| {r['code']} | {r['pairs']:,} | skipped: {r['skipped']} |")
            continue
        print(
            "| "
            + " | ".join(
                "-" if r.get(k) is None else f"{r[k]:,}" if isinstance(r[k], int | float) else str(r[k])
                for k, _ in cols
            )
            + " |"
        )
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
