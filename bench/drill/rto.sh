#!/usr/bin/env bash
# Measures a site's recovery with bulwark drill: RUNS short drills on
# scratch sites (each destroys its site and restores it from the latest
# backup), then prints the median and range of the RTO (disaster → first
# good inference, → full capacity), the restore time and the RPO, beside
# what bulwark plan predicts for the same site.
#
#   RUNS=5 bench/drill/rto.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${RUNS:-5}
scenario=${SCENARIO:-short}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/bulwark" ./cmd/bulwark
for i in $(seq 1 "$runs"); do
  "$work/bulwark" drill --scratch --scenario "$scenario" --work-dir "$work/run$i" \
    --out "$work/report$i" >/dev/null 2>"$work/run$i.log" || {
    echo "run $i failed: see its log"; tail -20 "$work/run$i.log"; exit 1; }
  echo "run $i done" >&2
done
python3 - "$work" "$runs" <<'PY'
import json, statistics, sys
work, runs = sys.argv[1], int(sys.argv[2])
reps = [json.load(open(f"{work}/report{i}/report.json")) for i in range(1, runs + 1)]
def row(name, vals):
    vals = sorted(vals)
    print(f"{name:38s} median {statistics.median(vals):8.2f}  min {vals[0]:8.2f}  max {vals[-1]:8.2f}")
rc = [r["recovery"] for r in reps]
from datetime import datetime
def ts(s): return datetime.fromisoformat(s.replace("Z", "+00:00"))
print(f"{runs} drills of scenario {reps[0]['scenario']}, seconds")
row("RTO: disaster -> first good inference", [x["rtoSeconds"] for x in rc])
row("RTO: disaster -> full capacity", [x["rtoFullSeconds"] for x in rc])
row("restore: disaster -> snapshot on disk", [(ts(x["restoredTime"]) - ts(x["disasterTime"])).total_seconds() for x in rc])
row("RPO: age of the restored backup", [x["rpoSeconds"] for x in rc])
row("failed requests in masked phases", [sum(p["failed"] for p in r["phases"] if p["masked"]) for r in reps])
plan = {p["name"]: p for p in reps[0]["plan"]}
print("\nbulwark plan for the same site (its default assumptions, this backup interval and restore size):")
for p in reps[0]["plan"]:
    meas = statistics.median([{q["name"]: q for q in r["plan"]}[p["name"]]["measured"] for r in reps])
    print(f"  {p['name']:48s} planned {p['planned']:8.2f}  measured median {meas:8.2f}")
PY
