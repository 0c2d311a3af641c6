#!/usr/bin/env python3
"""Prints the SHA-256 of one tensor's data in a GGUF file (F32 or F16), for tests that check
whether training changed it. usage: gguf-tensor.py FILE.gguf TENSOR_NAME"""
import hashlib
import struct
import sys

SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
TYPE_SIZE = {0: 4, 1: 2}  # GGML_TYPE_F32, GGML_TYPE_F16


def main():
    path, want = sys.argv[1], sys.argv[2]
    with open(path, "rb") as f:
        buf = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("<Q")
        s = buf[pos:pos + n].decode("utf-8", "replace")
        pos += n
        return s

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("<I"), take("<Q")
            return [value(et) for _ in range(n)]
        return take(SCALAR[t])

    if buf[:4] != b"GGUF":
        sys.exit(f"{path}: not a GGUF file")
    pos = 4
    take("<I")
    n_tensors, n_kv = take("<Q"), take("<Q")
    alignment = 32
    for _ in range(n_kv):
        key, t = string(), take("<I")
        v = value(t)
        if key == "general.alignment":
            alignment = v
    infos = {}
    for _ in range(n_tensors):
        name = string()
        dims = [take("<Q") for _ in range(take("<I"))]
        ttype, offset = take("<I"), take("<Q")
        infos[name] = (dims, ttype, offset)
    data = (pos + alignment - 1) // alignment * alignment
    if want not in infos:
        sys.exit(f"{path}: no tensor {want}")
    dims, ttype, offset = infos[want]
    if ttype not in TYPE_SIZE:
        sys.exit(f"{path}: {want} is of type {ttype}, not F32 or F16")
    n = TYPE_SIZE[ttype]
    for d in dims:
        n *= d
    print(hashlib.sha256(buf[data + offset:data + offset + n]).hexdigest())


main()
