#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_virtio_net (corpus/virtio_net/): a driver and a host doing
what Linux and a TAP do (frames both ways, TSO headers, mergeable buffers, running out of
buffers, flow control, indirect tables, reset, hang-up), for the fuzzer to start from. The layout
is fuzz_virtio_net.c's: a 7-byte header, a --net value, guest RAM from gpa 0, then operations. Run from
anywhere; rewrites the seeds."""
import os
import struct

NEXT, WRITE, INDIRECT = 1, 2, 4
# feature bits of the fuzz header (fuzz_virtio_net.c's feature_map)
CSUM, GUEST_CSUM, GUEST_TSO4, GUEST_TSO6, HOST_TSO4, HOST_TSO6, MRG, EVENT_IDX, INDIRECT_F, \
    MAC, STATUS = (1 << i for i in range(11))
OFFLOADS = CSUM | GUEST_CSUM | GUEST_TSO4 | GUEST_TSO6 | HOST_TSO4 | HOST_TSO6
RX, TX = 0, 1
BASE = {RX: 0x0000, TX: 0x2000}  # desc; avail at +0x1000, used at +0x1400
TABLES, DATA = 0x4000, 0x5000
RAM = 0x20000
(OP_FRAME, OP_BIG_FRAME, OP_KICK_TX, OP_KICK_RX, OP_PUMP, OP_DRAIN, OP_POST, OP_POKE, OP_RESET,
 OP_HANGUP, OP_CONFIG) = range(11)
HDR = 12


def net_hdr(flags=0, gso=0, hdr_len=0, gso_size=0, cs_start=0, cs_off=0, nbuf=0):
    return struct.pack('<BBHHHHH', flags, gso, hdr_len, gso_size, cs_start, cs_off, nbuf)


def eth_frame(n, seed=0):
    f = b'\xff' * 6 + b'\x52\x54\x00\x12\x34\x56' + b'\x88\xb5'
    return f + bytes((i * 7 + seed) & 0xff for i in range(n - len(f)))


class Seed:
    def __init__(self, features, rx_size=16, tx_size=16, spec=b'tap=fuzz0'):
        self.features = features
        self.spec = spec
        self.sizes = {RX: rx_size, TX: tx_size}
        self.ram = bytearray(DATA)
        self.next_desc = {RX: 0, TX: 0}
        self.posted = {RX: 0, TX: 0}
        self.data = DATA
        self.ops = b''

    def alloc(self, n, content=b''):
        gpa = self.data
        self.data += (n + 63) & ~63
        assert self.data <= RAM
        if len(self.ram) < self.data:
            self.ram.extend(bytes(self.data - len(self.ram)))
        self.ram[gpa:gpa + len(content)] = content
        return gpa

    def desc(self, q, i, addr, length, flags=0, nxt=0, table=None):
        at = (BASE[q] if table is None else table) + 16 * i
        struct.pack_into('<QIHH', self.ram, at, addr, length, flags, nxt)

    def chain(self, q, segs, publish=True):
        """segs: (gpa, len, write). Returns the head."""
        size = self.sizes[q]
        head = self.next_desc[q] % size
        for k, (gpa, n, w) in enumerate(segs):
            me = self.next_desc[q] % size
            self.next_desc[q] += 1
            self.desc(q, me, gpa, n, (WRITE if w else 0) | (NEXT if k + 1 < len(segs) else 0),
                      self.next_desc[q] % size)
        av = BASE[q] + 0x1000
        struct.pack_into('<H', self.ram, av + 4 + 2 * (self.posted[q] % size), head)
        self.posted[q] += 1
        if publish:
            struct.pack_into('<H', self.ram, av + 2, self.posted[q] & 0xffff)
        return head

    def rx_buf(self, n, publish=True):
        return self.chain(RX, [(self.alloc(n), n, True)], publish)

    def tx(self, hdr, frame, pieces=1):
        segs = [(self.alloc(HDR, hdr), HDR, False)]
        step = len(frame) // pieces
        for k in range(pieces):
            part = frame[k * step:] if k + 1 == pieces else frame[k * step:(k + 1) * step]
            segs.append((self.alloc(len(part), part), len(part), False))
        return self.chain(TX, segs)

    def op(self, code, args=b''):
        self.ops += bytes([code]) + args

    def frame(self, hdr, frame):
        m = hdr + frame
        self.op(OP_FRAME, struct.pack('<H', len(m)) + m)

    def big_frame(self, hdr, n, fill):
        low = min(n, 0xffff)
        assert n - low < 256
        self.op(OP_BIG_FRAME, hdr + struct.pack('<HBB', low, n - low, fill))

    def bytes(self):
        def log2(v):
            return v.bit_length() - 1
        ram = bytes(self.ram).rstrip(b'\0')  # the rest of RAM is zero anyway
        assert len(ram) <= 0xffff
        return struct.pack('<HBBHB', self.features, log2(self.sizes[RX]), log2(self.sizes[TX]),
                           len(ram), len(self.spec)) + self.spec + ram + self.ops


def seeds():
    base = MAC | STATUS | EVENT_IDX | INDIRECT_F

    s = Seed(base, spec=b'mac=52:54:00:12:34:56,tap=vmtap0')
    s.op(OP_CONFIG, bytes([0, 8]))
    s.tx(net_hdr(), eth_frame(200), pieces=2)
    s.tx(net_hdr(), eth_frame(60, 1))
    s.op(OP_KICK_TX)
    s.op(OP_PUMP)
    s.op(OP_DRAIN)
    yield 'tx-simple', s

    s = Seed(base | OFFLOADS)
    s.tx(net_hdr(1, 1, 54, 1448, 34, 16), eth_frame(3000))
    s.tx(net_hdr(1, 0, 0, 0, 34, 16), eth_frame(100))
    s.tx(net_hdr(1, 4, 74, 1428, 54, 16), eth_frame(4000))
    s.op(OP_KICK_TX)
    s.op(OP_DRAIN)
    yield 'tx-tso-csum', s

    s = Seed(base | GUEST_CSUM)
    s.rx_buf(1526)
    s.rx_buf(1526)
    s.op(OP_KICK_RX)
    s.frame(net_hdr(2), eth_frame(100))
    s.frame(net_hdr(), eth_frame(1514, 3))
    s.op(OP_PUMP)
    yield 'rx-small-buffers', s

    s = Seed(base | OFFLOADS | MRG, rx_size=32)
    for _ in range(17):
        s.rx_buf(4096)
    s.op(OP_KICK_RX)
    s.big_frame(net_hdr(1, 1, 66, 1448, 34, 16), 65000, 0x5a)
    s.frame(net_hdr(), eth_frame(9000, 4))
    s.op(OP_PUMP)
    yield 'rx-mergeable-tso', s

    # buffers written but published one at a time: the device stalls and resumes on kicks
    s = Seed(base | MRG, rx_size=8)
    for _ in range(4):
        s.rx_buf(2048, publish=False)
    s.frame(net_hdr(), eth_frame(3000, 5))
    s.frame(net_hdr(), eth_frame(600, 6))
    s.op(OP_PUMP)
    s.op(OP_POST, bytes([RX, 1]))
    s.op(OP_KICK_RX)
    s.op(OP_PUMP)
    s.op(OP_POST, bytes([RX, 2]))
    s.op(OP_KICK_RX)
    s.op(OP_PUMP)
    s.op(OP_POST, bytes([RX, 1]))
    s.op(OP_KICK_RX)
    yield 'rx-stall-resume', s

    # more tx than the socket takes: EAGAIN, EPOLLOUT, and the host draining
    s = Seed(base, tx_size=64)
    pay = s.alloc(16384, eth_frame(16384, 7))
    for i in range(30):
        h = s.alloc(HDR + 18, net_hdr() + eth_frame(14) + struct.pack('<I', i))
        s.chain(TX, [(h, HDR + 18, False), (pay, 16384, False)])
    s.op(OP_KICK_TX)
    for _ in range(4):
        s.op(OP_PUMP)
        s.op(OP_DRAIN)
    yield 'tx-flow-control', s

    # an indirect table for tx, event idx on
    s = Seed(base)
    frame = eth_frame(300, 8)
    h, f = s.alloc(HDR, net_hdr()), s.alloc(len(frame), frame)
    s.desc(TX, 0, h, HDR, NEXT, 1, table=TABLES)
    s.desc(TX, 1, f, len(frame), 0, 0, table=TABLES)
    s.desc(TX, 0, TABLES, 32, INDIRECT)
    struct.pack_into('<HH', s.ram, BASE[TX] + 0x1000 + 2, 1, 0)
    s.op(OP_KICK_TX)
    s.op(OP_DRAIN)
    yield 'tx-indirect', s

    # a frame half placed, then a reset, then traffic again; and the host hangs up
    s = Seed(base | MRG, rx_size=4, spec=b'tap=a,mac=01:00:5e:00:00:01')
    s.rx_buf(1024)
    s.op(OP_KICK_RX)
    s.frame(net_hdr(), eth_frame(3000, 9))
    s.op(OP_PUMP)
    s.op(OP_RESET)
    s.op(OP_POST, bytes([RX, 1]))
    s.op(OP_KICK_RX)
    s.op(OP_PUMP)
    s.op(OP_HANGUP)
    s.op(OP_PUMP)
    s.op(OP_KICK_TX)
    yield 'reset-and-hangup', s

    # a full socket holds a tx chain when the host hangs up
    s = Seed(base, tx_size=32)
    pay = s.alloc(16384, eth_frame(16384, 11))
    for i in range(16):
        s.chain(TX, [(s.alloc(HDR, net_hdr()), HDR, False), (pay, 16384, False)])
    s.op(OP_KICK_TX)
    s.op(OP_PUMP)
    s.op(OP_HANGUP)
    s.op(OP_PUMP)
    s.op(OP_CONFIG, bytes([6, 2]))
    yield 'tx-held-hangup', s

    # more chains than one event handles, all dropped (header-only): the rest on EPOLLOUT
    s = Seed(base, tx_size=256)
    h = s.alloc(HDR, net_hdr())
    for i in range(256):
        s.chain(TX, [(h, HDR, False)])
    s.op(OP_KICK_TX)
    s.op(OP_POST, bytes([TX, 40]))
    s.op(OP_PUMP)
    yield 'tx-budget', s

    # the driver rewrites a descriptor while the device works
    s = Seed(base | OFFLOADS)
    s.tx(net_hdr(), eth_frame(500, 10))
    s.op(OP_KICK_TX)
    s.op(OP_POKE, struct.pack('<HB', BASE[TX] + 8, 4) + struct.pack('<I', 0x10000))
    s.op(OP_POST, bytes([TX, 1]))
    s.op(OP_KICK_TX)
    s.op(OP_DRAIN)
    yield 'poke-descriptor', s


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus', 'virtio_net')
    os.makedirs(out, exist_ok=True)
    for name, s in seeds():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(s.bytes())


if __name__ == '__main__':
    main()
