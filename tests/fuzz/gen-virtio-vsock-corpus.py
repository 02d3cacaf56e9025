#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_virtio_vsock (corpus/virtio_vsock/): sessions a real guest
driver and real host programs could have, for the fuzzer to start from. The command language is
fuzz_virtio_vsock.c's (see the comment at its top). Run from anywhere; rewrites the seeds."""
import os
import struct

CID, HOST, LISTEN = 3, 2, 1024
REQUEST, RESPONSE, RST, SHUTDOWN, RW, CREDIT_UPDATE, CREDIT_REQUEST = range(1, 8)
F_SRC, F_DST, F_TYPE, F_LEN, F_OP, F_REPLY, F_LISTEN, F_SPLIT = (1 << i for i in range(8))
VALID = F_SRC | F_DST | F_TYPE | F_LEN


class Session:
    def __init__(self, features=3):
        self.b = bytearray([features])

    def tx(self, op, src=0, dst=0, payload=b'', flags=VALID, buf_alloc=65536, fwd_cnt=0,
           shut=0, length=None, typ=1, src_cid=CID, dst_cid=HOST):
        hdr = struct.pack('<QQIIIHHIII', src_cid, dst_cid, src, dst,
                          len(payload) if length is None else length, typ, op, shut, buf_alloc,
                          fwd_cnt)
        self.b += bytes([0, flags]) + hdr + struct.pack('<H', len(payload)) + payload

    def post_rx(self, n=8, code=255):
        self.b += bytes([1, n - 1, code])

    def connect(self, port=None, raw=None):
        if raw is None:
            self.b += bytes([2, port & 7])
        else:
            self.b += bytes([2, 0x80 | len(raw)]) + raw

    def accept(self):
        self.b += bytes([3])

    def write(self, i, blocks=1):
        self.b += bytes([4, i, blocks - 1])

    def read(self, i):
        self.b += bytes([5, i])

    def close(self, i, half=False):
        self.b += bytes([6, i | (0x80 if half else 0)])

    def pump(self):
        self.b += bytes([7])

    def reset(self):
        self.b += bytes([8])

    def parse(self, spec):
        self.b += bytes([9, len(spec)]) + spec

    def bulk(self, n, code=255):
        self.b += bytes([10, n - 1, code])

    def raw_tx(self, data):
        self.b += bytes([11, len(data)]) + data

    def burst(self, n, op, src=0, dst=0, flags=VALID):
        hdr = struct.pack('<QQIIIHHIII', CID, HOST, src, dst, 0, 1, op, 0, 65536, 0)
        self.b += bytes([12, n - 1, flags]) + hdr

    def break_queue(self, rx=False):
        self.b += bytes([13, 1 if rx else 0])


