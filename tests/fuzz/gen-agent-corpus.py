#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_agent (corpus/agent/): sessions a real host could drive, and
the malformed frames the agent must refuse, in fuzz_agent.c's command format. Run from anywhere;
rewrites the seeds."""
import os
import struct

HELLO, START, STARTED, STDIN, STDOUT, STDERR, RESIZE, SIGNAL, EXIT, ERROR, SHUTDOWN = range(1, 12)
TTY = 1


def frame(t, payload=b'', flags=0, length=None):
    return struct.pack('<IHH', len(payload) if length is None else length, t, flags) + payload


def start(argv, env=('PATH=/bin',), cwd='/', flags=0, uid=0, gid=0, rows=0, cols=0):
    p = struct.pack('<IIIHHII', flags, uid, gid, rows, cols, len(argv), len(env))
    return frame(START, p + b''.join(s.encode() + b'\0' for s in [cwd, *argv, *env]))


def feed(b):
    return bytes([0]) + struct.pack('<H', len(b)) + b


def output(n, stderr=False):
    return bytes([1, 1 if stderr else 0]) + struct.pack('<H', n)


def exit_(w):
    return bytes([2]) + struct.pack('<H', w)


def send(n=0xffff):
    return bytes([3]) + struct.pack('<H', n)


def stdin_room(b):
    return bytes([4, b])


def seeds():
    yield 'echo-main', bytes([1]) + feed(start(['echo', 'hi'])) + output(3) + exit_(0) + send() \
        + feed(frame(SHUTDOWN)) + send()
    yield 'tty-session', bytes([0]) + feed(start(['sh'], flags=TTY, rows=24, cols=80)) \
        + feed(frame(RESIZE, struct.pack('<HH', 50, 132)) + frame(STDIN, b'ls\n')) \
        + stdin_room(0) + feed(frame(STDIN, b'x' * 3000) + frame(STDIN)) + stdin_room(1) \
        + feed(frame(SIGNAL, struct.pack('<I', 2))) + output(100) + exit_(2) + send(4)
    yield 'malformed', bytes([1]) + feed(frame(STDIN, b'abc', flags=1) + frame(99, b'12345')
                                         + frame(STDIN, length=0x10001)) + feed(b'z' * 1000) \
        + feed(frame(START, b'short') + frame(STDIN, b'early') + frame(STDOUT, b'mine')
               + frame(RESIZE, b'123') + frame(SIGNAL, struct.pack('<I', 0))) + send() \
        + feed(start(['cat']) + start(['cat']) + frame(SIGNAL, struct.pack('<I', 65))) + send()
    yield 'spawn-fails', bytes([3]) + feed(start(['nope'], env=('A=1', 'B='))) + send() \
        + feed(frame(STDIN, b'late') + frame(SHUTDOWN))
    yield 'stdin-backpressure', bytes([0]) + feed(start(['cat'])) + stdin_room(0) \
        + bytes([6, 7, 6, 7]) + feed(frame(STDIN, b'y' * 100)) + stdin_room(255) \
        + feed(frame(STDIN)) + exit_(0x0f00) + send(3) + send()
    yield 'split-frames', bytes([1]) + b''.join(feed(bytes([b])) for b in start(['id'])) \
        + output(65535, stderr=True) + output(10) + exit_(9) + send(1) + send()


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus', 'agent')
    os.makedirs(out, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()
