# Sourced by recipes after parse_options.sh. Runs stages $stage..$stop_stage of the standard pipeline:
#   1 corpus ($corpus_script, when the recipe has one)  2 manifests  3 fbank  4 untrained baseline
#   5 train  6 embed  7 score  (5-7 for each experiment in $systems)  8 results table
# Needs: $PYTHON, $data (the data= option), $corpus_script (may be empty), $systems, and the array $overrides.
# Optional: the array $train_cmd, the launcher of the train stage (default: "$PYTHON"; e.g. torchrun).

run() { echo "+ $*" >&2; "$PYTHON" "$@"; }
declare -p train_cmd &>/dev/null || train_cmd=("$PYTHON")
run_train() { echo "+ ${train_cmd[*]} $*" >&2; "${train_cmd[@]}" "$@"; }
in_range() { [[ $stage -le $1 && $stop_stage -ge $1 ]]; }

if in_range 1; then
  if [[ -n $corpus_script ]]; then run "scripts/$corpus_script.py" data="$data" "${overrides[@]}"
  else echo "stage 1: this recipe has no corpus stage; the corpus must already be in place" >&2; fi
fi
if in_range 2; then run scripts/prepare.py data="$data" "${overrides[@]}"; fi
if in_range 3; then run scripts/features.py data="$data" "${overrides[@]}"; fi
if in_range 4; then
  run scripts/embed.py data="$data" experiment=baseline "${overrides[@]}"
  run scripts/score.py data="$data" experiment=baseline "${overrides[@]}"
fi
for exp in $systems; do
  if in_range 5; then run_train scripts/train.py experiment="$exp" "${overrides[@]}"; fi
  if in_range 6; then run scripts/embed.py experiment="$exp" "${overrides[@]}"; fi
  if in_range 7; then run scripts/score.py experiment="$exp" "${overrides[@]}"; fi
done
if in_range 8; then run scripts/table.py data="$data" "${overrides[@]}"; fi
