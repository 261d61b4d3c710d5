#!/usr/bin/env bash
# en_ja_tatoeba: English->Japanese on raw, cased Tatoeba sentences with SentencePiece subwords,
# the `small` model, 30 minutes of training on the CPU (or the GPU when there is one), then test
# BLEU (ja-mecab) and chrF on its own test set, WMT21/23/24 and NTREX, and the results card.
# The split (by English sentence) is built from tatoeba_manythings_enja on the first run.
#   bash recipes/en_ja_tatoeba/run.sh
#   RUN=runs/x bash recipes/en_ja_tatoeba/run.sh train.max_time=5     # extra overrides go to nmt-train
#   NMT_CARD_README=recipes/en_ja_tatoeba/README.md bash recipes/en_ja_tatoeba/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
RUN=${RUN:-runs/en_ja_tatoeba}
mkdir -p "$RUN/eval"
source recipes/common.sh
: > "$RUN/commands.txt"
PYTHON=python run bash data/download.sh tatoeba_enja_split small_parallel_enja_raw
run nmt-prepare experiment=en_ja_tatoeba run_dir="$RUN"
run nmt-train experiment=en_ja_tatoeba run_dir="$RUN" train.resume=true "$@"
pick_checkpoint tatoeba_dev "[0.0,0.4,0.8,1.2,1.6]"
TEST="test_sets=[tatoeba_test,small_parallel_enja_test_raw,wmt21,wmt23,wmt24,ntrex128]"
run nmt-evaluate data=tatoeba ckpt="$CKPT" "$TEST" search=greedy output="$RUN/eval/1_greedy.json" hyp_dir="$RUN/eval/greedy"
run nmt-evaluate data=tatoeba ckpt="$CKPT" "$TEST" search=beam search.alpha="$ALPHA" output="$RUN/eval/2_beam5.json" \
    hyp_dir="$RUN/eval/beam5"
run nmt-card run_dir="$RUN" title="'en_ja_tatoeba: raw Tatoeba, 30 min'" ${NMT_CARD_README:+readme=$NMT_CARD_README}
printf 'Where is the station?\nI like green tea.\nTom said he would come back on Monday.\n' \
    | nmt-translate ckpt="$CKPT" search.alpha="$ALPHA"
