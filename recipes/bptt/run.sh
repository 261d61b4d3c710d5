#!/usr/bin/env bash
# Gradients through time: simple RNN, LSTM and GRU on the same long-range task ("remember the
# first of 40 symbols"), the gradient reaching each time step back from the loss at
# initialisation, and training with and without clipping. About two minutes on a CPU; writes
# the PNGs and results.json into recipes/bptt (or $OUT).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
python -m nmt.introspect.gradients --out "${OUT:-recipes/bptt}" "$@"
