#!/bin/sh
# One piece of a seed sweep, for any batch engine: piece I of PIECES over SEEDS, where I is
# read by stormhold-sim from the variable named by INDEX_VAR (JOB_COMPLETION_INDEX on a
# Kubernetes Indexed Job, SLURM_ARRAY_TASK_ID on a Slurm array). The piece's document goes to
# $OUT_DIR/piece-I-of-PIECES.json; the exit code is stormhold-sim's (README: "Sweeping on a
# cluster"): 0 clean, 1-3 findings (do not retry), 64 bad input, 75 seeds skipped (retry).
#
#   SEEDS       seed range A..B (required)
#   PIECES      number of pieces K (required)
#   INDEX_VAR   name of the variable holding this piece's index, 0..K-1 (required)
#   OUT_DIR     shared directory for the documents (default /results)
#   WORKLOAD    --workload (default kernel)
#   SWEEP_ARGS  further sweep options, e.g. "--ops 300 --check-determinism-every 100"
#   STORMHOLD_SIM  the binary (default stormhold-sim on PATH)
set -eu
: "${SEEDS:?set SEEDS to the seed range, e.g. 0..1000000}"
: "${PIECES:?set PIECES to the number of pieces}"
: "${INDEX_VAR:?set INDEX_VAR to the name of the index variable, e.g. JOB_COMPLETION_INDEX}"
OUT_DIR=${OUT_DIR:-/results}
WORKLOAD=${WORKLOAD:-kernel}
SIM=${STORMHOLD_SIM:-stormhold-sim}
if ! index=$(printenv "$INDEX_VAR"); then
    echo "sweep-piece: $INDEX_VAR is not set" >&2
    exit 64
fi
mkdir -p "$OUT_DIR"
# SWEEP_ARGS is split into words on purpose.
# shellcheck disable=SC2086
exec "$SIM" sweep --seeds "$SEEDS" --workload "$WORKLOAD" \
    --shard-from-env "$INDEX_VAR/$PIECES" \
    --json "$OUT_DIR/piece-$index-of-$PIECES.json" ${SWEEP_ARGS:-}
