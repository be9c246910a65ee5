/**
 * The LZ4 block kernel of the WebAssembly codec (devices/eiger/bslz4_wasm.ts) against the C
 * liblz4 (Debian's python3-lz4, run through tests/support/py/lz4_peer.py): hand-written blocks
 * with every match offset 1..20 and long matches, detector payloads compressed by liblz4 (ring
 * image, sparse and bright photon counts), malformed blocks refused with the error the JavaScript
 * decoder gives (and refused by liblz4 too), seeded mutations, and the wild copies: never a write
 * before the output or more than 32 bytes after it, never a change to the input, and never
 * slack bytes in what the caller gets.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CompressionError, decompressLz4Hdf5, setDecodeEngine } from "../devices/eiger/bslz4.ts";
import { createWasmCodec, FREE_AT, LZ4_ERRORS, SLACK } from "../devices/eiger/bslz4_wasm.ts";
import { compressLz4Block, decodeLz4BlockInto, Lz4Error } from "../devices/eiger/lz4.ts";
import { detectorImage, photonImage, prng } from "./support/eiger_image.ts";
import { runPyToDone } from "./support/py/peer.ts";

/** Writes LZ4 sequences by hand (any offset and length, not a compressor's choice). */
class BlockWriter {
  /** The block. */
  readonly bytes: number[] = [];
  /** What it decodes to, by the format's definition (byte by byte, overlapping copies). */
  readonly expected: number[] = [];

  /** One sequence; `matchLength` 0 writes the last one (literals only). */
  sequence(literals: ArrayLike<number>, offset = 0, matchLength = 0): this {
    const lit = literals.length;
    const m = matchLength - 4;
    const token = (Math.min(lit, 15) << 4) | (matchLength === 0 ? 0 : Math.min(m, 15));
    this.bytes.push(token);
    if (lit >= 15) this.length(lit - 15);
    for (let i = 0; i < lit; i++) {
      this.bytes.push(literals[i]);
      this.expected.push(literals[i]);
    }
    if (matchLength === 0) return this;
    this.bytes.push(offset & 0xff, offset >>> 8);
    if (m >= 15) this.length(m - 15);
    for (let i = 0; i < matchLength; i++) {
      this.expected.push(this.expected[this.expected.length - offset]);
    }
    return this;
  }

  private length(rest: number): void {
    for (; rest >= 255; rest -= 255) this.bytes.push(255);
    this.bytes.push(rest);
  }

  /** The block and its decoded size. */
  done(): { block: Uint8Array; size: number; expected: Uint8Array } {
    return {
      block: Uint8Array.from(this.bytes),
      size: this.expected.length,
      expected: Uint8Array.from(this.expected),
    };
  }
}

function randomBytes(rand: () => number, n: number): Uint8Array {
  return Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
}

/** One block in HDF5 LZ4 framing (a single block of the whole size). */
function hdf5(block: Uint8Array, size: number): Uint8Array {
  assert.notEqual(block.length, size, "a block as long as its output would be a stored block");
  const out = new Uint8Array(16 + block.length);
  const view = new DataView(out.buffer);
  view.setUint32(4, size);
  view.setUint32(8, size);
  view.setUint32(12, block.length);
  out.set(block, 16);
  return out;
}

/** Decodes with one engine; the bytes (a copy) or the error message. */
function engine(which: "wasm" | "js", payload: Uint8Array, size: number): Uint8Array | string {
  assert.equal(setDecodeEngine(which), which, `engine ${which} available`);
  try {
    const out = decompressLz4Hdf5(payload, size);
    assert.equal(out.byteOffset, 0);
    assert.equal(out.buffer.byteLength, size, "the caller gets exactly the image, no slack");
    return out.slice();
  } catch (e) {
    if (!(e instanceof CompressionError)) throw e;
    return e.message;
  } finally {
    setDecodeEngine("wasm");
  }
}

const codec = createWasmCodec();
const GUARD = 64;
/** Bytes after the output the kernel may write (its wild copies); beyond them nothing. */
const WILD = 32;

