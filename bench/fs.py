#!/usr/bin/env python3
"""File-system benchmark: vmm's virtio-fs (cache=auto and cache=none) beside QEMU microvm's
virtio-9p-device on the same host directory, and for reads vmm's virtio-blk with an erofs image
of the same tree; same kernel, initramfs, memory and vCPU count, measured in the same run,
alternating (the order reverses every run).

Each case boots one guest that mounts its file system at /mnt and runs fsbench.sh (written by
this script into the shared directory and the erofs image), which times each step by the guest's
clock (/proc/uptime, 10 ms resolution) and prints one short line on the console:

  untar   a deterministic tarball (generated files, uid 0) copied to the guest's tmpfs first,
          then extracted into the share and synced (shares only: erofs is read-only)
  stat    `find /mnt/tree | xargs stat` over a generated tree of empty files, after
          echo 3 > /proc/sys/vm/drop_caches
  write   dd of MIB 1 MiB blocks from /dev/zero with conv=fsync (shares only)
  read    the same file (erofs: a pseudo-random file of MIB) read with dd after drop_caches
  4k      guest/io-bench randread on that file: 4 KiB O_DIRECT reads at random aligned
          offsets, queue depth 1 and 16 (Linux AIO), for --io-seconds each

9p: QEMU `-fsdev local,security_model=none` and `-device virtio-9p-device`, mounted with
trans=virtio,version=9p2000.L,msize=512000 (the most Linux 6.1's virtio transport takes:
PAGE_SIZE * (VIRTQUEUE_NUM - 3); a bigger msize is clamped to it) and 9p's default cache=none.

Memory: vmm booted with one share that the guest mounts and leaves idle, against the same guest
without the share, interleaved A B B A; the resident KiB of vmm outside guest RAM (bench.py's
overhead_kib, from /proc/PID/smaps) and the process's whole Pss (smaps_rollup), sampled 1 s
after the guest says it is up.

The guest kernel needs 9P (QEMU's side) and PROC_SYSCTL (drop_caches): bench/fs-run.sh builds
the project's kernel with those added, used by both VMMs. Writes OUT/fs-results.json (each
boot's console in OUT/fs-console-*.log) and prints a table; exit 1 when a measurement could not
be taken (a failed boot is tried once more first), never because of speed.
"""
import argparse
import importlib.util
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from io import BytesIO

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench import overhead_kib, proc_kib  # noqa: E402


def load_io():
    """bench/io.py as a module (its name would shadow the standard io module as an import)."""
    spec = importlib.util.spec_from_file_location("iobench", os.path.join(HERE, "io.py"))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


iob = load_io()
TAG = "bench"

# The guest half. Times are centiseconds of /proc/uptime ($(cs)); a step that fails leaves its
# key out, io-bench's error line goes to the console instead; the other steps' error messages go
# to a file in the guest (the nest's console takes about 30 bytes/s), counted in e=, the first
# printed. One line at the end, "FSB k=v ...": u untar, s stat walk (n = paths stat printed),
# w write, r read (z = the file's MiB), q1/q16 IOPS, e error lines.
GUEST_SCRIPT = r"""#!/bin/sh
# fsbench.sh rw|ro MIB SECONDS: the guest half of bench/fs.py (generated; see there)
m=/mnt mode=$1 mib=$2 secs=$3 r=FSB
: >/tmp/err
cs() { read u x </proc/uptime; echo $((${u%.*} * 100 + 1${u#*.} - 100)); }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
f=$m/big
if [ "$mode" = rw ]; then
	f=$m/w/big
	if mkdir -p $m/w/x && busybox cp $m/tree.tar /tmp/t.tar && drop; then
		a=$(cs)
		busybox tar -xf /tmp/t.tar -C $m/w/x 2>>/tmp/err && sync && b=$(cs) && r="$r u=$((b - a))"
	fi
	busybox rm -f /tmp/t.tar
fi
drop
a=$(cs)
n=$(busybox find $m/tree 2>>/tmp/err | busybox xargs busybox stat -c %i 2>>/tmp/err | busybox wc -l)
b=$(cs)
r="$r s=$((b - a)) n=$n"
if [ "$mode" = rw ]; then
	a=$(cs)
	dd if=/dev/zero of=$f bs=1M count=$mib conv=fsync 2>/dev/null && b=$(cs) && r="$r w=$((b - a))"
fi
drop
a=$(cs)
dd if=$f of=/dev/null bs=1M 2>/dev/null && b=$(cs) && r="$r r=$((b - a))"
r="$r z=$(($(busybox stat -c %s $f) >> 20))"
for q in 1 16; do
	if o=$(io-bench randread $f $q $secs); then r="$r q$q=${o##*iops=}"; else echo "$o"; fi
done
e=$(busybox wc -l </tmp/err)
[ "$e" = 0 ] || busybox head -n 1 /tmp/err
echo "$r e=$e"
"""

