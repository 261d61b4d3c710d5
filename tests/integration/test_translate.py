"""nmt-translate with the toy checkpoint: one output line per input line, whatever the input holds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nmt.config import LengthPenalty, SearchConfig, SearchMethod
from nmt.data.toy import make_pairs
from nmt.model.io import load_model
from nmt.translator import Translator
from tests.conftest import ToyRun
from tests.helpers import assert_one_line_error, near_tie_lines, run_cli, stderr_lines

pytestmark = pytest.mark.slow

PAIRS = make_pairs(30, seed=123)
LONG = " ".join(["red cat big"] * 10)  # 30 words: more than max_input_len=20 pieces
# conf/search/beam.yaml, nmt-translate's default
BEAM = SearchConfig(
    method=SearchMethod.beam,
    beam_size=5,
    length_penalty=LengthPenalty.gnmt,
    alpha=0.6,
    max_len_a=2.0,
    max_len_b=10,
)


def translate(toy: ToyRun, *args: str, stdin: bytes | None = None):  # noqa: ANN201
    return run_cli("translate", f"ckpt={toy.best}", *args, cwd=toy.root, stdin=stdin)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def out_lines(path: Path) -> list[str]:
    data = path.read_bytes().decode("utf-8")
    assert data.endswith("\n")
    return data[:-1].split("\n")


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if ".tmp" in p.name]


def test_translations_are_correct_and_aligned(toy_run: ToyRun, tmp_path: Path) -> None:
    src = write(tmp_path / "in.src", "".join(s + "\n" for s, _ in PAIRS).encode())
    proc = translate(toy_run, f"input={src}", f"output={tmp_path / 'out.tgt'}")
    assert proc.returncode == 0, proc.stderr.decode()
    got = out_lines(tmp_path / "out.tgt")
    assert len(got) == len(PAIRS)
    correct = sum(g == t for g, (_, t) in zip(got, PAIRS))
    assert correct >= 0.9 * len(PAIRS)  # the toy model has learned reverse-and-translate


def test_cli_translates_like_the_library(toy_run: ToyRun, tmp_path: Path) -> None:
    """The checkpoint alone is enough: the CLI's output equals an in-process beam search."""
    lines = [s for s, _ in PAIRS]
    proc = translate(toy_run, "format=jsonl", stdin="".join(s + "\n" for s in lines).encode())
    assert proc.returncode == 0, proc.stderr.decode()
    records = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    model, src_tok, tgt_tok, _ = load_model(toy_run.best, torch.device("cpu"))
    want = Translator(model, src_tok, tgt_tok, BEAM, torch.device("cpu")).translate_detailed(lines)
    assert [r["translation"] for r in records] == [t.text for t in want]
    assert [r["score"] for r in records] == pytest.approx([t.score for t in want], abs=1e-4)


def test_awkward_lines_keep_the_line_count(toy_run: ToyRun, tmp_path: Path) -> None:
    a, b, c = (s for s, _ in PAIRS[:3])
    data = f"{a}\n\n   \n{b}\r\n{a}\r\n\n{c}".encode()  # empty, spaces only, CRLF, no final newline
    src = write(tmp_path / "in.src", data)
    out = tmp_path / "out.tgt"
    proc = translate(toy_run, f"input={src}", f"output={out}")
    assert proc.returncode == 0, proc.stderr.decode()
    got = out_lines(out)
    assert len(got) == 7
    assert got[1] == got[2] == got[5] == ""
    assert got[0] == got[4] != ""  # the CRLF copy of line 1 translates the same
    assert got[3] != "" and got[6] != ""
    assert "\r" not in out.read_text(encoding="utf-8")


def test_long_line_is_an_error_by_default(toy_run: ToyRun, tmp_path: Path) -> None:
    src = write(tmp_path / "in.src", f"{PAIRS[0][0]}\n{LONG}\n{PAIRS[1][0]}\n".encode())
    out = tmp_path / "out" / "o.tgt"
    out.parent.mkdir()
    proc = translate(toy_run, f"input={src}", f"output={out}", "max_input_len=20")
    line = assert_one_line_error(proc, "nmt-translate")
    assert f"{src}:2:" in line and "max_input_len=20" in line
    assert not out.exists() and no_temp_files(out.parent)


