#!/usr/bin/env python3
"""Boot-latency and overhead benchmark: vmm beside QEMU microvm, same kernel, initramfs, memory
and vCPUs, boots interleaved A B A B so both see the same machine conditions.

Runs where /dev/kvm works (bench/run.sh goes through the nested harness when there is none).
Per boot it records, from the moment the process is spawned:
  vmm:  first KVM_RUN, guest kernel entry (a hardware breakpoint on the entry point), guest init
        (the init's boot-timer write), workload start, all from vmm's --boot-timer lines; the
        console line "vmm-init: booted" as the harness saw it; process exit; CPU time (user+sys)
  qemu: the console line "vmm-init: booted"; process exit; CPU time
and, in separate boots whose guest sleeps, the VMM's memory overhead: the resident size of every
mapping that is not guest RAM (/proc/PID/smaps; Firecracker's method). A parallel mode starts K
VMs at once and reports VMs per second and the peaks of their total resident memory (RSS), of
their total proportional set size (PSS: shared pages divided among the processes sharing them)
and of the host's used memory. With --rootfs, the lifecycle section boots containers of that
image and drives them through the control API (docs/api.md): the overhead with --api-sock idle
beside the same VM without it; pause and resume (vmm's pause_ms/resume_ms, the socket round trip,
`vmm ctl`'s; QEMU's QMP stop/cont beside them); `start` of a --paused VM to the container
process's exec. --only lifecycle runs that section alone.

Writes OUT/results.json and OUT/boot-timeline.png and prints a table.
"""
import argparse
import json
import os
import platform
import re
import selectors
import shutil
import statistics
import subprocess
import sys
import time

BOOTED = b"vmm-init: booted"
TIMER_INIT = re.compile(
    rb"boot-timer: guest init reached ([0-9.]+) ms after vmm start \(first KVM_RUN at ([0-9.]+) ms"
    rb"(?:, kernel entry at ([0-9.]+) ms)?"
)
TIMER_PROC = re.compile(rb"boot-timer: guest process about to start ([0-9.]+) ms")
# vmm's own start-up, phase by phase: "name ms, name ms, ..." (each the end of that phase)
TIMER_PHASES = re.compile(rb"boot-timer: vmm phases \(ms after vmm start\): ([^\n]*)")


def parse_phases(line):
    """{phase: ms} in vmm's order from the phases line's body."""
    out = {}
    for item in line.decode(errors="replace").split(", "):
        name, _, ms = item.rpartition(" ")
        try:
            out[name] = float(ms)
        except ValueError:
            pass
    return out
BASE_CMDLINE = "console=ttyS0 panic=1 8250.nr_uarts=1 quiet"


def vmm_cmd(a, guest_cmd, extra="", kernel=None):
    return [a.vmm, "--kernel", kernel or a.kernel, "--initrd", a.initrd, "--memory",
            str(a.memory), "--cpus", str(a.cpus), "--boot-timer", "--cmdline",
            f"{extra} -- {guest_cmd}".strip()]


# Boot-speed tunings, each measured by undoing it (vmm's defaults are the tuned set):
# name -> (extra kernel parameters, kernel image or None for the default vmlinux)
def variants(a):
    v = {
        "tuned (defaults, PVH vmlinux)": ("", None),
        "console messages on (loglevel=8 undoes quiet)": ("loglevel=8", None),
        "4 UARTs probed (8250.nr_uarts=4)": ("8250.nr_uarts=4", None),
    }
    if a.bzimage:
        v["bzImage instead of PVH vmlinux"] = ("", a.bzimage)
    return v


def qemu_cmd(a, guest_cmd):
    # microvm as QEMU documents it for fast boots: no option ROMs, no RTC, serial on stdio.
    # reboot=t: microvm has no i8042, and the kernel's keyboard reset would first spin on the
    # missing controller for about a second before falling back to a triple fault.
    return [a.qemu, "-M", "microvm,x-option-roms=off,rtc=off", "-enable-kvm", "-cpu", "host",
            "-m", str(a.memory), "-smp", str(a.cpus), "-nodefaults", "-no-user-config",
            "-nographic", "-no-reboot", "-serial", "stdio", "-kernel", a.kernel,
            "-initrd", a.initrd, "-append", f"{BASE_CMDLINE} reboot=t -- {guest_cmd}"]


