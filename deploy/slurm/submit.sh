#!/bin/sh
# Submits a seed sweep to Slurm: an array of PIECES tasks (indices 0..PIECES-1), then the merge
# once all have ended. Prints the two job ids.
#
#   SEEDS=0..1000000 PIECES=64 OUT_DIR=/shared/sweep-1 IMAGE=stormhold-sim.sif deploy/slurm/submit.sh
#
# A task that exits 75 (seeds skipped) or died with its node is run again by hand:
# sbatch --array=I --export=ALL deploy/slurm/sweep-piece.sbatch; one that exits 1-3 must not be.
set -eu
: "${SEEDS:?set SEEDS to the seed range, e.g. 0..1000000}"
: "${PIECES:?set PIECES to the number of pieces}"
: "${OUT_DIR:?set OUT_DIR to a directory every node shares}"
here=$(dirname "$0")
SBATCH=${SBATCH:-sbatch}
export SEEDS PIECES OUT_DIR
mkdir -p "$OUT_DIR"
array=$($SBATCH --parsable --array="0-$((PIECES - 1))" --export=ALL "$here/sweep-piece.sbatch")
array=${array%%;*}
merge=$($SBATCH --parsable --dependency="afterany:$array" --export=ALL "$here/merge.sbatch")
echo "sweep array job: $array ($PIECES tasks); merge job: ${merge%%;*}"
