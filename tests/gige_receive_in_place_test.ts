/**
 * Receiving GVSP datagrams in place (FrameAssembler.receiveTarget / received): the socket is
 * simulated by copying each datagram into the view the assembler names (truncated to its length,
 * as the kernel does). In-order payload packets must land in the frame buffer without a copy, and
 * whatever arrives — reordered, duplicated, foreign blocks, oversized, mutated, extended ids — must
 * give exactly what the copying path (feed) gives: same frames, same bytes, same failures.
 */
import assert from "node:assert/strict";
import {
  type GvspEncodeOptions,
  type ImageLeader,
  imageLeader,
  packetizeImage,
} from "../devices/gige/gvsp.ts";
import {
  type AssemblerOptions,
  type AssemblerOutput,
  FrameAssembler,
} from "../devices/gige/gvsp_assembler.ts";
import { createRandom } from "../core/random.ts";

/** Delivers `packet` as the kernel would into the assembler's receive target. */
function deliver(a: FrameAssembler, packet: Uint8Array, now: number): void {
  const target = a.receiveTarget();
  const n = Math.min(packet.length, target.length);
  target.set(packet.subarray(0, n));
  a.received(n, now);
}

function leaderFor(width: number, height: number): ImageLeader {
  return imageLeader({ width, height });
}

function image(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed * 7 + (i >> 8)) & 0xff);
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

Deno.test("in place: in-order payload packets land in the frame buffer without a copy", () => {
  for (const extended of [false, true]) {
    const options: GvspEncodeOptions = { extended };
    const a = new FrameAssembler({
      payloadSize: 1000,
      packetSize: 136,
      resend: false,
      windowMs: 50,
    });
    const outs: ReturnType<typeof snapshot>[] = [];
    let payloads = 0;
    for (let block = 1; block <= 5; block++) {
      const packets = packetizeImage(block, leaderFor(100, 10), image(1000, block), 136, options);
      payloads += packets.length - 2;
      for (const p of packets) deliver(a, p, block);
      drain(a, outs);
    }
    assert.equal(outs.length, 5);
    for (const [i, o] of outs.entries()) {
      assert.equal(o.kind, "frame", JSON.stringify(o));
      if (o.kind === "frame") assert.deepEqual(o.data, image(1000, i + 1), `extended ${extended}`);
    }
    assert.equal(a.stats.inPlace, payloads, "every payload packet received in place");
    assert.equal(a.stats.packets, payloads + 10);
  }
});

Deno.test("in place: a foreign packet where one was expected is moved, the place restored", () => {
  const a = new FrameAssembler({ payloadSize: 400, packetSize: 136, resend: true, windowMs: 50 });
  const p1 = packetizeImage(1, leaderFor(40, 10), image(400, 1), 136);
  const p2 = packetizeImage(2, leaderFor(40, 10), image(400, 2), 136);
  // leader, payload 1 of block 1; then block 2 whole (lands where block 1's payload 2 was
  // expected); then the rest of block 1 in reverse order.
  deliver(a, p1[0], 0);
  deliver(a, p1[1], 0);
  for (const p of p2) deliver(a, p, 1);
  for (const p of p1.slice(2).reverse()) deliver(a, p, 2);
  const outs: ReturnType<typeof snapshot>[] = [];
  drain(a, outs);
  assert.deepEqual(outs.map((o) => [o.kind, o.blockId]), [["frame", 1], ["frame", 2]]);
  if (outs[0].kind === "frame") assert.deepEqual(outs[0].data, image(400, 1));
  if (outs[1].kind === "frame") assert.deepEqual(outs[1].data, image(400, 2));
});

