#!/usr/bin/env bash
# Configures and builds vmm (build/) and, with --asan, the sanitizer build of the unit tests
# (build-asan/) and the clang build with the libFuzzer targets (build-fuzz/). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
setup() { # setup DIR ARGS...
	local dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		meson setup --reconfigure "$dir" "$@" >/dev/null
	else
		meson setup "$dir" "$@" >/dev/null
	fi
	ninja -C "$dir" >/dev/null
}
setup build
if [ "${1:-}" = "--asan" ]; then
	# The static guest init cannot link with the sanitizer runtimes: the ASan build has no guest.
	setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dguest=false
	# libFuzzer targets need clang (Debian's, with libclang-rt); this also proves clang builds.
	CC=clang setup build-fuzz -Dfuzz=true -Db_lundef=false -Dguest=false
fi
