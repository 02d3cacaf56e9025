#!/usr/bin/env python3
"""tcp-echo-client.py HOST PORT N: connects to a TCP echo server (retrying for up to 120 s while
it is not listening yet), sends N pseudo-random bytes while reading the echo, half-closes, and
checks that exactly the same N bytes came back. Prints one line; exit 0 on success."""
import os
import selectors
import socket
import sys
import time


def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    data = os.urandom(n)
    deadline = time.monotonic() + 120
    while True:
        try:
            s = socket.create_connection((host, port), timeout=10)
            break
        except OSError as e:
            if time.monotonic() > deadline:
                print(f"tcp-echo: cannot connect to {host}:{port}: {e}")
                return 1
            time.sleep(0.3)
    s.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    sent, got = 0, bytearray()
    last = time.monotonic()
    while True:
        if time.monotonic() - last > 60:
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
