#!/usr/bin/env bash
# en_ja_small: English->Japanese on small_parallel_enja with the `small` model, 30 minutes of
# training on the CPU (or the GPU when there is one), then greedy and beam-search test BLEU and
# the results card. Stopped runs resume where they stopped. Usage:
#   bash recipes/en_ja_small/run.sh                  # everything
#   RUN=runs/x bash recipes/en_ja_small/run.sh train.max_time=10   # extra overrides go to nmt-train
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
RUN=${RUN:-runs/en_ja_small}
mkdir -p "$RUN/eval"
run() { echo "$*" >> "$RUN/commands.txt"; "$@"; }
: > "$RUN/commands.txt"
run nmt-prepare experiment=en_ja_small run_dir="$RUN"
run nmt-train experiment=en_ja_small run_dir="$RUN" train.resume=true "$@"
CKPT="$RUN/checkpoints/best.pt"
TEST="test_sets=[small_parallel_enja_test]"
run nmt-evaluate ckpt="$CKPT" "$TEST" search=greedy output="$RUN/eval/1_greedy.json" hyp_dir="$RUN/eval/greedy"
# the GNMT length penalty alpha is chosen on the dev set, then used on the test set
ALPHA=$(run nmt-evaluate ckpt="$CKPT" test_sets=[small_parallel_enja_dev] search=beam "alphas=[0.0,0.4,0.8,1.2,1.6]" \
        output="$RUN/eval/dev_alphas.json" | tee /dev/stderr | sed -n 's/^best alpha: //p')
run nmt-evaluate ckpt="$CKPT" "$TEST" search=beam search.alpha="$ALPHA" output="$RUN/eval/2_beam5.json" hyp_dir="$RUN/eval/beam5"
run nmt-card run_dir="$RUN" title="en_ja_small (small_parallel_enja, 30 min)" ${NMT_CARD_README:+readme=$NMT_CARD_README}