def run_one(cmd, timeout=120):
    """Spawns cmd, timestamps the console's BOOTED line, waits for exit. Times in ms from spawn."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ, "out")
    sel.register(p.stderr, selectors.EVENT_READ, "err")
    out, err, t_booted = b"", b"", None
    open_streams = 2
    while open_streams:
        if time.monotonic() - t0 > timeout:
            p.kill()
            break
        for key, _ in sel.select(timeout=1):
            chunk = os.read(key.fileobj.fileno(), 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                open_streams -= 1
                continue
            if key.data == "out":
                out += chunk
                if t_booted is None and BOOTED in out:
                    t_booted = (time.monotonic() - t0) * 1e3
            else:
                err += chunk
    _, status, ru = os.wait4(p.pid, 0)
    t_exit = (time.monotonic() - t0) * 1e3
    rc = os.waitstatus_to_exitcode(status)
    r = {"rc": rc, "console_init_ms": t_booted, "exit_ms": t_exit,
         "cpu_ms": (ru.ru_utime + ru.ru_stime) * 1e3}
    m = TIMER_INIT.search(err)
    if m:
        r["init_ms"] = float(m.group(1))
        r["first_kvm_run_ms"] = float(m.group(2))
        if m.group(3) and float(m.group(3)) > 0:
            r["kernel_entry_ms"] = float(m.group(3))
    m = TIMER_PROC.search(err)
    if m:
        r["process_start_ms"] = float(m.group(1))
    m = TIMER_PHASES.search(err)
    if m:
        r["setup"] = parse_phases(m.group(1))
    if rc != 0 or t_booted is None:
        r["error"] = (out[-400:] + err[-400:]).decode(errors="replace")
    return r


def overhead_kib(pid, guest_bytes):
    """Resident KiB of every mapping of pid except guest RAM: mappings of at least guest_bytes,
    and those marked MADV_DONTDUMP ("dd" in VmFlags), as all of vmm's guest memory is (vmm maps
    the kernel's and initrd's pages from their files over parts of it, splitting it into smaller
    mappings)."""
    total, size, rss = 0, 0, 0
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                lo, hi = line.split()[0].split("-")
                size, rss = int(hi, 16) - int(lo, 16), 0
            elif line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("VmFlags:"):  # the last line of each mapping's block
                if size < guest_bytes and "dd" not in line.split()[1:]:
                    total += rss
    return total


def sample_memory(cmd, guest_bytes, timeout=120):
    """Boots cmd (a guest that sleeps), samples its overhead once the guest is up, kills it."""
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    t0, buf, kib = time.monotonic(), b"", None
    os.set_blocking(p.stdout.fileno(), False)
    while time.monotonic() - t0 < timeout:
        try:
            chunk = os.read(p.stdout.fileno(), 65536)
        except BlockingIOError:
            chunk = None
        if chunk:
            buf += chunk
        if BOOTED in buf:
            time.sleep(0.5)  # let the guest settle into its sleep
            kib = overhead_kib(p.pid, guest_bytes)
            break
        if chunk == b"" or p.poll() is not None:
            break
        time.sleep(0.02)
    p.kill()
    p.wait()
    return kib


def proc_kib(path, key):
    """The KiB figure on the line starting with key in /proc file path (0 if it is gone)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def host_used_kib():
    return proc_kib("/proc/meminfo", "MemTotal:") - proc_kib("/proc/meminfo", "MemAvailable:")


