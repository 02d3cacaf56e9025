#!/usr/bin/env python3
"""Counts test results across meson test logs: each TAP line is one result, and a test that
printed no TAP counts once by meson's verdict. Prints one line per failure and ends with
'N passed, N failed'. A failed test that printed no TAP failure line of its own (a benchmark, a
crash) also gets the last lines of its output, so that a log which keeps only its end still says
why. Exits 1 if anything failed or nothing ran."""
import json
import re
import sys

passed = failed = skipped = 0
TAIL_LINES = 25


def tail(out):
    for l in out.rstrip("\n").splitlines()[-TAIL_LINES:]:
        print(f"  | {l}")

for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        print(f"summarize: cannot read {path}: {e.strerror}")
        failed += 1
        continue
    for line in lines:
        t = json.loads(line)
        name = f"{path.split('/')[0]}:{t['name']}"
        out = (t.get("stdout") or "") + (t.get("stderr") or "")
        oks = re.findall(r"^ok \d+.*$", out, re.M)
        bads = re.findall(r"^not ok \d+.*$", out, re.M)
        skips = [l for l in oks if "# SKIP" in l.upper()]
        if oks or bads:
            passed += len(oks) - len(skips)
            skipped += len(skips)
            failed += len(bads)
            for b in bads:
                print(f"FAILED {name}: {b}")
            if not bads and t["result"] not in ("OK", "EXPECTEDFAIL", "SKIP"):
                failed += 1
                print(f"FAILED {name}: {t['result']}")
                tail(out)
        elif t["result"] == "SKIP":
            skipped += 1
        elif t["result"] in ("OK", "EXPECTEDFAIL"):
            passed += 1
        else:
            failed += 1
            print(f"FAILED {name}: {t['result']}")
            tail(out)
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed or passed == 0 else 0)