/**
 * Runs the kernel on `block` for an output of `size` bytes with guard bytes around the output
 * and after the allowed overshoot; checks the guards and the input are untouched. Returns the
 * kernel's result and the output region.
 */
function kernel(block: Uint8Array, size: number): { n: number; out: Uint8Array } {
  assert.ok(codec !== undefined, "WebAssembly SIMD available");
  const opStart = FREE_AT + GUARD;
  const opEnd = opStart + size;
  const ipStart = (opEnd + SLACK + GUARD + 15) & ~15;
  const ipEnd = ipStart + block.length;
  assert.ok(codec.reserve(ipEnd + SLACK));
  let mem = codec.bytes();
  mem.fill(0xa5, FREE_AT, ipStart);
  mem.fill(0x5a, opStart, opEnd);
  mem.set(block, ipStart);
  mem.fill(0xc3, ipEnd, ipEnd + SLACK);
  const n = codec.lz4(ipStart, ipEnd, opStart, opStart, opEnd);
  mem = codec.bytes();
  assert.ok(mem.subarray(FREE_AT, opStart).every((b) => b === 0xa5), "nothing written before");
  assert.ok(
    mem.subarray(opEnd + WILD, ipStart).every((b) => b === 0xa5),
    `nothing written more than ${WILD} bytes after the output`,
  );
  assert.deepEqual(mem.subarray(ipStart, ipEnd), block, "input untouched");
  return { n, out: mem.slice(opStart, opEnd) };
}

/** The JavaScript decoder's verdict on a block: the bytes or the error message. */
function jsBlock(block: Uint8Array, size: number): { n: number; out: Uint8Array } | string {
  const out = new Uint8Array(size);
  try {
    return { n: decodeLz4BlockInto(block, 0, block.length, out, 0, size), out };
  } catch (e) {
    if (!(e instanceof Lz4Error)) throw e;
    return e.message;
  }
}

/** Writes `files` to a temporary folder, runs the python-lz4 peer on it, returns the folder. */
async function withPython(files: Record<string, Uint8Array | string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "lz4_peer_" });
  for (const [name, data] of Object.entries(files)) {
    if (typeof data === "string") await Deno.writeTextFile(join(dir, name), data);
    else await Deno.writeFile(join(dir, name), data);
  }
  await runPyToDone("lz4_peer.py", ["run", dir]);
  return dir;
}

/** The peer's input files for blocks to decode: `<name>.blk` and `<name>.size`. */
function blockFiles(blocks: Record<string, { block: Uint8Array; size: number }>) {
  const files: Record<string, Uint8Array | string> = {};
  for (const [name, b] of Object.entries(blocks)) {
    files[`${name}.blk`] = b.block;
    files[`${name}.size`] = String(b.size);
  }
  return files;
}

/** Lengths around every threshold: the 16/32-byte copies, the 15-nibble, one and two extension bytes. */
const MATCH_LENGTHS = [
  4,
  5,
  7,
  8,
  9,
  15,
  16,
  17,
  18,
  19,
  20,
  24,
  25,
  31,
  32,
  33,
  47,
  64,
  100,
  272,
  273,
  274,
  275,
  529,
  1000,
  4099,
];
const LITERAL_LENGTHS = [0, 1, 3, 14, 15, 16, 17, 40, 0, 0, 2];

function offsetBlocks(): Record<string, ReturnType<BlockWriter["done"]>> {
  const rand = prng(21);
  const blocks: Record<string, ReturnType<BlockWriter["done"]>> = {};
  for (let offset = 1; offset <= 20; offset++) {
    const w = new BlockWriter().sequence(randomBytes(rand, 24), 2, 4);
    MATCH_LENGTHS.forEach((m, i) => {
      const lit = LITERAL_LENGTHS[(i + offset) % LITERAL_LENGTHS.length];
      w.sequence(randomBytes(rand, lit), offset, m);
    });
    blocks[`offset${offset}`] = w.sequence(randomBytes(rand, 16)).done();
  }
  // Long matches at long offsets (non-overlapping and overlapping), up to the 65535 maximum.
  const w = new BlockWriter().sequence(randomBytes(rand, 300), 300, 4);
  for (const offset of [21, 31, 32, 33, 64, 255, 4112, 65535]) {
    for (const m of [19, 40, 300, 5000, 70_000]) w.sequence(randomBytes(rand, 3), offset, m);
  }
  blocks.long = w.sequence(randomBytes(rand, 13)).done();
  blocks.modes = modeSwitches(rand);
  return blocks;
}