Deno.test("in place: an oversized datagram is truncated by the slot and refused as oversized", () => {
  const a = new FrameAssembler({ payloadSize: 400, packetSize: 136, resend: false, windowMs: 50 });
  const packets = packetizeImage(3, leaderFor(40, 10), image(400, 3), 136);
  deliver(a, packets[0], 0);
  const big = new Uint8Array(8 + 200);
  big.set(packets[1].subarray(0, 8)); // payload packet 1 header, 200 data bytes > 100
  deliver(a, big, 0);
  const out = a.takeOutput();
  assert.equal(out?.kind, "incomplete");
  assert.match((out as { reason: string }).reason, /block 3: payload packet 1 of 101 bytes > 100/);

  // The guard byte after the slot belongs to the next packet, already there when packets came
  // reordered: an oversized datagram of another block must not damage it.
  const b = new FrameAssembler({ payloadSize: 400, packetSize: 136, resend: true, windowMs: 50 });
  const p4 = packetizeImage(4, leaderFor(40, 10), image(400, 4), 136);
  for (const i of [0, 3, 1]) deliver(b, p4[i], 0); // packet 2 expected next, 3 already there
  const foreign = new Uint8Array(8 + 300).fill(0x55);
  foreign.set(packetizeImage(5, leaderFor(40, 10), image(400, 5), 136)[1].subarray(0, 8));
  deliver(b, foreign, 0); // lands where packet 2 of block 4 is expected, overruns by one byte
  for (const i of [2, 4, 5]) deliver(b, p4[i], 0);
  const whole = b.takeOutput();
  assert.equal(whole?.kind, "frame", (whole as { reason?: string }).reason);
  if (whole?.kind === "frame") assert.deepEqual(whole.data, image(400, 4));
});

Deno.test("in place: a frame given up while a receive is aimed at it stays consistent", () => {
  const a = new FrameAssembler({ payloadSize: 400, packetSize: 136, resend: true, windowMs: 10 });
  const p1 = packetizeImage(1, leaderFor(40, 10), image(400, 1), 136);
  deliver(a, p1[0], 0);
  deliver(a, p1[1], 0);
  const target = a.receiveTarget(); // aimed at block 1, packet 2
  a.poll(100); // block 1 given up meanwhile
  const p2 = packetizeImage(2, leaderFor(40, 10), image(400, 2), 136);
  target.set(p2[0]); // the next datagram is block 2's leader
  a.received(p2[0].length, 100);
  for (const p of p2.slice(1)) deliver(a, p, 100);
  const outs: ReturnType<typeof snapshot>[] = [];
  drain(a, outs);
  assert.deepEqual(outs.map((o) => [o.kind, o.blockId]), [["incomplete", 1], ["frame", 2]]);
  if (outs[1].kind === "frame") assert.deepEqual(outs[1].data, image(400, 2));
});

Deno.test("in place: randomized streams give exactly what the copying path gives", () => {
  const rand = createRandom(4242);
  const int = (n: number) => Math.floor(rand() * n);
  for (const extended of [false, true]) {
    for (const resend of [false, true]) {
      const options: AssemblerOptions = { payloadSize: 997, packetSize: 100, resend, windowMs: 30 };
      const copy = new FrameAssembler(options);
      const inPlace = new FrameAssembler(options);
      const outCopy: ReturnType<typeof snapshot>[] = [];
      const outInPlace: ReturnType<typeof snapshot>[] = [];
      let now = 0;
      let pending: Uint8Array[] = [];
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
          else pending.push(p);
          if (pending.length > 3 || rand() < 0.5) {
            // Release the queue, sometimes swapping two neighbours.
            if (pending.length > 1 && rand() < 0.3) {
              const i = int(pending.length - 1);
              [pending[i], pending[i + 1]] = [pending[i + 1], pending[i]];
            }
            for (const q of pending) {
              copy.feed(q, now);
              deliver(inPlace, q, now);
            }
            pending = [];
          }
        }
        now += 3;
        if (block % 4 === 0) {
          copy.poll(now);
          inPlace.poll(now);
        }
        assert.deepEqual(inPlace.takeResends(), copy.takeResends());
        drain(copy, outCopy);
        drain(inPlace, outInPlace);
      }
      assert.deepEqual(outInPlace, outCopy, `extended ${extended} resend ${resend}`);
      const complete = outCopy.filter((o) => o.kind === "frame").length;
      assert.ok(complete > 50, `${complete} frames complete`);
      assert.ok(inPlace.stats.inPlace > 1000, `${inPlace.stats.inPlace} packets in place`);
      const { inPlace: _a, ...statsInPlace } = inPlace.stats;
      const { inPlace: _b, ...statsCopy } = copy.stats;
      assert.deepEqual(statsInPlace, statsCopy);
    }
  }
});
