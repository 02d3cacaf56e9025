#!/usr/bin/env python3
"""tcp-echo-client.py [--wait S] [--pid PID] HOST PORT N: connects to a TCP echo server, retrying
while it is not listening yet (for up to S seconds, default 120, and only while process PID, the
VM, is alive), sends N pseudo-random bytes while reading the echo, half-closes, and checks that
exactly the same N bytes came back. Prints one line; exit 0 on success."""
import argparse
import os
import selectors
import socket
import sys
import time


def alive(pid):
    """Whether process pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wait", type=float, default=120, help="seconds to retry the connection")
    ap.add_argument("--pid", type=int, help="stop retrying once this process has exited")
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("n", type=int)
    a = ap.parse_args()
    host, port, n = a.host, a.port, a.n
    data = os.urandom(n)
    deadline = time.monotonic() + a.wait
    while True:
        try:
            s = socket.create_connection((host, port), timeout=10)
            break
        except OSError as e:
            if a.pid is not None and not alive(a.pid):
                print(f"tcp-echo: cannot connect to {host}:{port}: {e}; the VM (pid {a.pid}) has exited")
                return 1
            if time.monotonic() > deadline:
                print(f"tcp-echo: cannot connect to {host}:{port} within {a.wait:.0f} s: {e}")
                return 1
            time.sleep(0.3)
    s.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    sent, got = 0, bytearray()
    last = time.monotonic()
    while True:
        if time.monotonic() - last > 120:
            print(f"tcp-echo: stalled after sending {sent} and receiving {len(got)} of {n} bytes")
            return 1
        for _, mask in sel.select(timeout=1):
            if mask & selectors.EVENT_WRITE and sent < n:
                try:
                    sent += s.send(data[sent:sent + 65536])
                    last = time.monotonic()
                except BlockingIOError:
                    pass
                if sent == n:
                    s.shutdown(socket.SHUT_WR)
                    sel.modify(s, selectors.EVENT_READ)
            if mask & selectors.EVENT_READ:
                try:
                    chunk = s.recv(65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    ok = bytes(got) == data
                    print(f"tcp-echo: {len(got)} bytes echoed {'intact' if ok else 'CORRUPTED'}"
                          + ("" if len(got) == n else f" (sent {n})"))
                    return 0 if ok and len(got) == n else 1
                got += chunk
                last = time.monotonic()


if __name__ == "__main__":
    sys.exit(main())
