#!/usr/bin/env python3
"""The host half of the vsock integration tests (vmm's Unix-socket side of virtio-vsock).

  vsock-host.py serve PATH            listen on the Unix socket PATH (what vmm connects to when
                                      the guest connects to host port P: PATH is UDS_P), accept
                                      one connection and echo it until EOF
  vsock-host.py connect UDS PORT N    connect to vmm's socket UDS, ask for guest port PORT with
                                      "CONNECT PORT\\n", expect "OK <port>\\n", then send N bytes of
                                      the pattern and check the echo; retries the connection for
                                      up to 120 s while the guest is not listening yet

The pattern matches guest/vsock-test.c. Prints one line; exit 0 on success.
"""
import os
import selectors
import socket
import sys
import time


_PATTERN = b""


def pattern(start, n):
    """Bytes start..start+n of (i * 7 + i // 65536) % 251, built a 64 KiB block at a time."""
    global _PATTERN
    while len(_PATTERN) < start + n:
        b = len(_PATTERN) // 65536
        cycle = bytes((j * 7 + b) % 251 for j in range(251)) * (65536 // 251 + 2)
        off = (b * 65536) % 251
        _PATTERN += cycle[off : off + 65536]
    return _PATTERN[start : start + n]


def serve(path):
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(300)
    conn, _ = srv.accept()
    total = 0
    while True:
        data = conn.recv(65536)
        if not data:
            break
        conn.sendall(data)
        total += len(data)
    conn.close()
    print(f"vsock-host: echoed {total} bytes back")
    return 0


def handshake(uds, port):
    """Returns a connected socket whose CONNECT was answered with OK, or None."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    try:
        s.connect(uds)
        s.sendall(f"CONNECT {port}\n".encode())
        line = b""
        while not line.endswith(b"\n") and len(line) < 64:
            c = s.recv(1)
            if not c:
                break
            line += c
    except OSError:
        s.close()
        return None
    if not line.startswith(b"OK "):
        s.close()
        return None
    return s


def connect(uds, port, n):
    deadline = time.monotonic() + 120
    s = None
    while s is None:
        if time.monotonic() > deadline:
            print("vsock-host: no OK from vmm for CONNECT in 120 s")
            return 1
        s = handshake(uds, port)
        if s is None:
            time.sleep(0.2)
    s.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    sent = got = 0
    while got < n:
        events = sel.select(timeout=60)
        if not events:
            print(f"vsock-host: stalled after sending {sent} and receiving {got} of {n} bytes")
            return 1
        for _, mask in events:
            if mask & selectors.EVENT_WRITE and sent < n:
                try:
                    sent += s.send(pattern(sent, min(65536, n - sent)))
                except BlockingIOError:
                    pass
                if sent == n:
                    s.shutdown(socket.SHUT_WR)
                    sel.modify(s, selectors.EVENT_READ)
            if mask & selectors.EVENT_READ:
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                if not data:
                    print(f"vsock-host: EOF after {got} of {n} bytes")
                    return 1
                if data != pattern(got, len(data)):
                    print(f"vsock-host: data differs in bytes {got}..{got + len(data)}")
                    return 1
                got += len(data)
    print(f"vsock-host: echoed {got} bytes intact")
    return 0


def main():
    a = sys.argv[1:]
    if len(a) == 2 and a[0] == "serve":
        return serve(a[1])
    if len(a) == 4 and a[0] == "connect":
        return connect(a[1], int(a[2]), int(a[3]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
