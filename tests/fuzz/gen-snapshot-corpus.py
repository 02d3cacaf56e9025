#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_snapshot (corpus/snapshot/): state files laid out as
docs/snapshot.md says (a header, sections with CRC-32s), valid ones and one of each class the
reader must refuse. Run from anywhere; rewrites the seeds."""
import os
import struct
import zlib


def section(type_, index, payload):
    hdr = struct.pack('<IIQ', type_, index, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(hdr))
    return hdr + struct.pack('<II', crc, 0) + payload + b'\0' * (-len(payload) % 8)


def state(sections, version=1):
    body = b''.join(sections)
    head = b'VMMSNAP\n' + struct.pack('<IIQIII', version, 40, 40 + len(body), len(sections), 0, 0)
    return head + struct.pack('<I', zlib.crc32(head)) + body


def seeds():
    yield 'empty', state([])
    yield 'machine', state([
        section(1, 0, b'vmm 0.1.0'),
        section(2, 0, b'{"kernel":"/k","cpus":2,"memory_mib":256}'),
        section(4, 0, b'memory\0' + struct.pack('<Q', 256 << 20)),
        section(16, 0, bytes(range(144))),
        section(16, 1, bytes(range(144))),
        section(32, 0, b'\1' * 512), section(32, 1, b'\2' * 512),
        section(48, 2, b'transport'), section(49, 2, b''),
    ])
    full = state([section(t, 0, bytes([t]) * t) for t in (1, 2, 3, 4, 16, 17, 18, 50, 51)])
    yield 'all-padded', full
    yield 'truncated', full[:len(full) - 5]
    yield 'version-2', state([section(1, 0, b'vmm')], version=2)
    yield 'unknown-type', state([section(7, 0, b'x')])
    yield 'duplicate', state([section(50, 0, b'a'), section(50, 0, b'b')])
    bad = bytearray(state([section(51, 0, b'abc')]))
    bad[-1] = 1  # padding set
    yield 'padding', bytes(bad)
    yield 'header-only-short', b'VMMSNAP\n\1\0\0\0'


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus', 'snapshot')
    os.makedirs(out, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()
