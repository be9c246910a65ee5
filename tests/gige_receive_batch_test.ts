/**
 * Batched GVSP receive: FrameAssembler.planBatch / receivedBatch (the kernel's scatter simulated
 * by copying each datagram into the planned places, cut off where they end), and GvspReceiver on a
 * real loopback socket in both receive modes (recvmmsg through FFI, one Deno receive per datagram)
 * and without FFI permission (falls back, says why). Whatever arrives must give exactly what the
 * copying path (feed) gives.
 */
import assert from "node:assert/strict";
import { type ImageLeader, imageLeader, packetizeImage } from "../devices/gige/gvsp.ts";
import {
  type AssemblerOptions,
  type AssemblerOutput,
  FrameAssembler,
} from "../devices/gige/gvsp_assembler.ts";
import { GvspReceiver } from "../devices/gige/gvsp_receiver.ts";
import { createRandom } from "../core/random.ts";

/**
 * Delivers `packets` as one batch receive would (in chunks of the assembler's batch capacity):
 * each datagram fills its header place, its body place and the guard byte, in that order.
 */
function deliverBatch(a: FrameAssembler, packets: Uint8Array[], now: number): void {
  for (let from = 0; from < packets.length;) {
    const plan = a.planBatch(packets.length - from);
    const n = plan.count;
    const lengths = new Int32Array(n);
    const spill = a.spill;
    for (let i = 0; i < n; i++) {
      const p = packets[from + i];
      const s = i * a.spillStride;
      const hl = plan.headerLength[i];
      const bl = plan.bodyLength[i];
      const parts: [Uint8Array, number, number][] = [
        [spill, s, hl],
        [plan.body[i], plan.bodyStart[i], bl],
        [spill, s + hl + bl, 1],
      ];
      let at = 0;
      for (const [array, start, length] of parts) {
        const k = Math.max(0, Math.min(length, p.length - at));
        array.set(p.subarray(at, at + k), start);
        at += k;
      }
      lengths[i] = at;
    }
    a.receivedBatch(n, lengths, now);
    from += n;
  }
}

/** Delivers one datagram into the single receive target (the first of each turn). */
function deliverOne(a: FrameAssembler, packet: Uint8Array, now: number): void {
  const target = a.receiveTarget();
  const n = Math.min(packet.length, target.length);
  target.set(packet.subarray(0, n));
  a.received(n, now);
}

function image(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed * 7 + (i >> 8)) & 0xff);
}

function leaderFor(width: number, height: number): ImageLeader {
  return imageLeader({ width, height });
}

/** An output with its bytes copied (buffers are recycled afterwards). */
function snapshot(out: AssemblerOutput) {
  return out.kind === "frame"
    ? { kind: out.kind, blockId: out.blockId, data: out.data.slice(), resent: out.resentPackets }
    : { kind: out.kind, blockId: out.blockId, reason: out.reason };
}

function drain(a: FrameAssembler, into: ReturnType<typeof snapshot>[]): void {
  for (let out = a.takeOutput(); out !== undefined; out = a.takeOutput()) {
    into.push(snapshot(out));
    if (out.kind === "frame") a.recycle(out.buffer);
  }
}

Deno.test("batch: in-order payload packets land in the frame buffer, frames whole", () => {
  for (const extended of [false, true]) {
    const a = new FrameAssembler({
      payloadSize: 1000,
      packetSize: 136,
      resend: false,
      windowMs: 50,
      maxBatch: 4,
    });
    const outs: ReturnType<typeof snapshot>[] = [];
    let payloads = 0;
    for (let block = 1; block <= 5; block++) {
      const packets = packetizeImage(block, leaderFor(100, 10), image(1000, block), 136, {
        extended,
      });
      payloads += packets.length - 2;
      // Leader and first payload packet one by one (as the receive that waits brings them),
      // the rest in batches.
      deliverOne(a, packets[0], block);
      deliverOne(a, packets[1], block);
      deliverBatch(a, packets.slice(2), block);
      drain(a, outs);
    }
    assert.deepEqual(outs.map((o) => o.kind), ["frame", "frame", "frame", "frame", "frame"]);
    for (const [i, o] of outs.entries()) {
      if (o.kind === "frame") assert.deepEqual(o.data, image(1000, i + 1), `extended ${extended}`);
    }
    assert.equal(a.stats.inPlace, payloads, "every payload packet received in place");
    assert.equal(a.stats.packets, payloads + 10);
  }
});

