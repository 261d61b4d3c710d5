# Shared by the recipe scripts (source it after setting RUN). Every command run through `run` is
# appended to $RUN/commands.txt, which the results card quotes.

run() { echo "$*" >> "$RUN/commands.txt"; "$@"; }

# pick_checkpoint DEV_SET ALPHAS: the GNMT length penalty alpha is tuned on DEV_SET for best.pt and
# for the average of the 5 best checkpoints; sets CKPT and ALPHA to the pair with the higher dev BLEU.
pick_checkpoint() {
  local dev=$1 alphas=$2 a1 b1 a2 b2
  read -r a1 b1 < <(sweep "$RUN/checkpoints/best.pt" "$dev" "$alphas" "$RUN/eval/dev_alphas_best.json")
  run nmt-average run_dir="$RUN" k=5 by=best
  read -r a2 b2 < <(sweep "$RUN/checkpoints/avg_best5.pt" "$dev" "$alphas" "$RUN/eval/dev_alphas_avg5.json")
  if awk "BEGIN { exit !($b2 > $b1) }"; then
    CKPT="$RUN/checkpoints/avg_best5.pt" ALPHA=$a2
  else
    CKPT="$RUN/checkpoints/best.pt" ALPHA=$a1
  fi
  echo "# chosen on $dev: $(basename "$CKPT") with alpha=$ALPHA (dev BLEU: best.pt $b1 at alpha=$a1, avg_best5.pt $b2 at alpha=$a2)" \
    | tee -a "$RUN/commands.txt" >&2
}

# sweep CKPT DEV_SET ALPHAS OUT.json: prints "alpha bleu" of the best alpha on DEV_SET; the sweep's
# table goes to stderr through the inherited descriptor (`tee /dev/stderr` would reopen a log file
# the recipe's output is redirected to, truncating it: the training log was lost that way)
sweep() {
  local table
  # shellcheck disable=SC2086  # EVAL_ARGS: extra overrides, split on spaces
  table=$(run nmt-evaluate ckpt="$1" "test_sets=[$2]" search=beam "alphas=$3" ${EVAL_FIRST:+first=$EVAL_FIRST} ${EVAL_SAMPLE:+sample=$EVAL_SAMPLE} ${EVAL_ARGS:-} output="$4")
  printf '%s\n' "$table" >&2
  sed -n 's/^best alpha: \([0-9.]*\) (BLEU \([0-9.]*\))/\1 \2/p' <<<"$table"
}
