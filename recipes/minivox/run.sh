#!/usr/bin/env bash
# minivox: the built-in synthetic corpus, end to end on a CPU in minutes.
#   bash recipes/minivox/run.sh [--stage N] [--stop_stage M] [--systems "exp1 exp2"] [key=value ...]
# Stages: 1 synthesise corpus, 2 manifests, 3 fbank, 4 untrained baseline, 5 train, 6 embed, 7 score, 8 table.
# Outputs: data/minivox (corpus, manifests, features) and exp/minivox/<system> (checkpoints, logs, scores).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PYTHON=${PYTHON:-python}
stage=1
stop_stage=8
data=minivox
corpus_script=synth_minivox
systems="minivox_resnet10 minivox_revnet10_ii"   # conf/experiment/<name>.yaml, one trained system each
source recipes/common/parse_options.sh
source recipes/common/pipeline.sh
