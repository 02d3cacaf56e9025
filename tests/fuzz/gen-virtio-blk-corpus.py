#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_virtio_blk (corpus/virtio_blk/): requests a Linux guest sends
(and a few it must not), for the fuzzer to start from. The layout is fuzz_virtio_blk.c's: a
6-byte header, then guest RAM from gpa 0 with the queue's rings at DESC, AVAIL and USED.
Run from anywhere; rewrites the seeds."""
import os
import struct

NEXT, WRITE, INDIRECT = 1, 2, 4
EVENT_IDX, INDIRECT_F, RO = 1, 2, 4
DESC, AVAIL, USED = 0x000, 0x1000, 0x1400
HEAP = 0x2000
T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, T_WRITE_ZEROES = 0, 1, 4, 8, 11, 13
UNMAP = 1


class Queue:
    def __init__(self, size_log=4, flags=EVENT_IDX | INDIRECT_F, rounds=0, kick_step=0):
        self.hdr = struct.pack('<BBBBH', flags, rounds, size_log, 0, kick_step)
        self.size = 1 << size_log
        self.ram = bytearray(HEAP)
        self.next_desc = 0
        self.posted = 0

    def alloc(self, data):
        """Puts data in guest RAM (16-byte aligned) and returns its address."""
        addr = len(self.ram)
        self.ram += data + bytes(-len(data) % 16)
        return addr

    def desc(self, table, i, addr, length, flags, nxt):
        struct.pack_into('<QIHH', self.ram, table + 16 * i, addr, length, flags, nxt)

    def chain(self, bufs, indirect=False):
        """bufs: (addr, len, writable). Returns the head."""
        head = self.next_desc % self.size
        if indirect:
            table = self.alloc(bytes(16 * len(bufs)))
            for i, (a, l, w) in enumerate(bufs):
                self.desc(table, i, a, l, (NEXT if i + 1 < len(bufs) else 0) | (WRITE if w else 0),
                          i + 1)
            self.desc(DESC, head, table, 16 * len(bufs), INDIRECT, 0)
            self.next_desc += 1
        else:
            for i, (a, l, w) in enumerate(bufs):
                idx = (self.next_desc + i) % self.size
                self.desc(DESC, idx, a, l, (NEXT if i + 1 < len(bufs) else 0) | (WRITE if w else 0),
                          (idx + 1) % self.size)
            self.next_desc += len(bufs)
        slot = self.posted % self.size
        struct.pack_into('<H', self.ram, AVAIL + 4 + 2 * slot, head)
        self.posted += 1
        struct.pack_into('<H', self.ram, AVAIL + 2, self.posted & 0xffff)
        return head

    def request(self, type_, sector, data=b'', writable=False, pieces=1, indirect=False,
                status=True):
        bufs = [(self.alloc(struct.pack('<IIQ', type_, 0, sector)), 16, False)]
        if data:
            addr = self.alloc(data)
            step = -(-len(data) // pieces)
            for off in range(0, len(data), step):
                bufs.append((addr + off, min(step, len(data) - off), writable))
        if status:
            bufs.append((self.alloc(b'\xee'), 1, True))
        return self.chain(bufs, indirect)

    def bytes(self):
        return self.hdr + bytes(self.ram)


def segs(*s):
    return b''.join(struct.pack('<QII', sector, n, flags) for sector, n, flags in s)


def seeds():
    q = Queue()
    q.request(T_OUT, 2, bytes(range(256)) * 4, pieces=2)
    q.request(T_IN, 2, bytes(1024), writable=True, pieces=3)
    q.request(T_FLUSH, 0)
    yield 'write-read-flush', q

    q = Queue(flags=EVENT_IDX | INDIRECT_F)
    q.request(T_IN, 8, bytes(4096), writable=True, pieces=4, indirect=True)
    q.request(T_GET_ID, 0, bytes(20), writable=True)
    yield 'indirect-get-id', q

    q = Queue()
    q.request(T_DISCARD, 0, segs((0, 8, 0), (64, 16, 0)))
    q.request(T_WRITE_ZEROES, 0, segs((16, 4, 0), (32, 8, UNMAP)))
    q.request(T_IN, 0, bytes(512 * 40), writable=True, pieces=2)
    yield 'discard-write-zeroes', q

    q = Queue(flags=RO | EVENT_IDX)
    q.request(T_OUT, 0, bytes(512))
    q.request(T_IN, 127, bytes(512), writable=True)
    q.request(T_DISCARD, 0, segs((0, 1, 0)))
    yield 'read-only', q

    q = Queue(size_log=3, rounds=3, kick_step=1)
    q.request(T_IN, 128, bytes(512), writable=True)  # past the end
    q.request(T_IN, 0, bytes(100), writable=True)  # not a sector multiple
    q.request(T_OUT, (1 << 64) - 1, bytes(512))  # overflowing offset
    q.request(0x1234, 0)
    yield 'bad-requests', q

    q = Queue(size_log=2, flags=0)
    q.request(T_FLUSH, 0, status=False)  # nothing to answer in: the device fails
    yield 'no-status', q


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus', 'virtio_blk')
    os.makedirs(out, exist_ok=True)
    for name, q in seeds():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(q.bytes())


if __name__ == '__main__':
    main()
