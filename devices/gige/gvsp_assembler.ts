/**
 * GVSP frame reassembly without I/O: packets in (with the current time), whole frames, incomplete
 * frames and resend requests out. Frame buffers come from a small pool and go back to it through
 * {@link FrameAssembler.recycle}, so a running acquisition allocates nothing per frame.
 *
 * Policy: a frame is complete when its trailer and every packet id up to it arrived. Gaps are asked
 * for again (when resend is on) as soon as they are seen, the tail when nothing arrived for a
 * quarter of the resend window, all holes once more at half the window; after the window without
 * progress the frame closes as incomplete, naming its missing packets. Without resend, a frame
 * with holes closes as soon as a newer block starts. Late packets of closed blocks, duplicates,
 * malformed packets and GVSP error packets are counted and dropped.
 *
 * @module
 */

import {
  decodeGvspHeaderAt,
  decodeImageLeader,
  decodeTrailer,
  EXTENDED_OVERHEAD,
  GvspFormat,
  GvspFormatError,
  type ImageLeader,
  newGvspHeader,
  STANDARD_OVERHEAD,
} from "./gvsp.ts";
import { errorMessage } from "../../core/errors.ts";

/** Packets of blocks up to this many behind the newest are late (dropped). */
const LATE_BLOCKS = 100;
/** A block id further than this ahead (or further behind than late) restarts the sequence. */
const RESYNC_BLOCKS = 1000;
/** Bytes of a frame buffer before its data: room for the header of packet 1 received in place. */
const HEAD = 32;
/** IP + UDP header bytes counted in the packet size (SCPS). */
const IP_UDP = 28;
/** Largest UDP datagram: the scratch buffer's size. */
const MAX_DATAGRAM = 65536;

/**
 * A recycled frame buffer: `data` (PayloadSize bytes, handed out) inside a larger `backing` with
 * room for a header before and one packet after, and receive views ("slots") per packet id made
 * once per buffer, so receiving in place allocates nothing.
 */
class FrameBuffer {
  readonly backing: Uint8Array;
  readonly data: Uint8Array;
  #slots: (Uint8Array | undefined)[] = [];
  #slotsHeader = 0;

  constructor(payloadSize: number, packetSize: number) {
    this.backing = new Uint8Array(HEAD + payloadSize + packetSize);
    this.data = this.backing.subarray(HEAD, HEAD + payloadSize);
  }

  /** Writes every page once, so that the kernel maps the memory now rather than mid-stream. */
  touch(): void {
    const b = this.backing;
    for (let i = 0; i < b.length; i += 4096) b[i] = 0;
    if (b.length > 0) b[b.length - 1] = 0;
  }

  /** Receive view for packet `pid` with an `hl`-byte header and `per` data bytes (+1 guard). */
  slot(pid: number, hl: number, per: number): Uint8Array {
    if (this.#slotsHeader !== hl) {
      this.#slots = [];
      this.#slotsHeader = hl;
    }
    let view = this.#slots[pid];
    if (view === undefined) {
      const start = HEAD + (pid - 1) * per - hl;
      view = this.backing.subarray(start, start + hl + per + 1);
      this.#slots[pid] = view;
    }
    return view;
  }
}

/** Options of a {@link FrameAssembler}. */
export interface AssemblerOptions {
  /** Bytes of one frame's payload (the device's PayloadSize): size of every frame buffer. */
  payloadSize: number;
  /** Stream channel packet size (SCPS, whole IP datagram). */
  packetSize: number;
  /** Ask for missing packets (only when the device supports PACKETRESEND). */
  resend: boolean;
  /** Time without progress after which an incomplete frame is given up, ms. */
  windowMs: number;
  /** Most resend requests (ranges) per frame (default 64). */
  maxResendRanges?: number;
  /** Frames kept in flight at once (default 4). */
  maxInFlight?: number;
  /** Most datagrams one {@link FrameAssembler.planBatch} plans for (default 64). */
  maxBatch?: number;
  /**
   * Frame buffers made at construction, their memory touched (default 2): the first frames of a
   * stream then land in memory the kernel has already mapped instead of page-faulting buffer
   * after buffer while the camera sends (those first frames were lost at 200 MB/s on a busy
   * machine). More are made when needed.
   */
  preallocate?: number;
}

