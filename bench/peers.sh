#!/usr/bin/env bash
# nmt side by side with OpenNMT-py 3.5.1 and JoeyNMT 2.3.0: same model, same data, same machine,
# one after the other (never two at once: they share the cores). The peers run through the shared
# harness ../shared/bench/peers/run_peers.sh (it installs them into their own virtual environments
# under $PEERS_WORK); nmt runs under exactly the same protocol (its ours_train / ours_decode stages:
# SIGINT after TRAIN_SECONDS, then greedy and beam 5 decoding of test.en at batch 64 and 1).
# At the end bench/peer_ratios.py prints the figures and the nmt / peer ratios.
#
#   bash bench/peers.sh                      # everything (about 50 minutes with TRAIN_SECONDS=600)
#   bash bench/peers.sh ours_train ours_decode ratios   # only some stages
#   ROUNDS=3 TRAIN_SECONDS=120 bash bench/peers.sh alternate   # training only, the tools in turn
# Env: TRAIN_SECONDS (default 600), PEERS_WORK (default /tmp/nmt-peers), PEERS_DIR (the harness),
# for `alternate`: ROUNDS (default 3) and ALT_TOOLS (default "onmt ours"; add joey to include it).
# `alternate` exists because a shared machine's speed drifts (we saw 2x within minutes): one
# tool's 300 s taken a quarter of an hour after another's do not compare; rounds in turn do.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
PEERS_DIR=${PEERS_DIR:-$(cd ../shared/bench/peers && pwd)}
export PEERS_DIR PEERS_WORK=${PEERS_WORK:-/tmp/nmt-peers} TRAIN_SECONDS=${TRAIN_SECONDS:-600}
BIN="$VIRTUAL_ENV/bin"
# run inside $PEERS_WORK/runs/ours, where data/ links to small_parallel_enja
export OURS_TRAIN_CMD="$BIN/nmt-train experiment=peers_small run_dir=nmt data.root=. data.corpus=data"
# test.en is the corpus's own (tokenised, lowercased) text and the reference is segmented: the
# same form in and out as the peers (processed=true keep_segmentation=true)
export OURS_DECODE_CMD="$BIN/nmt-translate ckpt=nmt/checkpoints/last.pt input=data/test.en output={out} \
search=\$([ {beam} = 1 ] && echo greedy || echo beam) search.beam_size={beam} max_sentences={bs} batch_size=1000000 \
processed=true keep_segmentation=true"
stages=${*:-install onmt_train onmt_decode joey_train joey_decode ours_train ours_decode ratios}
for stage in $stages; do
  echo "=== $stage ($(date +%H:%M:%S))"
  if [ "$stage" = ratios ]; then
    python bench/peer_ratios.py --runs "$PEERS_WORK/runs" --data "$(cd ../shared/data/small_parallel_enja && pwd)"
  elif [ "$stage" = alternate ]; then
    alt_tools=${ALT_TOOLS:-onmt ours}
    rounds=()
    for r in $(seq "${ROUNDS:-3}"); do
      for tool in $alt_tools; do
        echo "--- round $r: ${tool}_train ($(date +%H:%M:%S))"
        bash "$PEERS_DIR/run_peers.sh" "${tool}_train"
      done
      rounds+=("$PEERS_WORK/round$r.json")
      python bench/peer_ratios.py --runs "$PEERS_WORK/runs" --tools "${alt_tools// /,}" --train-only \
        --json "${rounds[-1]}" >/dev/null
    done
    python bench/peer_ratios.py --rounds "${rounds[@]}"
  else
    bash "$PEERS_DIR/run_peers.sh" "$stage"
  fi
done
