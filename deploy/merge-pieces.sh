#!/bin/sh
# The final step of a sweep on a batch engine: merge the PIECES documents in OUT_DIR into
# $OUT_DIR/merged.json and print the summary. Exits 64 (naming the missing indices, and
# stormhold-sim listing the uncovered seeds) when a piece is missing or the pieces disagree;
# else stormhold-sim merge's exit code (0 clean, 1-3 findings).
#
#   PIECES      number of pieces K (required)
#   OUT_DIR     shared directory of the documents (default /results)
#   STORMHOLD_SIM  the binary (default stormhold-sim on PATH)
set -eu
: "${PIECES:?set PIECES to the number of pieces}"
OUT_DIR=${OUT_DIR:-/results}
SIM=${STORMHOLD_SIM:-stormhold-sim}
missing=""
set --
i=0
while [ "$i" -lt "$PIECES" ]; do
    piece="$OUT_DIR/piece-$i-of-$PIECES.json"
    if [ -e "$piece" ]; then
        set -- "$@" "$piece"
    else
        missing="$missing $i"
    fi
    i=$((i + 1))
done
if [ -n "$missing" ]; then
    echo "merge-pieces: no document from piece(s)$missing of $PIECES in $OUT_DIR: run those indices again" >&2
    if [ "$#" -eq 0 ]; then
        exit 64
    fi
fi
exec "$SIM" merge "$@" --json "$OUT_DIR/merged.json"