Deno.test("batch: packets swapped inside a batch, and another block in its middle", () => {
  const a = new FrameAssembler({ payloadSize: 400, packetSize: 136, resend: true, windowMs: 50 });
  const p1 = packetizeImage(1, leaderFor(40, 10), image(400, 1), 136);
  const p2 = packetizeImage(2, leaderFor(40, 10), image(400, 2), 136);
  deliverOne(a, p1[0], 0);
  deliverOne(a, p1[1], 0);
  // Planned: packets 2, 3, 4, 5 of block 1 (payload 1-4, trailer 5). Arrive: 3, 2, block 2's
  // leader and payload 1, 4; then block 1's trailer among the rest of block 2.
  deliverBatch(a, [p1[3], p1[2], p2[0], p2[1], p1[4]], 1);
  deliverBatch(a, [p2[2], p1[5], ...p2.slice(3)], 2);
  const outs: ReturnType<typeof snapshot>[] = [];
  drain(a, outs);
  assert.deepEqual(outs.map((o) => [o.kind, o.blockId]), [["frame", 1], ["frame", 2]]);
  if (outs[0].kind === "frame") assert.deepEqual(outs[0].data, image(400, 1));
  if (outs[1].kind === "frame") assert.deepEqual(outs[1].data, image(400, 2));
});

Deno.test("batch: an oversized datagram reaches the guard byte and is refused as oversized", () => {
  const a = new FrameAssembler({ payloadSize: 400, packetSize: 136, resend: false, windowMs: 50 });
  const packets = packetizeImage(3, leaderFor(40, 10), image(400, 3), 136);
  deliverOne(a, packets[0], 0);
  deliverOne(a, packets[1], 0);
  const big = new Uint8Array(8 + 200);
  big.set(packets[2].subarray(0, 8)); // payload packet 2 header, 200 data bytes > 100
  deliverBatch(a, [big], 0);
  const out = a.takeOutput();
  assert.equal(out?.kind, "incomplete");
  assert.match((out as { reason: string }).reason, /block 3: payload packet 2 of 101 bytes > 100/);

  // Packets already there next to the planned places are not touched by an oversized one.
  const b = new FrameAssembler({ payloadSize: 400, packetSize: 136, resend: true, windowMs: 50 });
  const p4 = packetizeImage(4, leaderFor(40, 10), image(400, 4), 136);
  for (const i of [0, 1, 3]) deliverOne(b, p4[i], 0); // packet 2 expected next, 3 already there
  const foreign = new Uint8Array(8 + 300).fill(0x55);
  foreign.set(packetizeImage(5, leaderFor(40, 10), image(400, 5), 136)[1].subarray(0, 8));
  deliverBatch(b, [foreign, p4[2], p4[4], p4[5]], 0);
  const whole = b.takeOutput();
  assert.equal(whole?.kind, "frame", (whole as { reason?: string }).reason);
  if (whole?.kind === "frame") assert.deepEqual(whole.data, image(400, 4));
});