/**
 * Runs of far matches (offset ≥ 16, the kernel's far loop, which it enters after 32 in a row)
 * of random length between short periods, literal and match lengths across the far loop's limits
 * (14/15 literals, match nibbles 14/15), ending close to the output end.
 */
function modeSwitches(rand: () => number): ReturnType<BlockWriter["done"]> {
  const w = new BlockWriter().sequence(randomBytes(rand, 300), 300, 4);
  const lits = [0, 0, 1, 1, 2, 5, 13, 14, 15, 16];
  const lengths = [4, 5, 7, 8, 12, 16, 17, 18, 19, 20, 33, 300];
  for (let run = 0; run < 60; run++) {
    const far = Math.floor(rand() * 80);
    for (let i = 0; i < far; i++) {
      const lit = lits[Math.floor(rand() * lits.length)];
      const m = i % 9 === 8 ? lengths[Math.floor(rand() * lengths.length)] : 7 + (i & 1);
      w.sequence(randomBytes(rand, lit), 16 + Math.floor(rand() * 290), m);
    }
    w.sequence(randomBytes(rand, Math.floor(rand() * 3)), 1 + Math.floor(rand() * 15), 8);
  }
  for (let i = 0; i < 40; i++) w.sequence(randomBytes(rand, 1), 20, 8);
  return w.sequence(randomBytes(rand, 5)).done();
}

