"""The data pipeline at scale, on small corpora cut into many chunks and parts: worker processes,
memory-mapped parts, kills and reruns, the cleaning filters, corpora mixed by weight."""

from __future__ import annotations

import json
import logging
import mmap
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nmt import NmtError
from nmt.config import CorpusConfig, DataConfig, SpmModel, TokenizerConfig
from nmt.data import corpus as corpus_mod
from nmt.data.corpus import load_prepared, prepare
from nmt.data.filters import SeenPairs, pair_hashes, script_pattern
from nmt.data.mixing import Mixture
from nmt.data.store import EncodedSplit, Pairs, Part, PartWriter, open_store
from nmt.data.toy import make_pairs

WORD_TOK = TokenizerConfig(model_type=SpmModel.word, vocab_size=60)


def write_corpus(folder: Path, pairs: list[tuple[str, str]], heldout: int = 20, langs=("src", "tgt")) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    splits = {"train": pairs, "dev": make_pairs(heldout, seed=5), "test": make_pairs(heldout, seed=6)}
    for split, rows in splits.items():
        for side, lang in enumerate(langs):
            (folder / f"{split}.{lang}").write_text("".join(r[side] + "\n" for r in rows), encoding="utf-8")


def toy_data(root: Path, n: int = 3000, **kw: object) -> DataConfig:
    write_corpus(root / "toy", make_pairs(n, seed=3))
    return DataConfig(name="toy", root=str(root), corpus="toy", src_lang="src", tgt_lang="tgt", **kw)  # type: ignore[arg-type]


def arrays(p: Pairs) -> dict[str, np.ndarray]:
    out = {
        "lines": np.asarray(p.lines),
        "src_lens": np.asarray(p.src_lens),
        "tgt_lens": np.asarray(p.tgt_lens),
    }
    out["src"] = np.concatenate([p.src(i) for i in range(len(p))]) if len(p) else np.zeros(0)
    out["tgt"] = np.concatenate([p.tgt(i) for i in range(len(p))]) if len(p) else np.zeros(0)
    return out


def assert_same_prepared(a: Path, b: Path) -> None:
    pa, pb = load_prepared(a), load_prepared(b)
    assert pa.src_tok.vocabulary() == pb.src_tok.vocabulary()
    assert pa.manifest["counts"] == pb.manifest["counts"]
    for split in ("train", "dev", "test"):
        x, y = arrays(pa.splits[split]), arrays(pb.splits[split])
        for k in x:
            assert np.array_equal(x[k], y[k]), (split, k)


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 100 lines, parts of 700: a 3,000-pair corpus goes through 30 chunks and 5 parts."""
    monkeypatch.setattr(corpus_mod, "LINES_PER_CHUNK", 100)
    monkeypatch.setattr(corpus_mod, "LINES_PER_PART", 700)


# --------------------------------------------------------------------------- workers, chunks, parts


def test_worker_processes_chunks_and_parts_prepare_what_one_process_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = toy_data(tmp_path / "corpora")
    prepare(data, WORD_TOK, tmp_path / "one", workers=1)
    monkeypatch.setattr(corpus_mod, "LINES_PER_CHUNK", 100)
    monkeypatch.setattr(corpus_mod, "LINES_PER_PART", 700)
    p = prepare(data, WORD_TOK, tmp_path / "two", workers=2)
    assert len(p.splits["train"].members) == 5  # parts, each memory-mapped
    part = p.splits["train"].members[0]
    assert isinstance(part, Part) and isinstance(part.src_ids.base.obj, mmap.mmap)  # memory-mapped, not read
    assert part.src_ids.dtype == np.uint16 and not part.src_ids.flags.writeable
    assert_same_prepared(tmp_path / "one", tmp_path / "two")


def test_a_line_of_bad_utf8_in_a_late_chunk_is_named_exactly(tmp_path: Path, small_chunks: None) -> None:
    data = toy_data(tmp_path / "corpora")
    src = tmp_path / "corpora/toy/train.src"
    lines = src.read_bytes().split(b"\n")
    lines[2345] = b"red \xff cat"
    src.write_bytes(b"\n".join(lines))
    with pytest.raises(NmtError, match=r"train\.src:2346: invalid UTF-8 \(byte 0xff at column 5\)"):
        prepare(data, WORD_TOK, tmp_path / "out", workers=2)
    assert not (tmp_path / "out/manifest.json").exists()


KILL_AFTER_PARTS = """
import os, signal, sys
from pathlib import Path
from nmt.config import DataConfig, SpmModel, TokenizerConfig
from nmt.data import corpus, store
corpus.LINES_PER_CHUNK, corpus.LINES_PER_PART = 100, 700
n, where = int(sys.argv[2]), sys.argv[3]
commit = store.PartWriter.commit
append = store.PartWriter.append
done = [0]
def commit_then_die(self, counts):
    commit(self, counts)
    done[0] += 1
    if where == "after" and done[0] == n:
        os.kill(os.getpid(), signal.SIGKILL)
