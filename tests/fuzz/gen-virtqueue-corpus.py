#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_virtqueue (corpus/virtqueue/): well-formed queues a real
driver could have set up, for the fuzzer to start from. The layout is fuzz_virtqueue.c's:
a 24-byte header, then guest RAM from gpa 0. Run from anywhere; rewrites the seeds."""
import os
import struct

NEXT, WRITE, INDIRECT = 1, 2, 4
EVENT_IDX, INDIRECT_F = 1, 2
DESC, AVAIL, USED = 0x000, 0x1000, 0x1400  # room for queues of 256
TABLE, DATA = 0x2000, 0x2100


class Queue:
    def __init__(self, size, features=0, rounds=0, kick_step=0, start=0, written=0x200):
        self.hdr = struct.pack('<BBHHHIIII', features, rounds, size, kick_step, start, written,
                               DESC, AVAIL, USED)
        self.size, self.start = size, start
        self.ram = bytearray(DATA + 0x400)
        self.posted = 0

    def desc(self, i, addr, length, flags=0, nxt=0, table=DESC):
        struct.pack_into('<QIHH', self.ram, table + 16 * i, addr, length, flags, nxt)

    def post(self, *heads):
        for h in heads:
            slot = (self.start + self.posted) % self.size
            struct.pack_into('<H', self.ram, AVAIL + 4 + 2 * slot, h)
            self.posted += 1
        struct.pack_into('<H', self.ram, AVAIL + 2, (self.start + self.posted) & 0xffff)

    def used_event(self, v):
        struct.pack_into('<H', self.ram, AVAIL + 4 + 2 * self.size, v)

    def bytes(self):
        return self.hdr + bytes(self.ram)


def seeds():
    # a block-like request: header out, data in, status in
    q = Queue(8)
    q.desc(0, DATA, 16, NEXT, 1)
    q.desc(1, DATA + 0x100, 512, NEXT | WRITE, 2)
    q.desc(2, DATA + 0x300, 1, WRITE)
    q.post(0)
    yield 'blk-request', q

    # three chains, reposted over several rounds, with event idx
    q = Queue(4, EVENT_IDX, rounds=3, kick_step=2)
    q.desc(0, DATA, 8)
    q.desc(1, DATA + 8, 8, NEXT, 2)
    q.desc(2, DATA + 0x40, 64, WRITE)
    q.desc(3, DATA + 0x80, 32, WRITE)
    q.post(0, 1, 3)
    q.used_event(1)
    yield 'event-idx-rounds', q

    # an indirect table, preceded by a direct readable buffer
    q = Queue(16, INDIRECT_F | EVENT_IDX, written=100)
    q.desc(0, DATA, 4, NEXT, 5)
    q.desc(5, TABLE, 48, INDIRECT)
    q.desc(0, DATA + 0x10, 12, NEXT, 2, table=TABLE)
    q.desc(2, DATA + 0x100, 200, WRITE | NEXT, 1, table=TABLE)
    q.desc(1, DATA + 0x200, 1, WRITE, table=TABLE)
    q.post(0)
    yield 'indirect', q

    # indexes about to wrap, a full ring of one-buffer chains
    q = Queue(8, rounds=2, kick_step=8, start=0xfffc, written=3)
    for i in range(8):
        q.desc(i, DATA + 0x20 * i, 0x20, WRITE)
    q.post(*range(8))
    yield 'wrap-full-ring', q

    # the biggest queue, a chain through every descriptor
    q = Queue(256, INDIRECT_F)
    for i in range(256):
        q.desc(i, DATA + i, 1, NEXT if i < 255 else 0, i + 1)
    q.post(0)
    yield 'size-256-long-chain', q


out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus', 'virtqueue')
os.makedirs(out, exist_ok=True)
for name, q in seeds():
    with open(os.path.join(out, name), 'wb') as f:
        f.write(q.bytes())
