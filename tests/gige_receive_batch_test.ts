/**
 * Batched GVSP receive end to end: GvspReceiver on a real loopback socket in both receive modes
 * (recvmmsg through FFI, one Deno receive per datagram) and without FFI permission (falls back and
 * says why); and assembler rules that both paths share: misplaced trailers fail the frame, reset
 * keeps the buffers. The batch scatter itself is checked against the copying path in
 * tests/gige_receive_in_place_test.ts.
 */
import assert from "node:assert/strict";
import { packetizeImage } from "../devices/gige/gvsp.ts";
import { FrameAssembler } from "../devices/gige/gvsp_assembler.ts";
import { GvspReceiver } from "../devices/gige/gvsp_receiver.ts";
import {
  deliver,
  deliverBatch,
  image,
  leaderFor,
  type Snapshot,
  snapshot,
} from "./support/gvsp_delivery.ts";

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
  const outs: Snapshot[] = [];
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
        deliver(a, order[0], 0);
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
