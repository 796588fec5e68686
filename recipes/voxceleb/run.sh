#!/usr/bin/env bash
# VoxCeleb: train on VoxCeleb2 dev, evaluate on the cleaned VoxCeleb1 O/E/H lists (wespeaker v2 recipe).
#   bash recipes/voxceleb/run.sh [--stage N] [--stop_stage M] [--systems "exp1 exp2"] [key=value ...]
# Download the corpora yourself (we never fetch data) and place them as conf/data/voxceleb.yaml expects (README,
# "VoxCeleb"): data/voxceleb/voxceleb2/dev/aac/<id0xxxx>/<video>/<nnnnn>.m4a, data/voxceleb/voxceleb1/wav/...,
# the three cleaned trial lists in data/voxceleb/voxceleb1/, data/voxceleb/musan/, data/voxceleb/RIRS_NOISES/.
# Stages:
#   1 convert   VoxCeleb2 m4a -> 16 kHz mono wav (ffmpeg; parallel, resumable)
#   2 prepare   manifests of VoxCeleb2 dev (train), VoxCeleb1 (test), trials, MUSAN, RIRs (parallel, resumable)
#   3 shards    training set as tar shards (resumable)
#   4 untrained baseline, 5 train, 6 embed, 7 score (each system), 8 table: recipes/common/pipeline.sh
# Training reads the shards with on-the-fly fbank, speed perturbation and MUSAN / RIR augmentation
# (conf/augment/wespeaker.yaml); no fbank is stored (VoxCeleb2 dev would take about 270 GB). The embed stage
# computes fbank from the audio too (embed.features=audio), and takes the training-set mean, the AS-norm cohort
# and the calibration trials from 20 utterances per training speaker (embed.train_max_per_speaker=20).
# Training (stage 5) runs under torchrun, one process per GPU (DDP, nccl): GPUS=2 bash recipes/voxceleb/run.sh
# --stage 5. Multi node: run the same command on every node with NNODES, NODE_RANK, MASTER_ADDR (node 0's
# address) and MASTER_PORT set; exp/ must be on a filesystem every node sees (rank 0 writes, all resume from it).
# trainer.batch_size is per process; the LR is scaled by GPUS x NNODES x batch / 64 (trainer.lr_scaling).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PYTHON=${PYTHON:-python}
stage=1
stop_stage=8
data=voxceleb
corpus_script=
# conf/experiment/<name>.yaml, trained in this order (the large-margin fine-tuning starts from the first)
systems="voxceleb_resnet34 voxceleb_resnet34_lm"
gpus=${GPUS:-1}       # training processes (GPUs) per node
nnodes=${NNODES:-1}   # training nodes
if [[ $nnodes -eq 1 ]]; then
  train_cmd=("$PYTHON" -m torch.distributed.run --standalone --nproc_per_node="$gpus")
else
  train_cmd=("$PYTHON" -m torch.distributed.run --nnodes="$nnodes" --node_rank="${NODE_RANK:?set NODE_RANK}"
             --nproc_per_node="$gpus" --master_addr="${MASTER_ADDR:?set MASTER_ADDR}"
             --master_port="${MASTER_PORT:-29500}")
fi
source recipes/common/parse_options.sh

run() { echo "+ $*" >&2; "$PYTHON" "$@"; }
in_range() { [[ $stage -le $1 && $stop_stage -ge $1 ]]; }

if in_range 1; then run scripts/convert.py data="$data" "${overrides[@]}"; fi
if in_range 2; then run scripts/prepare.py data="$data" "${overrides[@]}"; fi
if in_range 3; then run scripts/shard.py data="$data" "${overrides[@]}"; fi
if [[ $stop_stage -ge 4 ]]; then
  overrides=(embed.features=audio embed.train_max_per_speaker=20 "${overrides[@]}")  # the user's keys win
  stage=$(( stage > 4 ? stage : 4 ))
  source recipes/common/pipeline.sh
fi
