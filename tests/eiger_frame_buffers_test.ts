/**
 * Recycled receive buffers of the EIGER stream (devices/eiger/frame_buffers.ts) and the ZeroMQ
 * decoder receiving frame bodies into them.
 */

import assert from "node:assert/strict";
import {
  FRAME_POOL_MIN_BYTES,
  FrameBufferPool,
  writeBothWays,
} from "../devices/eiger/frame_buffers.ts";
import { encodeGreeting, encodeMessage, ZmtpDecoder } from "../devices/eiger/zmtp.ts";
import { concatBytes } from "../core/bytes.ts";

const BIG = 350_000;

Deno.test("frame buffers: a given-back buffer serves the next frames of about its size", () => {
  const pool = new FrameBufferPool(2);
  const small = pool.take(100);
  assert.equal(small.length, 100);
  assert.equal(pool.owns(small), false, "small frames are plain arrays");
  const a = pool.take(BIG);
  assert.equal(a.length, BIG);
  assert.equal(a.byteOffset, 0);
  assert.ok(a.buffer.byteLength >= BIG * 1.1, "room for slightly larger frames");
  assert.equal(pool.owns(a), true);
  pool.give(a.buffer as ArrayBuffer);
  pool.give(a.buffer as ArrayBuffer); // twice: kept once
  assert.equal(pool.kept, 1);
  const b = pool.take(BIG + 20_000);
  assert.equal(b.buffer, a.buffer, "reused for a slightly larger frame");
  assert.equal(b.length, BIG + 20_000);
  assert.equal(pool.kept, 0);
  pool.give(b.buffer as ArrayBuffer);
  const c = pool.take(FRAME_POOL_MIN_BYTES);
  assert.notEqual(c.buffer, a.buffer, "a buffer more than twice too large is not used");
  assert.equal(pool.kept, 1);
});

Deno.test("frame buffers: at most `max` free buffers are kept; foreign buffers become the pool's", () => {
  const pool = new FrameBufferPool(2);
  const buffers = [1, 2, 3].map(() => pool.take(BIG).buffer as ArrayBuffer);
  for (const buffer of buffers) pool.give(buffer);
  assert.equal(pool.kept, 2, "bounded");
  pool.give(new ArrayBuffer(100)); // too small to keep
  assert.equal(pool.kept, 2);
  const transferred = new ArrayBuffer(BIG * 2); // e.g. a buffer coming back from a worker
  const fresh = new FrameBufferPool();
  fresh.give(transferred);
  const view = fresh.take(BIG * 2 - 10);
  assert.equal(view.buffer, transferred);
  assert.equal(fresh.owns(view), true);
});

Deno.test("frame buffers: the free buffers kept are bounded in bytes too; a backlog's buffers come back", () => {
  const pool = new FrameBufferPool(64, 5 * BIG);
  // A series whose frames waited for decoding: 10 buffers out at once, all given back after it.
  const out = Array.from({ length: 10 }, () => pool.take(BIG).buffer as ArrayBuffer);
  for (const buffer of out) pool.give(buffer);
  assert.ok(pool.kept >= 3 && pool.kept <= 4, `${pool.kept} kept within 5 x ${BIG} B`);
  // The default keeps a whole default decode backlog (256 frames of 1028x512 uint32 bslz4).
  const frame = 350_000;
  const wide = new FrameBufferPool();
  const backlog = Array.from({ length: 300 }, () => wide.take(frame).buffer as ArrayBuffer);
  for (const buffer of backlog) wide.give(buffer);
  assert.equal(wide.kept, 256);
  const again = Array.from({ length: 256 }, () => wide.take(frame).buffer);
  assert.ok(again.every((b) => backlog.includes(b as ArrayBuffer)), "no new buffer");
});

