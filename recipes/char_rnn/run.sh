#!/usr/bin/env bash
# char-rnn (Karpathy 2015) with nmt's cells: a character-level LSTM language model on the English
# side of kyoto_wiki (Wikipedia articles about Kyoto), 10 minutes on a CPU; then bits per
# character, samples at temperatures 0.5, 1.0 and 1.5, and the cells that follow quotes,
# brackets and the position in a line (HTML pages). Usage:
#   bash recipes/char_rnn/run.sh                       # extra overrides go to nmt-lm
#   RUN=runs/x bash recipes/char_rnn/run.sh train.max_time=2 model.cell=gru
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
RUN=${RUN:-runs/char_rnn}
mkdir -p "$RUN"
nmt-lm text=kyoto_wiki/train.en max_chars=6000000 train.max_time=10 run_dir="$RUN" "$@"
for t in 0.5 1.0 1.5; do
  echo "--- temperature $t"
  nmt-sample ckpt="$RUN/lm.pt" prime="Kyoto is" length=400 temperature="$t" | tee "$RUN/sample_t$t.txt"
done
TEXT=$(python -c 'from nmt.data.files import data_path; from nmt.config import DataConfig; print(data_path(DataConfig(name="x", corpus="x"), "kyoto_wiki/dev.en"))')
for f in brackets quotes line_position word_boundary; do
  nmt-cells ckpt="$RUN/lm.pt" input="$TEXT" feature="$f" max_chars=4000 output="$RUN/cells_$f.html" | tee "$RUN/cells_$f.txt"
done