def parallel(cmd_fn, k, timeout=300):
    """Starts k VMs at once; returns wall seconds until all exited and the peaks of their summed
    RSS, of their summed PSS (pages shared between them, such as a kernel file's page-cache pages
    they all map, count once in total: RSS counts them in every process) and of the host's used
    memory (MemTotal - MemAvailable) above what it was before the start (KiB in, MiB out)."""
    base = host_used_kib()
    t0 = time.monotonic()
    procs = [subprocess.Popen(cmd_fn(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(k)]
    peak, peak_pss, peak_used, failed = 0, 0, 0, 0
    while any(p.poll() is None for p in procs):
        if time.monotonic() - t0 > timeout:
            for p in procs:
                p.kill()
            break
        peak = max(peak, sum(proc_kib(f"/proc/{p.pid}/status", "VmRSS:") for p in procs))
        peak_pss = max(peak_pss, sum(proc_kib(f"/proc/{p.pid}/smaps_rollup", "Pss:")
                                     for p in procs))
        peak_used = max(peak_used, host_used_kib() - base)
        time.sleep(0.05)
    wall = time.monotonic() - t0
    for p in procs:
        failed += p.wait() != 0
    return {"vms": k, "wall_s": wall, "vms_per_s": k / wall, "peak_rss_mib": peak / 1024,
            "peak_pss_mib": peak_pss / 1024, "peak_host_used_mib": peak_used / 1024,
            "failed": failed}


# The lifecycle (docs/api.md): container VMs of --rootfs driven through the control API.
TIMER_PROC_START = re.compile(
    rb"boot-timer: guest process about to start ([0-9.]+) ms after vmm start"
    rb"(?: \(([0-9.]+) ms after start\))?")
WAIT_S = 300  # deadline of every wait on a nested VM: generous, the nest is slow


def container_cmd(a, cmd, *flags):
    return [a.vmm, "--kernel", a.kernel, "--rootfs", a.rootfs, "--memory", str(a.memory),
            "--cpus", str(a.cpus), "--boot-timer", *flags, "--", *cmd]


class Lifecycle:
    """One VMM process: its stderr (and stdout, for QEMU's console) read as they come, so the
    waits below are on lines, never on fixed sleeps."""

    def __init__(self, cmd, stdin=subprocess.PIPE):
        self.cmd = cmd
        self.p = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.p.stdout, selectors.EVENT_READ, "out")
        self.sel.register(self.p.stderr, selectors.EVENT_READ, "err")
        self.buf = {"out": b"", "err": b""}

    def pump(self, timeout):
        """Reads what is there within timeout s; False once both streams are closed."""
        if not self.sel.get_map():
            return False
        for key, _ in self.sel.select(timeout=timeout):
            chunk = os.read(key.fileobj.fileno(), 65536)
            if chunk:
                self.buf[key.data] += chunk
            else:
                self.sel.unregister(key.fileobj)
        return True

    def wait_for(self, stream, pattern, what, timeout=WAIT_S):
        """The first match of pattern (bytes regex) on stream; RuntimeError naming what on a
        timeout or when the process ended first."""
        t0 = time.monotonic()
        while True:
            m = re.search(pattern, self.buf[stream])
            if m:
                return m
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"no {what} within {timeout} s: {self.tail()}")
            if not self.pump(0.5) and self.p.poll() is not None:
                raise RuntimeError(f"exited (status {self.p.returncode}) before {what}: "
                                   f"{self.tail()}")

    def wait_path(self, path, what, timeout=WAIT_S):
        t0 = time.monotonic()
        while not os.path.exists(path):
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"no {what} within {timeout} s: {self.tail()}")
            if self.p.poll() is not None:
                raise RuntimeError(f"exited (status {self.p.returncode}) before {what}: "
                                   f"{self.tail()}")
            self.pump(0.02)

    def finish(self, timeout=WAIT_S):
        """Closes stdin (a container's `cat` then ends), drains the output, returns the exit
        status; kills the process past timeout (RuntimeError)."""
        if self.p.stdin:
            self.p.stdin.close()
        t0 = time.monotonic()
        while self.pump(0.5) or self.p.poll() is None:
            if time.monotonic() - t0 > timeout:
                self.kill()
                raise RuntimeError(f"did not exit within {timeout} s: {self.tail()}")
        return self.p.wait()

    def kill(self):
        self.p.kill()
        self.p.wait()

    def tail(self):
        return (self.buf["out"][-200:] + self.buf["err"][-300:]).decode(errors="replace")


class LineClient:
    """A Unix-socket client of one-line JSON requests and replies (vmm's API and QMP both):
    call() returns the reply and its round trip in ms, send to the reply's last byte."""

    def __init__(self, path, timeout=WAIT_S):
        import socket
        t0 = time.monotonic()
        while True:  # the socket's file may be there a moment before it listens
            self.s = socket.socket(socket.AF_UNIX)
            self.s.settimeout(timeout)
            try:
                self.s.connect(path)
                break
            except ConnectionRefusedError:
                self.s.close()
                if time.monotonic() - t0 > timeout:
                    raise
                time.sleep(0.02)
        self.f = self.s.makefile("rb")

    def read(self):
        line = self.f.readline()
        if not line:
            raise RuntimeError("the socket closed before a reply")
        return json.loads(line)

    def call(self, req, until=lambda j: True):
        t0 = time.monotonic()
        self.s.sendall(json.dumps(req).encode() + b"\n")
        while True:
            j = self.read()
            if until(j):
                return j, (time.monotonic() - t0) * 1e3

    def close(self):
        self.f.close()
        self.s.close()


def api_ok(reply, op):
    if not reply.get("ok"):
        raise RuntimeError(f"{op}: {reply.get('error')}")
    return reply


