"""Hostile inputs to every command-line tool: the correct result, or ``nmt-<verb>: error: ...`` and
exit status 2; never a traceback, never a lost, added or reordered line.

docs/reliability.md has the table of these cases (class, what happens, test name).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nmt.data.tokenizer import Tokenizer, train_sentencepiece
from nmt.data.toy import make_pairs
from nmt.model.io import FORMAT, VERSION, load_checkpoint, save_checkpoint
from tests.conftest import ToyRun
from tests.helpers import assert_one_line_error, run_cli, stderr_lines, toy_workdir

pytestmark = pytest.mark.slow

PAIRS = make_pairs(40, seed=321)
A, B, C = (s for s, _ in PAIRS[:3])


def translate(
    toy: ToyRun, data: bytes, *args: str, tmp: Path
) -> tuple[subprocess.CompletedProcess, list[str] | None]:
    """nmt-translate a file holding ``data``; the output lines (None if there is no output file)."""
    src, out = tmp / "in.src", tmp / "out.tgt"
    src.write_bytes(data)
    proc = run_cli("translate", f"ckpt={toy.best}", f"input={src}", f"output={out}", *args, cwd=toy.root)
    if not out.exists():
        return proc, None
    text = out.read_bytes().decode("utf-8")
    assert text == "" or text.endswith("\n")
    return proc, text.split("\n")[:-1]


@pytest.fixture(scope="module")
def clean(toy_run: ToyRun, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The translations of A, B and C from a clean file."""
    tmp = tmp_path_factory.mktemp("clean")
    proc, out = translate(toy_run, f"{A}\n{B}\n{C}\n".encode(), tmp=tmp)
    assert proc.returncode == 0 and out is not None
    return dict(zip((A, B, C), out))


# --------------------------------------------------------------------------- nmt-translate: odd text