def test_long_line_is_truncated_on_fix(toy_run: ToyRun, tmp_path: Path) -> None:
    src = write(tmp_path / "in.src", f"{PAIRS[0][0]}\n{LONG}\n{PAIRS[1][0]}\n".encode())
    out = tmp_path / "o.tgt"
    proc = translate(toy_run, f"input={src}", f"output={out}", "max_input_len=20", "on_bad_line=fix")
    assert proc.returncode == 0, proc.stderr.decode()
    got = out_lines(out)
    assert len(got) == 3 and got[1] != ""
    assert got[0] == PAIRS[0][1]
    assert any(f"{src}:2" in line and "truncated" in line for line in stderr_lines(proc))


def test_invalid_utf8_is_an_error_by_default(toy_run: ToyRun, tmp_path: Path) -> None:
    src = write(tmp_path / "in.src", f"{PAIRS[0][0]}\n{PAIRS[1][0]}\n".encode() + b"red \xff cat big\n")
    out = tmp_path / "o.tgt"
    proc = translate(toy_run, f"input={src}", f"output={out}")
    line = assert_one_line_error(proc, "nmt-translate")
    assert f"{src}:3:" in line and "invalid UTF-8" in line
    assert not out.exists() and no_temp_files(tmp_path)


def test_invalid_utf8_is_replaced_on_fix(toy_run: ToyRun, tmp_path: Path) -> None:
    src = write(tmp_path / "in.src", f"{PAIRS[0][0]}\n".encode() + b"red \xff\xfe cat big\n" + b"\xc3\n")
    out = tmp_path / "o.tgt"
    proc = translate(toy_run, f"input={src}", f"output={out}", "on_bad_line=fix")
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(out_lines(out)) == 3
    warnings = [line for line in stderr_lines(proc) if "U+FFFD" in line]
    assert len(warnings) == 2 and f"{src}:2" in warnings[0] and f"{src}:3" in warnings[1]


def test_unicode_line_separators_do_not_split_lines(toy_run: ToyRun, tmp_path: Path) -> None:
    data = f"{PAIRS[0][0]}\u2028{PAIRS[1][0]}\n{PAIRS[2][0]}\x85x\n{PAIRS[3][0]}\x0bx\x0c\n".encode()
    src = write(tmp_path / "in.src", data)
    out = tmp_path / "o.tgt"
    proc = translate(toy_run, f"input={src}", f"output={out}")
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(out_lines(out)) == 3


def test_many_lines_in_chunks_equal_one_chunk(toy_run: ToyRun, tmp_path: Path) -> None:
    lines = [s for s, _ in make_pairs(5200, seed=99)]
    lines[1234] = ""
    src = write(tmp_path / "big.src", "".join(s + "\n" for s in lines).encode())
    chunked, whole = tmp_path / "chunked.tgt", tmp_path / "whole.tgt"
    # float32 decoding: with bf16 autocast a batch of another shape may round a logit otherwise
    p1 = translate(toy_run, f"input={src}", f"output={chunked}", "chunk_lines=1000", "precision=fp32")
    p2 = translate(toy_run, f"input={src}", f"output={whole}", "chunk_lines=100000", "precision=fp32")
    assert p1.returncode == 0 and p2.returncode == 0, p1.stderr.decode() + p2.stderr.decode()
    a, b = out_lines(chunked), out_lines(whole)
    assert len(a) == len(lines) == len(b)
    assert a[1234] == b[1234] == ""
    # chunks change the batches: lines decided by a float32 near-tie may go either way
    ties = near_tie_lines(toy_run.best, lines, BEAM)
    assert len(ties) < len(lines) // 100
    assert [x for i, x in enumerate(a) if i not in ties] == [x for i, x in enumerate(b) if i not in ties]


def test_stdin_to_stdout(toy_run: ToyRun, tmp_path: Path) -> None:
    data = "".join(s + "\n" for s, _ in PAIRS[:5]).encode()
    proc = translate(toy_run, stdin=data)
    assert proc.returncode == 0, proc.stderr.decode()
    via_pipe = proc.stdout.decode().split("\n")
    assert via_pipe[-1] == "" and len(via_pipe) == 6
    out = tmp_path / "o.tgt"
    assert translate(toy_run, f"input={write(tmp_path / 'in.src', data)}", f"output={out}").returncode == 0
    assert via_pipe[:-1] == out_lines(out)


