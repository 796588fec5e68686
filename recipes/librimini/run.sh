#!/usr/bin/env bash
# librimini: real LibriSpeech speech (251 training speakers, 10 test speakers, 4,950 trials).
#   bash recipes/librimini/run.sh [--stage N] [--stop_stage M] [--systems "exp1 exp2"] [key=value ...]
# Stages: 1 import ../shared/data/librispeech_mini (data.source_dir), 2 manifests, 3 fbank, 4 untrained baseline,
# 5 train, 6 embed, 7 score, 8 table.
# Outputs: data/librimini (corpus, manifests, features) and exp/librimini/<system> (checkpoints, logs, scores).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PYTHON=${PYTHON:-python}
stage=1
stop_stage=8
data=librimini
corpus_script=import_librimini
systems="librimini_resnet10"   # conf/experiment/<name>.yaml, one trained system each
source recipes/common/parse_options.sh
source recipes/common/pipeline.sh
