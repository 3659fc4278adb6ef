#!/usr/bin/env bash
# The bridge's and the rule engine's CPU by event-loop callback during phase 4 of bench/e2e (1,000 readings/s):
#   bash bench/looptime/run.sh [seconds]        (default 10; the whole e2e short run takes about 90 s)
# Prints, per process, each callback's runs and CPU (µs) per second, most first (bench/looptime/sitecustomize.py).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
seconds=${1:-10}
out=$(mktemp -d)
export VIGIL_LOOPTIME_DIR=$out
PYTHONPATH="$PWD/bench/looptime" .venv/bin/python -u bench/e2e/run.py >"$out/e2e.txt" 2>&1 &
bench=$!
until grep -q "CPU while draining" "$out/e2e.txt"; do
    kill -0 $bench 2>/dev/null || { cat "$out/e2e.txt"; exit 1; }
    sleep 0.2
done
sleep 2  # into phase 4
pids=$(pgrep -f "vigil (bridge|alerting) --broker")
kill -USR2 $pids
sleep "$seconds"
kill -USR2 $pids
wait $bench
cat "$out/e2e.txt"
.venv/bin/python - "$out" "$seconds" <<'EOF'
import collections, glob, json, sys
out, seconds = sys.argv[1], float(sys.argv[2])
dumps = collections.defaultdict(list)
for path in sorted(glob.glob(f"{out}/looptime.*.json")):
    dumps[path.split(".")[-3]].append(path)
for pid, (first, last) in ((p, sorted(d)[:2]) for p, d in dumps.items() if len(d) >= 2):
    a, b = (collections.Counter(json.load(open(x))) for x in (first, last))
    print(f"pid {pid}, per second (µs of CPU, then runs):")
    for key, value in (b - a).most_common(30):
        print(f"  {value / seconds:10.1f}  {key}")
EOF
rm -rf "$out"