/**
 * Where each datagram of a batch receive goes (see {@link FrameAssembler.planBatch}): datagram
 * `i` fills, in order, `headerLength[i]` bytes of {@link FrameAssembler.spill} at
 * `i × spillStride`, then `bodyLength[i]` bytes of `body[i]` at `bodyStart[i]`, then one guard byte
 * of the spill right after its header and body (a datagram reaching it is oversized); the rest
 * is cut off. The arrays are reused by the next plan.
 */
export interface ScatterPlan {
  /** Datagrams planned for. */
  count: number;
  headerLength: Int32Array;
  /** A frame buffer's memory (received in place) or the spill area. */
  body: Uint8Array[];
  bodyStart: Int32Array;
  bodyLength: Int32Array;
}

/** A frame whose every packet arrived. `data` is a view of `buffer` (recycle `buffer`). */
export interface CompleteFrame {
  kind: "frame";
  blockId: number;
  leader: ImageLeader | undefined;
  /** Trailer's effective line count (0 when not given). */
  trailerSizeY: number;
  /** Payload bytes received (view of `buffer`). */
  data: Uint8Array;
  /** The pooled buffer to hand back with {@link FrameAssembler.recycle}. */
  buffer: Uint8Array;
  /** Packets that arrived as retransmissions. */
  resentPackets: number;
}

/** A frame given up: what is missing, or why it is unusable. */
export interface FailedFrame {
  kind: "incomplete";
  blockId: number;
  /** Missing packet ids (empty when the whole block was skipped or the frame is malformed). */
  missing: number[];
  /** Packets the frame should have had (0 when unknown). */
  total: number;
  /** Human-readable reason, naming the block and the missing packets. */
  reason: string;
}

/** What the assembler produces. */
export type AssemblerOutput = CompleteFrame | FailedFrame;

/** One PACKETRESEND to send (inclusive packet id range). */
export interface ResendRequest {
  blockId: number;
  first: number;
  last: number;
}

/** Counters of an assembler (read any time). */
export interface AssemblerStats {
  packets: number;
  malformed: number;
  late: number;
  duplicates: number;
  errorPackets: number;
  resentReceived: number;
  resendRequests: number;
  framesComplete: number;
  framesFailed: number;
  /** Block-id jumps that restarted the sequence. */
  resyncs: number;
  /** Payload packets received straight into their place (no copy). */
  inPlace: number;
}

