#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_fuse (corpus/fuse/): FUSE request sequences as Linux's
virtio-fs client sends them, and hostile ones. The layout is fuzz_fuse.c's: records of
<HHBB inlen, outcap, fix, split> followed by inlen request bytes. Run from anywhere."""
import os
import struct

LOOKUP, FORGET, GETATTR, SETATTR, READLINK, SYMLINK, MKNOD, MKDIR, UNLINK, RMDIR = \
    1, 2, 3, 4, 5, 6, 8, 9, 10, 11
RENAME, LINK, OPEN, READ, WRITE, STATFS, RELEASE, FSYNC = 12, 13, 14, 15, 16, 17, 18, 20
SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR, FLUSH = 21, 22, 23, 24, 25
OPENDIR, READDIR, RELEASEDIR, ACCESS, CREATE, BATCH_FORGET = 27, 28, 29, 34, 35, 42
FALLOCATE, READDIRPLUS, RENAME2, LSEEK, COPY_FILE_RANGE = 43, 44, 45, 46, 47
FIX_LEN, FIX_NODE, FIX_FH = 1, 2, 4
ROOT = 1


def req(op, args=b'', node=ROOT, fix=FIX_LEN, outcap=4096, split=3):
    body = struct.pack('<IIQQIIIHH', 0, op, 7, node, 0, 0, 0, 0, 0) + args
    return struct.pack('<HHBB', len(body), outcap, fix, split) + body


def name(s):
    return s.encode() + b'\0'


def fh_args(rest):  # fh first, patched by FIX_FH
    return struct.pack('<Q', 0) + rest


seeds = {
    'lookup-getattr': req(LOOKUP, name('a')) + req(GETATTR, bytes(16), fix=FIX_LEN | FIX_NODE),
    'open-read': req(LOOKUP, name('a')) +
    req(OPEN, struct.pack('<II', 0, 0), fix=FIX_LEN | FIX_NODE) +
    req(READ, fh_args(struct.pack('<QIIQII', 0, 4096, 0, 0, 0, 0)),
        fix=FIX_LEN | FIX_NODE | FIX_FH, outcap=8192),
    'create-write': req(CREATE, struct.pack('<IIII', 2, 0o100644, 0, 0) + name('n')) +
    req(WRITE, fh_args(struct.pack('<QIIQII', 0, 5, 0, 0, 0, 0)) + b'hello',
        fix=FIX_LEN | FIX_NODE | FIX_FH) +
    req(FALLOCATE, fh_args(struct.pack('<QQII', 0, 1 << 40, 0, 0)),
        fix=FIX_LEN | FIX_NODE | FIX_FH) +
    req(RELEASE, fh_args(struct.pack('<IIQ', 0, 0, 0)), fix=FIX_LEN | FIX_NODE | FIX_FH),
    'mkdir-readdirplus': req(MKDIR, struct.pack('<II', 0o755, 0) + name('x')) +
    req(OPENDIR, struct.pack('<II', 0, 0)) +
    req(READDIRPLUS, fh_args(struct.pack('<QIIQII', 0, 4096, 0, 0, 0, 0)),
        fix=FIX_LEN | FIX_FH, outcap=4096),
    'symlink-escape': req(LOOKUP, name('etc')) + req(LOOKUP, name('passwd'),
                                                     fix=FIX_LEN | FIX_NODE) +
    req(LOOKUP, name('up')) + req(OPEN, struct.pack('<II', 2, 0), fix=FIX_LEN | FIX_NODE) +
    req(CREATE, struct.pack('<IIII', 0o1102, 0o100644, 0, 0) + name('up')) +
    req(LOOKUP, name('..')) + req(LOOKUP, name('../canary')) + req(READLINK, node=2),
    'rename-link-unlink': req(LOOKUP, name('a')) +
    req(LINK, struct.pack('<Q', 2) + name('b')) +
    req(RENAME, struct.pack('<Q', ROOT) + name('b') + name('c')) +
    req(RENAME2, struct.pack('<QII', ROOT, 2, 0) + name('c') + name('a')) +
    req(UNLINK, name('c')) + req(RMDIR, name('d')),
    'xattr': req(LOOKUP, name('a')) +
    req(SETXATTR, struct.pack('<II', 3, 0) + name('user.t') + b'abc', fix=FIX_LEN | FIX_NODE) +
    req(GETXATTR, struct.pack('<II', 0, 0) + name('user.t'), fix=FIX_LEN | FIX_NODE) +
    req(LISTXATTR, struct.pack('<II', 64, 0), fix=FIX_LEN | FIX_NODE) +
    req(REMOVEXATTR, name('user.t'), fix=FIX_LEN | FIX_NODE),
    'forget': req(LOOKUP, name('a')) + req(FORGET, struct.pack('<Q', 1), fix=FIX_LEN | FIX_NODE) +
    req(FORGET, struct.pack('<Q', 1), fix=FIX_LEN | FIX_NODE) +
    req(BATCH_FORGET, struct.pack('<IIQQ', 1, 0, 2, 5)) +
    req(BATCH_FORGET, struct.pack('<IIQQ', 0xffffffff, 0, 2, 5)),
    'malformed': req(GETATTR, b'', fix=0) + req(LOOKUP, b'abc') + req(LOOKUP, b'', outcap=8) +
    req(WRITE, fh_args(struct.pack('<QIIQII', 0, 0xffffffff, 0, 0, 0, 0))) +
    req(9999) + req(SETATTR, bytes(88), node=0xffffffffffff),
    'misc': req(STATFS) + req(ACCESS, struct.pack('<II', 4, 0)) +
    req(MKNOD, struct.pack('<IIII', 0o10644, 0, 0, 0) + name('fifo')) +
    req(MKNOD, struct.pack('<IIII', 0o20644, 0x103, 0, 0) + name('null')) +
    req(SYMLINK, name('s') + name('/etc/shadow')) +
    req(LSEEK, fh_args(struct.pack('<QII', 0, 3, 0))) +
    req(COPY_FILE_RANGE, fh_args(struct.pack('<QQQQQ', 0, ROOT, 0, 0, 100))),
}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus', 'fuse')
os.makedirs(out, exist_ok=True)
for n, data in seeds.items():
    with open(os.path.join(out, n), 'wb') as f:
        f.write(data)