Deno.test("frame buffers: prepared buffers (once per pool, within the bounds) serve any frame up to their size", () => {
  const pool = new FrameBufferPool(8, 4 * 1024 * 1024);
  const plan = pool.prepare(1_000_000, 16); // rounded up to 1 048 576: 4 fit the byte bound
  assert.deepEqual(plan, { count: 4, bytes: 1_048_576 });
  assert.equal(pool.prepare(1_000_000, 16).count, 0, "once per pool");
  const prepared = Array.from({ length: plan.count }, () => new ArrayBuffer(plan.bytes));
  pool.givePrepared(prepared); // made and written by a worker
  assert.equal(pool.kept, 4);
  // A frame far smaller than a prepared buffer still takes one (a plain kept one it would not).
  const frame = pool.take(100_000);
  assert.ok(prepared.includes(frame.buffer as ArrayBuffer));
  assert.equal(pool.owns(frame), true);
  const big = pool.take(1_100_000);
  assert.ok(!prepared.includes(big.buffer as ArrayBuffer), "too large for them: a new one");
  pool.give(big.buffer as ArrayBuffer);
  const small = pool.take(100_000);
  assert.ok(
    prepared.includes(small.buffer as ArrayBuffer),
    "a plain one 11 times too large is not used",
  );
});

Deno.test("frame buffers: of equal fits the one given back last is taken first", () => {
  const pool = new FrameBufferPool();
  const [a, b, c] = [1, 2, 3].map(() => pool.take(BIG).buffer as ArrayBuffer);
  pool.give(a);
  pool.give(b);
  pool.give(c);
  // Decoding keeps up: one buffer goes round and round, the others stay where they are.
  for (let i = 0; i < 5; i++) {
    const frame = pool.take(BIG);
    assert.equal(frame.buffer, c);
    pool.give(frame.buffer as ArrayBuffer);
  }
  assert.equal(pool.take(BIG).buffer, c);
  assert.equal(pool.take(BIG).buffer, b);
  assert.equal(pool.take(BIG).buffer, a);
  // A closer fit still wins over the last given back.
  const roomy = new FrameBufferPool();
  const small = new ArrayBuffer(BIG + 1000);
  const large = new ArrayBuffer(BIG + 100_000);
  roomy.give(small);
  roomy.give(large);
  assert.equal(roomy.take(BIG).buffer, small);
});

/** Bytes this process has read through read(2) and similar calls (`rchar`). */
function bytesRead(): number {
  const io = Deno.readTextFileSync("/proc/self/io");
  return Number(/^rchar: (\d+)$/m.exec(io)![1]);
}

Deno.test("frame buffers: writeBothWays zeroes a buffer by the program and by the kernel", () => {
  const bytes = new Uint8Array(3 * 65536 + 123).fill(0xa5);
  const before = bytesRead();
  writeBothWays(bytes);
  const read = bytesRead() - before;
  assert.ok(bytes.every((b) => b === 0));
  assert.ok(read >= bytes.length, `the kernel wrote it (read ${read} B of /dev/zero)`);
});

Deno.test("frame buffers: writeBothWays without /dev/zero (no read permission) still zeroes", async () => {
  const module = new URL("../devices/eiger/frame_buffers.ts", import.meta.url).href;
  const script = `
    import { writeBothWays } from ${JSON.stringify(module)};
    const bytes = new Uint8Array(70000).fill(7);
    writeBothWays(bytes);
    console.log(bytes.every((b) => b === 0) ? "zeroed" : "not zeroed");
  `;
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(file, script);
  // No permissions at all: opening /dev/zero fails (without a prompt).
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--no-config", file],
    stdout: "piped",
    stderr: "piped",
  }).output().finally(() => Deno.remove(file));
  const text = new TextDecoder().decode(out.stdout).trim();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.equal(text, "zeroed");
});

Deno.test("zmtp decoder: frame bodies are received into the buffers `allocate` gives", () => {
  const pool = new FrameBufferPool();
  const sizes: number[] = [];
  const decoder = new ZmtpDecoder({
    allocate: (size) => {
      sizes.push(size);
      return pool.take(size);
    },
  });
  const body = new Uint8Array(BIG).map((_, i) => i & 0xff);
  const wire = concatBytes([encodeGreeting(1), ...encodeMessage([body, new Uint8Array(3)])]);
  const events = decoder.push(wire);
  const message = events.find((e) => e.type === "message");
  assert.ok(message?.type === "message");
  assert.deepEqual(sizes, [BIG, 3]);
  assert.equal(pool.owns(message.frames[0]), true);
  assert.deepEqual(message.frames[0], body);
});