def memory_with_api(a, d, with_api, guest_bytes):
    """A container idling in `cat` (stdin kept open), with or without --api-sock: its overhead
    outside guest RAM 0.5 s after the process started, and that boot's vmm start to process."""
    sock = os.path.join(d, "mem.sock")
    flags = ["--api-sock", sock] if with_api else []
    vm = Lifecycle(container_cmd(a, ["/bin/cat"], *flags))
    try:
        m = vm.wait_for("err", TIMER_PROC_START, "process start line")
        time.sleep(0.5)  # an idle VM: let the guest settle into cat's read
        kib = overhead_kib(vm.p.pid, guest_bytes)
        rc = vm.finish()
    except BaseException:
        vm.kill()
        raise
    if rc != 0:
        raise RuntimeError(f"exit status {rc} after stdin closed: {vm.tail()}")
    return kib, float(m.group(1))


def vmm_pause_resume(a, d, cycles):
    """A running container idling in `cat`: `cycles` pause/resume pairs over one API connection
    (vmm's pause_ms/resume_ms and the socket round trip), then `cycles` through `vmm ctl`
    (the wall time of the client process)."""
    sock = os.path.join(d, "pr.sock")
    out = {k: [] for k in ("pause_ms", "resume_ms", "pause_round_trip_ms",
                           "resume_round_trip_ms", "ctl_pause_ms", "ctl_resume_ms")}
    vm = Lifecycle(container_cmd(a, ["/bin/cat"], "--api-sock", sock))
    try:
        vm.wait_for("err", TIMER_PROC_START, "process start line")
        c = LineClient(sock)
        for _ in range(cycles):
            for op in ("pause", "resume"):
                time.sleep(0.1)  # an idle VM between the requests
                r, rt = c.call({"op": op})
                out[f"{op}_ms"].append(api_ok(r, op)[f"{op}_ms"])
                out[f"{op}_round_trip_ms"].append(rt)
        c.close()
        for _ in range(cycles):
            for op in ("pause", "resume"):
                time.sleep(0.1)
                t0 = time.monotonic()
                r = subprocess.run([a.vmm, "ctl", "--api-sock", sock, op],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   timeout=WAIT_S)
                out[f"ctl_{op}_ms"].append((time.monotonic() - t0) * 1e3)
                if r.returncode != 0:
                    raise RuntimeError(f"vmm ctl {op}: {r.stderr.decode(errors='replace')}")
            vm.pump(0)
        rc = vm.finish()
    except BaseException:
        vm.kill()
        raise
    if rc != 0:
        raise RuntimeError(f"exit status {rc} after stdin closed: {vm.tail()}")
    return out


def qemu_stop_cont(a, d, cycles):
    """QEMU microvm's peer of pause/resume: `stop` and `cont` over QMP on a Unix socket, the
    round trip to each command's return (its STOP/RESUME events are skipped), guest sleeping."""
    sock = os.path.join(d, "qmp.sock")
    out = {"stop_round_trip_ms": [], "cont_round_trip_ms": []}
    vm = Lifecycle(qemu_cmd(a, "/bin/sleep 600") + ["-qmp", f"unix:{sock},server=on,wait=off"],
                   stdin=subprocess.DEVNULL)
    try:
        vm.wait_for("out", re.escape(BOOTED), "console line 'vmm-init: booted'")
        c = LineClient(sock)
        c.read()  # the greeting
        c.call({"execute": "qmp_capabilities"}, lambda j: "return" in j or "error" in j)
        for _ in range(cycles):
            for op in ("stop", "cont"):
                time.sleep(0.1)
                r, rt = c.call({"execute": op}, lambda j: "return" in j or "error" in j)
                if "error" in r:
                    raise RuntimeError(f"QMP {op}: {r['error']}")
                out[f"{op}_round_trip_ms"].append(rt)
        c.call({"execute": "quit"}, lambda j: "return" in j or "error" in j)
        c.close()
        vm.finish()
    except BaseException:
        vm.kill()
        raise
    return out


def start_from_paused(a, d):
    """`vmm --paused` with `-- /bin/true`: once the VM is created (state says so) and idle,
    `start`; returns start to the process's exec (vmm's boot-timer), vmm start to it, and the
    start request's round trip."""
    sock = os.path.join(d, "start.sock")
    vm = Lifecycle(container_cmd(a, ["/bin/true"], "--paused", "--api-sock", sock),
                   stdin=subprocess.DEVNULL)
    try:
        vm.wait_path(sock, "API socket")
        c = LineClient(sock)
        st, _ = c.call({"op": "state"})
        if api_ok(st, "state")["state"] != "created":
            raise RuntimeError(f"--paused: state {st['state']}, not created")
        time.sleep(0.5)  # a VM created ahead, idle, as a pool would hold it
        r, rt = c.call({"op": "start"})
        api_ok(r, "start")
        c.close()
        m = vm.wait_for("err", TIMER_PROC_START, "process start line")
        rc = vm.finish()
    except BaseException:
        vm.kill()
        raise
    if rc != 0 or not m.group(2):
        raise RuntimeError(f"exit status {rc}, boot-timer line {m.group(0)!r}: {vm.tail()}")
    return {"start_to_process_ms": float(m.group(2)),
            "vmm_start_to_process_ms": float(m.group(1)), "start_round_trip_ms": rt}


