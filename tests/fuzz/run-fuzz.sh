#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time from its seed corpus, which it never modifies:
# new inputs go to a temporary directory (removed afterwards), crash inputs to ARTIFACT_DIR.
# Usage: run-fuzz.sh FUZZER SEED_DIR ARTIFACT_DIR SECONDS
set -euo pipefail
fuzzer=$1 seeds=$2 artifacts=$3 seconds=$4
[ -d "$seeds" ] || { echo "run-fuzz.sh: no seed corpus at $seeds" >&2; exit 1; }
mkdir -p "$artifacts"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The first directory takes new inputs; the seed directory after it is only read.
"$fuzzer" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 \
	-artifact_prefix="$artifacts/" "$work" "$seeds"
