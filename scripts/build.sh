#!/usr/bin/env bash
# Configures and builds vmm (build/) and, with --asan, the sanitizer build of the unit tests
# (build-asan/) and the clang build with the libFuzzer targets (build-fuzz/). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
setup() { # setup DIR ARGS...
	local dir=$1
	shift
	local log
	log=$(mktemp)
	# Quiet when it works; meson's and ninja's own words when it does not.
	if [ -f "$dir/build.ninja" ]; then
		meson setup --reconfigure "$dir" "$@" >"$log" 2>&1 || { tail -n 20 "$log"; rm -f "$log"; return 1; }
	else
		meson setup "$dir" "$@" >"$log" 2>&1 || { tail -n 20 "$log"; rm -f "$log"; return 1; }
	fi
	ninja -C "$dir" >"$log" 2>&1 || { tail -n 40 "$log"; rm -f "$log"; return 1; }
	rm -f "$log"
}
setup build
if [ "${1:-}" = "--asan" ]; then
	# The static guest init cannot link with the sanitizer runtimes: the ASan build has no guest.
	setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dguest=false
	# libFuzzer targets need clang (Debian's, with libclang-rt); this also proves clang builds.
	CC=clang setup build-fuzz -Dfuzz=true -Db_lundef=false -Dguest=false
fi
