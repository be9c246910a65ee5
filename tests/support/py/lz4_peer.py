"""python-lz4 (Debian's python3-lz4, i.e. the C liblz4) as the reference of the LZ4 block tests.

run DIR    for every DIR/<name>.raw writes DIR/<name>.lz4 (lz4.block.compress, default mode, no
           size prefix); for every DIR/<name>.blk, decoded size in DIR/<name>.size, writes
           DIR/<name>.out (lz4.block.decompress) or, when liblz4 refuses the block, DIR/<name>.err
           with its message. Prints "DONE".
"""
import os
import sys

import lz4.block


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
