#!/usr/bin/env bash
# Does a proxy reward Lion over what the searches found? Tune tuned Lion's rivals on one
# proxy with the same grid and seeds (scripts/proxy_tuned_check.py: proxy_tasks.tuned, 3
# tuning seeds, the growing grid, test on 5 other seeds): AdamW, the single-beta ablation,
# and every search winner given as a program file. Then one paired table against Lion
# (scripts/proxy_paired.py). Two programs at a time (2 cores); a finished program's JSON
# is kept, so a killed screen resumes.
#
#   scripts/screen_proxy.sh OUT_DIR TASK [VARIANT] -- PROGRAM...
#   scripts/screen_proxy.sh docs/proxy_design_data/screen_b128 markov_b128 "batch_size=128" -- \
#       lion adamw ablation_0.9 docs/rediscovery_v[234]/seed*.txt
#
# VARIANT (markov_lm_a's keys to override) registers TASK for the screen only; without it
# TASK must be registered. EVAL_SEEDS="3 4 5 6 7 8 9 10 11 12" in the environment sets the
# test seeds (default 3-7).
set -euo pipefail
if [[ $# -lt 4 ]]; then
  sed -n '2,16p' "$0" >&2
  exit 2
fi
out=$1 task=$2
shift 2
variant=""
if [[ $1 != "--" ]]; then
  variant=$1
  shift
fi
[[ $1 == "--" ]] || { echo "screen_proxy.sh: expected -- before the programs" >&2; exit 2; }
shift
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)

json_name() { # lion -> lion.json; docs/rediscovery_v4/seed1.txt -> rediscovery_v4_seed1.json
  local name=${1%.txt}
  name=${name#docs/}
  echo "${name//\//_}.json"
}

run_one() {
  local program=$1 target
  target="$out/$(json_name "$program")"
  [[ -s $target ]] && return 0
  local args=(--task "$task" --program "$program" --out "$target.tmp")
  [[ -n $variant ]] && args+=(--variant "$variant")
  # shellcheck disable=SC2206 # the seeds are words
  [[ -n ${EVAL_SEEDS:-} ]] && args+=(--eval-seeds ${EVAL_SEEDS})
  python "$here/proxy_tuned_check.py" "${args[@]}" >"$target.log" 2>&1 && mv "$target.tmp" "$target" && rm "$target.log"
}
for program in "$@"; do
  # a new program starts as soon as either running one ends (wait -n), not after the first
  while (($(jobs -rp | wc -l) >= 2)); do wait -n || echo "failed: see $out/*.log" >&2; done
  run_one "$program" &
done
while (($(jobs -rp | wc -l) > 0)); do wait -n || echo "failed: see $out/*.log" >&2; done
python "$here/proxy_paired.py" "$out"/*.json --reference lion | tee "$out/table.md"