def seeds():
    # the guest connects to the host listener; data both ways; the host closes
    s = Session()
    s.post_rx()
    s.tx(REQUEST, 5, flags=VALID | F_LISTEN)
    s.accept()
    s.tx(RW, 5, flags=VALID | F_LISTEN, payload=b'hello host')
    s.read(0)
    s.write(0, 4)
    s.pump()
    s.tx(CREDIT_UPDATE, 5, flags=VALID | F_LISTEN, fwd_cnt=256)
    s.close(0)
    s.pump()
    s.tx(RST, 5, flags=VALID | F_LISTEN)
    yield 'guest-connect', s

    # a host program connects to guest port 5; the guest accepts and they talk
    s = Session()
    s.post_rx()
    s.connect(5)
    s.tx(RESPONSE, flags=VALID | F_REPLY)
    s.write(0, 2)
    s.pump()
    s.tx(RW, flags=VALID | F_REPLY, payload=b'x' * 300)
    s.read(0)
    s.tx(SHUTDOWN, flags=VALID | F_REPLY, shut=3)
    s.pump()
    yield 'host-connect', s

    # the host program half-closes, the guest answers and shuts down
    s = Session(1)
    s.post_rx(4)
    s.connect(6)
    s.tx(RESPONSE, flags=VALID | F_REPLY, buf_alloc=512)
    s.write(0, 16)
    s.close(0, half=True)
    s.pump()
    s.tx(CREDIT_UPDATE, flags=VALID | F_REPLY, buf_alloc=512, fwd_cnt=512)
    s.post_rx(8)
    s.tx(CREDIT_REQUEST, flags=VALID | F_REPLY)
    s.tx(RW, flags=VALID | F_REPLY | F_SPLIT, payload=b'bye')
    s.tx(SHUTDOWN, flags=VALID | F_REPLY, shut=2)
    s.read(0)
    yield 'host-half-close', s

    # garbage CONNECT lines, and one the guest refuses
    s = Session()
    s.post_rx(2)
    s.connect(raw=b'CONNECT\n')
    s.connect(raw=b'connect 99999999999\n')
    s.connect(raw=b'A' * 40)
    s.connect(raw=b'CONNECT 7\nearly data')
    s.tx(RST, flags=VALID | F_REPLY)
    yield 'connect-lines', s

    # malformed packets
    s = Session(2)
    s.post_rx(16)
    s.tx(REQUEST, 1, LISTEN, flags=F_SRC | F_DST | F_TYPE | F_LEN)
    s.tx(RW, 1, LISTEN, b'abc', src_cid=4, flags=F_DST | F_TYPE | F_LEN)
    s.tx(RW, 1, LISTEN, b'abc', dst_cid=7, flags=0)
    s.tx(RW, 1, LISTEN, b'abc', length=100, flags=F_SRC | F_DST | F_TYPE)
    s.tx(RW, 1, LISTEN, b'abc', length=70000, flags=F_SRC | F_DST | F_TYPE)
    s.tx(99, 1, 2)
    s.tx(CREDIT_REQUEST, 1, 2, b'abc')
    s.tx(REQUEST, 2, LISTEN, typ=2, flags=F_SRC | F_DST)
    s.tx(REQUEST, 3, LISTEN)
    s.tx(CREDIT_REQUEST, 3, LISTEN)
    s.tx(CREDIT_UPDATE, 3, LISTEN, fwd_cnt=5)
    s.tx(REQUEST, 4, LISTEN)
    s.tx(REQUEST, 4, LISTEN)
    s.tx(RW, 1, 2, b'abc')
    s.post_rx(8, 3)
    s.tx(RW, 1, 2, b'abc')
    yield 'malformed', s

    # bulk data the host does not read, then a reset and a new connection
    s = Session()
    s.post_rx()
    s.tx(REQUEST, 9, flags=VALID | F_LISTEN)
    s.accept()
    for _ in range(6):
        s.tx(RW, 9, flags=VALID | F_LISTEN, payload=bytes(4096))
    s.pump()
    s.reset()
    s.post_rx()
    s.tx(REQUEST, 9, flags=VALID | F_LISTEN)
    yield 'bulk-then-reset', s

    # more than the credit while the host does not read, then the host drains it
    s = Session()
    s.post_rx(32)
    s.tx(REQUEST, 11, flags=VALID | F_LISTEN)
    s.accept()
    s.bulk(5)
    s.read(0)
    s.pump()
    s.bulk(4)
    s.tx(SHUTDOWN, flags=VALID | F_REPLY, shut=2)
    s.read(0)
    s.pump()
    s.tx(REQUEST, 12, flags=VALID | F_LISTEN)
    s.accept()
    s.bulk(16)
    s.read(1)
    yield 'credit-overrun', s

    # many REQUESTs in one kick (past the tx budget), and many RSTs owed
    s = Session()
    s.post_rx(64)
    s.burst(100, REQUEST, 40000, flags=VALID | F_LISTEN)
    s.pump()
    s.post_rx(64)
    s.burst(128, RW, 50000, 7)
    s.post_rx(64)
    s.pump()
    yield 'burst', s

    # short chains, a bare-header rx buffer, a broken queue, then a reset
    s = Session()
    s.post_rx(1, 8)
    s.raw_tx(b'')
    s.raw_tx(bytes(20))
    s.raw_tx(bytes(44))
    s.connect(3)
    s.write(0)
    s.post_rx(2, 8)
    s.break_queue()
    s.reset()
    s.post_rx(2, 9)
    s.break_queue(rx=True)
    s.tx(RW, 1, 2)
    yield 'short-and-broken', s

    # option values
    s = Session()
    s.parse(b'cid=3,uds=/run/v.sock')
    s.parse(b'uds=/x,cid=4294967294')
    s.parse(b'cid=2,uds=/x')
    s.parse(b'cid=3,uds=/x,cid=4')
    yield 'parse', s


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus', 'virtio_vsock')
    os.makedirs(out, exist_ok=True)
    for name, s in seeds():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(bytes(s.b))


if __name__ == '__main__':
    main()
