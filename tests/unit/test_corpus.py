"""nmt.data.files and nmt.data.corpus: reading and validating aligned files, filtering, encoding, the prepare cache."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from nmt import NmtError
from nmt.config import DataConfig, SpmModel, TokenizerConfig
from nmt.data.corpus import load_prepared, prepare
from nmt.data.files import read_lines, read_parallel, resolve_data_root, split_paths
from nmt.data.tokenizer import UNK

# --------------------------------------------------------------------------- read_lines


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1e"])
def test_read_lines_splits_on_newline_only(tmp_path: Path, sep: str) -> None:
    f = write(tmp_path / "a.txt", f"one{sep}still one\ntwo\n".encode())
    assert read_lines(f) == [f"one{sep}still one", "two"]


def test_read_lines_strips_a_trailing_carriage_return(tmp_path: Path) -> None:
    f = write(tmp_path / "a.txt", b"one\r\ntwo\r\nthree")
    assert read_lines(f) == ["one", "two", "three"]


def test_read_lines_keeps_a_lone_carriage_return_inside_a_line(tmp_path: Path) -> None:
    f = write(tmp_path / "a.txt", b"one\rstill one\n")
    assert read_lines(f) == ["one\rstill one"]


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        (b"", []),
        (b"\n", [""]),
        (b"a", ["a"]),
        (b"a\n", ["a"]),
        (b"a\n\n", ["a", ""]),
        (b"\n\na\n", ["", "", "a"]),
    ],
)
def test_read_lines_counts_like_wc_l_plus_an_unterminated_last_line(
    tmp_path: Path, data: bytes, lines: list[str]
) -> None:
    assert read_lines(write(tmp_path / "a.txt", data)) == lines


def test_invalid_utf8_names_file_line_and_column(tmp_path: Path) -> None:
    f = write(tmp_path / "bad.txt", "ok\nalso ok\nnot \xff ok\n".encode("latin-1"))
    with pytest.raises(NmtError) as e:
        read_lines(f)
    msg = str(e.value)
    assert f"{f}:3" in msg and "invalid UTF-8" in msg
    assert "0xff" in msg and "column 5" in msg


def test_invalid_utf8_on_the_first_line(tmp_path: Path) -> None:
    f = write(tmp_path / "bad.txt", b"\xc3\x28 broken\nfine\n")
    with pytest.raises(NmtError, match=r"bad\.txt:1: invalid UTF-8"):
        read_lines(f)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NmtError, match="file not found") as e:
        read_lines(tmp_path / "nope.txt")
    assert str(tmp_path / "nope.txt") in str(e.value)


def test_read_parallel_with_unequal_line_counts_names_both_files_and_counts(tmp_path: Path) -> None:
    src = write(tmp_path / "x.en", b"a\nb\nc\n")
    tgt = write(tmp_path / "x.ja", b"a\nb\n")
    with pytest.raises(NmtError) as e:
        read_parallel(src, tgt)
    msg = str(e.value)
    assert str(src) in msg and str(tgt) in msg
    assert "3 lines" in msg and "2 lines" in msg


def test_read_parallel_aligns_lines_with_unicode_separators(tmp_path: Path) -> None:
    src = write(tmp_path / "x.en", "a\u2028b\nc\n".encode())
    tgt = write(tmp_path / "x.ja", b"A\nC\n")
    assert read_parallel(src, tgt) == (["a\u2028b", "c"], ["A", "C"])


def test_resolve_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_data_root(str(tmp_path)) == tmp_path
    monkeypatch.setenv("NMT_DATA_ROOT", str(tmp_path))
    assert resolve_data_root("auto") == tmp_path


# --------------------------------------------------------------------------- prepare

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
]


def sentence(i: int, n: int) -> str:
    return " ".join(WORDS[(i + k) % len(WORDS)] for k in range(n))


def make_corpus(root: Path) -> DataConfig:
    """train: 20 good pairs + 2 empty + 1 without pieces + 1 too long (12 words > max_len 10) + 1 unbalanced
    (1 vs 5 words); dev/test: 5 good pairs + 1 empty + 1 long pair (dev and test are not length-filtered)."""
    folder = root / "corp"
    folder.mkdir(parents=True)
    train = [(sentence(i, 2 + i % 3), sentence(i + 1, 2 + i % 3)) for i in range(20)]
    train.insert(3, ("", "alpha beta"))  # line 4: empty source
    train.insert(7, ("alpha beta", "   "))  # line 8: blank target
    train.insert(10, (sentence(0, 12), sentence(1, 12)))  # line 11: too long
    train.insert(12, ("alpha", sentence(2, 5)))  # line 13: ratio 5 > 3
    train.insert(15, ("\u200b\x01", "beta"))  # line 16: not blank, but normalisation leaves no piece
    heldout = [(sentence(i, 3), sentence(i + 2, 3)) for i in range(5)]
    heldout.insert(2, ("", ""))
    heldout.append((sentence(0, 12), sentence(1, 12)))
    for split, pairs in (("train", train), ("dev", heldout), ("test", heldout)):
        (folder / f"{split}.en").write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
        (folder / f"{split}.ja").write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")
    return DataConfig(
        name="t", root=str(root), corpus="corp", src_lang="en", tgt_lang="ja", max_len=10, max_len_ratio=3.0
    )


# word-level pieces: one piece per word, so lengths are known exactly
WORD_TOK = TokenizerConfig(model_type=SpmModel.word, vocab_size=60)


def test_prepare_drops_and_counts_bad_pairs(tmp_path: Path) -> None:
    data = make_corpus(tmp_path / "corpora")
    p = prepare(data, WORD_TOK, tmp_path / "out")
    counts = p.manifest["counts"]
    assert counts["train"]["read"] == 25
    assert counts["train"]["kept"] == 20
    assert counts["train"]["dropped"] == {"empty": 2, "no_pieces": 1, "too_long": 1, "ratio": 1}
    for split in ("dev", "test"):
        assert counts[split]["read"] == 7
        assert counts[split]["kept"] == 6  # the long pair stays: held-out sets are scored whole
        assert counts[split]["dropped"] == {"empty": 1, "no_pieces": 0}
    train = p.splits["train"]
    assert len(train) == 20
    assert set(train.lines.tolist()).isdisjoint({3, 7, 10, 12, 15})  # 0-based lines of the dropped pairs
    assert int(train.src_lens.max()) <= 10 and int(train.tgt_lens.max()) <= 10
    assert counts["train"]["src_pieces"] == int(train.src_lens.sum())
    assert p.splits["dev"].lines.tolist() == [0, 1, 3, 4, 5, 6]
    assert p.manifest["src_vocab"] == len(p.src_tok) and p.manifest["tgt_vocab"] == len(p.tgt_tok)


def test_prepared_ids_decode_to_the_original_lines(tmp_path: Path) -> None:
    data = make_corpus(tmp_path / "corpora")
    p = prepare(data, WORD_TOK, tmp_path / "out")
    src_lines = read_lines(split_paths(data, "dev")[0])
    dev = p.splits["dev"]
    decoded = p.src_tok.decode([dev.src(i).tolist() for i in range(len(dev))])
    assert decoded == [src_lines[i] for i in dev.lines]


def test_prepare_writes_the_files_the_trainer_loads(tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare(make_corpus(tmp_path / "corpora"), WORD_TOK, out)
    for name in ("manifest.json", "spm.src.model", "spm.tgt.model", "train/meta.json", "dev/meta.json"):
        assert (out / name).is_file(), name
    assert (out / "test/part-00000/src.ids").is_file()
    assert (
        not list(out.glob("spm_input*")) and not list(out.glob("*.tmp*")) and not list(out.glob("*.partial"))
    )
    again = load_prepared(out)
    assert len(again.splits["train"]) == 20


def test_load_prepared_without_prepare_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(NmtError, match="no prepared data"):
        load_prepared(tmp_path)


def part_mtimes(out: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted(out.glob("*/part-*/*"))}


def test_second_prepare_reuses_the_cache(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data, out = make_corpus(tmp_path / "corpora"), tmp_path / "out"
    prepare(data, WORD_TOK, out)
    before = part_mtimes(out)
    caplog.set_level(logging.INFO, logger="nmt")
    p = prepare(data, WORD_TOK, out)
    assert part_mtimes(out) == before
    assert "reusing" in caplog.text
    assert len(p.splits["train"]) == 20


@pytest.mark.parametrize(
    "damage",
    [
        "delete train/part-00000/src.ids",
        "truncate dev/part-00000/tgt.ids",
        "delete spm.src.model",
        "delete dev/meta.json",
    ],
)
def test_damaged_cache_is_prepared_again(tmp_path: Path, damage: str) -> None:
    data, out = make_corpus(tmp_path / "corpora"), tmp_path / "out"
    prepare(data, WORD_TOK, out)
    action, name = damage.split()
    if action == "delete":
        (out / name).unlink()
    else:
        (out / name).write_bytes((out / name).read_bytes()[:50])
    p = prepare(data, WORD_TOK, out)
    assert len(p.splits["train"]) == 20 and len(p.splits["dev"]) == 6


def test_changed_input_file_prepares_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data, out = make_corpus(tmp_path / "corpora"), tmp_path / "out"
    prepare(data, WORD_TOK, out)
    src, tgt = split_paths(data, "train")
    with open(src, "a", encoding="utf-8") as f:
        f.write("gamma delta\n")
    with open(tgt, "a", encoding="utf-8") as f:
        f.write("delta epsilon\n")
    caplog.set_level(logging.INFO, logger="nmt")
    p = prepare(data, WORD_TOK, out)
    assert "reusing" not in caplog.text and "preparing again" in caplog.text
    assert p.manifest["counts"]["train"]["read"] == 26 and len(p.splits["train"]) == 21
    assert json.loads((out / "manifest.json").read_text())["counts"]["train"]["kept"] == 21


def test_same_size_edit_of_an_input_prepares_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data, out = make_corpus(tmp_path / "corpora"), tmp_path / "out"
    prepare(data, WORD_TOK, out)
    train_tgt = split_paths(data, "train")[1]
    text = train_tgt.read_text(encoding="utf-8")
    train_tgt.write_text(text.replace("gamma", "GAMMA", 1), encoding="utf-8")  # same size, new content
    caplog.set_level(logging.INFO, logger="nmt")
    p = prepare(data, WORD_TOK, out)
    assert "preparing again" in caplog.text
    assert p.tgt_tok.encode(["GAMMA"])[0] != [UNK]  # the new word is in the retrained vocabulary


def test_changed_setting_or_force_prepares_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data, out = make_corpus(tmp_path / "corpora"), tmp_path / "out"
    prepare(data, WORD_TOK, out)
    caplog.set_level(logging.INFO, logger="nmt")
    data.max_len = 3
    p = prepare(data, WORD_TOK, out)
    assert "preparing again" in caplog.text
    assert int(p.splits["train"].src_lens.max()) <= 3
    caplog.clear()
    prepare(data, WORD_TOK, out, force=True)
    assert "reusing" not in caplog.text


def test_max_train_pairs_keeps_the_first_pairs(tmp_path: Path) -> None:
    data = make_corpus(tmp_path / "corpora")
    data.max_train_pairs = 5
    p = prepare(data, WORD_TOK, tmp_path / "out")
    assert p.manifest["counts"]["train"]["read"] == 5
    assert p.splits["train"].lines.tolist() == [0, 1, 2, 4]  # line 3 (0-based) is the empty pair


def test_prepare_stops_at_unequal_line_counts(tmp_path: Path) -> None:
    data = make_corpus(tmp_path / "corpora")
    src, tgt = split_paths(data, "test")
    with open(tgt, "a", encoding="utf-8") as f:
        f.write("one more\n")
    with pytest.raises(NmtError) as e:
        prepare(data, WORD_TOK, tmp_path / "out")
    assert str(src) in str(e.value) and str(tgt) in str(e.value)


def test_prepare_stops_at_invalid_utf8(tmp_path: Path) -> None:
    data = make_corpus(tmp_path / "corpora")
    src = split_paths(data, "dev")[0]
    src.write_bytes(src.read_bytes().replace(b"alpha", b"alph\xe9", 1))
    with pytest.raises(NmtError, match="invalid UTF-8") as e:
        prepare(data, WORD_TOK, tmp_path / "out")
    assert f"{src}:" in str(e.value)


def test_prepare_with_a_missing_split_names_it(tmp_path: Path) -> None:
    data = make_corpus(tmp_path / "corpora")
    split_paths(data, "test")[1].unlink()
    with pytest.raises(NmtError, match="file not found") as e:
        prepare(data, WORD_TOK, tmp_path / "out")
    assert "data.test=test" in str(e.value)


def test_joint_vocabulary_gives_both_sides_the_same_model(tmp_path: Path) -> None:
    tok = TokenizerConfig(model_type=SpmModel.unigram, vocab_size=40, joint=True)
    p = prepare(make_corpus(tmp_path / "corpora"), tok, tmp_path / "out")
    assert p.src_tok.proto == p.tgt_tok.proto
