#!/usr/bin/env bash
# Step two of the README: builds everything and runs every test suite: unit and command-line
# tests (also under ASan/UBSan), the libFuzzer targets for a few seconds each, the integration
# tests that boot real guests under real KVM (through the nested harness when there is no
# /dev/kvm), and the benchmark's smoke run. Ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
if ! scripts/build.sh --asan; then
	echo "build failed"
	echo "0 passed, 1 failed"
	exit 1
fi
rc=0
meson test -C build --print-errorlogs || rc=1
meson test -C build-asan --suite unit --suite cli --print-errorlogs || rc=1
meson test -C build-fuzz --suite fuzz --print-errorlogs || rc=1
python3 tests/summarize.py build/meson-logs/testlog.json build-asan/meson-logs/testlog.json \
	build-fuzz/meson-logs/testlog.json || rc=1
exit $rc
