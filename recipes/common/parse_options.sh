# Sourced by recipes: `--stage N`, `--stop_stage M` and `--systems "a b"` set shell variables; every other
# argument is collected in the array `overrides` and passed to each Hydra stage script.
overrides=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --stage) stage="$2"; shift 2 ;;
    --stop_stage) stop_stage="$2"; shift 2 ;;
    --systems) systems="$2"; shift 2 ;;
    -h|--help)
      echo "usage: $0 [--stage N] [--stop_stage M] [--systems \"exp1 exp2\"] [hydra overrides...]"
      exit 0 ;;
    --*) echo "$0: unknown option $1 (use --stage, --stop_stage, --systems, or key=value overrides)" >&2; exit 2 ;;
    *) overrides+=("$1"); shift ;;
  esac
done
