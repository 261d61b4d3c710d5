#!/usr/bin/env bash
# en_ja_kyoto: English->Japanese on raw kyoto_wiki with the `base` model on one GPU (~20 min of
# training), beam search, averaging of the best checkpoints, scores on kyoto_wiki test (in domain)
# and WMT21/23/24 and NTREX (out of domain), and the results card. Resumes if stopped.
#   bash recipes/en_ja_kyoto/run.sh                                  # the GPU recipe
#   EXPERIMENT=en_ja_kyoto_cpu bash recipes/en_ja_kyoto/run.sh        # the CPU subset (no GPU)
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
EXP=${EXPERIMENT:-en_ja_kyoto}
RUN=${RUN:-runs/$EXP}
SETS="test_sets=[kyoto_wiki_test,wmt21,wmt23,wmt24,ntrex128]"
mkdir -p "$RUN/eval"
run() { echo "$*" >> "$RUN/commands.txt"; "$@"; }
: > "$RUN/commands.txt"
run nmt-prepare experiment="$EXP" run_dir="$RUN"
run nmt-train experiment="$EXP" run_dir="$RUN" train.resume=true "$@"
# the GNMT length penalty alpha is chosen on kyoto_wiki dev, then used on every test set
ALPHA=$(run nmt-evaluate ckpt="$RUN/checkpoints/best.pt" test_sets=[kyoto_wiki_dev] search=beam "alphas=[0.6,1.0,1.4]" \
        output="$RUN/eval/dev_alphas.json" | tee /dev/stderr | sed -n 's/^best alpha: //p')
run nmt-evaluate ckpt="$RUN/checkpoints/best.pt" "$SETS" search=beam search.alpha=$ALPHA \
    output="$RUN/eval/1_best_beam5.json" hyp_dir="$RUN/eval/best_beam5"
run nmt-average run_dir="$RUN" k=5 by=best
run nmt-evaluate ckpt="$RUN/checkpoints/avg_best5.pt" "$SETS" search=beam search.alpha=$ALPHA \
    output="$RUN/eval/2_avg5_beam5.json" hyp_dir="$RUN/eval/avg5_beam5"
run nmt-card run_dir="$RUN" title="$EXP" ${NMT_CARD_README:+readme=$NMT_CARD_README}