Deno.test("batch: randomized streams give exactly what the copying path gives", () => {
  const rand = createRandom(777);
  const int = (n: number) => Math.floor(rand() * n);
  for (const extended of [false, true]) {
    for (const resend of [false, true]) {
      const options: AssemblerOptions = {
        payloadSize: 997,
        packetSize: 100,
        resend,
        windowMs: 30,
        maxBatch: 6,
      };
      const copy = new FrameAssembler(options);
      const batched = new FrameAssembler(options);
      const outCopy: ReturnType<typeof snapshot>[] = [];
      const outBatched: ReturnType<typeof snapshot>[] = [];
      let now = 0;
      let pending: Uint8Array[] = [];
      const release = () => {
        if (pending.length > 1 && rand() < 0.3) {
          const i = int(pending.length - 1);
          [pending[i], pending[i + 1]] = [pending[i + 1], pending[i]];
        }
        for (const q of pending) copy.feed(q, now);
        // As the receiver does: one datagram through the waiting receive, the rest batched.
        deliverOne(batched, pending[0], now);
        deliverBatch(batched, pending.slice(1), now);
        pending = [];
      };
      for (let block = 1; block <= 400; block++) {
        const packets = packetizeImage(block, leaderFor(997, 1), image(997, block), 100, {
          extended,
        });
        for (const p of packets) {
          const r = rand();
          if (r < 0.03) continue; // lost
          if (r < 0.06) pending.push(p); // delayed
          else if (r < 0.08) {
            const m = p.slice(); // corrupted byte
            m[int(m.length)] ^= 1 << int(8);
            pending.push(m);
          } else if (r < 0.09) pending.push(p, p); // duplicated
          else if (r < 0.095) {
            const longer = new Uint8Array(p.length + 1 + int(40)); // oversized
            longer.set(p);
            pending.push(longer);
          } else pending.push(p);
          if (pending.length > 12 || rand() < 0.15) release();
        }
        now += 3;
        if (block % 4 === 0) {
          if (pending.length > 0) release();
          copy.poll(now);
          batched.poll(now);
        }
        assert.deepEqual(batched.takeResends(), copy.takeResends());
        drain(copy, outCopy);
        drain(batched, outBatched);
      }
      // An oversized datagram is cut off where its places end: its reason names fewer bytes.
      const cut = (outs: ReturnType<typeof snapshot>[]) =>
        outs.map((o) =>
          o.kind === "frame"
            ? o
            : { ...o, reason: o.reason.replace(/of \d+ bytes >/, "of N bytes >") }
        );
      assert.deepEqual(cut(outBatched), cut(outCopy), `extended ${extended} resend ${resend}`);
      assert.ok(
        outCopy.some((o) => o.kind === "incomplete" && /bytes >/.test(o.reason)),
        "oversized datagrams were among them",
      );
      const complete = outCopy.filter((o) => o.kind === "frame").length;
      assert.ok(complete > 50, `${complete} frames complete`);
      assert.ok(batched.stats.inPlace > 1000, `${batched.stats.inPlace} packets in place`);
      const { inPlace: _a, ...statsBatched } = batched.stats;
      const { inPlace: _b, ...statsCopy } = copy.stats;
      assert.deepEqual(statsBatched, statsCopy);
    }
  }
});

/** Sends `frames` whole frames of `size` bytes to `port` as fast as possible, then waits. */
async function sendFrames(port: number, frames: number, size: number, packetSize: number) {
  const sender = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    for (let block = 1; block <= frames; block++) {
      const packets = packetizeImage(block, leaderFor(size, 1), image(size, block), packetSize);
      // Without awaiting each send: datagrams queue up behind each other at the receiver.
      await Promise.all(
        packets.map((p) => sender.send(p, { transport: "udp", hostname: "127.0.0.1", port })),
      );
    }
  } finally {
    sender.close();
  }
}

async function receiveFrames(receiver: GvspReceiver, frames: number, size: number) {
  const assembler = new FrameAssembler({
    payloadSize: size,
    packetSize: 1000,
    resend: false,
    windowMs: 5000,
  });
  receiver.setAssembler(assembler);
  const signal = AbortSignal.timeout(20_000); // failure detector only
  const sending = sendFrames(receiver.port, frames, size, 1000);
  const outs: ReturnType<typeof snapshot>[] = [];
  while (outs.length < frames) {
    const out = await receiver.next(signal);
    outs.push(snapshot(out));
    if (out.kind === "frame") assembler.recycle(out.buffer);
  }
  await sending;
  return { outs, stats: assembler.stats };
}

Deno.test("receiver: batched receive over loopback gives whole frames, most of them in place", async () => {
  const receiver = new GvspReceiver({
    localAddress: "127.0.0.1",
    device: { host: "127.0.0.1", port: 9 },
    receiveBufferBytes: 4 << 20,
  });
  try {
    assert.deepEqual(receiver.receiveMode, { mode: "batch" });
    const size = 60_000; // 62 payload packets of 964 bytes per frame
    const { outs, stats } = await receiveFrames(receiver, 12, size);
    for (const [i, o] of outs.entries()) {
      assert.equal(o.kind, "frame", JSON.stringify(o));
      assert.equal(o.blockId, i + 1);
      if (o.kind === "frame") assert.deepEqual(o.data, image(size, i + 1));
    }
    assert.ok(receiver.batchedDatagrams > 0, "datagrams taken by batch receives");
    assert.ok(stats.inPlace > stats.packets / 2, `${stats.inPlace} of ${stats.packets} in place`);
  } finally {
    await receiver.close();
  }
});

Deno.test("receiver: one receive per datagram when batching is switched off", async () => {
  const receiver = new GvspReceiver({
    localAddress: "127.0.0.1",
    device: { host: "127.0.0.1", port: 9 },
    receiveBufferBytes: 4 << 20,
    batchReceive: false,
  });
  try {
    assert.deepEqual(receiver.receiveMode, {
      mode: "datagram",
      reason: "batch receive switched off",
    });
    const size = 60_000;
    const { outs } = await receiveFrames(receiver, 4, size);
    assert.deepEqual(outs.map((o) => o.kind), ["frame", "frame", "frame", "frame"]);
    if (outs[3].kind === "frame") assert.deepEqual(outs[3].data, image(size, 4));
    assert.equal(receiver.batchedDatagrams, 0);
  } finally {
    await receiver.close();
  }
});

