#!/usr/bin/env bash
# Two engine-bench binaries (e.g. before and after a change), alternated run by run on
# the same model file, so a drift of the machine's speed hits both alike:
#
#   bash bench/ab.sh OLD/engine-bench NEW/engine-bench [ROUNDS] [engine-bench options]
#
# Prints each round's median latency per configuration (dense, pruned) and the median
# of the per-round ratios new/old. Pass --model FILE to pin the model: the default model
# lives beside each binary's target folder, and two copies of the same bytes can stream
# at different speeds (their page-cache placement differs), so the script passes the
# new binary's default model to both unless --model is given.
set -euo pipefail
old=$1 new=$2
shift 2
rounds=6
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then rounds=$1; shift; fi
args=("$@")
if [[ " $* " != *" --model "* ]]; then
    model=$(dirname "$(dirname "$(readlink -f "$new")")")/engine-bench
    model=$(ls "$model"/*.toprt 2>/dev/null | head -1 || true)
    [[ -n "$model" ]] || { echo "run $new once first (it builds its default model), or pass --model" >&2; exit 1; }
    args+=(--model "$model")
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for r in $(seq "$rounds"); do
    for side in old new; do
        bin=$old; [[ $side == new ]] && bin=$new
        "$bin" --json "$tmp/$side-$r.json" "${args[@]}" >/dev/null 2>&1
    done
    echo "round $r/$rounds done" >&2
done
python3 - "$tmp" "$rounds" <<'PY'
import json, statistics, sys
d, rounds = sys.argv[1], int(sys.argv[2])
def medians(path):
    return [(r.get("name") or f"run {i}", r["median_ms"]) for i, r in enumerate(json.load(open(path))["runs"])]
rows = [(medians(f"{d}/old-{r}.json"), medians(f"{d}/new-{r}.json")) for r in range(1, rounds + 1)]
for i, (label, _) in enumerate(rows[0][0]):
    old = [o[i][1] for o, _ in rows]
    new = [n[i][1] for _, n in rows]
    ratio = statistics.median(n / o for n, o in zip(new, old))
    print(f"{label}: old {' '.join(f'{x:.1f}' for x in old)} ms | new {' '.join(f'{x:.1f}' for x in new)} ms | new/old {ratio:.3f}")
PY