def test_buffered_stdout_is_complete_at_the_quick_exit(toy_run: ToyRun, tmp_path: Path) -> None:
    """The one-shot tools end without the interpreter's teardown, which is what would otherwise
    flush a block-buffered stdout: every line of a many-kilobyte output and the last log line
    must still arrive (fails if neither the output writer nor the exit flushes)."""
    import os
    import subprocess
    import sys

    n = 3000  # ~50 KB of output: several buffer-fulls, the last one only flushed at exit
    data = "".join(PAIRS[i % len(PAIRS)][0] + "\n" for i in range(n)).encode()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.run(
        [sys.executable, "-m", "nmt.cli.translate", f"ckpt={toy_run.best}", "search=greedy"],
        input=data, capture_output=True, cwd=toy_run.root, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode().split("\n")
    assert out[-1] == "" and len(out) == n + 1
    assert f"translated {n} lines" in proc.stderr.decode()


def test_jsonl_with_nbest(toy_run: ToyRun, tmp_path: Path) -> None:
    data = f"{PAIRS[0][0]}\n\n{PAIRS[1][0]}\n".encode()
    proc = translate(toy_run, "format=jsonl", "search.nbest=3", "with_attention=true", stdin=data)
    assert proc.returncode == 0, proc.stderr.decode()
    records = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [r["line"] for r in records] == [1, 2, 3]
    for r in (records[0], records[2]):
        assert len(r["nbest"]) == 3
        assert r["nbest"][0]["translation"] == r["translation"]
        scores = [n["score"] for n in r["nbest"]]
        assert scores == sorted(scores, reverse=True)
        assert len(r["attention"]) == len(r["tgt_pieces"]) and r["tgt_pieces"][-1] == "</s>"
        assert all(len(row) == len(r["src_pieces"]) for row in r["attention"])
    assert records[0]["translation"] == PAIRS[0][1]
    assert records[1]["translation"] == "" and records[1]["score"] is None and "nbest" not in records[1]


@pytest.mark.parametrize("method", ["greedy", "sample"])
def test_other_search_methods(toy_run: ToyRun, method: str) -> None:
    data = "".join(s + "\n" for s, _ in PAIRS[:5]).encode()
    proc = translate(toy_run, f"search={method}", stdin=data)
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(proc.stdout.decode().splitlines()) == 5
    again = translate(toy_run, f"search={method}", stdin=data)
    assert again.stdout == proc.stdout  # sampling is seeded


def test_missing_input_file(toy_run: ToyRun, tmp_path: Path) -> None:
    proc = translate(toy_run, f"input={tmp_path / 'nope.src'}", f"output={tmp_path / 'o.tgt'}")
    line = assert_one_line_error(proc, "nmt-translate")
    assert "nope.src" in line and "not found" in line
    assert not (tmp_path / "o.tgt").exists()


def test_missing_checkpoint(toy_run: ToyRun, tmp_path: Path) -> None:
    proc = run_cli("translate", f"ckpt={tmp_path / 'none.pt'}", cwd=tmp_path, stdin=b"red cat big\n")
    line = assert_one_line_error(proc, "nmt-translate")
    assert "none.pt" in line and "checkpoint not found" in line


@pytest.mark.parametrize(
    "content", [b"not a checkpoint\n", b"PK\x03\x04truncated zip"], ids=["text", "garbage"]
)
def test_file_that_is_not_a_checkpoint(toy_run: ToyRun, tmp_path: Path, content: bytes) -> None:
    fake = write(tmp_path / "fake.pt", content)
    proc = run_cli("translate", f"ckpt={fake}", cwd=tmp_path, stdin=b"red cat big\n")
    line = assert_one_line_error(proc, "nmt-translate")
    assert str(fake) in line


def test_truncated_checkpoint(toy_run: ToyRun, tmp_path: Path) -> None:
    data = toy_run.best.read_bytes()
    cut = write(tmp_path / "cut.pt", data[: len(data) // 3])
    proc = run_cli("translate", f"ckpt={cut}", cwd=tmp_path, stdin=b"red cat big\n")
    assert str(cut) in assert_one_line_error(proc, "nmt-translate")


def test_missing_output_folder(toy_run: ToyRun, tmp_path: Path) -> None:
    proc = translate(toy_run, f"output={tmp_path / 'no' / 'o.tgt'}", stdin=b"red cat big\n")
    assert "output folder does not exist" in assert_one_line_error(proc, "nmt-translate")


def test_missing_ckpt_argument(tmp_path: Path) -> None:
    proc = run_cli("translate", cwd=tmp_path, stdin=b"red cat big\n")
    assert "ckpt is required" in assert_one_line_error(proc, "nmt-translate")


def test_unknown_key_names_it(tmp_path: Path) -> None:
    proc = run_cli("translate", "ckpt=x.pt", "serch.beam_size=3", cwd=tmp_path)
    assert proc.returncode != 0
    assert "serch.beam_size" in proc.stderr.decode()


def test_cfg_job_prints_the_resolved_config(tmp_path: Path) -> None:
    proc = run_cli("translate", "ckpt=x.pt", "search.beam_size=7", "--cfg", "job", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    assert "ckpt: x.pt" in out and "beam_size: 7" in out


def test_a_checkpoint_carries_its_text_processing(toy_run: ToyRun, tmp_path: Path) -> None:
    """A model whose corpus was lowercased and Moses-tokenised reads text as people type it."""
    from nmt.model.io import load_checkpoint, save_checkpoint

    ck = load_checkpoint(toy_run.best)
    ck["config"]["data"]["src_text"] = {"normalize": "nfkc", "pretokenize": "moses", "lowercase": True}
    processing = tmp_path / "processing.pt"
    save_checkpoint(
        processing, {k: v for k, v in ck.items() if k not in ("format", "version", "nmt_version")}
    )
    plain = [s for s, _ in PAIRS[:4]]
    typed = [s.capitalize() + "!" if i % 2 else "ＲＥＤ " + s.upper() for i, s in enumerate(plain)]
    typed_ids = [("red " + s) if i % 2 == 0 else s for i, s in enumerate(plain)]
    proc = run_cli(
        "translate", f"ckpt={processing}", cwd=toy_run.root, stdin="".join(t + "\n" for t in typed).encode()
    )
    assert proc.returncode == 0, proc.stderr.decode()
    want = run_cli(
        "translate",
        f"ckpt={toy_run.best}",
        cwd=toy_run.root,
        stdin="".join(t + "\n" for t in typed_ids).encode(),
    )
    got, expected = proc.stdout.decode().splitlines(), want.stdout.decode().splitlines()
    assert (
        got[0] == expected[0] and got[2] == expected[2]
    )  # NFKC + lowercase: "ＲＥＤ RED CAT" -> "red red cat"
    assert all(g for g in got)


def test_the_translate_command_imports_torch_only_when_it_runs() -> None:
    """Its module and the config composition stay torch-free, so that what the model's text
    processing needs can be started before torch loads (nmt.cli.translate.prefetch_text_tools)."""
    code = (
        "import sys\nimport nmt.cli.translate\nfrom nmt.cli.compose import compose_simple\n"
        "compose_simple('translate', ['ckpt=x.pt'])\nprint('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_terms_in_a_tab_separated_column_all_appear(toy_run: ToyRun, tmp_path: Path) -> None:
    """constraints=true: "source<TAB>term<TAB>term"; each term is in its line's translation (a
    word the toy model would not write there), lines without terms translate as before, the line
    count is kept (blank lines included)."""
    lines = [s for s, _ in PAIRS[:6]]
    plain = translate(toy_run, stdin="".join(s + "\n" for s in lines).encode())
    assert plain.returncode == 0, plain.stderr.decode()
    before = plain.stdout.decode().splitlines()
    vocab = sorted({w for _, t in PAIRS for w in t.split()})
    terms = [[next(w for w in vocab if w not in before[k].split())] if k % 2 == 0 else [] for k in range(6)]
    terms[4] = [vocab[0], vocab[-1]]
    tsv = "".join(s + "".join("\t" + t for t in ts) + "\n" for s, ts in zip(lines, terms)) + "\n"
    proc = translate(toy_run, "constraints=true", stdin=tsv.encode())
    assert proc.returncode == 0, proc.stderr.decode()
    got = proc.stdout.decode().split("\n")
    assert len(got) == 8 and got[6] == "" and got[7] == ""  # 7 lines, the last one blank
    for k in range(6):
        if terms[k]:
            assert all(t in got[k].split() for t in terms[k]), (terms[k], got[k])
        else:
            assert got[k] == before[k]
    ordered = translate(
        toy_run,
        "constraints=true",
        "ordered_constraints=true",
        stdin=f"{lines[0]}\t{vocab[-1]}\t{vocab[0]}\n".encode(),
    )
    words = ordered.stdout.decode().split()
    assert words.index(vocab[-1]) < len(words) - 1 - words[::-1].index(vocab[0])  # in the order given
