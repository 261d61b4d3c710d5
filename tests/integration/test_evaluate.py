"""nmt-evaluate: a checkpoint on named test sets, a src/ref pair, or a hypothesis file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ToyRun
from tests.helpers import assert_one_line_error, run_cli

pytestmark = pytest.mark.slow


def test_toy_checkpoint_scores_above_90_on_the_toy_test_set(toy_run: ToyRun, tmp_path: Path) -> None:
    out, hyps = tmp_path / "scores.json", tmp_path / "hyps"
    proc = run_cli(
        "evaluate",
        f"ckpt={toy_run.best}",
        "data=toy",
        f"data.root={toy_run.corpus}",
        f"output={out}",
        f"hyp_dir={hyps}",
        cwd=toy_run.root,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(out.read_text())
    [row] = result["results"]
    assert row["test_set"] == "toy_test" and row["sentences"] == 200
    bleu = row["scores"][0]
    assert bleu["metric"] == "BLEU" and bleu["score"] > 90
    assert "tok:13a" in bleu["signature"]  # target language "tgt": SacreBLEU's default tokenizer
    assert result["search"]["method"] == "beam"
    assert "toy_test" in proc.stdout.decode() and "BLEU" in proc.stdout.decode()
    written = (hyps / "toy_test.hyp").read_text(encoding="utf-8").splitlines()
    assert len(written) == 200

    # scoring the written hypotheses as a file gives the same BLEU
    ref = toy_run.corpus / "toy" / "test.tgt"
    again = run_cli("evaluate", f"hyp={hyps / 'toy_test.hyp'}", f"ref={ref}", "lang=tgt", cwd=tmp_path)
    assert again.returncode == 0, again.stderr.decode()
    assert f"BLEU = {bleu['score']:.2f}" in again.stdout.decode()


def test_src_and_ref_files(toy_run: ToyRun, tmp_path: Path) -> None:
    src, ref = toy_run.corpus / "toy" / "dev.src", toy_run.corpus / "toy" / "dev.tgt"
    out = tmp_path / "s.json"
    proc = run_cli(
        "evaluate",
        f"ckpt={toy_run.best}",
        f"src={src}",
        f"ref={ref}",
        "search=greedy",
        f"output={out}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    [row] = json.loads(out.read_text())["results"]
    assert row["test_set"] == "dev.src" and row["scores"][0]["score"] > 90


def test_hypothesis_file_with_a_different_line_count(tmp_path: Path) -> None:
    hyp, ref = tmp_path / "h.txt", tmp_path / "r.txt"
    hyp.write_text("a b\n")
    ref.write_text("a b\nc d\n")
    proc = run_cli("evaluate", f"hyp={hyp}", f"ref={ref}", cwd=tmp_path)
    line = assert_one_line_error(proc, "nmt-evaluate")
    assert str(hyp) in line and str(ref) in line


def test_segmented_japanese_reports_both_bleus(tmp_path: Path) -> None:
    hyp, ref = tmp_path / "h.ja", tmp_path / "r.ja"
    hyp.write_text("猫 が 魚 を 食べ る 。\n私 は 学生 です 。\n", encoding="utf-8")
    ref.write_text("猫 が 魚 を 食べ た 。\n私 は 学生 です 。\n", encoding="utf-8")
    out = tmp_path / "s.json"
    proc = run_cli("evaluate", f"hyp={hyp}", f"ref={ref}", "segmented=true", f"output={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    sigs = [s["signature"] for s in json.loads(out.read_text())["scores"]]
    assert "tok:none" in sigs[0] and "tok:ja-mecab" in sigs[1] and sigs[2].startswith("nrefs")


def test_unknown_test_set(toy_run: ToyRun, tmp_path: Path) -> None:
    proc = run_cli(
        "evaluate",
        f"ckpt={toy_run.best}",
        "data=toy",
        f"data.root={toy_run.corpus}",
        "test_sets=[nope]",
        cwd=tmp_path,
    )
    line = assert_one_line_error(proc, "nmt-evaluate")
    assert "nope" in line and "toy_test" in line


def test_unknown_key_names_it(tmp_path: Path) -> None:
    proc = run_cli("evaluate", "hyp=a", "ref=b", "segmentd=true", cwd=tmp_path)
    assert proc.returncode != 0
    assert "segmentd" in proc.stderr.decode()


def test_output_folder_is_created_and_an_unwritable_output_is_one_line(tmp_path: Path) -> None:
    hyp, ref = tmp_path / "h.txt", tmp_path / "r.txt"
    hyp.write_text("a b c d\n", encoding="utf-8")
    ref.write_text("a b c d\n", encoding="utf-8")
    out = tmp_path / "new" / "folder" / "s.json"
    proc = run_cli("evaluate", f"hyp={hyp}", f"ref={ref}", f"output={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(out.read_text())["scores"][0]["score"] == pytest.approx(100.0)

    blocked = hyp / "s.json"  # its folder is a file
    proc = run_cli("evaluate", f"hyp={hyp}", f"ref={ref}", f"output={blocked}", cwd=tmp_path)
    assert str(hyp) in assert_one_line_error(proc, "nmt-evaluate")


def test_a_model_that_writes_plain_text_is_not_scored_on_segmentation(
    toy_run: ToyRun, tmp_path: Path
) -> None:
    """The toy model's data is not word-segmented: against a reference marked segmented it is
    scored with the spaces removed on both sides, never with -tok none (which would compare
    segmentations the model never wrote)."""
    src, ref = toy_run.corpus / "toy" / "dev.src", toy_run.corpus / "toy" / "dev.tgt"
    out = tmp_path / "s.json"
    proc = run_cli("evaluate", f"ckpt={toy_run.best}", f"src={src}", f"ref={ref}", "segmented=true",
                   "search=greedy", f"output={out}", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    [row] = json.loads(out.read_text())["results"]
    assert len(row["scores"]) == 2 and not any("tok:none" in s["signature"] for s in row["scores"])
    assert row["scores"][1]["metric"] == "chrF" and row["scores"][1]["score"] > 90  # BLEU: 1 token a line


def test_a_sample_spread_over_the_set_and_the_share_of_repeats(toy_run: ToyRun, tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    proc = run_cli(
        "evaluate", f"ckpt={toy_run.best}", "data=toy", f"data.root={toy_run.corpus}", "sample=20",
        "search=greedy", f"output={out}", cwd=toy_run.root,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    [row] = json.loads(out.read_text())["results"]
    assert row["test_set"] == "toy_test (20 spread)" and row["sentences"] == 20
    assert 0.0 <= row["repeats"] <= 1.0 and 0.0 <= row["repeats_ref"] <= 1.0
    assert "repeat%" in proc.stdout.decode()
    both = run_cli("evaluate", f"ckpt={toy_run.best}", "data=toy", "first=5", "sample=5", cwd=toy_run.root)
    assert "give one" in assert_one_line_error(both, "nmt-evaluate")