def lifecycle(a, use_qemu, guest_bytes):
    """The lifecycle section: its results and the number of failed samples."""
    import tempfile
    n, failed = a.lifecycle_samples, 0
    d = tempfile.mkdtemp(prefix="vmm-bench-")
    mem = {False: [], True: []}
    cold = []

    def attempt(what, fn, *args):
        nonlocal failed
        try:
            return fn(*args)
        except (RuntimeError, OSError, ValueError, KeyError, subprocess.TimeoutExpired) as e:
            failed += 1
            print(f"bench: lifecycle: {what} failed: {str(e)[-300:]}", flush=True)
            return None

    print("bench: lifecycle: memory with and without --api-sock", flush=True)
    for i in range(n):
        for with_api in ((False, True) if i % 2 == 0 else (True, False)):  # A B B A
            r = attempt(f"memory sample (api {with_api})", memory_with_api, a, d, with_api,
                        guest_bytes)
            if r:
                mem[with_api].append(r[0])
                if not with_api:
                    cold.append(r[1])
    print("bench: lifecycle: pause and resume", flush=True)
    pr = attempt("vmm pause/resume", vmm_pause_resume, a, d, a.pause_cycles) or {}
    qpr = (attempt("QEMU stop/cont", qemu_stop_cont, a, d, a.pause_cycles) or {}) if use_qemu else None
    print("bench: lifecycle: start from --paused", flush=True)
    starts = [s for s in (attempt("start from --paused", start_from_paused, a, d)
                          for _ in range(n)) if s]
    shutil.rmtree(d, ignore_errors=True)

    without, with_ = stats(mem[False]), stats(mem[True])
    paired = [w - o for o, w in zip(mem[False], mem[True])]
    delta = with_["median"] - without["median"] if with_ and without else None
    res = {
        "image": a.rootfs,
        "commands": {
            "memory": " ".join(container_cmd(a, ["/bin/cat"], "[--api-sock S]")),
            "pause_resume": " ".join(container_cmd(a, ["/bin/cat"], "--api-sock", "S")),
            "start": " ".join(container_cmd(a, ["/bin/true"], "--paused", "--api-sock", "S")),
            "qemu_stop_cont": " ".join(qemu_cmd(a, "/bin/sleep 600") +
                                       ["-qmp", "unix:S,server=on,wait=off"]) if use_qemu else None,
        },
        "samples": n, "pause_cycles": a.pause_cycles, "failed": failed,
        "memory_overhead_kib": {
            "without_api": without, "with_api_idle": with_,
            "api_cost_kib": delta, "api_cost_paired_kib": stats(paired),
            "within_2_mib": delta is not None and delta <= 2048,
        },
        "pause_resume": {
            "vmm": {k: stats(v) for k, v in pr.items()},
            "qemu_qmp": {k: stats(v) for k, v in qpr.items()} if qpr else None,
        },
        "start_from_paused": {
            "start_to_process_ms": stats([s["start_to_process_ms"] for s in starts]),
            "vmm_start_to_process_ms": stats([s["vmm_start_to_process_ms"] for s in starts]),
            "start_round_trip_ms": stats([s["start_round_trip_ms"] for s in starts]),
            "cold_vmm_start_to_process_ms": stats(cold),
        },
    }
    return res, failed