CONFIGS = ("vmm", "vmm-none", "qemu-9p", "vmm-blk")
LABELS = {"vmm": "vmm virtio-fs auto", "vmm-none": "vmm virtio-fs none",
          "qemu-9p": "QEMU virtio-9p", "vmm-blk": "vmm blk erofs"}
# (key, label, unit, what the blk column has)
METRICS = (("untar_files_s", "untar, files/s", False),
           ("stat_files_s", "find | xargs stat, files/s", True),
           ("seq_write_mib_s", "sequential write, MiB/s", False),
           ("seq_read_mib_s", "sequential read, MiB/s", True),
           ("rand4k_qd1_iops", "4 KiB random read QD1, IOPS", True),
           ("rand4k_qd16_iops", "4 KiB random read QD16, IOPS", True))


def prepare(a, share):
    """The shared directory (tree/, tree.tar, fsbench.sh) and the erofs image of the same tree
    plus a MIB pseudo-random file; returns (image path, the stat walk's expected line count,
    the tarball's file count)."""
    shutil.rmtree(share, ignore_errors=True)
    os.makedirs(share)
    rng = random.Random(1)
    # The stat tree: empty files, per_dir in each directory.
    dirs = max(1, a.stat_files // 200)
    per = -(-a.stat_files // dirs)
    for d in range(dirs):
        p = os.path.join(share, "tree", f"d{d:03d}")
        os.makedirs(p)
        for i in range(per):
            open(os.path.join(p, f"f{i:04d}"), "wb").close()
    walk_lines = 1 + dirs + dirs * per
    # The tarball: tar_files files of pseudo-random sizes (mean tar_mib / tar_files), 50 per
    # directory, cut from one random buffer; fixed owner, modes and times.
    blob = rng.randbytes(4 << 20)
    mean = (a.tar_mib << 20) // a.tar_files
    with tarfile.open(os.path.join(share, "tree.tar"), "w", format=tarfile.GNU_FORMAT) as t:
        for i in range(a.tar_files):
            if i % 50 == 0:
                ti = tarfile.TarInfo(f"t{i // 50:03d}")
                ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1700000000
                t.addfile(ti)
            size = min(len(blob), rng.randrange(0, 2 * mean + 1))
            off = rng.randrange(0, len(blob) - size + 1)
            ti = tarfile.TarInfo(f"t{i // 50:03d}/file{i:05d}")
            ti.size, ti.mode, ti.mtime = size, 0o644, 1700000000
            t.addfile(ti, BytesIO(blob[off:off + size]))
    with open(os.path.join(share, "fsbench.sh"), "w") as f:
        f.write(GUEST_SCRIPT)
    # The erofs image: the same directory plus big (each MiB the random block, its index first).
    big = os.path.join(share, "big")
    with open(big, "wb") as f:
        chunk = bytearray(blob[:1 << 20])
        for i in range(a.seq_mib):
            chunk[:8] = i.to_bytes(8, "little")
            f.write(chunk)
    img = os.path.join(a.work, "fsbench.erofs")
    subprocess.run(["mkfs.erofs", "--quiet", "--all-root", "-T1700000000", img, share],
                   check=True, stdout=subprocess.DEVNULL)
    os.unlink(big)
    return img, walk_lines


def guest_line(mount):
    return f"mkdir -p /mnt && {mount} && sh /mnt/fsbench.sh"


def boot_case(a, which, share, img):
    """One boot of config `which`: returns (raw {key: centiseconds or count}, console)."""
    args = f"{a.seq_mib} {a.io_seconds}"
    if which in ("vmm", "vmm-none"):
        cache = "auto" if which == "vmm" else "none"
        cmd = iob.vmm_cmd(a, f"{guest_line(f'mount -t virtiofs {TAG} /mnt')} rw {args}",
                          ["--share", f"tag={TAG},path={share},cache={cache}"])
    elif which == "qemu-9p":
        opts = "trans=virtio,version=9p2000.L,msize=512000"
        cmd = iob.qemu_cmd(a, f"{guest_line(f'mount -t 9p -o {opts} {TAG} /mnt')} rw {args}",
                           ["-fsdev", f"local,id=f0,path={share},security_model=none",
                            "-device", f"virtio-9p-device,fsdev=f0,mount_tag={TAG}"])
    else:
        cmd = iob.vmm_cmd(a, f"{guest_line('mount -t erofs -o ro /dev/vda /mnt')} ro {args}",
                          ["--disk", f"path={img},ro"])
    _, out = iob.run_marked(cmd, timeout=a.case_timeout)
    shutil.rmtree(os.path.join(share, "w"), ignore_errors=True)
    raw = {}
    for line in out.splitlines():
        line = line.strip("\r ")
        if line.startswith("FSB"):
            for tok in line.split()[1:]:
                k, _, v = tok.partition("=")
                try:
                    raw[k] = float(v)
                except ValueError:
                    pass
    return raw, out


def first_error(out):
    """The guest's first error line (printed before its FSB line), or '?'."""
    lines = [x.strip("\r ") for x in out.splitlines()]
    for j, line in enumerate(lines):
        if line.startswith("FSB") and j > 0:
            return lines[j - 1]
    return "?"


def rates(a, which, raw, walk_lines):
    """The figures of one boot from its raw line; None where the step failed (or took under the
    clock's 10 ms, which no rate can be made of)."""
    def per_s(count, cs):
        return count / (cs / 100) if cs else None
    rw = which != "vmm-blk"
    ok_size = raw.get("z") == a.seq_mib
    r = {"stat_files_s": per_s(walk_lines, raw.get("s")) if raw.get("n") == walk_lines else None,
         "seq_read_mib_s": per_s(a.seq_mib, raw.get("r")) if ok_size else None,
         "rand4k_qd1_iops": raw.get("q1") or None, "rand4k_qd16_iops": raw.get("q16") or None}
    if rw:
        r["untar_files_s"] = per_s(a.tar_files, raw.get("u"))
        r["seq_write_mib_s"] = per_s(a.seq_mib, raw.get("w")) if ok_size else None
    return r


def sample_memory(a, share, with_share):
    """vmm's overhead outside guest RAM and whole Pss (KiB), 1 s after the guest is up, idle in
    a sleep (with the share mounted, or without one)."""
    if with_share:
        guest = f"mkdir -p /mnt && mount -t virtiofs {TAG} /mnt && echo MARK up; sleep 600"
        extra = ["--share", f"tag={TAG},path={share}"]
    else:
        guest, extra = "echo MARK up; sleep 600", []
    p = subprocess.Popen(iob.vmm_cmd(a, guest, extra), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    os.set_blocking(p.stdout.fileno(), False)
    t0, buf, got = time.monotonic(), b"", None
    while time.monotonic() - t0 < a.case_timeout and p.poll() is None:
        try:
            chunk = os.read(p.stdout.fileno(), 65536)
        except BlockingIOError:
            chunk = None
            time.sleep(0.02)
        if chunk:
            buf += chunk
        if b"MARK up" in buf:
            time.sleep(1)
            got = (overhead_kib(p.pid, a.memory << 20),
                   proc_kib(f"/proc/{p.pid}/smaps_rollup", "Pss:"))
            break
    p.kill()
    iob.reap(p)
    if got is None:
        print(f"fs-bench: memory sample ({'share' if with_share else 'no share'}) not taken; "
              f"console tail:\n{buf[-400:].decode(errors='replace')}", flush=True)
    return got


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vmm", required=True)
    ap.add_argument("--kernel", required=True, help="a guest kernel with 9P and PROC_SYSCTL")
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--memory", type=int, default=512)
    ap.add_argument("--tar-files", type=int, default=3000)
    ap.add_argument("--tar-mib", type=int, default=32, help="the tarball's data, MiB in all")
    ap.add_argument("--stat-files", type=int, default=20000)
    ap.add_argument("--seq-mib", type=int, default=256)
    ap.add_argument("--io-seconds", type=int, default=5)
    ap.add_argument("--memory-pairs", type=int, default=2,
                    help="pairs of idle boots (no share, one share) for the memory figure")
    ap.add_argument("--configs", default=",".join(CONFIGS),
                    help=f"comma-separated subset of {','.join(CONFIGS)}")
    ap.add_argument("--case-timeout", type=int, default=600)
    ap.add_argument("--work", default="/tmp")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    chosen = [c for c in a.configs.split(",") if c]
    for c in chosen:
        if c not in CONFIGS:
            ap.error(f"--configs: unknown '{c}' (known: {', '.join(CONFIGS)})")
    os.makedirs(a.out, exist_ok=True)
    nested = bool(os.environ.get("VMM_NESTED"))
    if nested:
        print("fs-bench: running inside the nested KVM harness (QEMU TCG outer guest): absolute "
              "figures are not hardware figures; compare the ratios", flush=True)
    share = os.path.join(a.work, "fsbench-share")
    t = time.monotonic()
    img, walk_lines = prepare(a, share)
    print(f"fs-bench: tree ({a.stat_files} files), tarball ({a.tar_files} files, {a.tar_mib} MiB) "
          f"and erofs image ready in {time.monotonic() - t:.1f} s", flush=True)

    samples = {c: {} for c in chosen}
    raws = {c: [] for c in chosen}
    failures = 0
    for i in range(a.runs):
        order = chosen if i % 2 == 0 else chosen[::-1]
        for which in order:
            r, out = None, ""
            for attempt in (1, 2):
                raw, out = boot_case(a, which, share, img)
                raws[which].append(raw)
                if raw.get("e"):
                    print(f"fs-bench: {which} run {i + 1}: {int(raw['e'])} error line(s) in the "
                          f"guest, the first: {first_error(out)}", flush=True)
                got = rates(a, which, raw, walk_lines)
                r = got if r is None else {k: got[k] if got[k] is not None else r[k] for k in got}
                with open(os.path.join(a.out, f"fs-console-{which}-{i + 1}-{attempt}.log"),
                          "w") as fo:
                    fo.write(out)
                if all(v is not None for v in r.values()):
                    break
                print(f"fs-bench: {which} run {i + 1} attempt {attempt}: not measured: "
                      f"{', '.join(k for k, v in r.items() if v is None)}; console tail:\n"
                      f"{out[-500:]}", flush=True)
            for k, v in r.items():
                samples[which].setdefault(k, []).append(v)
                failures += v is None
        print(f"fs-bench: run {i + 1}/{a.runs} done", flush=True)

    mem = {"none": [], "share": []}
    for i in range(a.memory_pairs):
        for with_share in ((False, True) if i % 2 == 0 else (True, False)):
            got = sample_memory(a, share, with_share)
            if got is None:
                got = sample_memory(a, share, with_share)
            if got is None:
                failures += 1
            mem["share" if with_share else "none"].append(got)
    shutil.rmtree(share, ignore_errors=True)
    os.unlink(img)

    res = {"environment": {"nested": nested,
                           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "rlimit_nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE))},
           "config": {"runs": a.runs, "memory_mib": a.memory, "tar_files": a.tar_files,
                      "tar_mib": a.tar_mib, "stat_files": a.stat_files,
                      "stat_walk_paths": walk_lines, "seq_mib": a.seq_mib,
                      "io_seconds": a.io_seconds, "kernel": a.kernel,
                      "qemu_9p": "security_model=none, msize=512000, cache=none"},
           "samples": samples, "raw_guest_lines": raws, "median": {}, "ratio_vmm_over_qemu": {}, "ratio_vmm_over_blk": {},
           "memory_kib": {}}
    col = lambda x: f"{x:>12.1f}" if x else f"{'-':>12}"  # noqa: E731
    print(f"\n{'median':<30}" + "".join(f"{LABELS[c][:19]:>20}" for c in chosen)
          + f"{'vmm/qemu':>10}{'vmm/blk':>9}")
    for key, label, _ in METRICS:
        m = {c: med(samples[c].get(key, [])) for c in chosen}
        res["median"][key] = m
        rq = m.get("vmm") / m["qemu-9p"] if m.get("vmm") and m.get("qemu-9p") else None
        rb = m.get("vmm") / m["vmm-blk"] if m.get("vmm") and m.get("vmm-blk") else None
        if rq:
            res["ratio_vmm_over_qemu"][key] = rq
        if rb:
            res["ratio_vmm_over_blk"][key] = rb
        print(f"{label:<30}" + "".join(f"{col(m[c]):>20}" for c in chosen)
              + (f"{rq:10.2f}" if rq else f"{'-':>10}") + (f"{rb:9.2f}" if rb else f"{'-':>9}"))

    def mem_med(which, idx):
        return med([s[idx] for s in mem[which] if s is not None])
    for idx, key in ((0, "overhead_outside_guest_ram"), (1, "pss_total")):
        n, s = mem_med("none", idx), mem_med("share", idx)
        res["memory_kib"][key] = {"no_share": n, "one_idle_share": s,
                                  "difference": s - n if n is not None and s is not None else None}
    res["memory_kib"]["samples"] = mem
    d = res["memory_kib"]["overhead_outside_guest_ram"]["difference"]
    dp = res["memory_kib"]["pss_total"]["difference"]
    print(f"\nvmm memory, one idle mounted share minus none (median of {a.memory_pairs}): "
          f"outside guest RAM {d if d is not None else '-'} KiB, whole Pss "
          f"{dp if dp is not None else '-'} KiB")
    rq = res["ratio_vmm_over_qemu"]
    print("targets (not gates): metadata >= 2x 9p: untar "
          f"{rq.get('untar_files_s', 0):.2f}x, stat {rq.get('stat_files_s', 0):.2f}x; "
          f"sequential >= 9p: write {rq.get('seq_write_mib_s', 0):.2f}x, read "
          f"{rq.get('seq_read_mib_s', 0):.2f}x; idle share < 1024 KiB: "
          f"{d if d is not None else '-'} KiB")
    with open(os.path.join(a.out, "fs-results.json"), "w") as fo:
        json.dump(res, fo, indent=2)
    print(f"fs-bench: results in {a.out}/fs-results.json")
    if failures:
        print(f"fs-bench: {failures} measurement(s) not taken (see above)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