/** Formats packet ids as compact ranges: `3-5,9`. */
export function packetRanges(ids: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < ids.length;) {
    let j = i;
    while (j + 1 < ids.length && ids[j + 1] === ids[j] + 1) j++;
    parts.push(i === j ? `${ids[i]}` : `${ids[i]}-${ids[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}

class InFlight {
  blockId = 0;
  /** Bumped at every reset: tells a reused record from the frame a receive was aimed at. */
  generation = 0;
  /** Undefined for a placeholder of a block that was skipped entirely. */
  fb: FrameBuffer | undefined;
  got: Uint8Array;
  received = 0;
  total: number;
  trailerSeen = false;
  trailerSizeY = 0;
  leader: ImageLeader | undefined = undefined;
  highest = -1;
  dataEnd = 0;
  lastProgress = 0;
  resendRanges = 0;
  resent = 0;
  tailAsked = false;
  secondPass = false;
  noMoreResends = false;
  bad: string | undefined = undefined;
  /** Set when finished; the result waits until every older frame finished too. */
  result: AssemblerOutput | undefined = undefined;

  constructor(fb: FrameBuffer | undefined, maxPackets: number, expectedTotal: number) {
    this.fb = fb;
    this.got = new Uint8Array(maxPackets);
    this.total = expectedTotal;
  }

  reset(blockId: number, fb: FrameBuffer | undefined, expectedTotal: number, now: number): void {
    this.blockId = blockId;
    this.generation++;
    this.fb = fb;
    this.got.fill(0);
    this.received = 0;
    this.total = expectedTotal;
    this.trailerSeen = false;
    this.trailerSizeY = 0;
    this.leader = undefined;
    this.highest = -1;
    this.dataEnd = 0;
    this.lastProgress = now;
    this.resendRanges = 0;
    this.resent = 0;
    this.tailAsked = false;
    this.secondPass = false;
    this.noMoreResends = false;
    this.bad = undefined;
    this.result = undefined;
  }

  missing(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.total; i++) if (this.got[i] === 0) out.push(i);
    return out;
  }
}

/** Reassembles GVSP packets into frames. */
export class FrameAssembler {
  readonly payloadSize: number;
  readonly stats: AssemblerStats = {
    packets: 0,
    malformed: 0,
    late: 0,
    duplicates: 0,
    errorPackets: 0,
    resentReceived: 0,
    resendRequests: 0,
    framesComplete: 0,
    framesFailed: 0,
    resyncs: 0,
    inPlace: 0,
  };
  #options: Required<AssemblerOptions>;
  #packetSize: number;
  #perPacket: number;
  #perPacketExtended: number;
  #expectedTotal: number;
  #expectedTotalExtended: number;
  #maxPackets: number;
  #pool: FrameBuffer[] = [];
  #owned = new WeakMap<Uint8Array, FrameBuffer>();
  #records: InFlight[] = [];
  #inFlight: InFlight[] = [];
  #newest: number | undefined;
  #extended = false;
  #outputs: AssemblerOutput[] = [];
  #resends: ResendRequest[] = [];
  #header = newGvspHeader();
  #scratch = new Uint8Array(MAX_DATAGRAM);
  // The packet expected next (set by the last accepted leader or payload packet).
  #expectRec: InFlight | undefined;
  #expectGeneration = 0;
  #expectPid = 0;
  #expectHeader = 8;
  // The receive in progress into a frame buffer (when #targetRec is set).
  #targetRec: InFlight | undefined;
  #targetGeneration = 0;
  #targetFb: FrameBuffer | undefined;
  #targetPid = 0;
  #targetHeader = 8;
  #targetStart = 0;
  #savedHead = new Uint8Array(20);
  #savedGuard = 0;
  // Batch receive: the spill area, the plan, and what each planned datagram was aimed at.
  #spill: Uint8Array | undefined;
  #spillStride: number;
  #plan: ScatterPlan;
  #planRec: (InFlight | undefined)[];
  #planGeneration: Int32Array;
  #planPid: Int32Array;
  #planMatch: Uint8Array;

  constructor(options: AssemblerOptions) {
    this.#options = {
      maxResendRanges: 64,
      maxInFlight: 4,
      maxBatch: 64,
      preallocate: 2,
      ...options,
    };
    this.payloadSize = options.payloadSize;
    this.#packetSize = options.packetSize;
    this.#perPacket = options.packetSize - STANDARD_OVERHEAD;
    this.#perPacketExtended = options.packetSize - EXTENDED_OVERHEAD;
    if (this.#perPacketExtended <= 0 || options.packetSize - IP_UDP > MAX_DATAGRAM) {
      throw new RangeError(`packet size ${options.packetSize} impossible for GVSP`);
    }
    if (!Number.isSafeInteger(options.payloadSize) || options.payloadSize <= 0) {
      throw new RangeError(`payload size ${options.payloadSize} must be a positive integer`);
    }
    this.#expectedTotal = Math.ceil(options.payloadSize / this.#perPacket) + 2;
    this.#expectedTotalExtended = Math.ceil(options.payloadSize / this.#perPacketExtended) + 2;
    // Room for a trailer that comes later than PayloadSize predicts (chunks, padding) is not
    // needed: data beyond the buffer makes the frame bad anyway.
    this.#maxPackets = Math.ceil(options.payloadSize / this.#perPacketExtended) + 2;
    const batch = this.#options.maxBatch;
    if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`batch size ${batch} < 1`);
    // Header and data of every GVSP packet make packet size − 28 bytes, whatever the header.
    this.#spillStride = options.packetSize - IP_UDP + 1;
    this.#plan = {
      count: 0,
      headerLength: new Int32Array(batch),
      body: new Array<Uint8Array>(batch),
      bodyStart: new Int32Array(batch),
      bodyLength: new Int32Array(batch),
    };
    this.#planRec = new Array<InFlight | undefined>(batch);
    this.#planGeneration = new Int32Array(batch);
    this.#planPid = new Int32Array(batch);
    this.#planMatch = new Uint8Array(batch);
    for (let i = 0; i < Math.min(this.#options.preallocate, 8); i++) {
      const fb = this.#newBuffer();
      fb.touch();
      this.#pool.push(fb);
    }
  }

  #newBuffer(): FrameBuffer {
    const fb = new FrameBuffer(this.payloadSize, this.#packetSize);
    this.#owned.set(fb.data, fb);
    return fb;
  }

  /** Most datagrams of one batch (the `maxBatch` option). */
  get batchCapacity(): number {
    return this.#options.maxBatch;
  }

  /**
   * The spill area of batch receives (made at first use): datagram `i` of a batch owns the
   * {@link spillStride} bytes at `i × spillStride` for its header and guard byte, and for all of
   * it when it is not aimed at a frame buffer.
   */
  get spill(): Uint8Array {
    this.#spill ??= new Uint8Array(this.#options.maxBatch * this.#spillStride);
    return this.#spill;
  }

  /** Bytes of the spill area per datagram (packet size − 28 + 1 guard byte). */
  get spillStride(): number {
    return this.#spillStride;
  }

  /** Whether the stream uses extended-id headers (64-bit block ids), as its last packet did. */
  get extendedIds(): boolean {
    return this.#extended;
  }

  /** Frames currently being assembled. */
  get inFlight(): number {
    return this.#inFlight.length;
  }

  /**
   * Starts over for a new acquisition: frames in flight, results and resend requests not yet
   * taken and the newest block are forgotten, the counters zeroed; the frame buffers (also those
   * of dropped frames) stay for reuse, so that a new acquisition allocates nothing.
   */
  reset(): void {
    this.cancelTarget();
    for (const f of [...this.#inFlight]) {
      const r = f.result;
      if (r === undefined && f.fb !== undefined) this.recycle(f.fb.data);
      else if (r?.kind === "frame") this.recycle(r.buffer);
      this.#free(f);
    }
    for (const out of this.#outputs) if (out.kind === "frame") this.recycle(out.buffer);
    this.#outputs = [];
    this.#resends = [];
    this.#newest = undefined;
    this.#expectRec = undefined;
    this.#plan.count = 0;
    const stats = this.stats as unknown as Record<string, number>;
    for (const key of Object.keys(stats)) stats[key] = 0;
  }

  /** Hands a frame buffer (a {@link CompleteFrame.buffer}) back for reuse. */
  recycle(buffer: Uint8Array): void {
    const fb = this.#owned.get(buffer);
    if (fb !== undefined && this.#pool.length < 8 && !this.#pool.includes(fb)) this.#pool.push(fb);
  }

  /** Next output, or undefined. */
  takeOutput(): AssemblerOutput | undefined {
    return this.#outputs.shift();
  }

  /** How many resend requests {@link takeResends} would hand out (checked per packet, no allocation). */
  get pendingResends(): number {
    return this.#resends.length;
  }

  /** Pending resend requests (emptied by the call). */
  takeResends(): ResendRequest[] {
    if (this.#resends.length === 0) return [];
    const r = this.#resends;
    this.#resends = [];
    return r;
  }

  /**
   * Where to receive the next datagram (at most `packet size − 28 + 1` bytes are expected there;
   * a longer datagram is truncated and then counted as oversized). Either a view of a frame buffer
   * at the place of the packet expected next, or a scratch buffer. Hand the received length to
   * {@link received} before calling anything but {@link poll} (or call {@link cancelTarget}).
   */
  receiveTarget(): Uint8Array {
    this.cancelTarget();
    const f = this.#expectRec;
    if (f === undefined || f.generation !== this.#expectGeneration || f.result !== undefined) {
      return this.#scratch;
    }
    const pid = this.#expectPid;
    const hl = this.#expectHeader;
    const per = hl === 8 ? this.#perPacket : this.#perPacketExtended;
    const offset = (pid - 1) * per;
    const fb = f.fb;
    if (fb === undefined || pid < 1 || pid >= f.got.length || f.got[pid] !== 0) {
      return this.#scratch;
    }
    if (offset >= this.payloadSize) return this.#scratch;
    const b = fb.backing;
    const start = HEAD + offset - hl;
    for (let i = 0; i < hl; i++) this.#savedHead[i] = b[start + i];
    this.#savedGuard = b[HEAD + offset + per];
    this.#targetRec = f;
    this.#targetGeneration = f.generation;
    this.#targetFb = fb;
    this.#targetPid = pid;
    this.#targetHeader = hl;
    this.#targetStart = start;
    return fb.slot(pid, hl, per);
  }

  /** Gives up the receive aimed by {@link receiveTarget}: the overwritten bytes are restored. */
  cancelTarget(): void {
    const fb = this.#targetFb;
    if (this.#targetRec === undefined || fb === undefined) return;
    this.#restore(fb.backing);
  }

  #restore(b: Uint8Array): void {
    const start = this.#targetStart;
    const hl = this.#targetHeader;
    for (let i = 0; i < hl; i++) b[start + i] = this.#savedHead[i];
    const per = hl === 8 ? this.#perPacket : this.#perPacketExtended;
    b[start + hl + per] = this.#savedGuard;
    this.#targetRec = undefined;
    this.#targetFb = undefined;
  }

  /** Takes the datagram of `length` bytes just received into the last {@link receiveTarget}. */
  received(length: number, now: number): void {
    const f = this.#targetRec;
    const fb = this.#targetFb;
    if (f === undefined || fb === undefined) {
      this.#process(this.#scratch, 0, length, now);
      return;
    }
    const b = fb.backing;
    const s = this.#targetStart;
    const hl = this.#targetHeader;
    const pid = this.#targetPid;
    const m = this.#expectedAt(b, s, length, hl, f, this.#targetGeneration, pid);
    if (m === 0) {
      // Not the packet this place was meant for: copy it out, undo, and handle it as any other.
      this.#scratch.set(b.subarray(s, s + length));
      this.#restore(b);
      this.#process(this.#scratch, 0, length, now);
      return;
    }
    this.#restore(b);
    this.#tookInPlace(f, pid, hl, length, m === 2, now);
  }

  /**
   * Plans a batch receive of up to `count` datagrams (at most {@link batchCapacity}): datagram `i`
   * is aimed at the place of the packet expected `i` after the last one accepted, in that frame's
   * buffer, while that place is free and inside the payload; else it goes whole to the spill
   * area. Hand the received lengths to {@link receivedBatch} before calling anything but
   * {@link poll}.
   */
  planBatch(count: number): ScatterPlan {
    this.cancelTarget();
    const spill = this.spill;
    const stride = this.#spillStride;
    const p = this.#plan;
    const n = Math.max(0, Math.min(count, this.#options.maxBatch));
    p.count = n;
    const f = this.#expectRec;
    const fb = f?.fb;
    const live = f !== undefined && fb !== undefined && f.generation === this.#expectGeneration &&
      f.result === undefined;
    const hl = this.#expectHeader;
    const per = hl === 8 ? this.#perPacket : this.#perPacketExtended;
    for (let i = 0; i < n; i++) {
      const pid = this.#expectPid + i;
      const offset = (pid - 1) * per;
      p.headerLength[i] = hl;
      p.bodyLength[i] = per;
      if (live && pid >= 1 && pid < f.got.length && f.got[pid] === 0 && offset < this.payloadSize) {
        p.body[i] = fb.backing;
        p.bodyStart[i] = HEAD + offset;
        this.#planRec[i] = f;
        this.#planGeneration[i] = f.generation;
        this.#planPid[i] = pid;
      } else {
        p.body[i] = spill;
        p.bodyStart[i] = i * stride + hl;
        this.#planRec[i] = undefined;
      }
    }
    return p;
  }

  /**
   * Takes the datagrams of the last {@link planBatch}: `count` of them arrived, datagram `i` of
   * `lengths[i]` bytes (as far as its places held). Gives exactly what {@link feed} of each
   * datagram in order gives; the ones that landed where they belong are not copied.
   */
  receivedBatch(count: number, lengths: ArrayLike<number>, now: number): void {
    const p = this.#plan;
    const n = Math.min(count, p.count);
    p.count = 0;
    const spill = this.spill;
    const stride = this.#spillStride;
    const match = this.#planMatch;
    // First every datagram that is not the packet its place was meant for gets its body back
    // next to its header, before any packet is handled (handling copies into frame buffers).
    for (let i = 0; i < n; i++) {
      match[i] = 0;
      const f = this.#planRec[i];
      if (f === undefined) continue;
      const hl = p.headerLength[i];
      const s = i * stride;
      const m = this.#expectedAt(
        spill,
        s,
        lengths[i],
        hl,
        f,
        this.#planGeneration[i],
        this.#planPid[i],
      );
      if (m !== 0) match[i] = m;
      else this.#spillBody(i, lengths[i]);
    }
    for (let i = 0; i < n; i++) {
      const length = lengths[i];
      const f = this.#planRec[i];
      if (match[i] !== 0 && f !== undefined) {
        const pid = this.#planPid[i];
        if (
          f.generation === this.#planGeneration[i] && f.result === undefined && f.got[pid] === 0
        ) {
          this.#tookInPlace(f, pid, p.headerLength[i], length, match[i] === 2, now);
          continue;
        }
        // Its frame finished meanwhile (or the same packet came twice): handled as any other.
        this.#spillBody(i, length);
      }
      this.#process(spill, i * stride, length, now);
    }
  }

  /** Copies the body of planned datagram `i` from its frame buffer place next to its header. */
  #spillBody(i: number, length: number): void {
    const p = this.#plan;
    const hl = p.headerLength[i];
    const n = Math.min(length - hl, p.bodyLength[i]);
    if (n <= 0) return;
    const start = p.bodyStart[i];
    this.spill.set(p.body[i].subarray(start, start + n), i * this.#spillStride + hl);
  }

  /**
   * Whether the `length`-byte datagram whose `hl`-byte header is at `start` of `bytes` is payload
   * packet `pid` of `f` (still of `generation`, unfinished), fitting its place: 0 no, 1 yes,
   * 2 yes and resent.
   */
  #expectedAt(
    bytes: Uint8Array,
    start: number,
    length: number,
    hl: number,
    f: InFlight,
    generation: number,
    pid: number,
  ): number {
    const per = hl === 8 ? this.#perPacket : this.#perPacketExtended;
    const s = start;
    const status = (bytes[s] << 8) | bytes[s + 1];
    if (
      f.generation !== generation || f.result !== undefined || length <= hl || length > hl + per ||
      (status & 0x8000) !== 0
    ) {
      return 0;
    }
    if (hl === 8) {
      const ok = bytes[s + 4] === GvspFormat.PAYLOAD &&
        ((bytes[s + 2] << 8) | bytes[s + 3]) === f.blockId &&
        ((bytes[s + 5] << 16) | (bytes[s + 6] << 8) | bytes[s + 7]) === pid;
      return ok ? (status === 0x0100 ? 2 : 1) : 0;
    }
    const h = this.#header;
    try {
      decodeGvspHeaderAt(bytes, s, length, h);
    } catch {
      return 0;
    }
    const ok = h.extended && h.format === GvspFormat.PAYLOAD && h.blockId === f.blockId &&
      h.packetId === pid;
    return ok ? (h.resent ? 2 : 1) : 0;
  }

  /** Books payload packet `pid` of `f`, received where it belongs (`length` bytes with header). */
  #tookInPlace(
    f: InFlight,
    pid: number,
    hl: number,
    length: number,
    resent: boolean,
    now: number,
  ): void {
    this.stats.packets++;
    this.stats.inPlace++;
    this.#extended = hl !== 8; // as #process notes the header form of every packet
    const per = hl === 8 ? this.#perPacket : this.#perPacketExtended;
    const end = (pid - 1) * per + length - hl;
    if (f.trailerSeen && pid >= f.total) {
      f.bad ??= `packet ${pid} after the trailer (packet ${f.total - 1})`;
      this.#fail(f, "bad packet");
      return;
    }
    if (end > this.payloadSize) {
      f.bad ??= `payload packet ${pid} ends at byte ${end}, beyond PayloadSize ${this.payloadSize}`;
      this.#fail(f, "bad packet");
      return;
    }
    if (end > f.dataEnd) f.dataEnd = end;
    this.#accept(f, pid, hl, resent, now);
  }

  #blockDiff(a: number, b: number): number {
    if (this.#extended) return a - b;
    let d = (a - b) & 0xffff;
    if (d >= 0x8000) d -= 0x10000;
    // 16-bit ids skip 0 on wrap (65535 -> 1).
    if (d > 0 && a < b) d -= 1;
    else if (d < 0 && a > b) d += 1;
    return d;
  }

  #open(blockId: number, now: number): InFlight {
    while (this.#inFlight.length >= this.#options.maxInFlight) {
      const oldest = this.#inFlight.find((g) => g.result === undefined)!;
      this.#fail(oldest, "superseded by newer frames");
    }
    const fb = this.#pool.pop() ?? this.#newBuffer();
    const total = this.#extended ? this.#expectedTotalExtended : this.#expectedTotal;
    let rec = this.#records.pop();
    if (rec === undefined) rec = new InFlight(fb, this.#maxPackets, total);
    rec.reset(blockId, fb, total, now);
    this.#inFlight.push(rec);
    return rec;
  }

  #free(f: InFlight): void {
    f.generation++; // a receive aimed at this frame no longer belongs to it
    const i = this.#inFlight.indexOf(f);
    if (i >= 0) this.#inFlight.splice(i, 1);
    this.#records.push(f);
  }

  #fail(f: InFlight, why: string): void {
    if (f.result !== undefined) return;
    const missing = f.bad === undefined ? f.missing() : [];
    const reason = f.bad !== undefined
      ? `block ${f.blockId}: ${f.bad}`
      : `block ${f.blockId} incomplete: missing packets ${
        packetRanges(missing)
      } of ${f.total} (${why})`;
    if (f.fb !== undefined && this.#pool.length < 8) this.#pool.push(f.fb);
    this.stats.framesFailed++;
    f.result = { kind: "incomplete", blockId: f.blockId, missing, total: f.total, reason };
    this.#flush();
  }

  #complete(f: InFlight): void {
    this.stats.framesComplete++;
    const fb = f.fb!;
    f.result = {
      kind: "frame",
      blockId: f.blockId,
      leader: f.leader,
      trailerSizeY: f.trailerSizeY,
      data: fb.data.subarray(0, f.dataEnd),
      buffer: fb.data,
      resentPackets: f.resent,
    };
    this.#flush();
  }

  /** Hands finished frames out in block order: a frame waits for every older one. */
  #flush(): void {
    while (this.#inFlight.length > 0 && this.#inFlight[0].result !== undefined) {
      const f = this.#inFlight[0];
      this.#outputs.push(f.result!);
      this.#free(f);
    }
  }

  #askResend(f: InFlight, first: number, last: number): void {
    if (!this.#options.resend || f.noMoreResends || first > last) return;
    if (f.resendRanges >= this.#options.maxResendRanges) return;
    f.resendRanges++;
    this.stats.resendRequests++;
    this.#resends.push({ blockId: f.blockId, first, last });
  }

  /** Feeds one received datagram (copied where it belongs). */
  feed(packet: Uint8Array, now: number): void {
    this.#process(packet, 0, packet.length, now);
  }

  #process(bytes: Uint8Array, start: number, length: number, now: number): void {
    this.stats.packets++;
    const h = this.#header;
    try {
      decodeGvspHeaderAt(bytes, start, length, h);
    } catch (err) {
      if (err instanceof GvspFormatError) {
        this.stats.malformed++;
        return;
      }
      throw err;
    }
    if (h.blockId === 0) return; // test packet
    this.#extended = h.extended;
    let f: InFlight | undefined;
    for (const g of this.#inFlight) {
      if (g.blockId === h.blockId) {
        f = g;
        break;
      }
    }
    if ((h.status & 0x8000) !== 0) {
      this.stats.errorPackets++;
      if (f !== undefined) f.noMoreResends = true;
      return;
    }
    if (f === undefined) {
      if (this.#newest !== undefined) {
        let d = this.#blockDiff(h.blockId, this.#newest);
        if (d <= 0 && d > -LATE_BLOCKS) {
          this.stats.late++;
          return;
        }
        if (d <= 0 || d > RESYNC_BLOCKS) {
          // A jump no camera makes in order (restart, corrupted id): start over from here.
          this.stats.resyncs++;
          d = 1;
        }
        if (!this.#options.resend) {
          for (const g of [...this.#inFlight]) {
            if (g.result === undefined) this.#fail(g, "a newer block started");
          }
        }
        if (d > 1) {
          const skipped = Math.min(d - 1, 16);
          for (let k = 1; k <= skipped; k++) {
            const id = this.#extended ? this.#newest + k : this.#nextId16(this.#newest, k);
            this.stats.framesFailed++;
            const rec = this.#records.pop() ??
              new InFlight(undefined, this.#maxPackets, this.#expectedTotal);
            rec.reset(id, undefined, this.#expectedTotal, now);
            rec.result = {
              kind: "incomplete",
              blockId: id,
              missing: [],
              total: 0,
              reason: `block ${id} lost: no packet of it arrived`,
            };
            this.#inFlight.push(rec);
          }
          this.#flush();
        }
      }
      this.#newest = h.blockId;
      f = this.#open(h.blockId, now);
    }
    const pid = h.packetId;
    if (pid >= f.got.length) {
      f.bad ??= `packet id ${pid} beyond the ${f.got.length} packets PayloadSize allows`;
      this.#fail(f, "bad packet id");
      return;
    }
    if (f.result !== undefined || f.got[pid] !== 0) {
      this.stats.duplicates++;
      return;
    }
    if (f.trailerSeen && pid >= f.total) {
      // Its place was never part of the frame: a torn image if taken.
      f.bad ??= `packet ${pid} after the trailer (packet ${f.total - 1})`;
      this.#fail(f, "bad packet");
      return;
    }
    const hl = h.headerLength;
    const bodyStart = start + hl;
    const bodyLength = length - hl;
    switch (h.format) {
      case GvspFormat.LEADER:
        if (pid !== 0) f.bad ??= `leader with packet id ${pid}`;
        try {
          f.leader = decodeImageLeader(bytes.subarray(bodyStart, bodyStart + bodyLength));
        } catch (err) {
          f.bad ??= errorMessage(err);
        }
        break;
      case GvspFormat.PAYLOAD: {
        const per = h.extended ? this.#perPacketExtended : this.#perPacket;
        const offset = (pid - 1) * per;
        const end = offset + bodyLength;
        if (pid === 0) f.bad ??= "payload packet with id 0";
        else if (bodyLength > per) {
          f.bad ??= `payload packet ${pid} of ${bodyLength} bytes > ${per}`;
        } else if (end > this.payloadSize) {
          f.bad ??=
            `payload packet ${pid} ends at byte ${end}, beyond PayloadSize ${this.payloadSize}`;
        } else {
          f.fb!.data.set(bytes.subarray(bodyStart, bodyStart + bodyLength), offset);
          if (end > f.dataEnd) f.dataEnd = end;
        }
        break;
      }
      case GvspFormat.TRAILER:
        if (pid <= f.highest) f.bad ??= `trailer with packet id ${pid} after packet ${f.highest}`;
        try {
          f.trailerSizeY = decodeTrailer(bytes.subarray(bodyStart, bodyStart + bodyLength)).sizeY;
        } catch (err) {
          f.bad ??= errorMessage(err);
        }
        f.trailerSeen = true;
        f.total = pid + 1;
        break;
      default:
        f.bad ??= `GVSP packet format ${h.format} not supported`;
    }
    if (f.bad !== undefined) {
      this.#fail(f, "bad packet");
      return;
    }
    this.#accept(f, pid, hl, h.resent, now);
    if (h.format === GvspFormat.TRAILER) this.#expectRec = undefined;
  }

  /** Books an accepted packet `pid` of `f`; completes the frame when it was the last one. */
  #accept(f: InFlight, pid: number, hl: number, resent: boolean, now: number): void {
    f.got[pid] = 1;
    f.received++;
    f.lastProgress = now;
    if (resent) {
      f.resent++;
      this.stats.resentReceived++;
    }
    this.#expectRec = f;
    this.#expectGeneration = f.generation;
    this.#expectPid = pid + 1;
    this.#expectHeader = hl;
    if (pid > f.highest + 1) this.#askResend(f, f.highest + 1, pid - 1);
    if (pid > f.highest) f.highest = pid;
    if (f.trailerSeen && f.received >= f.total) {
      for (let i = 0; i < f.total; i++) {
        if (f.got[i] === 0) return;
      }
      this.#complete(f);
    }
  }

  #nextId16(from: number, k: number): number {
    let id = from;
    for (let i = 0; i < k; i++) id = id >= 0xffff ? 1 : id + 1;
    return id;
  }

  /** Ages frames in flight: asks for tails and holes again, gives up after the window. */
  poll(now: number): void {
    const w = this.#options.windowMs;
    for (const f of [...this.#inFlight]) {
      if (f.result !== undefined) continue;
      const idle = now - f.lastProgress;
      if (idle > w) {
        this.#fail(f, `nothing arrived for ${w} ms`);
        continue;
      }
      if (!this.#options.resend) continue;
      if (!f.tailAsked && !f.trailerSeen && idle > w / 4) {
        f.tailAsked = true;
        this.#askResend(f, f.highest + 1, f.total - 1);
      }
      if (!f.secondPass && idle > w / 2) {
        f.secondPass = true;
        const missing = f.missing();
        for (let i = 0; i < missing.length;) {
          let j = i;
          while (j + 1 < missing.length && missing[j + 1] === missing[j] + 1) j++;
          this.#askResend(f, missing[i], missing[j]);
          i = j + 1;
        }
      }
    }
  }
}
