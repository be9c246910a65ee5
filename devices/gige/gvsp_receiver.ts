/**
 * GVSP receiver: a UDP socket feeding a {@link FrameAssembler}, sending its PACKETRESEND requests
 * to the device's GVCP port from the same socket, ageing frames on a timer, and queueing the
 * results for one consumer.
 *
 * Two ways of receiving, the same results: batches (`recvmmsg` through FFI, see
 * core/udp_batch_receive.ts), each datagram scattered to where the assembler expects it, when FFI
 * permission is granted on 64-bit Linux; else one Deno `receive` per datagram (also received in
 * place). {@link GvspReceiver.receiveMode} tells which is in use and why.
 *
 * @module
 */

import { encodeCommand, FLAG_EXTENDED_ID, GvcpCommand, packetResendPayload } from "./gvcp.ts";
import type { AssemblerOutput, FrameAssembler } from "./gvsp_assembler.ts";
import { raiseUdpReceiveBuffer, type UdpReceiveBuffer } from "../../core/udp_receive_buffer.ts";
import { openUdpBatchReceiver, type UdpBatchReceiver } from "../../core/udp_batch_receive.ts";

/** Datagrams per batch receive. */
const BATCH = 64;
/** Batches taken in a row before the event loop gets a turn. */
const BATCHES_PER_TURN = 4;

/** How a {@link GvspReceiver} receives datagrams. */
export interface GvspReceiveMode {
  /** `batch`: many datagrams per call (recvmmsg); `datagram`: one Deno receive per datagram. */
  mode: "batch" | "datagram";
  /** Why not batched (undefined in batch mode). */
  reason?: string;
}

/** Options of {@link GvspReceiver}. */
export interface GvspReceiverOptions {
  /** Local address to bind. */
  localAddress: string;
  /** Local port (default 0 = OS-assigned). */
  port?: number;
  /** Device address for PACKETRESEND (its GVCP port). */
  device: { host: string; port: number };
  /** Ageing period of frames in flight, ms (default 5). */
  pollMs?: number;
  /** Kernel receive buffer to ask for, bytes (needs FFI permission; see core/udp_receive_buffer.ts). */
  receiveBufferBytes?: number;
  /** Receive in batches when possible (default true; needs FFI permission, 64-bit Linux). */
  batchReceive?: boolean;
}

/** A bound GVSP socket with its reassembly and a queue of results. */
export class GvspReceiver {
  #conn: Deno.DatagramConn;
  #device: { host: string; port: number };
  #assembler: FrameAssembler | undefined;
  #queue: AssemblerOutput[] = [];
  #waiter: (() => void) | undefined;
  #closed = false;
  #reader: Promise<void>;
  #timer: ReturnType<typeof setInterval>;
  #reqId = 1;
  /** Datagrams that arrived while no assembler was set (between acquisitions). */
  idleDrops = 0;
  /** Test packets seen (packet size negotiation). */
  testPackets = 0;
  #testWatch: { length: number; arrived: boolean; wake: (() => void) | undefined } | undefined;
  /** What became of the receive buffer size asked for (undefined when none was asked). */
  readonly receiveBuffer: UdpReceiveBuffer | undefined;
  #batch: UdpBatchReceiver | undefined;
  #lengths = new Int32Array(BATCH);
  #mode: GvspReceiveMode;
  /** Batch receives that failed (recvmmsg errors; the loop goes on). */
  receiveErrors = 0;
  /** Datagrams taken by batch receives (the rest came one per Deno receive). */
  batchedDatagrams = 0;

