#!/bin/sh
# wfx with a state directory of its own for each call, so that its model cache has never
# seen the file: what bench/peers.py times as "a file never seen before" ($WFX_REAL: wfx).
WFX_STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/wfx-never-seen.XXXXXX") exec "$WFX_REAL" "$@"
