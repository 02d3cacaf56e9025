#!/usr/bin/env python3
"""What an OCI engine does around a runtime, for lifecycle-tests.sh.

  oci-helper.py console SOCKET ROWS COLS -- CMD...
      Listens on the Unix socket SOCKET, runs CMD, takes the pty master CMD sends there
      (SCM_RIGHTS, as conmon's console socket does), sets its window size to ROWS x COLS,
      copies everything read from it to stdout until CMD exits, and exits with CMD's status.
  oci-helper.py subreaper PIDFILE -- CMD...
      Becomes a child subreaper (as conmon and containerd's shim are), runs CMD and waits for
      it; then reads PIDFILE, prints "pid PID exe EXE" (what /proc/PID/exe names) and waits for
      that process, which has been re-parented here; exits with its status (128+N for signal N).
      Exits 90 when CMD fails, 91 when PIDFILE names no process of ours.
"""
import array
import ctypes
import fcntl
import os
import select
import socket
import struct
import subprocess
import sys
import termios


def status_of(st):
    if os.WIFEXITED(st):
        return os.WEXITSTATUS(st)
    return 128 + os.WTERMSIG(st)


def console(sock_path, rows, cols, cmd):
    s = socket.socket(socket.AF_UNIX)
    s.bind(sock_path)
    s.listen(1)
    p = subprocess.Popen(cmd)
    s.settimeout(600)
    c, _ = s.accept()
    fds = array.array("i")
    msg, anc, _, _ = c.recvmsg(4096, socket.CMSG_SPACE(fds.itemsize))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    if len(fds) != 1:
        print("oci-helper: no fd received", file=sys.stderr)
        p.kill()
        return 92
    master = fds[0]
    print("oci-helper: got %s" % msg.decode(errors="replace"), file=sys.stderr)
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    out = sys.stdout.buffer
    while True:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                b = os.read(master, 65536)
            except OSError:
                b = b""
            if b:
                out.write(b)
                out.flush()
                continue
        if p.poll() is not None:
            # what is left in the pty after the runtime exited
            try:
                while select.select([master], [], [], 0.1)[0]:
                    b = os.read(master, 65536)
                    if not b:
                        break
                    out.write(b)
            except OSError:
                pass
            out.flush()
            return p.returncode
        if not r:
            continue
        # EOF or EIO from the master: wait for the runtime
        return p.wait()


def subreaper(pidfile, cmd):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        print("oci-helper: prctl failed", file=sys.stderr)
        return 93
    rc = subprocess.call(cmd)
    if rc != 0:
        print("oci-helper: the runtime exited %d" % rc, file=sys.stderr)
        return 90
    pid = int(open(pidfile).read())
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        exe = "?"
    print("pid %d exe %s" % (pid, exe), flush=True)
    try:
        _, st = os.waitpid(pid, 0)
    except ChildProcessError:
        return 91
    return status_of(st)


def main():
    a = sys.argv
    i = a.index("--")
    if a[1] == "console":
        return console(a[2], int(a[3]), int(a[4]), a[i + 1 :])
    if a[1] == "subreaper":
        return subreaper(a[2], a[i + 1 :])
    return 2


sys.exit(main())