appended = {}
def append_and_die(self, *a, **k):
    append(self, *a, **k)
    appended[id(self)] = appended.get(id(self), 0) + 1
    if where == "inside" and done[0] == n - 1 and appended[id(self)] == 3:
        os.kill(os.getpid(), signal.SIGKILL)
store.PartWriter.commit, store.PartWriter.append = commit_then_die, append_and_die
root = Path(sys.argv[1])
data = DataConfig(name="toy", root=str(root / "corpora"), corpus="toy", src_lang="src", tgt_lang="tgt")
corpus.prepare(data, TokenizerConfig(model_type=SpmModel.word, vocab_size=60), root / "out", workers=2)
"""


@pytest.mark.parametrize("where", ["after", "inside"], ids=["after-a-part", "inside-a-part"])
def test_a_killed_prepare_is_never_taken_as_complete_and_a_rerun_reuses_finished_parts(
    tmp_path: Path, small_chunks: None, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    data = toy_data(tmp_path / "corpora")
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_PARTS, str(tmp_path), "2", where], capture_output=True, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    out = tmp_path / "out"
    with pytest.raises(NmtError, match="no prepared data"):
        load_prepared(out)
    finished = sorted(
        p.name for p in (out / "train.partial").glob("part-*") if not p.name.endswith(".partial")
    )
    assert finished == (["part-00000", "part-00001"] if where == "after" else ["part-00000"])
    caplog.set_level(logging.INFO, logger="nmt")
    prepare(data, WORD_TOK, out, workers=2)
    reused = 2 if where == "after" else 1
    assert f"train: reusing {reused} finished part(s) of an interrupted prepare" in caplog.text
    prepare(data, WORD_TOK, tmp_path / "clean", workers=1)
    assert_same_prepared(out, tmp_path / "clean")
    assert not list(out.rglob("*.partial"))


def test_a_part_with_a_damaged_file_is_refused(tmp_path: Path, small_chunks: None) -> None:
    out = tmp_path / "out"
    prepare(toy_data(tmp_path / "corpora"), WORD_TOK, out, workers=1)
    ids = out / "train/part-00001/tgt.ids"
    ids.write_bytes(ids.read_bytes()[:-2])
    with pytest.raises(NmtError, match=r"part-00001/tgt\.ids: \d+ bytes, expected"):
        open_store(out / "train")


def test_prepared_data_is_flat_arrays_in_the_smallest_dtype(tmp_path: Path) -> None:
    for vocab, dtype in ((8000, np.uint16), (65536, np.uint16), (65537, np.int32)):
        w = PartWriter(tmp_path / f"p{vocab}", vocab, key={"k": 1})
        w.append(
            (np.array([5, 6, 7, vocab - 1]), np.array([3, 1])),
            (np.array([9]), np.array([1, 0])),
            np.array([4, 8]),
        )
        w.commit({"read": 2})
        part = Part(tmp_path / f"p{vocab}")
        assert (
            part.src_ids.dtype == dtype
            and (tmp_path / f"p{vocab}/src.ids").stat().st_size == 4 * dtype().itemsize
        )
        assert (
            part.src(1).tolist() == [vocab - 1]
            and part.tgt(1).tolist() == []
            and part.lines.tolist() == [4, 8]
        )
        assert part.src_lens.dtype == np.uint16 and part.src_lens.tolist() == [3, 1]


def test_pairs_reads_several_parts_as_one(tmp_path: Path) -> None:
    a = EncodedSplit.from_lists([[1, 2], [3]], [[4], [5, 6]], [0, 1])
    b = EncodedSplit.from_lists([[7]], [[8, 9, 10]], [0])
    p = Pairs([a, b])
    assert len(p) == 3 and p.src(2).tolist() == [7] and p.tgt(1).tolist() == [5, 6]
    assert p.src_lens.tolist() == [2, 1, 1] and p.tgt_lens.tolist() == [1, 2, 3]


# --------------------------------------------------------------------------- cleaning filters


def test_the_cleaning_filters_drop_and_count_each_case(tmp_path: Path) -> None:
    pairs = [("cat runs", "ネコが走る"), ("dog", "イヌ"), ("cat runs", "ネコが走る"), ("same", "same")]
    pairs += [("tree", "tree"), ("big", "ookii"), ("bird", "鳥"), ("dog", "イヌ"), ("", "空")]
    write_corpus(tmp_path / "corpora/c", pairs, langs=("en", "ja"))
    data = DataConfig(
        name="c",
        root=str(tmp_path / "corpora"),
        corpus="c",
        dedup=True,
        drop_copies=True,
        require_script=True,
    )
    p = prepare(data, WORD_TOK, tmp_path / "out", workers=1)
    c = p.manifest["counts"]["train"]
    assert c["read"] == 9 and c["kept"] == 3
    assert c["dropped"] == {
        "empty": 1, "copy": 2, "script": 1, "no_pieces": 0, "too_long": 0, "ratio": 0, "duplicate": 2,
    }  # fmt: skip
    assert p.splits["train"].lines.tolist() == [0, 1, 6]  # the first of each duplicate is kept
    default = prepare(
        DataConfig(name="c", root=str(tmp_path / "corpora"), corpus="c"), WORD_TOK, tmp_path / "d", workers=1
    )
    assert default.manifest["counts"]["train"]["kept"] == 8  # off by default: today's behaviour
    assert set(default.manifest["counts"]["train"]["dropped"]) == {"empty", "no_pieces", "too_long", "ratio"}


def test_script_patterns() -> None:
    ja = script_pattern("ja")
    assert ja.search("ネコ") and ja.search("猫") and ja.search("ひらがな") and ja.search("ｶﾀｶﾅ")
    assert not ja.search("neko 123 !?") and not ja.search("ＡＢＣ")
    assert script_pattern("en").search("é") and not script_pattern("en").search("猫")
    with pytest.raises(NmtError, match="no script known for language 'xx'"):
        script_pattern("xx")


def test_seen_pairs_keeps_the_first_of_equal_hashes_across_calls() -> None:
    seen = SeenPairs()
    h = pair_hashes(["a", "b", "a", "c"], ["x", "y", "x", "z"])
    assert seen.first_seen(h).tolist() == [True, True, False, True]
    assert seen.first_seen(pair_hashes(["c", "d"], ["z", "w"])).tolist() == [False, True]
    seen._merge()
    assert seen.first_seen(pair_hashes(["b", "e"], ["y", "v"])).tolist() == [False, True]


# --------------------------------------------------------------------------- several corpora by weight


def test_several_corpora_are_prepared_apart_and_counted(tmp_path: Path) -> None:
    root = tmp_path / "corpora"
    write_corpus(root / "big", make_pairs(1000, seed=1))
    write_corpus(root / "small", make_pairs(100, seed=2) + [("", "x")])
    data = DataConfig(
        name="mix", root=str(root), corpus="big", src_lang="src", tgt_lang="tgt",
        train_corpora=[CorpusConfig(name="big", corpus="big"), CorpusConfig(name="small", corpus="small", weight=3.0, max_len=5)],
    )  # fmt: skip
    p = prepare(data, WORD_TOK, tmp_path / "out", workers=1)
    assert list(p.corpora) == ["big", "small"] and len(p.corpora["big"]) == 1000
    small = p.manifest["corpora"]["small"]
    assert small["read"] == 101 and small["dropped"]["empty"] == 1 and small["dropped"]["too_long"] > 0
    assert small["kept"] == len(p.corpora["small"]) == 100 - small["dropped"]["too_long"]
    assert len(p.splits["train"]) == 1000 + small["kept"]
    assert (tmp_path / "out/train.big/meta.json").is_file() and (
        tmp_path / "out/train.small/meta.json"
    ).is_file()


def fake(n: int) -> EncodedSplit:
    return EncodedSplit.from_lists([[5]] * n, [[6]] * n, list(range(n)))


def test_draws_follow_the_weights_and_a_small_corpus_repeats_evenly() -> None:
    m = Mixture({"big": fake(1000), "small": fake(50)}, {"big": 1.0, "small": 1.0}, 0, seed=1)
    assert m.draws.tolist() == [525, 525] and not m.plain
    counts = np.zeros(1050, dtype=int)
    for epoch in (1, 2):
        ids = m.epoch(epoch)
        assert len(ids) == 1050
        assert (ids < 1000).sum() == 525  # from big
        np.add.at(counts, ids, 1)
    small = counts[1000:]
    assert small.sum() == 1050 and small.max() - small.min() <= 1  # 21 passes over the small corpus
    big = counts[:1000]
    assert big.sum() == 1050 and big.max() - big.min() <= 1  # the big one: once, and 50 pairs a second time
    assert len(set(m.epoch(1)[:525].tolist())) == 525  # an epoch takes a stretch of one pass: no pair twice
    assert np.array_equal(
        m.epoch(2), Mixture({"big": fake(1000), "small": fake(50)}, {"big": 1, "small": 1}, 0, 1).epoch(2)
    )


def test_one_corpus_is_the_plain_case_and_weights_are_checked() -> None:
    assert Mixture({"a": fake(10)}, {"a": 1.0}, 0, seed=1).epoch(3) is None
    m = Mixture({"a": fake(10), "b": fake(30)}, {"a": 1.0, "b": 3.0}, 100, seed=1)
    assert m.draws.tolist() == [25, 75]
    with pytest.raises(NmtError, match="no pairs left after filtering"):
        Mixture({"a": fake(10), "b": fake(0)}, {"a": 1.0, "b": 1.0}, 0, seed=1)
    with pytest.raises(NmtError, match="weights must be >= 0"):
        Mixture({"a": fake(10)}, {"a": 0.0}, 0, seed=1)


def test_the_manifest_lists_every_corpus(tmp_path: Path) -> None:
    p = prepare(toy_data(tmp_path / "corpora", n=50), WORD_TOK, tmp_path / "out", workers=1)
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert manifest["corpora"]["toy"]["kept"] == len(p.splits["train"]) == 50
    assert manifest["sentencepiece"]["sample_pairs"] == 50


def test_the_sample_for_sentencepiece_is_taken_across_the_corpus(tmp_path: Path, small_chunks: None) -> None:
    tok = TokenizerConfig(model_type=SpmModel.word, vocab_size=60, input_sentence_size=500)
    p = prepare(toy_data(tmp_path / "corpora"), tok, tmp_path / "out", workers=1)
    assert p.manifest["sentencepiece"]["sample_pairs"] == 500
    again = prepare(toy_data(tmp_path / "corpora2"), tok, tmp_path / "out2", workers=2)
    assert again.src_tok.vocabulary() == p.src_tok.vocabulary()  # the same sample, whatever the workers


def test_os_stat_cache_of_file_digests_notices_an_edit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = toy_data(tmp_path / "corpora", n=50)
    prepare(data, WORD_TOK, tmp_path / "out", workers=1)
    f = tmp_path / "corpora/toy/train.tgt"
    st = f.stat()
    f.write_bytes(f.read_bytes().replace(b"aka", b"AKA", 1))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime: the inode's ctime still moved
    caplog.set_level(logging.INFO, logger="nmt")
    prepare(data, WORD_TOK, tmp_path / "out", workers=1)
    assert "preparing again" in caplog.text
