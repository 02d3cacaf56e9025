#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_api (corpus/api/): a request line of every op as vmm ctl sends
them, and one of each class the parser must refuse (docs/api.md). Each seed is the bytes of one
line. Run from anywhere; rewrites the seeds."""
import os


def seeds():
    for op in ('state', 'start', 'pause', 'resume', 'exec', 'metrics'):
        yield 'op-' + op, b'{"v":1,"op":"%s"}\n' % op.encode()
    yield 'op-stop', b'{"v":1,"op":"stop","timeout_ms":10000}\n'
    yield 'op-stop-default', b'{"op":"stop"}'
    yield 'op-signal', b'{"v":1,"op":"signal","signal":15}\n'
    yield 'spaced-crlf', b' { "signal" : 64 , "op" : "signal" } \r\n'
    yield 'escapes', b'{"o\\u0070":"st\\u0061te"}\n'
    yield 'unknown-key', b'{"op":"state","bogus":[1,{"a":null}]}\n'
    yield 'foreign-key', b'{"op":"pause","timeout_ms":5}\n'
    yield 'duplicate', b'{"op":"state","op":"stop"}\n'
    yield 'duplicate-escaped', b'{"op":"stop","timeout_ms":1,"timeout_m\\u0073":2}\n'
    yield 'version', b'{"v":2,"op":"state"}\n'
    yield 'types', b'{"op":"stop","timeout_ms":1.5e3}\n'
    yield 'range', b'{"op":"signal","signal":99999999999999999999999}\n'
    yield 'not-object', b'["state"]\n'
    yield 'trailing', b'{"op":"state"} {"op":"stop"}\n'
    yield 'two-lines', b'{"op":"state"}\n{"op":"stop"}\n'
    yield 'single-quotes', b"{'op':'state'}\n"
    yield 'nul', b'{"op":"state"\x00}\n'
    yield 'nul-escape', b'{"op":"st\\u0000ate"}\n'
    yield 'bad-utf8', b'{"op":"\xc3\xa9\xed\xa0\x80\xff"}\n'
    yield 'deep', b'{"a":' + b'[' * 12 + b']' * 12 + b'}\n'
    yield 'long', b'{"op":"state"' + b' ' * 4080 + b'}\n'


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus', 'api')
    os.makedirs(out, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()