  constructor(options: GvspReceiverOptions) {
    this.#conn = Deno.listenDatagram({
      transport: "udp",
      hostname: options.localAddress,
      port: options.port ?? 0,
    });
    this.#device = options.device;
    if (options.receiveBufferBytes !== undefined) {
      this.receiveBuffer = raiseUdpReceiveBuffer(this.#conn, options.receiveBufferBytes);
    }
    if (options.batchReceive === false) {
      this.#mode = { mode: "datagram", reason: "batch receive switched off" };
    } else {
      const opened = openUdpBatchReceiver(this.#conn, BATCH);
      this.#batch = opened.receiver;
      this.#mode = opened.receiver !== undefined
        ? { mode: "batch" }
        : { mode: "datagram", reason: opened.reason };
    }
    this.#reader = this.#readLoop();
    this.#timer = setInterval(() => this.#age(), options.pollMs ?? 5);
  }

  /** Local UDP port (the stream channel destination port). */
  get port(): number {
    return (this.#conn.addr as Deno.NetAddr).port;
  }

  /** How datagrams are received (batches, or one per call and why). */
  get receiveMode(): GvspReceiveMode {
    return this.#mode;
  }

  /** The assembler in use (undefined between acquisitions). */
  get assembler(): FrameAssembler | undefined {
    return this.#assembler;
  }

  /** Uses `assembler` from now on and drops queued results of the previous one. */
  setAssembler(assembler: FrameAssembler | undefined): void {
    this.#assembler = assembler;
    for (const out of this.#queue) if (out.kind === "frame") assembler?.recycle(out.buffer);
    this.#queue = [];
  }

  async #readLoop(): Promise<void> {
    // Each datagram is received where the assembler says: into the frame buffer at the place of
    // the packet it expects next (no copy), else into its scratch buffer. Between acquisitions
    // into one reused buffer of our own. One receive awaited at a time; in batch mode, what
    // queued up behind the datagram it brought is taken at once, scattered the same way.
    const scratch = new Uint8Array(65536);
    while (!this.#closed) {
      const a = this.#assembler;
      const target = a === undefined ? scratch : a.receiveTarget();
      let length: number;
      try {
        const [data] = await this.#conn.receive(target);
        length = data.length;
      } catch {
        a?.cancelTarget();
        if (this.#closed) return;
        continue;
      }
      const now = performance.now();
      const b = this.#assembler;
      if (a === b) {
        if (a === undefined) {
          this.#idle(length);
          continue;
        }
        a.received(length, now);
        this.#drain(a);
        if (this.#batch !== undefined) this.#takeQueued(this.#batch, a);
        continue;
      }
      // The assembler changed while this receive was pending: the datagram goes to the new one.
      if (a !== undefined) {
        scratch.set(target.subarray(0, length));
        a.cancelTarget();
      }
      if (b === undefined) {
        this.#idle(length);
        continue;
      }
      b.feed(scratch.subarray(0, length), now);
      this.#drain(b);
      if (this.#batch !== undefined) this.#takeQueued(this.#batch, b);
    }
  }

  /**
   * Takes the datagrams queued behind the one just received, in batches into `a`'s frame buffers
   * (where each is expected) and spill area, a few batches at most before the event loop's turn.
   */
  #takeQueued(batch: UdpBatchReceiver, a: FrameAssembler): void {
    for (let round = 0; round < BATCHES_PER_TURN; round++) {
      if (this.#closed || this.#assembler !== a) return;
      if (!this.#receiveBatch(batch, a)) return;
    }
  }

  /** One batch; true when it was full (more may be queued). */
  #receiveBatch(batch: UdpBatchReceiver, a: FrameAssembler): boolean {
    const lengths = this.#lengths;
    const plan = a.planBatch(Math.min(BATCH, a.batchCapacity));
    const spill = a.spill;
    const stride = a.spillStride;
    let n = 0;
    try {
      for (let i = 0; i < plan.count; i++) {
        const hl = plan.headerLength[i];
        const s = i * stride;
        batch.setPart(i, 0, spill, s, hl);
        batch.setPart(i, 1, plan.body[i], plan.bodyStart[i], plan.bodyLength[i]);
        batch.setPart(i, 2, spill, s + hl + plan.bodyLength[i], 1);
      }
      n = batch.receive(plan.count);
    } catch {
      // recvmmsg failed (e.g. an error queued on the socket) or a place was refused: nothing was
      // taken, the datagrams stay for the next receive.
      this.receiveErrors++;
    }
    this.batchedDatagrams += n;
    for (let i = 0; i < n; i++) lengths[i] = batch.length(i);
    a.receivedBatch(n, lengths, performance.now());
    this.#drain(a);
    return n > 0 && n === plan.count;
  }

  /** A datagram between acquisitions: a test packet being watched for, or dropped. */
  #idle(length: number): void {
    const w = this.#testWatch;
    if (w !== undefined && length === w.length) {
      this.testPackets++;
      w.arrived = true;
      this.#testWatch = undefined;
      w.wake?.();
    } else {
      this.idleDrops++;
    }
  }

  /**
   * Watches for a test packet: a datagram of exactly `length` bytes while no assembler is set.
   * `wait` resolves true when it came (also before `wait` was called), false `timeoutMs` after
   * the call of `wait`. A new watch replaces the previous one.
   */
  watchTestPacket(length: number): { wait(timeoutMs: number): Promise<boolean> } {
    const w = { length, arrived: false, wake: undefined as (() => void) | undefined };
    this.#testWatch = w;
    return {
      wait: (timeoutMs: number) => {
        if (w.arrived) return Promise.resolve(true);
        return new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => {
            w.wake = undefined;
            if (this.#testWatch === w) this.#testWatch = undefined;
            resolve(false);
          }, timeoutMs);
          w.wake = () => {
            clearTimeout(timer);
            resolve(true);
          };
        });
      },
    };
  }

  #age(): void {
    const a = this.#assembler;
    if (a === undefined || a.inFlight === 0) return;
    a.poll(performance.now());
    this.#drain(a);
  }

  #drain(a: FrameAssembler): void {
    // Called per datagram: nothing is allocated unless there is something to send or hand out.
    if (a.pendingResends > 0) this.#sendResends(a);
    let out = a.takeOutput();
    if (out === undefined) return;
    while (out !== undefined) {
      this.#queue.push(out);
      out = a.takeOutput();
    }
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }

  #sendResends(a: FrameAssembler): void {
    for (const r of a.takeResends()) {
      const id = this.#reqId;
      this.#reqId = id >= 0xffff ? 1 : id + 1;
      const extended = a.extendedIds;
      const packet = encodeCommand(
        GvcpCommand.PACKETRESEND,
        id,
        packetResendPayload(r.blockId, r.first, r.last, 0, extended),
        extended ? FLAG_EXTENDED_ID : 0,
      );
      this.#conn.send(packet, {
        transport: "udp",
        hostname: this.#device.host,
        port: this.#device.port,
      }).catch(() => {});
    }
  }

  /** Waits for the next result; rejects when `signal` aborts or the receiver closes. */
  async next(signal: AbortSignal): Promise<AssemblerOutput> {
    while (true) {
      const out = this.#queue.shift();
      if (out !== undefined) return out;
      if (this.#closed) throw new Error("GVSP receiver closed");
      signal.throwIfAborted();
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          this.#waiter = undefined;
          reject(signal.reason);
        };
        signal.addEventListener("abort", onAbort, { once: true });
        this.#waiter = () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
      });
    }
  }

  /** Closes the socket and stops the timer. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    this.#waiter?.();
    await this.#reader;
    this.#batch?.close();
  }
}
