#!/usr/bin/env python3
# Host side of the virtio-net integration test (guest side: net-guest.sh), run inside the network
# namespace that holds the TAP, with the TAP's address as the argument (default 10.0.2.1):
# TCP echo on 7777, a sink on 7778 that prints "sink: N bytes sha256 H" for each connection, and
# a source on 7779 that sends `yes vmm-net-test | head -c 8388608` and closes. Prints
# "ready: blob sha256 H" once it listens; runs until killed. Checked against busybox nc on a veth
# pair (the guest side in a second namespace).
import hashlib, socket, sys, threading
ADDR = sys.argv[1] if len(sys.argv) > 1 else '10.0.2.1'
BLOB = (b'vmm-net-test\n' * (8388608 // 13 + 1))[:8388608]

def echo(c):
    while (d := c.recv(65536)):
        c.sendall(d)

def sink(c):
    h, n = hashlib.sha256(), 0
    while (d := c.recv(65536)):
        h.update(d)
        n += len(d)
    print(f'sink: {n} bytes sha256 {h.hexdigest()}', flush=True)

def source(c):
    c.sendall(BLOB)

def serve(port, fn):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ADDR, port))
    s.listen()
    def loop():
        while True:
            c, _ = s.accept()
            def run(c=c):
                with c:
                    fn(c)
            threading.Thread(target=run, daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()

for port, fn in ((7777, echo), (7778, sink), (7779, source)):
    serve(port, fn)
print(f'ready: blob sha256 {hashlib.sha256(BLOB).hexdigest()}', flush=True)
threading.Event().wait()