Deno.test({
  name: "receiver: without FFI permission it receives one datagram per call and says why",
  permissions: { net: true, read: true, ffi: false },
  async fn() {
    const receiver = new GvspReceiver({
      localAddress: "127.0.0.1",
      device: { host: "127.0.0.1", port: 9 },
    });
    try {
      assert.deepEqual(receiver.receiveMode, { mode: "datagram", reason: "no FFI permission" });
      const size = 20_000;
      const { outs } = await receiveFrames(receiver, 2, size);
      assert.deepEqual(outs.map((o) => o.kind), ["frame", "frame"]);
      if (outs[1].kind === "frame") assert.deepEqual(outs[1].data, image(size, 2));
      assert.equal(receiver.batchedDatagrams, 0);
    } finally {
      await receiver.close();
    }
  },
});

Deno.test("a trailer before the last packet, or a packet after the trailer, fails the frame", () => {
  const packets = packetizeImage(7, leaderFor(40, 10), image(400, 7), 136); // payloads 1-4
  // Payload 3 damaged into a trailer (format nibble 3 -> 2): taken as the frame's end it would
  // complete the frame with packet 3's bytes missing (stale memory: a torn image).
  const fake = packets[3].slice();
  fake[4] = (fake[4] & 0xf0) | 2;
  fake.set([0, 0, 0, 0, 0, 0, 0, 10], 8); // a trailer body that decodes
  const orders: [string, Uint8Array[]][] = [
    ["after packet 4", [packets[0], packets[1], packets[2], packets[4], fake, packets[5]]],
    ["before packets 2 and 4", [packets[0], packets[1], fake, packets[4], packets[2], packets[5]]],
  ];
  for (const [name, order] of orders) {
    for (const via of ["feed", "batch"]) {
      const a = new FrameAssembler({
        payloadSize: 400,
        packetSize: 136,
        resend: false,
        windowMs: 50,
      });
      if (via === "feed") { for (const p of order) a.feed(p, 0); }
      else {
        deliverOne(a, order[0], 0);
        deliverBatch(a, order.slice(1), 0);
      }
      const out = a.takeOutput();
      assert.equal(out?.kind, "incomplete", `${name} via ${via}`);
      assert.match(
        (out as { reason: string }).reason,
        /block 7: (trailer with packet id 3 after packet 4|packet 4 after the trailer \(packet 3\))/,
      );
    }
  }
});

Deno.test("reset: a new acquisition reuses the frame buffers, drops what was pending, zeroes counters", () => {
  const a = new FrameAssembler({ payloadSize: 400, packetSize: 136, resend: true, windowMs: 50 });
  const seen = new Set<Uint8Array>();
  for (let block = 1; block <= 3; block++) {
    for (const p of packetizeImage(block, leaderFor(40, 10), image(400, block), 136)) a.feed(p, 0);
    const out = a.takeOutput();
    assert.equal(out?.kind, "frame");
    if (out?.kind === "frame") {
      seen.add(out.buffer);
      a.recycle(out.buffer);
    }
  }
  // Half a frame in flight, one whole frame not taken, then a new acquisition.
  const p4 = packetizeImage(4, leaderFor(40, 10), image(400, 4), 136);
  for (const p of p4) a.feed(p, 0);
  for (const p of packetizeImage(5, leaderFor(40, 10), image(400, 5), 136).slice(0, 3)) {
    a.feed(p, 0);
  }
  a.reset();
  assert.equal(a.takeOutput(), undefined, "results of the previous acquisition dropped");
  assert.equal(a.inFlight, 0);
  assert.equal(a.stats.packets, 0);
  assert.equal(a.stats.framesComplete, 0);
  for (let block = 1; block <= 6; block++) {
    for (const p of packetizeImage(block, leaderFor(40, 10), image(400, block + 10), 136)) {
      a.feed(p, 1);
    }
    const out = a.takeOutput();
    assert.equal(out?.kind, "frame", `block ${block} after reset`);
    if (out?.kind === "frame") {
      assert.deepEqual(out.data, image(400, block + 10));
      assert.ok(seen.has(out.buffer), "a buffer of before the reset");
      a.recycle(out.buffer);
    }
  }
  assert.equal(a.stats.framesComplete, 6);
});
