/**
 * Benchmark: bslz4 decode of detector-like 1028×512 images (uint32 by default) on one core.
 *
 * Prints ms/image, images/s and decompressed MB/s for the full decode, the LZ4 stage alone, the
 * bit-unshuffle stage alone and, as the baseline measured in the same run, a plain memory copy
 * of the same number of bytes. Stages run in short interleaved bursts; "best" is the fastest
 * burst (closest to an idle core), "median" what a shared machine gave, "cpu" the process CPU
 * time per image. The payload comes from Debian's bitshuffle library when
 * `/usr/bin/python3` has it (what a DCU produces), else from our own encoder.
 *
 * Usage: deno run -A scripts/bench/bslz4_decode.ts [--dtype uint16|uint32] [--seconds 3]
 *
 * @module
 */

import { cpuUsage } from "node:process";
import { parseArgs } from "node:util";
import { compressBslz4, decompressBslz4, unshuffleBlock } from "../../devices/eiger/bslz4.ts";
import { decodeLz4BlockInto } from "../../devices/eiger/lz4.ts";
import { detectorImage } from "../../tests/support/eiger_image.ts";

const { values } = parseArgs({
  options: {
    dtype: { type: "string", default: "uint32" },
    seconds: { type: "string", default: "3" },
  },
});
const ROWS = 512;
const COLS = 1028;
const ctor = values.dtype === "uint16" ? Uint16Array : Uint32Array;
const size = ctor.BYTES_PER_ELEMENT;
const img = detectorImage(ctor as new (n: number) => Uint32Array, ROWS, COLS, 7);
const raw = new Uint8Array(img.buffer);
const seconds = Number(values.seconds);

async function pythonPayload(): Promise<Uint8Array | undefined> {
  const code = [
    "import sys, struct, numpy as np, bitshuffle",
    `a = np.frombuffer(sys.stdin.buffer.read(), dtype='<u${size}')`,
    "sys.stdout.buffer.write(struct.pack('>QI', a.nbytes, 8192) + " +
    "bitshuffle.compress_lz4(a, 0).tobytes())",
  ].join("\n");
  try {
    const child = new Deno.Command("/usr/bin/python3", {
      args: ["-c", code],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(raw);
    await w.close();
    const out = await child.output();
    return out.success ? out.stdout : undefined;
  } catch {
    return undefined;
  }
}

const fromPython = await pythonPayload();
const payload = fromPython ?? compressBslz4(raw, size);
const check = decompressBslz4(payload, size, img.length);
if (check.length !== raw.length || !check.every((v, i) => v === raw[i])) {
  throw new Error("decoded image differs from the original");
}

// Stage inputs: block offsets, and the LZ4-decoded (still shuffled) planes of every block.
const BLOCK = 8192;
const blocks: { pos: number; csize: number }[] = [];
{
  let pos = 12;
  const nblocks = Math.floor(raw.length / BLOCK);
  for (let i = 0; i < nblocks; i++) {
    const csize = new DataView(payload.buffer, payload.byteOffset + pos, 4).getUint32(0);
    blocks.push({ pos: pos + 4, csize });
    pos += 4 + csize;
  }
}
const planes = new Uint8Array(blocks.length * BLOCK);
blocks.forEach((b, i) =>
  decodeLz4BlockInto(payload, b.pos, b.pos + b.csize, planes, i * BLOCK, (i + 1) * BLOCK)
);
const scratch = new Uint8Array(BLOCK);
const copyDst = new Uint8Array(raw.length);
let sink = 0;

/** Per-stage timings: milliseconds per image of many short bursts, interleaved across stages. */
interface Timing {
  name: string;
  fn: () => void;
  bursts: number[];
  cpuMs: number;
  runs: number;
}

const stages: Timing[] = [
  ["memory copy (baseline)", () => {
    copyDst.set(raw);
    sink += copyDst[sink & 1023];
  }],
  ["bslz4 full decode", () => {
    sink += decompressBslz4(payload, size, img.length)[0];
  }],
  ["  LZ4 stage only", () => {
    for (const b of blocks) decodeLz4BlockInto(payload, b.pos, b.pos + b.csize, scratch, 0, BLOCK);
    sink += scratch[0];
  }],
  ["  unshuffle stage only", () => {
    const out = new Uint8Array(raw.length);
    for (let i = 0; i < blocks.length; i++) {
      unshuffleBlock(
        planes.subarray(i * BLOCK, (i + 1) * BLOCK),
        out,
        i * BLOCK,
        BLOCK / size,
        size,
      );
    }
    sink += out[0];
  }],
].map(([name, fn]) => ({
  name: name as string,
  fn: fn as () => void,
  bursts: [],
  cpuMs: 0,
  runs: 0,
}));

// Warm up until the JIT settles, then interleave short bursts so load changes hit all stages alike.
for (const st of stages) {
  const warm = performance.now();
  while (performance.now() - warm < 400) st.fn();
}
const BURST = 10;
const t0 = performance.now();
while (performance.now() - t0 < seconds * 1000) {
  for (const st of stages) {
    const c0 = cpuUsage();
    const b0 = performance.now();
    for (let i = 0; i < BURST; i++) st.fn();
    st.bursts.push((performance.now() - b0) / BURST);
    const c = cpuUsage(c0);
    st.cpuMs += (c.user + c.system) / 1000;
    st.runs += BURST;
  }
}

const mb = raw.length / 1e6;
console.log(
  `bslz4 decode, ${COLS}x${ROWS} ${values.dtype}, ${mb.toFixed(2)} MB/image, payload ` +
    `${(payload.length / 1e3).toFixed(0)} kB (ratio ${(raw.length / payload.length).toFixed(1)}) ` +
    `from ${fromPython ? "bitshuffle (python)" : "our encoder"}; one core, ms per image`,
);
console.log(
  "stage                  best ms  images/s  MB/s | median ms  images/s | cpu ms/image",
);
for (const st of stages) {
  const sorted = [...st.bursts].sort((a, b) => a - b);
  const best = sorted[0];
  const median = sorted[Math.floor(sorted.length / 2)];
  console.log(
    `${st.name.padEnd(22)} ${best.toFixed(3).padStart(8)} ${
      (1000 / best).toFixed(0).padStart(9)
    } ` +
      `${(mb * 1000 / best).toFixed(0).padStart(5)} | ${median.toFixed(3).padStart(9)} ` +
      `${(1000 / median).toFixed(0).padStart(9)} | ${(st.cpuMs / st.runs).toFixed(3).padStart(12)}`,
  );
}
if (sink === 0.5) console.log(sink);