def print_lifecycle(life):
    print(f"\n{'lifecycle (container VM)':<48}{'median':>9}{'min':>9}{'max':>9}{'n':>4}")

    def row(label, st, scale=1.0):
        if st:
            print(f"{label:<48}{st['median'] * scale:>9.2f}{st['min'] * scale:>9.2f}"
                  f"{st['max'] * scale:>9.2f}{st['n']:>4}")
        else:
            print(f"{label:<48}{'-':>9}{'-':>9}{'-':>9}{0:>4}")
    m = life["memory_overhead_kib"]
    row("memory overhead, no API (MiB)", m["without_api"], 1 / 1024)
    row("memory overhead, --api-sock idle (MiB)", m["with_api_idle"], 1 / 1024)
    row("API's cost, paired samples (MiB)", m["api_cost_paired_kib"], 1 / 1024)
    v = life["pause_resume"]["vmm"]
    for op in ("pause", "resume"):
        row(f"{op}: vmm's {op}_ms (ms)", v.get(f"{op}_ms"))
        row(f"{op}: API socket round trip (ms)", v.get(f"{op}_round_trip_ms"))
        row(f"{op}: `vmm ctl {op}` returns (ms)", v.get(f"ctl_{op}_ms"))
    q = life["pause_resume"]["qemu_qmp"]
    if q:
        row("QEMU QMP stop round trip (ms)", q.get("stop_round_trip_ms"))
        row("QEMU QMP cont round trip (ms)", q.get("cont_round_trip_ms"))
    s = life["start_from_paused"]
    row("start to process start, --paused (ms)", s["start_to_process_ms"])
    row("start request round trip (ms)", s["start_round_trip_ms"])
    row("vmm start to process start, --paused (ms)", s["vmm_start_to_process_ms"])
    row("vmm start to process start, cold (ms)", s["cold_vmm_start_to_process_ms"])
    if m["api_cost_kib"] is not None:
        print(f"the API's memory cost: {m['api_cost_kib'] / 1024:+.2f} MiB (difference of the "
              f"medians): {'within' if m['within_2_mib'] else 'NOT within'} the 2 MiB goal")


def stats(values):
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    p90 = v[min(len(v) - 1, int(round(0.9 * (len(v) - 1))))]
    return {"n": len(v), "min": v[0], "median": statistics.median(v), "p90": p90, "max": v[-1]}


PHASES = {
    "vmm": ["first_kvm_run_ms", "kernel_entry_ms", "init_ms", "process_start_ms",
            "console_init_ms", "exit_ms", "cpu_ms"],
    "qemu": ["console_init_ms", "exit_ms", "cpu_ms"],
}


