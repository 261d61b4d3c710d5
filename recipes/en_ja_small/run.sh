#!/usr/bin/env bash
# en_ja_small: English->Japanese on small_parallel_enja with the `small` model, 30 minutes of
# training on the CPU (or the GPU when there is one), then greedy and beam-search test BLEU (on the
# corpus's tokenised test set and on the same sentences as people type them) and the results
# card. A stopped run resumes where it stopped. Usage:
#   bash recipes/en_ja_small/run.sh
#   RUN=runs/x bash recipes/en_ja_small/run.sh train.max_time=10     # extra overrides go to nmt-train
#   NMT_CARD_README=recipes/en_ja_small/README.md bash recipes/en_ja_small/run.sh   # also update the README
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
RUN=${RUN:-runs/en_ja_small}
mkdir -p "$RUN/eval"
source recipes/common.sh
: > "$RUN/commands.txt"
PYTHON=python run bash data/download.sh small_parallel_enja_raw  # the test set as people type it
run nmt-prepare experiment=en_ja_small run_dir="$RUN"
run nmt-train experiment=en_ja_small run_dir="$RUN" train.resume=true "$@"
# beam search: checkpoint (best, or the average of the 5 best) and length penalty chosen on dev
pick_checkpoint small_parallel_enja_dev "[0.0,0.4,0.8,1.2,1.6]"
TEST="test_sets=[small_parallel_enja_test,small_parallel_enja_test_raw]"
run nmt-evaluate ckpt="$CKPT" "$TEST" search=greedy output="$RUN/eval/1_greedy.json" hyp_dir="$RUN/eval/greedy"
run nmt-evaluate ckpt="$CKPT" "$TEST" search=beam search.alpha="$ALPHA" output="$RUN/eval/2_beam5.json" \
    hyp_dir="$RUN/eval/beam5"
run nmt-card run_dir="$RUN" title="'en_ja_small: small_parallel_enja, 30 min'" ${NMT_CARD_README:+readme=$NMT_CARD_README}
printf 'Where is the station?\nI like green tea.\nTom said he would come back on Monday.\n' \
    | nmt-translate ckpt="$CKPT" search.alpha="$ALPHA"
