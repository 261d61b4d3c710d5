#!/usr/bin/env bash
# en_ja_kyoto: English->Japanese on raw kyoto_wiki with the `base` model on one GPU (~20 min of
# training), beam search, the best checkpoint or the average of the 5 best (chosen on dev),
# scores on kyoto_wiki test (in domain) and WMT21/23/24 and NTREX (out of domain), and the results
# card. A stopped run resumes where it stopped.
#   bash recipes/en_ja_kyoto/run.sh                                  # the GPU recipe
#   EXPERIMENT=en_ja_kyoto_cpu bash recipes/en_ja_kyoto/run.sh        # the CPU recipe: small model, 105 min
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
EXP=${EXPERIMENT:-en_ja_kyoto}
RUN=${RUN:-runs/$EXP}
[ "$EXP" = en_ja_kyoto_cpu ] && [ -z "${EVAL_FIRST:-}" ] && EVAL_SAMPLE=${EVAL_SAMPLE:-500}   # tune alpha on 500 dev sentences spread over every dev article, on a CPU
# no 4-gram of pieces twice in one output: on kyoto_wiki dev (500 spread) it cut the outputs that
# repeat a span from 26.2 % to 11.6 % at no cost in BLEU (recipes/en_ja_kyoto/README.md)
EVAL_ARGS=${EVAL_ARGS:-search.no_repeat_ngram=4}
mkdir -p "$RUN/eval"
source recipes/common.sh
: > "$RUN/commands.txt"
run nmt-prepare experiment="$EXP" run_dir="$RUN"
run nmt-train experiment="$EXP" run_dir="$RUN" train.resume=true "$@"
pick_checkpoint kyoto_wiki_dev "[0.6,1.0,1.4]"
# shellcheck disable=SC2086  # EVAL_ARGS: overrides, split on spaces
run nmt-evaluate ckpt="$CKPT" "test_sets=[kyoto_wiki_test,wmt21,wmt23,wmt24,ntrex128]" search=beam \
    search.alpha="$ALPHA" $EVAL_ARGS output="$RUN/eval/1_beam5.json" hyp_dir="$RUN/eval/beam5"
run nmt-card run_dir="$RUN" title="$EXP" ${NMT_CARD_README:+readme=$NMT_CARD_README}