def chart(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    setup = results["vmm"].get("setup_phases") or {}
    if setup:
        fig, (ax, ax2) = plt.subplots(2, 1, figsize=(10, 5.6), height_ratios=[1.2, 1])
    else:
        fig, ax = plt.subplots(figsize=(10, 3.2))
    rows = []
    v = results["vmm"]["phases"]
    med = lambda d, k: d[k]["median"] if d.get(k) else None  # noqa: E731
    steps = [("host setup", med(v, "first_kvm_run_ms")), ("to kernel entry", med(v, "kernel_entry_ms")),
             ("guest boot to init", med(v, "init_ms")), ("init to exit", med(v, "exit_ms"))]
    rows.append(("vmm", steps))
    if results.get("qemu"):
        q = results["qemu"]["phases"]
        rows.append(("QEMU microvm", [("start to init (console)", med(q, "console_init_ms")),
                                      ("init to exit", med(q, "exit_ms"))]))
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    xmax = max((e for _, st in rows for _, e in st if e), default=1)
    for y, (name, steps) in enumerate(rows):
        start = 0.0
        for i, (label, end) in enumerate(steps):
            if end is None:
                continue
            ax.barh(y, end - start, left=start, color=colors[i % len(colors)], edgecolor="white")
            if end - start > 0.09 * xmax:
                ax.text(start + (end - start) / 2, y, f"{label}\n{end - start:.0f} ms", ha="center",
                        va="center", fontsize=7, color="white")
            start = end
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r[0] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("ms from process start (median)")
    where = "nested KVM under QEMU TCG: compare ratios, not absolute times" if results["environment"]["nested"] else "real KVM"
    ax.set_title(f"Boot timeline, {results['config']['boots']} boots each ({where})", fontsize=9)
    if setup:
        # vmm's own set-up up to the first KVM_RUN, one segment per phase (median end times)
        cmap = plt.get_cmap("tab20")
        start, labels = 0.0, []
        for i, (name, st) in enumerate(setup.items()):
            end = max(st["median"], start)
            ax2.barh(0, end - start, left=start, color=cmap(i % 20), edgecolor="white")
            labels.append((cmap(i % 20), f"{name} {end - start:.1f}"))
            start = end
        ax2.set_yticks([])
        ax2.set_xlabel("ms from vmm start (median end of each phase)")
        ax2.set_title("vmm's own set-up before the guest runs, by phase (ms each)", fontsize=9)
        handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c, _ in labels]
        ax2.legend(handles, [t for _, t in labels], ncol=5, fontsize=6.5, loc="upper center",
                   bbox_to_anchor=(0.5, -0.35), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vmm", required=True)
    ap.add_argument("--kernel", required=True, help="vmlinux (PVH; QEMU microvm boots it too)")
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--boots", type=int, default=10)
    ap.add_argument("--memory-samples", type=int, default=3)
    ap.add_argument("--parallel", type=int, default=4, help="VMs started at once (0: skip)")
    ap.add_argument("--memory", type=int, default=128)
    ap.add_argument("--cpus", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--bzimage", help="bzImage of the same kernel, for the tuning table")
    ap.add_argument("--variant-boots", type=int, default=0,
                    help="boots per boot-speed tuning variant (0: skip the tuning table)")
    ap.add_argument("--rootfs", help="container image (the busybox erofs) for the lifecycle "
                    "section: pause, resume, start from --paused, the API's memory")
    ap.add_argument("--lifecycle-samples", type=int, default=5,
                    help="memory samples with and without --api-sock, and starts from --paused")
    ap.add_argument("--pause-cycles", type=int, default=20,
                    help="pause/resume pairs over the socket, and again through vmm ctl")
    ap.add_argument("--only", choices=["lifecycle"],
                    help="run only that section (the boot, memory, tuning and parallel ones not)")
    a = ap.parse_args()
    if a.only == "lifecycle" and not a.rootfs:
        ap.error("--only lifecycle needs --rootfs IMG (rootfs/busybox-rootfs.sh prints one)")
    os.makedirs(a.out, exist_ok=True)
    nested = bool(os.environ.get("VMM_NESTED"))
    use_qemu = not a.no_qemu
    if use_qemu and subprocess.run(["sh", "-c", f"command -v {a.qemu}"],
                                   stdout=subprocess.DEVNULL).returncode != 0:
        print(f"bench: {a.qemu} not found: QEMU columns skipped (apt-get install qemu-system-x86)")
        use_qemu = False
    if nested:
        print("bench: running inside the nested KVM harness (QEMU TCG outer guest): absolute "
              "times are not hardware times; compare the ratios")

    boots = a.only is None
    runs = {"vmm": [], "qemu": []}
    for i in range(a.boots if boots else 0):
        order = [("vmm", vmm_cmd)] + ([("qemu", qemu_cmd)] if use_qemu else [])
        if i % 2:
            order.reverse()  # A B B A ...: neither always goes first
        for name, fn in order:
            r = run_one(fn(a, "/bin/true"))
            runs[name].append(r)
            if "error" in r:
                print(f"bench: {name} boot {i + 1} failed (exit {r['rc']}): {r['error'][-200:]}")
        print(f"bench: boot {i + 1}/{a.boots} done", flush=True)

    guest_bytes = a.memory << 20
    mem = {"vmm": [], "qemu": []}
    if boots:
        print("bench: memory overhead samples", flush=True)
    for _ in range(a.memory_samples if boots else 0):
        mem["vmm"].append(sample_memory(vmm_cmd(a, "/bin/sleep 30"), guest_bytes))
        if use_qemu:
            mem["qemu"].append(sample_memory(qemu_cmd(a, "/bin/sleep 30"), guest_bytes))

    results = {
        "environment": {"nested": nested, "host": platform.node(), "kernel_release": platform.release(),
                        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "config": {"boots": a.boots, "memory_mib": a.memory, "cpus": a.cpus, "kernel": a.kernel,
                   "initrd": a.initrd, "guest_command": "/bin/true"},
    }
    failures = 0
    for name in ("vmm", "qemu"):
        if name == "qemu" and not use_qemu or not boots:
            continue
        ok = [r for r in runs[name] if "error" not in r]
        failures += len(runs[name]) - len(ok)
        results[name] = {
            "command": " ".join((vmm_cmd if name == "vmm" else qemu_cmd)(a, "/bin/true")),
            "failed_boots": len(runs[name]) - len(ok),
            "phases": {p: stats([r.get(p) for r in ok]) for p in PHASES[name]},
            "setup_phases": ({p: stats([r.get("setup", {}).get(p) for r in ok])
                              for p in next((r["setup"] for r in ok if r.get("setup")), {})}
                             if name == "vmm" else None),
            "memory_overhead_kib": stats(mem[name]),
        }
    if use_qemu and boots:
        ratio = {}
        for p in ("console_init_ms", "exit_ms", "cpu_ms"):
            v, q = results["vmm"]["phases"].get(p), results["qemu"]["phases"].get(p)
            if v and q and q["median"]:
                ratio[p] = v["median"] / q["median"]
        vm_, qm = results["vmm"]["memory_overhead_kib"], results["qemu"]["memory_overhead_kib"]
        if vm_ and qm:
            ratio["memory_overhead"] = vm_["median"] / qm["median"]
        results["ratio_vmm_over_qemu"] = ratio
    if a.variant_boots > 0 and boots:
        print("bench: boot-speed tuning variants", flush=True)
        table = {}
        vs = variants(a)
        vruns = {name: [] for name in vs}
        for i in range(a.variant_boots):
            for name, (extra, kernel) in vs.items():
                vruns[name].append(run_one(vmm_cmd(a, "/bin/true", extra, kernel)))
        for name, rs in vruns.items():
            ok = [r for r in rs if "error" not in r]
            failures += len(rs) - len(ok)
            table[name] = {"cmdline_extra": vs[name][0], "kernel": vs[name][1] or a.kernel,
                           "init_ms": stats([r.get("init_ms") for r in ok]),
                           "exit_ms": stats([r.get("exit_ms") for r in ok])}
        results["tunings"] = table
    if a.parallel > 0 and boots:
        print(f"bench: {a.parallel} VMs at once", flush=True)
        results["parallel"] = {"vmm": parallel(lambda: vmm_cmd(a, "/bin/true"), a.parallel)}
        if use_qemu:
            results["parallel"]["qemu"] = parallel(lambda: qemu_cmd(a, "/bin/true"), a.parallel)
    if a.rootfs:
        results["lifecycle"], failed = lifecycle(a, use_qemu, guest_bytes)
        failures += failed
    else:
        print("bench: no --rootfs: the lifecycle section is skipped (bench/run.sh passes "
              "rootfs/busybox-rootfs.sh's image)")

    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    try:
        if boots:
            chart(results, os.path.join(a.out, "boot-timeline.png"))
    except ImportError:
        print("bench: python3-matplotlib is missing: no chart (apt-get install python3-matplotlib)")
        failures += 1
    if not boots:
        life = results["lifecycle"]
        print_lifecycle(life)
        print(f"bench: results in {a.out}/results.json")
        return 1 if failures or not life["start_from_paused"]["start_to_process_ms"] else 0

    print(f"\n{'phase (median ms)':<24}{'vmm':>12}{'qemu':>12}{'vmm/qemu':>10}")
    for p in PHASES["vmm"]:
        v = results["vmm"]["phases"].get(p)
        q = results.get("qemu", {}).get("phases", {}).get(p)
        r = results.get("ratio_vmm_over_qemu", {}).get(p)
        print(f"{p:<24}{v['median'] if v else float('nan'):>12.1f}"
              f"{q['median'] if q else float('nan'):>12.1f}{r if r else float('nan'):>10.2f}")
    setup = results["vmm"].get("setup_phases") or {}
    if setup:
        print(f"\n{'vmm set-up phase':<24}{'ends at ms':>12}{'takes ms':>12}  (medians)")
        prev = 0.0
        for p, st in setup.items():
            if st:
                print(f"{p:<24}{st['median']:>12.2f}{st['median'] - prev:>12.2f}")
                prev = st["median"]
        first, init = setup.get("first-KVM_RUN"), results["vmm"]["phases"].get("init_ms")
        if first and init and init["median"]:
            print(f"vmm start to first KVM_RUN is {100 * first['median'] / init['median']:.0f}% of "
                  f"vmm start to guest init")
    for name in ("vmm", "qemu"):
        m = results.get(name, {}).get("memory_overhead_kib")
        if m:
            print(f"{name} memory overhead: {m['median'] / 1024:.2f} MiB (median of {m['n']})")
    for name, t in results.get("tunings", {}).items():
        if t["init_ms"]:
            print(f"tuning: {name:<48} init {t['init_ms']['median']:8.1f} ms (median of "
                  f"{t['init_ms']['n']})")
    for name, p in results.get("parallel", {}).items():
        print(f"{name} parallel: {p['vms']} VMs in {p['wall_s']:.2f} s = {p['vms_per_s']:.2f} VMs/s, "
              f"peak RSS {p['peak_rss_mib']:.0f} MiB, peak PSS {p['peak_pss_mib']:.0f} MiB, "
              f"peak host used +{p['peak_host_used_mib']:.0f} MiB, {p['failed']} failed")
    if results.get("lifecycle"):
        print_lifecycle(results["lifecycle"])
    print(f"bench: results in {a.out}/results.json and {a.out}/boot-timeline.png")
    return 1 if failures or not results["vmm"]["phases"]["init_ms"] else 0


if __name__ == "__main__":
    sys.exit(main())
