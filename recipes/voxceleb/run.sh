#!/usr/bin/env bash
# VoxCeleb: train on VoxCeleb2 dev, evaluate on the cleaned VoxCeleb1 O/E/H lists (wespeaker v2 recipe).
#   bash recipes/voxceleb/run.sh [--stage N] [--stop_stage M] [--systems "exp1 exp2"] [key=value ...]
# Before stage 2, download the corpora yourself (we never fetch data) and lay them out as conf/data/voxceleb.yaml
# expects: data/voxceleb/voxceleb2_dev/wav/<spk>/<video>/<nnnnn>.wav (16 kHz wav converted from the m4a files),
# data/voxceleb/voxceleb1/wav/..., and the three cleaned trial lists in data/voxceleb/voxceleb1/.
# Stages: (1 none: no corpus stage) 2 manifests, 3 fbank, 4 untrained baseline, 5 train, 6 embed, 7 score, 8 table.
# Note: stage 3 stores fbank of every utterance (about 270 GB in fp32 for VoxCeleb2 dev); on-the-fly features,
# sharded storage and MUSAN/RIR augmentation are the subject of the VoxCeleb-scale data pipeline work.
# Multi-GPU training (torchrun) is not wired into the train stage yet.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PYTHON=${PYTHON:-python}
stage=2
stop_stage=8
data=voxceleb
corpus_script=
systems="voxceleb_resnet34"   # conf/experiment/<name>.yaml, one trained system each
source recipes/common/parse_options.sh
source recipes/common/pipeline.sh