Deno.test("lz4 kernel: every offset 1..20 and long matches decode exactly like liblz4, both engines", async () => {
  const blocks = offsetBlocks();
  const dir = await withPython(blockFiles(blocks));
  try {
    for (const [name, b] of Object.entries(blocks)) {
      const c = await Deno.readFile(join(dir, `${name}.out`));
      assert.deepEqual(c, b.expected, `${name}: liblz4 decodes the written block as intended`);
      const k = kernel(b.block, b.size);
      assert.equal(k.n, b.size, name);
      assert.deepEqual(k.out, c, `${name}: kernel`);
      for (const which of ["wasm", "js"] as const) {
        assert.deepEqual(engine(which, hdf5(b.block, b.size), b.size), c, `${name}: ${which}`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lz4 kernel: detector images compressed by liblz4 decode pixel-exactly (rings, sparse, bright)", async () => {
  const images: Record<string, Uint32Array> = {
    rings: detectorImage(Uint32Array, 512, 1028, 7),
    sparse: photonImage(512, 1028, 0.01, 3),
    bright: photonImage(512, 1028, 200, 4),
  };
  const files: Record<string, Uint8Array> = {};
  for (const [name, img] of Object.entries(images)) {
    files[`${name}.raw`] = new Uint8Array(img.buffer);
  }
  const dir = await withPython(files);
  try {
    for (const [name, img] of Object.entries(images)) {
      const raw = new Uint8Array(img.buffer);
      const block = await Deno.readFile(join(dir, `${name}.lz4`));
      const k = kernel(block, raw.length);
      assert.equal(k.n, raw.length, name);
      assert.ok(k.out.every((v, i) => v === raw[i]), `${name}: kernel pixels`);
      for (const which of ["wasm", "js"] as const) {
        const out = engine(which, hdf5(block, raw.length), raw.length);
        assert.ok(typeof out !== "string", `${name} ${which}: ${out}`);
        assert.ok(out.every((v, i) => v === raw[i]), `${name}: ${which} pixels`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Malformed blocks: each near the block end (slow path) and amid a long block (fast path). */
interface Malformed {
  block: Uint8Array;
  size: number;
  error: number;
  /** liblz4 (1.9) does not always refuse offset 0 (it may copy from the output position
   * itself); the format calls the offset invalid, we refuse it. */
  liblz4Lenient?: true;
}

function malformedBlocks(): Record<string, Malformed> {
  const rand = prng(8);
  const hex = (s: string) => s.trim().split(/\s+/).map((x) => parseInt(x, 16));
  const head = new BlockWriter().sequence(randomBytes(rand, 40), 3, 30).done();
  const tail = randomBytes(rand, 64); // keeps the bad sequence far from the input end
  const amid = (bad: number[]) => Uint8Array.from([...head.block, ...bad, ...tail]);
  const produced = head.size;
  // after 40 far matches the kernel is in its far loop
  const farWriter = new BlockWriter().sequence(randomBytes(rand, 40), 3, 30);
  for (let i = 0; i < 40; i++) farWriter.sequence(randomBytes(rand, i % 3), 16 + i, 7 + (i & 1));
  const farHead = farWriter.done();
  const amidFar = (bad: number[]) => Uint8Array.from([...farHead.block, ...bad, ...tail]);
  const farProduced = farHead.size;
  const cases: Record<string, Malformed> = {
    emptyBlock: { block: new Uint8Array(0), size: 16, error: -1 },
    truncatedLiterals: { block: Uint8Array.from(hex("50 ff ff")), size: 16, error: -3 },
    truncatedLiteralLength: { block: Uint8Array.from(hex("f0 ff ff")), size: 400, error: -2 },
    literalsPastEnd: { block: Uint8Array.from(hex("f0 ff ff 00")), size: 16, error: -3 },
    truncatedOffset: { block: Uint8Array.from(hex("16 ff 01")), size: 16, error: -5 },
    offsetZeroAtEnd: {
      block: Uint8Array.from(hex("16 ff 00 00 50 ff ff ff ff ff")),
      size: 16,
      error: -6,
      liblz4Lenient: true,
    },
    offsetBeforeStartAtEnd: {
      block: Uint8Array.from(hex("16 ff 02 00 50 ff ff ff ff ff")),
      size: 16,
      error: -6,
    },
    truncatedMatchLength: {
      block: Uint8Array.from(hex("1f ff 01 00 ff ff")),
      size: 600,
      error: -7,
    },
    matchPastEndAtEnd: { block: Uint8Array.from(hex("1f ff 01 00 ff ff 10")), size: 64, error: -4 },
    // amid a long block, where the fast path would take the sequence
    offsetZeroAmid: { block: amid([0x04, 0, 0]), size: 4096, error: -6, liblz4Lenient: true },
    offsetBeforeStartAmid: {
      block: amid([0x04, (produced + 1) & 0xff, (produced + 1) >>> 8]),
      size: 4096,
      error: -6,
    },
    offsetBeforeStartWithLiterals: {
      block: amid([0x34, 1, 2, 3, (produced + 4) & 0xff, (produced + 4) >>> 8]),
      size: 4096,
      error: -6,
    },
    matchPastEndAmid: { block: amid([0x0f, 1, 0, 200]), size: produced + 100, error: -4 },
    // the same in the far loop
    offsetZeroFar: { block: amidFar([0x04, 0, 0]), size: 4096, error: -6, liblz4Lenient: true },
    offsetBeforeStartFar: {
      block: amidFar([0x14, 9, (farProduced + 2) & 0xff, (farProduced + 2) >>> 8]),
      size: 4096,
      error: -6,
    },
    matchPastEndFar: { block: amidFar([0x14, 9, 20, 0]), size: farProduced + 8, error: -4 },
    literalsPastOutputAmid: {
      block: amid([0xe0, ...randomBytes(rand, 14)]),
      size: produced + 10,
      error: -4,
    },
    // a literal length of ~5 million (saturates in the kernel, never wraps)
    hugeLiteralLength: {
      block: Uint8Array.from([0xf0, ...new Array(20_000).fill(255), 7]),
      size: 1 << 20,
      error: -3,
    },
  };
  return cases;
}

Deno.test("lz4 kernel: malformed blocks are refused (as by liblz4) with the JS decoder's error, nothing written outside", async () => {
  const cases = malformedBlocks();
  const dir = await withPython(blockFiles(cases));
  try {
    for (const [name, c] of Object.entries(cases)) {
      const k = kernel(c.block, c.size);
      assert.equal(k.n, c.error, `${name}: kernel code`);
      const js = jsBlock(c.block, c.size);
      assert.ok(typeof js === "string" && js.startsWith(LZ4_ERRORS[c.error]), `${name}: ${js}`);
      if (c.block.length > 0) {
        const payload = hdf5(c.block, c.size);
        const wasm = engine("wasm", payload, c.size);
        assert.equal(wasm, `lz4: block 0: ${LZ4_ERRORS[c.error]}`, name);
        assert.ok(String(engine("js", payload, c.size)).startsWith(wasm), `${name}: js`);
      }
      const refused = await Deno.stat(join(dir, `${name}.err`)).then(() => true, () => false);
      if (!c.liblz4Lenient) assert.ok(refused, `${name}: liblz4 refuses it too`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lz4 kernel: mutated and truncated blocks give what the JS decoder gives, never a stray write", () => {
  const rand = prng(33);
  const blocks = offsetBlocks();
  const img = new Uint8Array(detectorImage(Uint32Array, 8, 1028, 5).buffer);
  const samples = [
    blocks.offset1,
    blocks.offset2,
    blocks.offset7,
    blocks.offset16,
    blocks.offset19,
    { block: compressLz4Block(img), size: img.length },
    {
      block: compressLz4Block(new Uint8Array(photonImage(8, 1028, 200, 2).buffer)),
      size: img.length,
    },
  ];
  let rejected = 0;
  for (let i = 0; i < 2500; i++) {
    const s = samples[i % samples.length];
    let block = s.block.slice();
    if (i % 5 === 4) {
      block = block.subarray(0, Math.floor(rand() * block.length)); // truncated
    } else {
      for (let f = 1 + Math.floor(rand() * 3); f > 0; f--) {
        block[Math.floor(rand() * block.length)] = Math.floor(rand() * 256);
      }
    }
    const size = i % 7 === 3 ? s.size - 1 - Math.floor(rand() * 40) : s.size;
    const k = kernel(block, size);
    const js = jsBlock(block, size);
    if (typeof js === "string") {
      rejected++;
      assert.ok(k.n < 0 && js.startsWith(LZ4_ERRORS[k.n]), `mutation ${i}: ${k.n} for ${js}`);
    } else {
      assert.equal(k.n, js.n, `mutation ${i}: same length`);
      assert.deepEqual(k.out.subarray(0, k.n), js.out.subarray(0, js.n), `mutation ${i}: bytes`);
    }
  }
  assert.ok(rejected > 500, `only ${rejected} mutations were rejected`);
});

Deno.test("lz4: multi-block payloads: wild copies into the next block's region never show", () => {
  const raw = new Uint8Array(photonImage(40, 300, 0.5, 6).buffer);
  for (const blockSize of [1000, 4096, 333]) {
    const payload = hdf5Multi(raw, blockSize);
    const wasm = engine("wasm", payload, raw.length);
    assert.deepEqual(wasm, raw, `block size ${blockSize}`);
    assert.deepEqual(engine("js", payload, raw.length), raw, `block size ${blockSize} (js)`);
  }
});

/** HDF5 LZ4 framing with several compressed blocks (none stored raw). */
function hdf5Multi(raw: Uint8Array, blockSize: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let at = 0; at < raw.length; at += blockSize) {
    const block = compressLz4Block(raw.subarray(at, Math.min(raw.length, at + blockSize)));
    const head = new Uint8Array(4);
    new DataView(head.buffer).setUint32(0, block.length);
    parts.push(head, block);
  }
  const out = new Uint8Array(12 + parts.reduce((n, p) => n + p.length, 0));
  const view = new DataView(out.buffer);
  view.setUint32(4, raw.length);
  view.setUint32(8, blockSize);
  let at = 12;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