@pytest.mark.parametrize(
    ("data", "want"),
    [
        (b"", []),
        (b"\n\n  \n\t\n", ["", "", "", ""]),
        (f"{A}\r\n{B}\r\n".encode(), [A, B]),
        (f"{A}\n{B}".encode(), [A, B]),
        (b"\xef\xbb\xbf" + f"{A}\n{A}\n".encode(), [A, A]),
        (f"{A}\n\n{B}\n\n\n{C}\n".encode(), [A, "", B, "", "", C]),
    ],
    ids=["empty_file", "only_blank_lines", "crlf", "no_trailing_newline", "bom", "blank_lines_between"],
)
def test_translate_odd_files(
    toy_run: ToyRun, clean: dict, tmp_path: Path, data: bytes, want: list[str]
) -> None:
    proc, out = translate(toy_run, data, tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert out == [clean.get(w, "") for w in want]


@pytest.mark.parametrize(
    "line",
    [
        f"{A}\r{B}",
        f"{A}\x00{B}",
        f"{A}\u2028{B}",
        f"{A}\x85{B}",
        f"{A}\x0c{B}",
        f"{A}\x0b{B}",
        f"{A}\u2029{B}",
    ],
    ids=["lone_cr", "nul", "u2028", "u0085", "form_feed", "vertical_tab", "u2029"],
)
def test_characters_that_other_tools_split_on_stay_inside_their_line(
    toy_run: ToyRun, clean: dict, tmp_path: Path, line: str
) -> None:
    proc, out = translate(toy_run, f"{A}\n{line}\n{C}\n".encode(), tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert out is not None and len(out) == 3 and out[0] == clean[A] and out[2] == clean[C]
    text = (tmp_path / "out.tgt").read_text(encoding="utf-8")
    assert len(text.splitlines()) == 3  # no line break of any kind inside a translation


def test_invalid_utf8_stops_at_its_line_or_is_repaired(toy_run: ToyRun, clean: dict, tmp_path: Path) -> None:
    data = f"{A}\n".encode() + b"red \xff\xfe cat\n" + f"{B}\n".encode()
    proc, out = translate(toy_run, data, tmp=tmp_path)
    assert "in.src:2: invalid UTF-8" in assert_one_line_error(proc, "nmt-translate")
    assert out is None and not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    proc, out = translate(toy_run, data, "on_bad_line=fix", tmp=tmp_path)
    assert proc.returncode == 0 and out is not None and len(out) == 3 and out[2] == clean[B]


def test_a_100000_character_line(toy_run: ToyRun, clean: dict, tmp_path: Path) -> None:
    long_line = " ".join(["red", "cat"] * 25_000)[:100_000]
    data = f"{A}\n{long_line}\n{B}\n".encode()
    proc, out = translate(toy_run, data, tmp=tmp_path)
    line = assert_one_line_error(proc, "nmt-translate")
    assert "in.src:2:" in line and "max_input_len=250" in line and out is None
    proc, out = translate(toy_run, data, "on_bad_line=fix", tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert out is not None and len(out) == 3 and out[0] == clean[A] and out[2] == clean[B]


def test_stdin_gets_the_same_treatment(toy_run: ToyRun, clean: dict) -> None:
    data = b"\xef\xbb\xbf" + f"{A}\r\n\n{B}\u2028x\n{C}".encode()
    proc = run_cli("translate", f"ckpt={toy_run.best}", cwd=toy_run.root, stdin=data)
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode().split("\n")
    assert out[-1] == "" and len(out) == 5
    assert out[0] == clean[A] and out[1] == "" and out[3] == clean[C]


def test_a_million_short_lines_keep_memory_flat(toy_run: ToyRun, tmp_path: Path) -> None:
    """Streaming: peak RSS for 1,000,000 lines stays within 100 MiB of that for 20,000 lines."""
    distinct = [s for s, _ in make_pairs(2000, seed=77, min_len=1, max_len=3)]
    rss = {}
    for n in (20_000, 1_000_000):
        src, out = tmp_path / f"in{n}.src", tmp_path / f"out{n}.tgt"
        with open(src, "w", encoding="utf-8") as f:
            for i in range(n):
                f.write(distinct[i % len(distinct)] + "\n")
        cmd = [
            sys.executable,
            "-m",
            "nmt.cli.translate",
            f"ckpt={toy_run.best}",
            f"input={src}",
            f"output={out}",
        ]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        child = subprocess.Popen(
            cmd, cwd=toy_run.root, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        assert child.stderr is not None
        err = child.stderr.read()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        assert child.returncode == 0, err.decode()[-2000:]
        rss[n] = usage.ru_maxrss / 1024  # MiB
        with open(out, encoding="utf-8") as f:
            got = [line.rstrip("\n") for line in f]
        assert len(got) == n
        first = dict(zip(distinct, got))  # every copy of a line translated alike, in place
        assert all(got[i] == first[distinct[i % len(distinct)]] for i in range(0, n, 997))
    print(f"peak RSS: 20,000 lines {rss[20_000]:.0f} MiB, 1,000,000 lines {rss[1_000_000]:.0f} MiB")
    assert rss[1_000_000] - rss[20_000] < 100


def test_an_output_that_cannot_be_written_ends_in_one_line(
    toy_run: ToyRun, tmp_path: Path, read_only
) -> None:  # noqa: ANN001
    import resource

    src = tmp_path / "in.src"
    src.write_text("".join(s + "\n" for s, _ in PAIRS) * 20, encoding="utf-8")
    out = tmp_path / "out.tgt"

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    cmd = [sys.executable, "-m", "nmt.cli.translate", f"ckpt={toy_run.best}", f"input={src}", f"output={out}"]
    proc = subprocess.run(cmd, cwd=toy_run.root, capture_output=True, preexec_fn=small_files, timeout=300)
    line = assert_one_line_error(proc, "nmt-translate")
    assert str(out) in line and "File too large" in line
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    ro = read_only(tmp_path / "ro")
    proc = run_cli(
        "translate", f"ckpt={toy_run.best}", f"input={src}", f"output={ro / 'o.tgt'}", cwd=toy_run.root
    )
    assert str(ro / "o.tgt") in assert_one_line_error(proc, "nmt-translate")
    proc = subprocess.run(
        f"{sys.executable} -m nmt.cli.translate ckpt={toy_run.best} input={src} > /dev/full",
        shell=True, cwd=toy_run.root, capture_output=True, timeout=300,
    )  # fmt: skip
    assert "<stdout>: cannot write: No space left on device" in assert_one_line_error(proc, "nmt-translate")


# --------------------------------------------------------------------------- nmt-evaluate


def evaluate(cwd: Path, hyp: bytes, ref: bytes, *args: str) -> subprocess.CompletedProcess:
    (cwd / "h.txt").write_bytes(hyp)
    (cwd / "r.txt").write_bytes(ref)
    return run_cli("evaluate", "hyp=h.txt", "ref=r.txt", "lang=en", *args, cwd=cwd)


def bleu_of(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode().splitlines()[0]


def test_evaluate_odd_files(tmp_path: Path) -> None:
    text = "".join(s + "\n" for s, _ in PAIRS)
    plain = bleu_of(evaluate(tmp_path, text.encode(), text.encode()))
    assert plain.startswith("BLEU = 100.00")
    bom_crlf = text.replace("\n", "\r\n").encode()
    assert bleu_of(evaluate(tmp_path, b"\xef\xbb\xbf" + text.encode(), bom_crlf)) == plain
    no_newline = text.rstrip("\n").encode()
    assert bleu_of(evaluate(tmp_path, no_newline, text.encode())) == plain
    line = assert_one_line_error(evaluate(tmp_path, b"", b""), "nmt-evaluate")
    assert "nothing to score" in line
    line = assert_one_line_error(
        evaluate(tmp_path, text.encode(), (text + "one more\n").encode()), "nmt-evaluate"
    )
    assert "h.txt has 40 lines but r.txt has 41" in line
    line = assert_one_line_error(
        evaluate(tmp_path, text.encode(), b"ok\n\xc3\x28\n" + b"x\n" * 38), "nmt-evaluate"
    )
    assert "r.txt:2: invalid UTF-8" in line
    two = evaluate(tmp_path, f"{A}\u2028{B}\n{C}\n".encode(), f"{A}\u2028{B}\n{C}\n".encode())
    assert bleu_of(two).startswith("BLEU = 100.00")  # two lines, not three


def test_evaluate_a_checkpoint_on_a_file_with_a_huge_line(toy_run: ToyRun, tmp_path: Path) -> None:
    (tmp_path / "s.src").write_text(f"{A}\n" + "red cat " * 2000 + "\n")
    (tmp_path / "r.tgt").write_text("a\nb\n")
    proc = run_cli("evaluate", f"ckpt={toy_run.best}", "src=s.src", "ref=r.tgt", cwd=tmp_path)
    line = assert_one_line_error(proc, "nmt-evaluate", only_line=False)
    assert "s.src:2:" in line and "max_input_len=1000" in line


# --------------------------------------------------------------------------- training corpora


def corpus(cwd: Path, split: str, side: str) -> Path:
    return cwd / "runs" / "toy" / "corpus" / "toy" / f"{split}.{side}"


def prepare(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("prepare", "experiment=toy", *args, cwd=cwd)


def test_corpus_with_an_empty_side(tmp_path: Path) -> None:
    cwd = toy_workdir(tmp_path, train=200, dev=10, test=10)
    corpus(cwd, "train", "tgt").write_bytes(b"")
    line = assert_one_line_error(prepare(cwd), "nmt-prepare", only_line=False)
    assert "train.src has 200 lines" in line and "train.tgt has 0 lines" in line


def test_corpus_with_both_sides_empty(tmp_path: Path) -> None:
    cwd = toy_workdir(tmp_path, train=200, dev=10, test=10)
    corpus(cwd, "train", "src").write_bytes(b"\n\n")
    corpus(cwd, "train", "tgt").write_bytes(b"\n\n")
    line = assert_one_line_error(prepare(cwd), "nmt-prepare", only_line=False)
    assert "no training pair has text on both sides" in line


@pytest.mark.parametrize("kind", ["duplicates", "all_identical"])
def test_repetitive_corpora_train(tmp_path: Path, kind: str) -> None:
    cwd = toy_workdir(tmp_path, train=200, dev=10, test=10)
    pairs = make_pairs(20 if kind == "duplicates" else 1, seed=5)
    pairs = (pairs * 200)[:200]
    corpus(cwd, "train", "src").write_text("".join(s + "\n" for s, _ in pairs))
    corpus(cwd, "train", "tgt").write_text("".join(t + "\n" for _, t in pairs))
    proc = run_cli(
        "train", "experiment=toy", "train.max_steps=4", "train.valid_every=4", "train.log_every=2", cwd=cwd
    )
    assert proc.returncode == 0, "\n".join(stderr_lines(proc)[-10:])
    assert load_checkpoint(cwd / "runs/toy/checkpoints/last.pt")["step"] == 4


def test_corpus_with_bom_and_crlf_prepares_like_the_clean_one(tmp_path: Path) -> None:
    cwd = toy_workdir(tmp_path, train=200, dev=10, test=10)
    assert prepare(cwd).returncode == 0
    arrays = ("src.ids", "tgt.ids", "src.lens", "tgt.lens", "lines")
    clean = [(cwd / "runs/toy/data/train/part-00000" / a).read_bytes() for a in arrays]
    for side in ("src", "tgt"):
        f = corpus(cwd, "train", side)
        f.write_bytes(b"\xef\xbb\xbf" + f.read_bytes().replace(b"\n", b"\r\n"))
    proc = prepare(cwd, "run_dir=runs/crlf", "data.root=runs/toy/corpus")
    assert proc.returncode == 0, proc.stderr.decode()
    assert [(cwd / "runs/crlf/data/train/part-00000" / a).read_bytes() for a in arrays] == clean


# --------------------------------------------------------------------------- damaged and foreign checkpoints


class Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.marker,))


def bad_checkpoints(toy: ToyRun, folder: Path) -> dict[str, Path]:
    folder.mkdir(exist_ok=True)
    good = toy.best.read_bytes()
    files = {
        "truncated": good[: len(good) // 2],
        "random_bytes": os.urandom(50_000),
        "empty": b"",
        "plain_pickle": pickle.dumps({"format": FORMAT}),
    }
    out = {}
    for name, data in files.items():
        out[name] = folder / f"{name}.pt"
        out[name].write_bytes(data)
    out["code"] = folder / "code.pt"
    torch.save({"format": FORMAT, "version": VERSION, "x": Evil(folder / "code-ran")}, out["code"])
    ck = load_checkpoint(toy.best)
    strip = {k: v for k, v in ck.items() if k not in ("format", "version", "nmt_version")}
    out["newer"] = folder / "newer.pt"
    torch.save({**ck, "version": VERSION + 1}, out["newer"])
    # the weights of the toy model with the vocabularies of another (smaller) model
    (folder / "small.txt").write_text("".join(s + "\n" for s, _ in PAIRS), encoding="utf-8")
    small = Tokenizer.load(
        train_sentencepiece(
            [folder / "small.txt"],
            folder / "small",
            vocab_size=24,
            model_type="unigram",
            character_coverage=1.0,
            input_sentence_size=1000,
        )
    )
    assert len(small) != len(Tokenizer(ck["spm"]["src"]))
    out["other_vocabulary"] = folder / "other_vocabulary.pt"
    save_checkpoint(out["other_vocabulary"], {**strip, "spm": {"src": small.proto, "tgt": small.proto}})
    return out


EXPECT = {
    "truncated": "not an nmt checkpoint",
    "random_bytes": "not an nmt checkpoint",
    "empty": "not an nmt checkpoint",
    "plain_pickle": "not an nmt checkpoint",
    "code": "never loads",
    "newer": "upgrade nmt",
    "other_vocabulary": "weights do not fit",
}


@pytest.mark.parametrize("verb", ["translate", "evaluate", "inspect"])
def test_bad_checkpoints_are_refused_in_one_line(toy_run: ToyRun, tmp_path: Path, verb: str) -> None:
    files = bad_checkpoints(toy_run, tmp_path / "ckpts")
    (tmp_path / "s.src").write_text(f"{A}\n")
    extra = {"translate": ["input=s.src"], "evaluate": ["src=s.src", "ref=s.src"], "inspect": [f"text={A}"]}[
        verb
    ]
    # every kind through translate; the other verbs share its loader, so one of each message
    names = list(files) if verb == "translate" else ["truncated", "code", "newer", "other_vocabulary"]
    for name in names:
        path = files[name]
        proc = run_cli(verb, f"ckpt={path}", *extra, cwd=tmp_path)
        line = assert_one_line_error(proc, f"nmt-{verb}")
        assert str(path) in line and EXPECT[name] in line, (name, line)
        assert "weights_only" not in line
    assert not (tmp_path / "ckpts" / "code-ran").exists()


def test_average_refuses_checkpoints_of_another_run(toy_run: ToyRun, tmp_path: Path) -> None:
    files = bad_checkpoints(toy_run, tmp_path / "ckpts")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    good = load_checkpoint(toy_run.best)
    save_checkpoint(
        run / "checkpoints/step_0000001.pt",
        {k: v for k, v in good.items() if k not in ("format", "version", "nmt_version")},
    )
    (run / "checkpoints/step_0000002.pt").write_bytes(files["other_vocabulary"].read_bytes())
    (run / "checkpoints/index.json").write_text(json.dumps([
        {"step": 1, "file": "step_0000001.pt", "metric": 1.0}, {"step": 2, "file": "step_0000002.pt", "metric": 2.0}
    ]))  # fmt: skip
    proc = run_cli("average", f"run_dir={run}", "k=2", cwd=tmp_path)
    assert "not from the same run" in assert_one_line_error(proc, "nmt-average")
    for name in ("truncated", "code"):
        (run / "checkpoints/step_0000002.pt").write_bytes(files[name].read_bytes())
        proc = run_cli("average", f"run_dir={run}", "k=2", cwd=tmp_path)
        assert EXPECT[name] in assert_one_line_error(proc, "nmt-average")


# --------------------------------------------------------------------------- values out of range


@pytest.mark.parametrize(
    ("verb", "override", "key"),
    [
        ("translate", "search.beam_size=0", "search.beam_size"),
        ("translate", "search.nbest=6", "search.nbest"),
        ("translate", "search.alpha=-0.5", "search.alpha"),
        ("translate", "search.coverage_penalty=-1", "search.coverage_penalty"),
        ("translate", "search.max_len_b=-1", "search.max_len_b"),
        ("translate", "search.min_len=-2", "search.min_len"),
        ("translate", "search.temperature=0", "search.temperature"),
        ("translate", "search.alpha=nan", "search.alpha"),
        ("translate", "batch_size=0", "batch_size"),
        ("translate", "chunk_lines=0", "chunk_lines"),
        ("translate", "workers=-1", "workers"),
        ("evaluate", "search.beam_size=0", "search.beam_size"),
        ("evaluate", "batch_size=0", "batch_size"),
        ("evaluate", "alphas=[0.6,-1]", "alphas"),
        ("train", "model.attention=transformer", "model.attention"),
        ("train", "train.batch_size=0", "train.batch_size"),
        ("train", "train.lr=-1", "train.lr"),
        ("train", "data.max_len=-5", "data.max_len"),
        ("train", "model.dropout=1.5", "model.dropout"),
        ("prepare", "tokenizer.vocab_size=0", "tokenizer.vocab_size"),
    ],
)
def test_values_out_of_range_are_refused_in_one_line(
    toy_run: ToyRun, tmp_path: Path, verb: str, override: str, key: str
) -> None:
    cwd = toy_workdir(tmp_path, train=100, dev=10, test=10)
    (cwd / "s.src").write_text(f"{A}\n")
    extra = {
        "translate": [f"ckpt={toy_run.best}", "input=s.src"],
        "evaluate": [f"ckpt={toy_run.best}", "src=s.src", "ref=s.src"],
        "train": ["experiment=toy"],
        "prepare": ["experiment=toy"],
    }[verb]
    proc = run_cli(verb, *extra, override, cwd=cwd)
    line = assert_one_line_error(proc, f"nmt-{verb}", only_line=False)
    assert key in line
    assert not (cwd / "runs" / "toy" / "checkpoints").exists()
