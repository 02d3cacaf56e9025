#!/usr/bin/env python3
"""Container-engine benchmark: podman 4 (with conmon) driving vmm-oci (`--runtime vmm`, one
micro-VM per container) beside the same podman driving crun (namespaces and cgroups), measured
in the same run, alternating (the order reverses every run), with the same image (the busybox
tree, `podman import`ed), the same flags (--network none, --memory MIB) and the same storage
(vfs on a tmpfs).

  run --rm     wall time of `podman run --rm IMG true`, from spawn to exit
  exec         `podman run -d IMG sleep 600`, then `podman exec CTR true`: the time from the run's
               spawn to the exec's return, and the exec alone (the run -d alone beside them);
               then the container's host memory (below), then `podman rm -f -t 0 CTR`, timed
  K at once    K `podman run -d IMG sleep 600` spawned at once: the time until the last returned
               (podman returns once the runtime's start did), and until one `podman ps
               --filter status=running` lists all K (podman asks the runtime's state); the
               memory of each; then one `podman rm -f -t 0` of all K, timed
  memory       per running container, the Pss (/proc/PID/smaps_rollup: a page shared by n
               processes counts 1/n in each) of its processes on the host: .State.Pid from
               podman inspect and its descendants (vmm's process for vmm-oci; the container's
               processes for crun), plus its conmon's (.State.ConmonPid). For vmm, the guest's
               RAM setting (vm.json's memory_mib, from --memory) and what the guest touched:
               the resident KiB of vmm's guest-RAM mappings (those of at least the guest's size
               or marked MADV_DONTDUMP, as bench.py's overhead_kib reads them). Sampled 1 s
               after the container is up (after the exec, alone; or with all K running).
               Kernel memory (KVM's structures, namespaces, cgroups) is in neither figure.

Needs root. Where / is read-only (the nested harness), a tmpfs goes over /run and cgroup2 is
mounted at /sys/fs/cgroup when nothing is, as tests/integration/engine-tests.sh does. Writes
OUT/oci-results.json and prints a table with the ratio vmm/crun; each case that failed is tried
once more; exit 1 when a figure could not be taken, never because of speed.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

IMG = "localhost/ocibench-bb"
RUNTIMES = ("vmm", "crun")
# (key, label): times in seconds, medians over the runs
TIMES = (("run_rm_s", "podman run --rm IMG true"),
         ("run_d_exec_s", "run -d sleep, then exec true: to exec's return"),
         ("exec_s", "  podman exec CTR true alone"),
         ("run_d_s", "  podman run -d alone"),
         ("rm_s", "podman rm -f -t 0 (one running)"),
         ("par_returned_s", "K run -d at once: all returned"),
         ("par_ps_s", "K run -d at once: podman ps shows all running"),
         ("par_rm_s", "K at once: one rm -f -t 0 of all"))
MEMS = (("ctr_pss_kib", "container processes' Pss"),
        ("conmon_pss_kib", "conmon's Pss"),
        ("total_pss_kib", "per container (processes + conmon)"),
        ("par_total_pss_kib", "per container, K running at once"))


class Podman:
    def __init__(self, a, work):
        self.base = ["podman", "--storage-driver", "vfs", "--root", os.path.join(work, "storage"),
                     "--runroot", os.path.join(work, "runroot"),
                     "--tmpdir", os.path.join(work, "libpod")]
        self.timeout = a.command_timeout

    def cmd(self, rt, *args):
        return self.base + ["--runtime", rt] + list(args)

    def __call__(self, rt, *args, stdin=None):
        """Runs podman; returns (rc, stdout, stderr, seconds from spawn to exit)."""
        t0 = time.monotonic()
        try:
            p = subprocess.run(self.cmd(rt, *args), input=stdin,
                               stdin=None if stdin is not None else subprocess.DEVNULL,
                               capture_output=True, timeout=self.timeout)
            rc, out, err = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as ex:
            rc, out, err = 124, ex.stdout or b"", (ex.stderr or b"") + b" (timed out)"
        return (rc, out.decode(errors="replace"), err.decode(errors="replace"),
                time.monotonic() - t0)


def say(msg):
    print(f"oci-bench: {msg}", flush=True)


def tail(s, n=300):
    s = s.strip()
    return s[-n:].replace("\n", " | ")


def prepare_host(a, work):
    """The engines' places: /run writable (a tmpfs over a read-only one), a cgroup2 tree, the
    containers.conf naming both runtimes; the busybox tree imported. Returns the podman."""
    if not os.access("/run", os.W_OK):
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run"], check=True)
    if subprocess.run(["mountpoint", "-q", "/sys/fs/cgroup"]).returncode != 0:
        subprocess.run(["mount", "-t", "cgroup2", "none", "/sys/fs/cgroup"])
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    conf = os.path.join(work, "containers.conf")
    with open(conf, "w") as f:
        f.write(f"""[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime_supports_json = ["crun", "runc", "vmm"]
events_logger = "file"
cgroup_manager = "cgroupfs"
[engine.runtimes]
vmm = ["{a.oci}"]
crun = ["{a.crun}"]
""")
    os.environ.update(CONTAINERS_CONF=conf, TMPDIR="/tmp", VMM_KERNEL=a.kernel)
    pm = Podman(a, work)
    tree = os.path.join(work, "bbtree")
    subprocess.run(["fsck.erofs", f"--extract={tree}", a.busybox_erofs], check=True,
                   stdout=subprocess.DEVNULL)
    tar = subprocess.run(["tar", "-C", tree, "-c", "."], check=True, capture_output=True).stdout
    rc, _, err, _ = pm("crun", "import", "-", IMG, stdin=tar)
    if rc:
        raise RuntimeError(f"podman import of the busybox tree failed: {tail(err)}")
    shutil.rmtree(tree)
    return pm


def run_flags(a):
    return ["--network", "none", "--memory", f"{a.memory}m"]


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree_of(pid, kids):
    out, pending = [], [pid]
    while pending:
        p = pending.pop()
        out.append(p)
        pending.extend(kids.get(p, []))
    return out


def rollup(pid, key="Pss:"):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def guest_ram_kib(pid, guest_bytes):
    """(Rss, Pss) KiB of vmm's guest-RAM mappings: those of at least the guest's size and those
    marked MADV_DONTDUMP ('dd'), as all of vmm's guest memory is."""
    rss = pss = 0
    size = m_rss = m_pss = 0
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                lo, hi = line.split()[0].split("-")
                size, m_rss, m_pss = int(hi, 16) - int(lo, 16), 0, 0
            elif line.startswith("Rss:"):
                m_rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                m_pss = int(line.split()[1])
            elif line.startswith("VmFlags:"):
                if size >= guest_bytes or "dd" in line.split()[1:]:
                    rss += m_rss
                    pss += m_pss
    return rss, pss


def guest_mib_setting(cid):
    """memory_mib of the VM vmm-oci made for container cid (its vm.json), or None."""
    for root in ("/run/vmm-oci",):
        try:
            with open(os.path.join(root, cid, "vm.json")) as f:
                return json.load(f).get("memory_mib")
        except (OSError, ValueError):
            pass
    return None


def memory_of(pm, rt, name, kids=None):
    """The host memory of running container name: a dict of KiB figures, or None with a reason."""
    rc, out, err, _ = pm(rt, "inspect", "-f", "{{.State.Pid}} {{.State.ConmonPid}} {{.Id}}", name)
    if rc:
        return None, f"podman inspect: {tail(err)}"
    try:
        pid, conmon, cid = out.split()
        pid, conmon = int(pid), int(conmon)
    except ValueError:
        return None, f"podman inspect printed '{tail(out)}'"
    if pid <= 0:
        return None, f"podman inspect: {name} has no pid ({out.strip()})"
    kids = kids if kids is not None else children_map()
    procs = tree_of(pid, kids)
    vals = [rollup(p) for p in procs]
    cm = rollup(conmon)
    if vals[0] is None or cm is None:
        return None, f"no smaps_rollup for pid {pid} or conmon {conmon}"
    m = {"pids": procs, "conmon_pid": conmon, "ctr_pss_kib": sum(v or 0 for v in vals),
         "ctr_rss_kib": sum(rollup(p, "Rss:") or 0 for p in procs), "conmon_pss_kib": cm}
    m["total_pss_kib"] = m["ctr_pss_kib"] + cm
    if rt == "vmm":
        mib = guest_mib_setting(cid)
        m["guest_ram_mib"] = mib
        if mib:
            m["guest_touched_rss_kib"], m["guest_touched_pss_kib"] = \
                guest_ram_kib(pid, mib << 20)
            m["vmm_outside_guest_rss_kib"] = \
                (rollup(pid, "Rss:") or 0) - m["guest_touched_rss_kib"]
    return m, None


def remove(pm, rt, names):
    pm(rt, "rm", "-f", "-t", "0", *names)


def case_run_rm(a, pm, rt, tag):
    rc, _, err, s = pm(rt, "run", "--rm", *run_flags(a), IMG, "true")
    if rc:
        return None, f"podman run --rm exited {rc}: {tail(err)}"
    return {"run_rm_s": s}, None


def case_exec(a, pm, rt, tag):
    name = f"ob-{rt}-{tag}"
    rc, _, err, t_run = pm(rt, "run", "-d", "--name", name, *run_flags(a), IMG, "sleep", "600")
    if rc:
        remove(pm, rt, [name])
        return None, f"podman run -d exited {rc}: {tail(err)}"
    rc, _, err, t_exec = pm(rt, "exec", name, "true")
    if rc:
        remove(pm, rt, [name])
        return None, f"podman exec exited {rc}: {tail(err)}"
    time.sleep(1)
    mem, why = memory_of(pm, rt, name)
    rc, _, err, t_rm = pm(rt, "rm", "-f", "-t", "0", name)
    if rc:
        remove(pm, rt, [name])
        return None, f"podman rm -f exited {rc}: {tail(err)}"
    if mem is None:
        return None, f"memory of {name}: {why}"
    r = {"run_d_exec_s": t_run + t_exec, "exec_s": t_exec, "run_d_s": t_run, "rm_s": t_rm,
         "memory": mem}
    for k in ("ctr_pss_kib", "conmon_pss_kib", "total_pss_kib"):
        r[k] = mem[k]
    return r, None


def case_parallel(a, pm, rt, tag):
    names = [f"ob-par-{rt}-{tag}-{j}" for j in range(a.parallel)]
    t0 = time.monotonic()
    procs = [subprocess.Popen(pm.cmd(rt, "run", "-d", "--name", n, *run_flags(a), IMG, "sleep",
                                     "600"),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for n in names]
    ends, errs = [None] * len(procs), []
    while any(e is None for e in ends) and time.monotonic() - t0 < a.command_timeout:
        for j, p in enumerate(procs):
            if ends[j] is None and p.poll() is not None:
                ends[j] = time.monotonic()
        time.sleep(0.01)
    for j, p in enumerate(procs):
        if ends[j] is None:
            p.kill()
        err = p.communicate()[1].decode(errors="replace")
        if p.returncode:
            errs.append(f"{names[j]}: exit {p.returncode}: {tail(err, 200)}")
    if errs:
        remove(pm, rt, names)
        return None, f"{len(errs)} of {len(names)} run -d failed; " + "; ".join(errs[:2])
    t_returned = max(ends) - t0
    t_ps, listed = None, set()
    while time.monotonic() - t0 < a.command_timeout:
        rc, out, err, _ = pm(rt, "ps", "--filter", "status=running", "--format", "{{.Names}}")
        listed = set(out.split())
        if rc == 0 and all(n in listed for n in names):
            t_ps = time.monotonic() - t0
            break
        time.sleep(0.2)
    if t_ps is None:
        remove(pm, rt, names)
        return None, f"podman ps never listed all {len(names)} running (it listed {len(listed)})"
    time.sleep(1)
    kids = children_map()
    mems, why = [], None
    for n in names:
        m, why = memory_of(pm, rt, n, kids)
        if m is None:
            break
        mems.append(m)
    rc, _, err, t_rm = pm(rt, "rm", "-f", "-t", "0", *names)
    if rc:
        remove(pm, rt, names)
        return None, f"podman rm -f of {len(names)} exited {rc}: {tail(err)}"
    if why:
        return None, f"memory with {len(names)} running: {why}"
    return {"par_returned_s": t_returned, "par_ps_s": t_ps, "par_rm_s": t_rm,
            "par_total_pss_kib": statistics.mean(m["total_pss_kib"] for m in mems),
            "par_ctr_pss_kib": statistics.mean(m["ctr_pss_kib"] for m in mems),
            "par_guest_touched_rss_kib":
                statistics.mean(m["guest_touched_rss_kib"] for m in mems)
                if rt == "vmm" and all("guest_touched_rss_kib" in m for m in mems) else None,
            "memory": mems}, None


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--oci", required=True, help="vmm-oci")
    ap.add_argument("--kernel", required=True, help="the guest kernel (VMM_KERNEL for vmm-oci)")
    ap.add_argument("--busybox-erofs", required=True, help="rootfs/busybox-rootfs.sh's image")
    ap.add_argument("--crun", default=shutil.which("crun") or "/usr/bin/crun")
    ap.add_argument("--runs", type=int, default=5, help="samples of run --rm and of exec")
    ap.add_argument("--parallel", type=int, default=10, help="containers started at once")
    ap.add_argument("--parallel-rounds", type=int, default=2)
    ap.add_argument("--memory", type=int, default=128, help="podman --memory, MiB")
    ap.add_argument("--runtimes", default=",".join(RUNTIMES))
    ap.add_argument("--command-timeout", type=int, default=300)
    ap.add_argument("--work", default="/tmp/ocibench")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rts = [r for r in a.runtimes.split(",") if r]
    for r in rts:
        if r not in RUNTIMES:
            ap.error(f"--runtimes: unknown '{r}' (known: {', '.join(RUNTIMES)})")
    if os.geteuid() != 0:
        say("needs root (podman rootful, a tmpfs over a read-only /run)")
        return 1
    os.makedirs(a.out, exist_ok=True)
    nested = bool(os.environ.get("VMM_NESTED"))
    if nested:
        say("running inside the nested KVM harness (QEMU TCG outer guest): absolute figures "
            "are not hardware figures; compare the ratios")
    t = time.monotonic()
    pm = prepare_host(a, a.work)
    versions = {}
    for name, cmd in (("podman", ["podman", "--version"]), ("conmon", ["conmon", "--version"]),
                      ("crun", [a.crun, "--version"]), ("vmm-oci", [a.oci, "--version"])):
        try:
            versions[name] = subprocess.run(cmd, capture_output=True, text=True,
                                            timeout=60).stdout.splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            versions[name] = None
    say(f"image {IMG} imported in {time.monotonic() - t:.1f} s")

    # One unmeasured run of each first: podman's, conmon's and the runtime's files (and the
    # guest kernel) into the page cache, podman's storage initialised.
    warmup = {}
    for rt in rts:
        r, why = case_run_rm(a, pm, rt, "warm")
        warmup[rt] = r["run_rm_s"] if r else None
        say(f"warm-up {rt}: " + (f"{r['run_rm_s']:.2f} s" if r else f"failed: {why}"))

    samples = {rt: {} for rt in rts}
    mem_samples = {rt: [] for rt in rts}
    errors = []
    failures = 0

    def measure(case, rt, tag):
        nonlocal failures
        r = None
        for attempt in (1, 2):
            r, why = case(a, pm, rt, f"{tag}-{attempt}")
            if r is not None:
                break
            msg = f"{rt} {case.__name__[5:]} {tag} attempt {attempt}: {why}"
            errors.append(msg)
            say(msg)
        if r is None:
            failures += 1
            return
        for k, v in r.items():
            if k == "memory":
                mem_samples[rt].append({"case": case.__name__[5:], "sample": v})
            elif v is not None:
                samples[rt].setdefault(k, []).append(v)

    t_all = time.monotonic()
    for i in range(a.runs):
        order = rts if i % 2 == 0 else rts[::-1]
        for rt in order:
            measure(case_run_rm, rt, f"r{i}")
        for rt in order:
            measure(case_exec, rt, f"e{i}")
        say(f"run {i + 1}/{a.runs} done ({time.monotonic() - t_all:.0f} s)")
    for i in range(a.parallel_rounds):
        order = rts if i % 2 == 0 else rts[::-1]
        for rt in order:
            measure(case_parallel, rt, f"p{i}")
        say(f"{a.parallel} at once, round {i + 1}/{a.parallel_rounds} done "
            f"({time.monotonic() - t_all:.0f} s)")
    rc, out, _, _ = pm(rts[0], "ps", "-a", "--format", "{{.Names}}")
    if out.strip():
        say(f"containers left behind: {' '.join(out.split())}")

    res = {"environment": {"nested": nested,
                           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "kernel_release": os.uname().release, "versions": versions},
           "config": {"runs": a.runs, "parallel": a.parallel,
                      "parallel_rounds": a.parallel_rounds, "memory_mib": a.memory,
                      "flags": run_flags(a), "image": "busybox tree (rootfs/busybox-rootfs.sh), "
                      "podman import, vfs storage on tmpfs", "kernel": a.kernel, "oci": a.oci,
                      "crun": a.crun},
           "warmup_run_rm_s": warmup, "samples": samples, "memory_samples": mem_samples,
           "median": {}, "ratio_vmm_over_crun": {}, "errors": errors}
    both = "vmm" in rts and "crun" in rts

    def row(label, m, unit_fmt):
        ratio = m["vmm"] / m["crun"] if both and m.get("vmm") and m.get("crun") else None
        cells = "".join(f"{unit_fmt(m.get(rt)):>12}" for rt in rts)
        print(f"{label:<50}{cells}" + (f"{ratio:>10.2f}" if ratio else f"{'-':>10}"))
        return ratio

    print(f"\n{'median, seconds (K = ' + str(a.parallel) + ')':<50}"
          + "".join(f"{rt:>12}" for rt in rts) + f"{'vmm/crun':>10}")
    secs = lambda x: f"{x:.2f}" if x is not None else "-"  # noqa: E731
    mib = lambda x: f"{x / 1024:.1f}" if x is not None else "-"  # noqa: E731
    for key, label in TIMES:
        m = {rt: med(samples[rt].get(key, [])) for rt in rts}
        res["median"][key] = m
        r = row(label, m, secs)
        if r:
            res["ratio_vmm_over_crun"][key] = r
    print(f"\n{'host memory, MiB (median; Pss)':<50}" + "".join(f"{rt:>12}" for rt in rts)
          + f"{'vmm/crun':>10}")
    for key, label in MEMS:
        m = {rt: med(samples[rt].get(key, [])) for rt in rts}
        res["median"][key] = m
        r = row(label, m, mib)
        if r:
            res["ratio_vmm_over_crun"][key] = r
    if "vmm" in rts:
        alone = [s["sample"] for s in mem_samples["vmm"] if s["case"] == "exec"]
        setting = med([s.get("guest_ram_mib") for s in alone])
        touched = med([s.get("guest_touched_rss_kib") for s in alone])
        outside = med([s.get("vmm_outside_guest_rss_kib") for s in alone])
        par = med(samples["vmm"].get("par_guest_touched_rss_kib", []))
        res["vmm_guest"] = {"ram_setting_mib": setting, "touched_rss_kib_alone": touched,
                            "touched_rss_kib_k_running": par,
                            "vmm_rss_outside_guest_ram_kib": outside}
        print(f"\nvmm guest RAM: --memory {a.memory}m gives the VM {setting or '-'} MiB; the "
              f"guest touched {mib(touched)} MiB of it (host Rss of guest RAM, alone; "
              f"{mib(par)} MiB with {a.parallel} running); vmm's Rss outside guest RAM "
              f"{mib(outside)} MiB")
    path = os.path.join(a.out, "oci-results.json")
    with open(path, "w") as fo:
        json.dump(res, fo, indent=2)
    say(f"results in {path} ({time.monotonic() - t_all:.0f} s measuring)")
    if failures:
        say(f"{failures} figure(s) not taken (see above)")
    shutil.rmtree(a.work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
