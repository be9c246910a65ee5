"""python-lz4 (Debian's python3-lz4, i.e. the C liblz4) as the reference of the LZ4 block tests.

run DIR    for every DIR/<name>.raw writes DIR/<name>.lz4 (lz4.block.compress, default mode, no
           size prefix) and DIR/<name>.default (liblz4's LZ4_compress_default, called directly: the
           function bitshuffle compresses its blocks with); for every DIR/<name>.bsN (N = 1, 2, 4 or
           8 bytes per element) writes DIR/<name>.bslz4 (bitshuffle.compress_lz4 with the 12-byte
           header of HDF5 filter 32008: total size, block size 8192); for every DIR/<name>.blk, decoded size in DIR/<name>.size, writes
           DIR/<name>.out (lz4.block.decompress) or, when liblz4 refuses the block, DIR/<name>.err
           with its message. Prints "DONE".
"""
import ctypes
import os
import struct
import sys

import lz4.block

LIBLZ4 = ctypes.CDLL("liblz4.so.1")


def compress_default(data):
    """liblz4's LZ4_compress_default on `data` (python-lz4 takes another entry point)."""
    dst = ctypes.create_string_buffer(LIBLZ4.LZ4_compressBound(len(data)))
    n = LIBLZ4.LZ4_compress_default(data, dst, len(data), len(dst))
    if n <= 0:
        raise RuntimeError("LZ4_compress_default failed")
    return dst.raw[:n]


def compress_bslz4(data, size):
    import bitshuffle
    import numpy as np

    a = np.frombuffer(data, dtype="<u%d" % size)
    block = 8192 // size
    return struct.pack(">QI", a.nbytes, block * size) + bitshuffle.compress_lz4(a, block).tobytes()


def main():
    if len(sys.argv) != 3 or sys.argv[1] != "run":
        sys.exit("usage: lz4_peer.py run DIR")
    d = sys.argv[2]
    for name in sorted(os.listdir(d)):
        stem, ext = os.path.splitext(name)
        path = os.path.join(d, stem)
        if ext == ".raw":
            with open(path + ".raw", "rb") as f:
                data = f.read()
            with open(path + ".lz4", "wb") as f:
                f.write(lz4.block.compress(data, store_size=False))
            with open(path + ".default", "wb") as f:
                f.write(compress_default(data))
        elif ext in (".bs1", ".bs2", ".bs4", ".bs8"):
            with open(path + ext, "rb") as f:
                data = f.read()
            with open(path + ".bslz4", "wb") as f:
                f.write(compress_bslz4(data, int(ext[3:])))
        elif ext == ".blk":
            with open(path + ".blk", "rb") as f:
                block = f.read()
            with open(path + ".size") as f:
                size = int(f.read())
            try:
                out = lz4.block.decompress(block, uncompressed_size=size)
            except Exception as e:  # liblz4 refused the block
                with open(path + ".err", "w") as f:
                    f.write(str(e) or type(e).__name__)
                continue
            with open(path + ".out", "wb") as f:
                f.write(out)
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
