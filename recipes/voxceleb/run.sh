#!/usr/bin/env bash
# VoxCeleb: train on VoxCeleb2 dev, evaluate on the cleaned VoxCeleb1 O/E/H lists (wespeaker v2 recipe).
#   bash recipes/voxceleb/run.sh [--stage N] [--stop_stage M] [--systems "exp1 exp2"] [key=value ...]
# Before stage 2, download the corpora yourself (we never fetch data) and lay them out as conf/data/voxceleb.yaml
# expects: data/voxceleb/voxceleb2_dev/wav/<spk>/<video>/<nnnnn>.wav (16 kHz wav converted from the m4a files),
# data/voxceleb/voxceleb1/wav/..., and the three cleaned trial lists in data/voxceleb/voxceleb1/.
# Stages: (1 none: no corpus stage) 2 manifests, 3 fbank, 4 untrained baseline, 5 train, 6 embed, 7 score, 8 table.
# Note: stage 3 stores fbank of every utterance (about 270 GB in fp32 for VoxCeleb2 dev); on-the-fly features,
# sharded storage and MUSAN/RIR augmentation are the subject of the VoxCeleb-scale data pipeline work.
# Training (stage 5) runs under torchrun, one process per GPU (DDP, nccl): GPUS=2 bash recipes/voxceleb/run.sh
# --stage 5. Multi node: run the same command on every node with NNODES, NODE_RANK, MASTER_ADDR (node 0's
# address) and MASTER_PORT set; exp/ must be on a filesystem every node sees (rank 0 writes, all resume from it).
# trainer.batch_size is per process; the LR is scaled by GPUS x NNODES x batch / 64 (trainer.lr_scaling).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PYTHON=${PYTHON:-python}
stage=2
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
source recipes/common/pipeline.sh
