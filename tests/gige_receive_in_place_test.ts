/**
 * Receiving GVSP datagrams in place (FrameAssembler.receiveTarget / received, and batches through
 * planBatch / receivedBatch): the socket is simulated by copying each datagram into the places the
 * assembler names (cut off where they end, as the kernel does). In-order payload packets must land
 * in the frame buffer without a copy, and whatever arrives — reordered, duplicated, foreign blocks,
 * oversized, mutated, extended ids — must give exactly what the copying path (feed) gives: same
 * frames, same bytes, same failures.
 */
import assert from "node:assert/strict";
import { type GvspEncodeOptions, packetizeImage } from "../devices/gige/gvsp.ts";
import { type AssemblerOptions, FrameAssembler } from "../devices/gige/gvsp_assembler.ts";
import { createRandom } from "../core/random.ts";
import {
  deliver,
  deliverBatch,
  drain,
  image,
  leaderFor,
  type Snapshot,
} from "./support/gvsp_delivery.ts";

Deno.test("in place: in-order payload packets land in the frame buffer without a copy", () => {
  // One receive per datagram, or (as the receiver with FFI) leader and first payload packet
  // through the awaited receive and the rest in batches of 4.
  for (const batched of [false, true]) {
    for (const extended of [false, true]) {
      const options: GvspEncodeOptions = { extended };
      const a = new FrameAssembler({
        payloadSize: 1000,
        packetSize: 136,
        resend: false,
        windowMs: 50,
        maxBatch: 4,
      });
      const outs: Snapshot[] = [];
      let payloads = 0;
      for (let block = 1; block <= 5; block++) {
        const packets = packetizeImage(block, leaderFor(100, 10), image(1000, block), 136, options);
        payloads += packets.length - 2;
        if (batched) {
          deliver(a, packets[0], block);
          deliver(a, packets[1], block);
          deliverBatch(a, packets.slice(2), block);
        } else for (const p of packets) deliver(a, p, block);
        drain(a, outs);
      }
      const name = `extended ${extended} batched ${batched}`;
      assert.equal(outs.length, 5);
      for (const [i, o] of outs.entries()) {
        assert.equal(o.kind, "frame", JSON.stringify(o));
        if (o.kind === "frame") assert.deepEqual(o.data, image(1000, i + 1), name);
      }
      assert.equal(a.stats.inPlace, payloads, `every payload packet received in place, ${name}`);
      assert.equal(a.stats.packets, payloads + 10);
    }
  }
});

Deno.test("in place: a foreign packet where one was expected is moved, the place restored", () => {
  const p1 = packetizeImage(1, leaderFor(40, 10), image(400, 1), 136);
  const p2 = packetizeImage(2, leaderFor(40, 10), image(400, 2), 136);
  // leader, payload 1 of block 1; then block 2 whole (lands where block 1's payload 2 was
  // expected); then the rest of block 1 in reverse order. One receive per datagram, or the rest
  // after the first two in batches of 4 (foreign and reversed packets inside a batch).
  for (const batched of [false, true]) {
    const a = new FrameAssembler({
      payloadSize: 400,
      packetSize: 136,
      resend: true,
      windowMs: 50,
      maxBatch: 4,
    });
    deliver(a, p1[0], 0);
    deliver(a, p1[1], 0);
    const rest = [...p2, ...p1.slice(2).reverse()];
    if (batched) deliverBatch(a, rest, 1);
    else for (const p of rest) deliver(a, p, 1);
    const outs: Snapshot[] = [];
    drain(a, outs);
    assert.deepEqual(outs.map((o) => [o.kind, o.blockId]), [["frame", 1], ["frame", 2]]);
    if (outs[0].kind === "frame") assert.deepEqual(outs[0].data, image(400, 1));
    if (outs[1].kind === "frame") assert.deepEqual(outs[1].data, image(400, 2));
  }
});

