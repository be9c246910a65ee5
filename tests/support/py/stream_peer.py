"""Independent producer/checker of DECTRIS stream v2 messages (cbor2, bitshuffle, lz4, numpy).

make DIR [ROWS COLS]
           writes (default shape 67 x 133), for dtype in uint8/uint16/uint32: DIR/py_<dtype>.raw (pixels, little-endian)
           and DIR/py_<dtype>_<comp>.cbor image messages (comp = bslz4 | lz4 | none), plus
           DIR/py_start.cbor and DIR/py_end.cbor. Prints "DONE".
check DIR  decodes every DIR/ts_<dtype>_<comp>.cbor with Python libraries and compares the pixels
           with DIR/ts_<dtype>.raw; checks DIR/ts_start.cbor and DIR/ts_end.cbor fields. Prints one
           JSON object {name: "ok" | error text}.

Note: bitshuffle.compress_lz4 returns the block stream *without* the 12-byte HDF5 header
(u64be total, u32be block size); this script adds/strips it as the DCU does.
"""
import json
import os
import struct
import sys

import bitshuffle
import cbor2
import lz4.block
import numpy as np

DTYPES = {"uint8": (np.uint8, 64), "uint16": (np.uint16, 69), "uint32": (np.uint32, 70)}
SHAPE = (67, 133)  # odd sizes: partial last block and leftover elements


def detector_image(dtype, seed):
    rng = np.random.default_rng(seed)
    rows, cols = SHAPE
    y, x = np.mgrid[0:rows, 0:cols]
    r = np.hypot(y - rows / 2.0, x - cols / 3.0)
    img = rng.poisson(0.3 + 20.0 * np.exp(-((r % 17.0) - 8.0) ** 2), SHAPE)
    hot = rng.integers(0, rows * cols, 12)
    img.flat[hot] = np.iinfo(dtype).max
    return np.minimum(img, np.iinfo(dtype).max).astype("<" + np.dtype(dtype).str[1:])


def bslz4(arr):
    body = bitshuffle.compress_lz4(arr.ravel(), 0).tobytes()
    return struct.pack(">QI", arr.nbytes, 8192) + body


def lz4_hdf5(raw, block):
    out = [struct.pack(">QI", len(raw), block)]
    for i in range(0, len(raw), block):
        chunk = raw[i:i + block]
        c = lz4.block.compress(chunk, store_size=False)
        if len(c) >= len(chunk):
            c = chunk  # stored block
        out.append(struct.pack(">I", len(c)) + c)
    return b"".join(out)


def image_message(arr, tag, comp):
    raw = arr.tobytes()
    if comp == "bslz4":
        content = cbor2.CBORTag(56500, ["bslz4", arr.dtype.itemsize, bslz4(arr)])
    elif comp == "lz4":
        content = cbor2.CBORTag(56500, ["lz4", 0, lz4_hdf5(raw, 4096)])
    else:
        content = raw
    msg = {
        "type": "image",
        "series_id": 7,
        "series_unique_id": "01HY3F7R9Q0000000000000007",
        "image_id": 3,
        "real_time": [50000, 50000000],
        "series_date": cbor2.CBORTag(0, "2024-05-01T12:00:00.000+00:00"),
        "start_time": [150000, 50000000],
        "stop_time": [200000, 50000000],
        "data": {"threshold_1": cbor2.CBORTag(40, [list(arr.shape), cbor2.CBORTag(tag, content)])},
        "user_data": {"note": "py", "n": [1, 2.5]},
    }
    return cbor2.dumps(cbor2.CBORTag(55799, msg))


def make(d):
    for i, (name, (dt, tag)) in enumerate(DTYPES.items()):
        arr = detector_image(dt, 100 + i)
        with open(os.path.join(d, "py_%s.raw" % name), "wb") as f:
            f.write(arr.tobytes())
        for comp in ("bslz4", "lz4", "none"):
            with open(os.path.join(d, "py_%s_%s.cbor" % (name, comp)), "wb") as f:
                f.write(image_message(arr, tag, comp))
    start = {
        "type": "start",
        "series_id": 7,
        "series_unique_id": "01HY3F7R9Q0000000000000007",
        "arm_date": cbor2.CBORTag(0, "2024-05-01T11:59:59.500+00:00"),
        "channels": ["threshold_1", "threshold_2"],
        "count_time": 0.5,  # canonical encoding makes these half/single floats
        "frame_time": 0.25,
        "image_dtype": "uint16",
        "image_size_x": SHAPE[1],
        "image_size_y": SHAPE[0],
        "number_of_images": 10,
        "threshold_energy": {"threshold_1": 6750.0, "threshold_2": 18900.42},
        "detector_translation": [0.0, 0.0, 0.125],
        "saturation_value": 21517,
        "pixel_mask": {"threshold_1": cbor2.CBORTag(40, [[2, 3], cbor2.CBORTag(70, cbor2.CBORTag(
            56500, ["bslz4", 4, bslz4(np.array([0, 1, 0, 0, 4, 0], dtype="<u4"))]))])},
        "user_data": {"sample": "lysozyme"},
        "unknown_key": [1, 2, 3],
    }
    with open(os.path.join(d, "py_start.cbor"), "wb") as f:
        f.write(cbor2.dumps(cbor2.CBORTag(55799, start), canonical=True))
    end = {"type": "end", "series_id": 7, "series_unique_id": "01HY3F7R9Q0000000000000007"}
    with open(os.path.join(d, "py_end.cbor"), "wb") as f:
        f.write(cbor2.dumps(cbor2.CBORTag(55799, end)))
    print("DONE", flush=True)


