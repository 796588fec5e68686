#!/usr/bin/env bash
# The librimini evidence table: every system of $systems trained, embedded and scored once per seed of $seeds,
# then mean ± sd over seeds, speaker-level bootstrap intervals, docs/results/librimini.json and README's block.
#   bash recipes/librimini/table.sh [--seeds "1 2 3"] [--systems "exp1 exp2"] [--jobs 2] [--threads 1] [--rerun]
#                                   [key=value ...]
# Each finished run leaves its record in docs/results/librimini_runs/seed<S>/<system>.json (figures, costs,
# commit, machine, bootstrap replicates; kept in git): a run whose record exists is not run again (--rerun runs
# it; use it after changing the overrides or code that changes training), so the table can be grown over
# several sessions or machines; the table is made from the records alone.
# Each (seed, system) runs stages 5-7 of recipes/librimini/run.sh in exp/librimini_seeds/seed<S>/ (stages are
# idempotent: an interrupted table resumes where it stopped); --jobs of them at a time, each with --threads
# threads (the default, 2 jobs x 1 thread, keeps both cores of a 2-core machine busy; the samples/s column is
# then per single-threaded process). Logs: exp/librimini_seeds/logs/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PYTHON=${PYTHON:-python}
seeds="1 2 3"
jobs=2
threads=1
root=exp/librimini_seeds
records=docs/results/librimini_runs
rerun=0
systems="librimini_resnet10 librimini_resnet10_sgd8bit librimini_resnet10_adam librimini_resnet10_adam8bit
  librimini_revnet10_ii librimini_revnet10_ii_sgd8bit librimini_revnet10_ii_adam8bit
  librimini_revnet10_i librimini_revnet10_i_sgd8bit librimini_revnet10_i_adam8bit"
overrides=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seeds) seeds="$2"; shift 2 ;;
    --systems) systems="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --rerun) rerun=1; shift ;;
    -h|--help) sed -n 2,8p "$0"; exit 0 ;;
    --*) echo "$0: unknown option $1 (use --seeds, --systems, --jobs, --threads, or key=value overrides)" >&2; exit 2 ;;
    *) overrides+=("$1"); shift ;;
  esac
done
start=$SECONDS
mkdir -p "$root/logs"
PYTHON=$PYTHON bash recipes/librimini/run.sh --stage 1 --stop_stage 3 progress=false "${overrides[@]}"

system_name() { $PYTHON scripts/train.py experiment="$1" --cfg job --package system | tail -n 1; }

one() {  # seed experiment
  local log="$root/logs/seed$1_$2.log" name
  name=$(system_name "$2")
  if [[ $rerun == 0 && -f $records/seed$1/$name.json ]]; then
    echo "kept: seed $1 $2 ($records/seed$1/$name.json)"; return 0
  fi
  if OMP_NUM_THREADS=$threads PYTHON=$PYTHON bash recipes/librimini/run.sh --stage 5 --stop_stage 7 --systems "$2" \
      seed="$1" exp_root="$root/seed$1" progress=false "${overrides[@]}" > "$log" 2>&1 \
    && $PYTHON scripts/seed_table.py "$root/seed$1" --data librimini --systems "$name" --trial-list librimini_all \
      --test-manifest data/librimini/manifests/test/utterances.tsv --write-records "$records" >> "$log" 2>&1; then
    echo "done: seed $1 $2 ($((SECONDS - start)) s since start)"
  else
    echo "FAILED: seed $1 $2, see $log" >&2; return 1
  fi
}
failed=0
for s in $seeds; do  # seed-major: a stopped table already holds whole seeds
  for e in $systems; do
    while [[ $(jobs -rp | wc -l) -ge $jobs ]]; do wait -n || failed=1; done
    one "$s" "$e" &
  done
done
while [[ $(jobs -rp | wc -l) -gt 0 ]]; do wait -n || failed=1; done
[[ $failed == 0 ]] || { echo "$0: some runs failed (logs in $root/logs); the table is not written" >&2; exit 1; }

names=()
for e in $systems; do names+=("$(system_name "$e")"); done
minutes=$(( (SECONDS - start + 59) / 60 ))
$PYTHON scripts/seed_table.py --from-records "$records" --data librimini --systems "$(IFS=,; echo "${names[*]}")" \
  --trial-list librimini_all --json docs/results/librimini.json --readme README.md --block librimini_seeds \
  --note "Made by \`make librimini-table\` (recipes/librimini/table.sh, $jobs jobs x $threads thread; this invocation $minutes min, runs kept from earlier ones not counted)."
