#!/usr/bin/env python3
"""A stand-in for vmm's control API in front of the agent's test mode, for test_exec.sh.

Usage: api-front.py API_SOCKET AGENT_SOCKET [--bad-agent]

Listens on API_SOCKET. Each connection must send one request line; {"op":"exec"} gets
{"v":1,"ok":true} and the connection is then relayed to AGENT_SOCKET (as vmm hands it to the
guest agent over vsock); anything else gets an error reply. With --bad-agent the peer after
the reply is not the agent but sends a frame with a bad header.
"""
import json
import socket
import sys
import threading


def pump(src, dst):
    try:
        while True:
            b = src.recv(65536)
            if not b:
                break
            dst.sendall(b)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def serve(c, agent_path, bad):
    line = b""
    while not line.endswith(b"\n"):
        b = c.recv(1)
        if not b:
            c.close()
            return
        line += b
    try:
        ok = json.loads(line).get("op") == "exec"
    except ValueError:
        ok = False
    if not ok:
        c.sendall(b'{"v":1,"ok":false,"error":"not an exec request"}\n')
        c.close()
        return
    c.sendall(b'{"v":1,"ok":true}\n')
    if bad:
        c.sendall(b"\x08\x00\x00\x00\x63\x00\x00\x00" + b"x" * 8)
        c.recv(100)
        c.close()
        return
    a = socket.socket(socket.AF_UNIX)
    a.connect(agent_path)
    t = threading.Thread(target=pump, args=(a, c), daemon=True)
    t.start()
    pump(c, a)
    t.join()
    c.close()
    a.close()


def main():
    s = socket.socket(socket.AF_UNIX)
    s.bind(sys.argv[1])
    s.listen(16)
    bad = "--bad-agent" in sys.argv
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c, sys.argv[2], bad), daemon=True).start()


main()