Deno.test("in place: an oversized datagram is truncated by the slot and refused as oversized", () => {
  for (const batched of [false, true]) {
    // After the first datagrams: one receive each, or a batch (cut off by its guard byte).
    const rest = (a: FrameAssembler, packets: Uint8Array[]) => {
      if (batched) deliverBatch(a, packets, 0);
      else for (const p of packets) deliver(a, p, 0);
    };
    const a = new FrameAssembler({
      payloadSize: 400,
      packetSize: 136,
      resend: false,
      windowMs: 50,
    });
    const packets = packetizeImage(3, leaderFor(40, 10), image(400, 3), 136);
    deliver(a, packets[0], 0);
    const big = new Uint8Array(8 + 200);
    big.set(packets[1].subarray(0, 8)); // payload packet 1 header, 200 data bytes > 100
    rest(a, [big]);
    const out = a.takeOutput();
    assert.equal(out?.kind, "incomplete");
    assert.match(
      (out as { reason: string }).reason,
      /block 3: payload packet 1 of 101 bytes > 100/,
    );

    // The byte after the slot belongs to the next packet, already there when packets came
    // reordered: an oversized datagram of another block must not damage it.
    const b = new FrameAssembler({ payloadSize: 400, packetSize: 136, resend: true, windowMs: 50 });
    const p4 = packetizeImage(4, leaderFor(40, 10), image(400, 4), 136);
    for (const i of [0, 3, 1]) deliver(b, p4[i], 0); // packet 2 expected next, 3 already there
    const foreign = new Uint8Array(8 + 300).fill(0x55);
    foreign.set(packetizeImage(5, leaderFor(40, 10), image(400, 5), 136)[1].subarray(0, 8));
    // The foreign one lands where packet 2 of block 4 is expected and overruns by one byte.
    rest(b, [foreign, p4[2], p4[4], p4[5]]);
    const whole = b.takeOutput();
    assert.equal(whole?.kind, "frame", (whole as { reason?: string }).reason);
    if (whole?.kind === "frame") assert.deepEqual(whole.data, image(400, 4), `batched ${batched}`);
  }
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
  const outs: Snapshot[] = [];
  drain(a, outs);
  assert.deepEqual(outs.map((o) => [o.kind, o.blockId]), [["incomplete", 1], ["frame", 2]]);
  if (outs[1].kind === "frame") assert.deepEqual(outs[1].data, image(400, 2));
});

Deno.test("in place and batched: randomized streams give exactly what the copying path gives", () => {
  const rand = createRandom(4242);
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
      const inPlace = new FrameAssembler(options);
      const batched = new FrameAssembler(options);
      const outCopy: Snapshot[] = [];
      const outInPlace: Snapshot[] = [];
      const outBatched: Snapshot[] = [];
      let now = 0;
      let pending: Uint8Array[] = [];
      const release = () => {
        // Sometimes two neighbours swapped.
        if (pending.length > 1 && rand() < 0.3) {
          const i = int(pending.length - 1);
          [pending[i], pending[i + 1]] = [pending[i + 1], pending[i]];
        }
        for (const q of pending) {
          copy.feed(q, now);
          deliver(inPlace, q, now);
        }
        // As the receiver with FFI does: one datagram through the awaited receive, the rest
        // that queued up behind it in batches.
        if (pending.length > 0) {
          deliver(batched, pending[0], now);
          deliverBatch(batched, pending.slice(1), now);
        }
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
          if (pending.length > 12 || rand() < 0.3) release();
        }
        now += 3;
        if (block % 4 === 0) {
          release();
          copy.poll(now);
          inPlace.poll(now);
          batched.poll(now);
        }
        const resends = copy.takeResends();
        assert.deepEqual(inPlace.takeResends(), resends);
        assert.deepEqual(batched.takeResends(), resends);
        drain(copy, outCopy);
        drain(inPlace, outInPlace);
        drain(batched, outBatched);
      }
      // An oversized datagram is cut off where its place ends: its reason names fewer bytes.
      const cut = (outs: Snapshot[]) =>
        outs.map((o) =>
          o.kind === "frame"
            ? o
            : { ...o, reason: o.reason.replace(/of \d+ bytes >/, "of N bytes >") }
        );
      const name = `extended ${extended} resend ${resend}`;
      assert.deepEqual(cut(outInPlace), cut(outCopy), `in place, ${name}`);
      assert.deepEqual(cut(outBatched), cut(outCopy), `batched, ${name}`);
      assert.ok(
        outCopy.some((o) => o.kind === "incomplete" && /bytes >/.test(o.reason)),
        "oversized datagrams were among them",
      );
      const complete = outCopy.filter((o) => o.kind === "frame").length;
      assert.ok(complete > 50, `${complete} frames complete`);
      const { inPlace: _c, ...statsCopy } = copy.stats;
      for (const a of [inPlace, batched]) {
        assert.ok(a.stats.inPlace > 1000, `${a.stats.inPlace} packets in place`);
        const { inPlace: _a, ...stats } = a.stats;
        assert.deepEqual(stats, statsCopy);
      }
    }
  }
});
