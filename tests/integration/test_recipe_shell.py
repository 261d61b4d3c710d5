"""recipes/common.sh, the recipes' shared shell: choosing the checkpoint and alpha on dev.

The nmt tools are stood in for by small scripts on PATH, so the shell's own logic runs in a
second: which checkpoint and alpha it picks, what it records, and that a recipe whose output is
redirected to a log file keeps that log whole.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO

# nmt-evaluate as the sweep sees it: a table, then "best alpha: A (BLEU B)", per checkpoint
FAKE_EVALUATE = """#!/usr/bin/env bash
case "$*" in
  *avg_best5.pt*) echo "alpha 1.2  BLEU $AVG_BLEU"; echo "best alpha: 1.2 (BLEU $AVG_BLEU)" ;;
  *) echo "alpha 0.8  BLEU 30.10"; echo "best alpha: 0.8 (BLEU 30.10)" ;;
esac
"""


def pick(tmp_path: Path, avg_bleu: str) -> tuple[str, str, str]:
    """Run ``pick_checkpoint`` with its output going to a log file that already holds a line;
    returns (the log, the chosen "CKPT ALPHA", commands.txt)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool, body in (("nmt-evaluate", FAKE_EVALUATE), ("nmt-average", "#!/usr/bin/env bash\n")):
        (bin_dir / tool).write_text(body)
        (bin_dir / tool).chmod(0o755)
    run_dir = tmp_path / "run"
    (run_dir / "eval").mkdir(parents=True, exist_ok=True)
    log, chosen = tmp_path / "recipe.log", tmp_path / "chosen"
    script = f"""
set -euo pipefail
RUN={run_dir}
source {REPO / "recipes" / "common.sh"}
: > "$RUN/commands.txt"
echo "step 2000 | the training log so far"
pick_checkpoint some_dev "[0.8,1.2]"
echo "$CKPT $ALPHA" > {chosen}
echo "after the choice"
"""
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "AVG_BLEU": avg_bleu}
    with log.open("w") as out:
        proc = subprocess.run(
            ["bash", "-c", script], stdout=out, stderr=subprocess.STDOUT, env=env, timeout=60
        )
    assert proc.returncode == 0, log.read_text()
    return log.read_text(), chosen.read_text().strip(), (run_dir / "commands.txt").read_text()


@pytest.mark.parametrize(
    ("avg_bleu", "ckpt", "alpha"), [("31.00", "avg_best5.pt", "1.2"), ("29.50", "best.pt", "0.8")]
)
def test_pick_checkpoint_takes_the_higher_dev_bleu(
    tmp_path: Path, avg_bleu: str, ckpt: str, alpha: str
) -> None:
    _, chosen, commands = pick(tmp_path, avg_bleu)
    path, chosen_alpha = chosen.split()
    assert Path(path).name == ckpt and chosen_alpha == alpha
    assert commands.count("nmt-evaluate ") == 2 and "nmt-average run_dir=" in commands
    assert f"# chosen on some_dev: {ckpt} with alpha={alpha}" in commands


def test_a_recipe_log_file_keeps_everything_written_before_the_sweep(tmp_path: Path) -> None:
    log, _, _ = pick(tmp_path, "31.00")
    assert "\0" not in log  # no hole where a truncated file was written on at its old offset
    lines = log.splitlines()
    assert lines[0] == "step 2000 | the training log so far"
    assert "best alpha: 0.8 (BLEU 30.10)" in lines and "best alpha: 1.2 (BLEU 31.00)" in lines
    assert lines[-1] == "after the choice"


def test_a_corpus_neither_found_nor_downloadable_says_how_to_point_at_a_copy(tmp_path: Path) -> None:
    """A clone with no ../shared/data beside it and no network: data/download.sh names where it
    looked and NMT_DATA_ROOT, in its last line, and fails."""
    repo = tmp_path / "clone"  # nothing at clone/../shared/data
    (repo / "data").mkdir(parents=True)
    for name in ("download.sh", "checksums.sha256"):
        (repo / "data" / name).write_bytes((REPO / "data" / name).read_bytes())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "curl").write_text("#!/usr/bin/env bash\nexit 6\n")  # "could not resolve host"
    (bin_dir / "curl").chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "NMT_DATA_ROOT": str(tmp_path / "corpora"),
        "TMPDIR": str(tmp_path),
    }
    proc = subprocess.run(
        ["bash", str(repo / "data" / "download.sh"), "small_parallel_enja_raw"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("download.sh: error: small_parallel_enja_raw needs tatoeba_manythings_enja: ")
    assert str(tmp_path / "corpora") in last and "set NMT_DATA_ROOT" in last
    assert not (tmp_path / "corpora").exists()  # nothing half-made left behind
