#!/usr/bin/env bash
# VoxCeleb: train on VoxCeleb2 dev, evaluate on the cleaned VoxCeleb1 O/E/H lists (wespeaker v2 recipe).
#   bash recipes/voxceleb/run.sh [--stage N] [--stop_stage M] [--systems "exp1 exp2"] [key=value ...]
# Before stage 1, download the corpora yourself (we never fetch data) and lay them out as conf/data/voxceleb.yaml
# expects: data/voxceleb/voxceleb2_dev/wav/<spk>/<video>/<nnnnn>.wav (16 kHz wav converted from the m4a files),
# data/voxceleb/voxceleb1/wav/..., and the three cleaned trial lists in data/voxceleb/voxceleb1/.
# Stages: 1 manifests, 2 fbank, 3 untrained baseline, 4 train, 5 embed, 6 score, 7 table.
# Note: stage 2 stores fbank of every utterance (about 270 GB in fp32 for VoxCeleb2 dev); on-the-fly features,
# sharded storage and MUSAN/RIR augmentation are the subject of the VoxCeleb-scale data pipeline work.
# Multi-GPU training: replace `$PYTHON scripts/train.py` with `torchrun --nproc_per_node=N scripts/train.py`
# once distributed training lands.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
PYTHON=${PYTHON:-python}
stage=1
stop_stage=7
systems="voxceleb_resnet34"   # conf/experiment/<name>.yaml, one trained system each
source recipes/common/parse_options.sh

run() { echo "+ $*" >&2; "$PYTHON" "$@"; }
data=(data=voxceleb)

if [[ $stage -le 1 && $stop_stage -ge 1 ]]; then run scripts/prepare.py "${data[@]}" "${overrides[@]}"; fi
if [[ $stage -le 2 && $stop_stage -ge 2 ]]; then run scripts/features.py "${data[@]}" "${overrides[@]}"; fi
if [[ $stage -le 3 && $stop_stage -ge 3 ]]; then
  run scripts/embed.py "${data[@]}" experiment=baseline "${overrides[@]}"
  run scripts/score.py "${data[@]}" experiment=baseline "${overrides[@]}"
fi
for exp in $systems; do
  if [[ $stage -le 4 && $stop_stage -ge 4 ]]; then run scripts/train.py experiment="$exp" "${overrides[@]}"; fi
  if [[ $stage -le 5 && $stop_stage -ge 5 ]]; then run scripts/embed.py experiment="$exp" "${overrides[@]}"; fi
  if [[ $stage -le 6 && $stop_stage -ge 6 ]]; then run scripts/score.py experiment="$exp" "${overrides[@]}"; fi
done
if [[ $stage -le 7 && $stop_stage -ge 7 ]]; then run scripts/table.py "${data[@]}" "${overrides[@]}"; fi
