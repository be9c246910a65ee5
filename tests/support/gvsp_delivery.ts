/**
 * Test helpers for GVSP reassembly: datagrams delivered as the kernel would into the places a
 * FrameAssembler names (one receive target, or a planned batch), test images, and outputs copied
 * before their buffers are recycled.
 */
import { type ImageLeader, imageLeader } from "../../devices/gige/gvsp.ts";
import type { AssemblerOutput, FrameAssembler } from "../../devices/gige/gvsp_assembler.ts";

/** Delivers `packet` as the kernel would into the assembler's receive target (cut off there). */
export function deliver(a: FrameAssembler, packet: Uint8Array, now: number): void {
  const target = a.receiveTarget();
  const n = Math.min(packet.length, target.length);
  target.set(packet.subarray(0, n));
  a.received(n, now);
}

/**
 * Delivers `packets` as batch receives would (in chunks of the assembler's batch capacity): each
 * datagram fills its header place, its body place and the guard byte, in that order, and is cut
 * off after them.
 */
export function deliverBatch(a: FrameAssembler, packets: Uint8Array[], now: number): void {
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

/** An image leader of `width` × `height` (Mono8). */
export function leaderFor(width: number, height: number): ImageLeader {
  return imageLeader({ width, height });
}

/** `n` test bytes that differ from frame to frame (`seed`). */
export function image(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed * 7 + (i >> 8)) & 0xff);
}

/** An output with its bytes copied (buffers are recycled afterwards). */
export function snapshot(out: AssemblerOutput) {
  return out.kind === "frame"
    ? { kind: out.kind, blockId: out.blockId, data: out.data.slice(), resent: out.resentPackets }
    : { kind: out.kind, blockId: out.blockId, reason: out.reason };
}

/** A copied output (see {@link snapshot}). */
export type Snapshot = ReturnType<typeof snapshot>;

/** Takes every output of `a` into `into` (copied) and recycles the frame buffers. */
export function drain(a: FrameAssembler, into: Snapshot[]): void {
  for (let out = a.takeOutput(); out !== undefined; out = a.takeOutput()) {
    into.push(snapshot(out));
    if (out.kind === "frame") a.recycle(out.buffer);
  }
}