def untag(v, tag):
    if not isinstance(v, cbor2.CBORTag) or v.tag != tag:
        raise ValueError("expected tag %d, got %r" % (tag, v))
    return v.value


def decode_array(item):
    dims, typed = untag(item, 40)
    tag = typed.tag
    dt = {64: "<u1", 69: "<u2", 70: "<u4"}[tag]
    content = typed.value
    n = int(np.prod(dims))
    if isinstance(content, bytes):
        raw = content
    else:
        alg, mod, payload = untag(content, 56500)
        total, block = struct.unpack(">QI", payload[:12])
        if alg == "bslz4":
            if block != 8192 or mod != np.dtype(dt).itemsize:
                raise ValueError("unexpected bslz4 header block=%d mod=%d" % (block, mod))
            arr = bitshuffle.decompress_lz4(
                np.frombuffer(payload[12:], dtype=np.uint8), (n,), np.dtype(dt), block // mod)
            raw = arr.tobytes()
        elif alg == "lz4":
            parts, pos = [], 12
            while pos < len(payload):
                (c,) = struct.unpack(">I", payload[pos:pos + 4])
                pos += 4
                size = min(block, total - sum(len(p) for p in parts))
                chunk = payload[pos:pos + c]
                parts.append(chunk if c == size else lz4.block.decompress(chunk, uncompressed_size=size))
                pos += c
            raw = b"".join(parts)
        else:
            raise ValueError(alg)
        if len(raw) != total:
            raise ValueError("size %d != header %d" % (len(raw), total))
    return dims, np.frombuffer(raw, dtype=dt)


def load_message(path):
    data = open(path, "rb").read()
    if data[:3] != b"\xd9\xd9\xf7":
        raise ValueError("missing self-described CBOR prefix")
    msg = cbor2.loads(data)  # cbor2 unwraps tag 55799 itself
    return msg.value if isinstance(msg, cbor2.CBORTag) and msg.tag == 55799 else msg


def check(d):
    results = {}
    for name in DTYPES:
        want = open(os.path.join(d, "ts_%s.raw" % name), "rb").read()
        for comp in ("bslz4", "lz4", "none"):
            key = "ts_%s_%s" % (name, comp)
            try:
                msg = load_message(os.path.join(d, key + ".cbor"))
                assert msg["type"] == "image" and next(iter(msg)) == "type"
                dims, arr = decode_array(msg["data"]["threshold_1"])
                assert arr.tobytes() == want, "pixels differ"
                assert dims[0] * dims[1] == arr.size, "dims"
                assert msg["real_time"] == [50000, 50000000]
                results[key] = "ok"
            except Exception as e:  # noqa: BLE001 - report every failure to the test
                results[key] = ("%s: %s" % (type(e).__name__, e))[:300]
    try:
        start = load_message(os.path.join(d, "ts_start.cbor"))
        assert start["type"] == "start" and start["series_id"] == 9
        assert start["channels"] == ["threshold_1"]
        assert start["threshold_energy"] == {"threshold_1": 6500.5}
        assert start["image_size_x"] == 133 and start["image_size_y"] == 67
        arm = start["arm_date"]
        assert str(arm.year) == "2024", arm
        end = load_message(os.path.join(d, "ts_end.cbor"))
        assert end == {"type": "end", "series_id": 9, "series_unique_id": start["series_unique_id"]}
        results["ts_start_end"] = "ok"
    except Exception as e:  # noqa: BLE001
        results["ts_start_end"] = ("%s: %s" % (type(e).__name__, e))[:300]
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 5:
        SHAPE = (int(sys.argv[3]), int(sys.argv[4]))
    {"make": make, "check": check}[sys.argv[1]](sys.argv[2])
