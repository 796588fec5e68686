#!/usr/bin/env bash
# librimini: real LibriSpeech speech (251 training speakers, 10 test speakers, 4,950 trials).
#   bash recipes/librimini/run.sh [--stage N] [--stop_stage M] [--systems "exp1 exp2"] [key=value ...]
# Stages: 1 import ../shared/data/librispeech_mini, 2 manifests, 3 fbank, 4 untrained baseline, 5 train, 6 embed, 7 score, 8 table.
# Outputs: data/librimini (corpus, manifests, features) and exp/librimini/<system> (checkpoints, logs, scores).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
PYTHON=${PYTHON:-python}
stage=1
stop_stage=8
systems="librimini_resnet10"   # conf/experiment/<name>.yaml, one trained system each
source recipes/common/parse_options.sh

run() { echo "+ $*" >&2; "$PYTHON" "$@"; }
data=(data=librimini)

if [[ $stage -le 1 && $stop_stage -ge 1 ]]; then run scripts/import_librimini.py "${data[@]}" "${overrides[@]}"; fi
if [[ $stage -le 2 && $stop_stage -ge 2 ]]; then run scripts/prepare.py "${data[@]}" "${overrides[@]}"; fi
if [[ $stage -le 3 && $stop_stage -ge 3 ]]; then run scripts/features.py "${data[@]}" "${overrides[@]}"; fi
if [[ $stage -le 4 && $stop_stage -ge 4 ]]; then
  run scripts/embed.py "${data[@]}" experiment=baseline "${overrides[@]}"
  run scripts/score.py "${data[@]}" experiment=baseline "${overrides[@]}"
fi
for exp in $systems; do
  if [[ $stage -le 5 && $stop_stage -ge 5 ]]; then run scripts/train.py experiment="$exp" "${overrides[@]}"; fi
  if [[ $stage -le 6 && $stop_stage -ge 6 ]]; then run scripts/embed.py experiment="$exp" "${overrides[@]}"; fi
  if [[ $stage -le 7 && $stop_stage -ge 7 ]]; then run scripts/score.py experiment="$exp" "${overrides[@]}"; fi
done
if [[ $stage -le 8 && $stop_stage -ge 8 ]]; then run scripts/table.py "${data[@]}" "${overrides[@]}"; fi
