#!/usr/bin/env bash
# Toy recipe: a synthetic reverse-and-translate task made by code (nmt/data/toy.py), a tiny model,
# about half a minute of CPU training to dev BLEU ~100. No downloads. Usage: bash recipes/toy/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
RUN=${RUN:-runs/toy}
python -m nmt.data.toy "$RUN/corpus"
nmt-train experiment=toy run_dir="$RUN" "$@"
nmt-evaluate ckpt="$RUN/checkpoints/best.pt" data=toy data.root="$RUN/corpus" output="$RUN/test.json"
printf 'red cat sees big fish\nblue dog and green bird runs\n' | nmt-translate ckpt="$RUN/checkpoints/best.pt"
