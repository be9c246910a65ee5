/**
 * Batched UDP receive for a Deno datagram socket: many datagrams per call (`recvmmsg`), each
 * scattered into up to three places the caller chooses (e.g. a header area and the place in a
 * frame buffer where the datagram's payload belongs).
 *
 * Deno receives one datagram per `receive` call, and that call (op, promise, result array) costs
 * several microseconds, far more than the kernel's copy of a 9 KB datagram. On Linux (64-bit),
 * with FFI permission already granted (never prompts), this reaches the same socket's descriptor
 * (as core/udp_receive_buffer.ts does) and calls libc `recvmmsg(MSG_DONTWAIT)` for everything that
 * is queued, up to the batch capacity, without waiting. Waiting stays with the runtime: the
 * caller awaits the socket's own `receive` for the first datagram, then takes what queued up
 * behind it in one call (a thread polling the descriptor instead cost a thread hand-over per
 * batch, slow on a busy machine). The Deno socket stays the owner (bind, send, close); call
 * {@link UdpBatchReceiver.receive} only while the socket is open (the descriptor number could
 * otherwise belong to another file by then).
 *
 * Without FFI permission, or elsewhere than 64-bit Linux, {@link openUdpBatchReceiver} says why
 * and the caller keeps receiving one datagram per call.
 *
 * @module
 */

import { errorMessage } from "./errors.ts";
import { udpSocketDescriptor } from "./udp_receive_buffer.ts";

/** Bytes of `struct mmsghdr` (LP64: `struct msghdr` of 56, `msg_len`, padding). */
const MMSGHDR = 64;
/** Bytes of `struct iovec`. */
const IOVEC = 16;
/** Scatter parts per datagram. */
export const UDP_BATCH_PARTS = 3;
const MSG_DONTWAIT = 0x40;
/** Largest typed array V8 may keep on its (moving) heap, bytes. */
const ON_HEAP_MAX = 64;
const EINTR = 4;
const EAGAIN = 11;

const SYMBOLS = {
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>;

/** Outcome of {@link openUdpBatchReceiver}: a receiver, or why there is none. */
export type UdpBatchOpen =
  | { receiver: UdpBatchReceiver; reason?: undefined }
  | { receiver?: undefined; reason: string };

/**
 * A batch receiver for `conn` with room for `capacity` datagrams per call, or the reason why
 * batched receive is not available (no FFI permission, not 64-bit Linux, descriptor not found).
 */
export function openUdpBatchReceiver(conn: Deno.DatagramConn, capacity: number): UdpBatchOpen {
  if (Deno.build.os !== "linux") return { reason: "not Linux" };
  if (Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64") {
    return { reason: `architecture ${Deno.build.arch}` };
  }
  if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1024) {
    throw new RangeError(`batch capacity ${capacity} outside 1..1024`);
  }
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      return { reason: "no FFI permission" };
    }
    const port = (conn.addr as Deno.NetAddr).port;
    const fd = udpSocketDescriptor(port);
    if (fd === undefined) return { reason: `socket of port ${port} not found` };
    const libc = Deno.dlopen("libc.so.6", SYMBOLS);
    return { receiver: new UdpBatchReceiver(libc, fd, capacity) };
  } catch (error) {
    return { reason: errorMessage(error) };
  }
}

/** Address of the first byte of `array` (its memory never moves: off-heap backing store). */
function addressOf(array: Uint8Array): number {
  return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(array)));
}

/** `recvmmsg` over a socket descriptor with per-datagram scatter lists set by the caller. */
export class UdpBatchReceiver {
  /** Datagrams per {@link receive} at most. */
  readonly capacity: number;
  #libc: Libc;
  #fd: number;
  #msgs: Uint8Array;
  #msgWords: Uint32Array;
  #iov: Uint32Array;
  #bases = new WeakMap<Uint8Array, number>();
  #closed = false;

  /** Use {@link openUdpBatchReceiver}. */
  constructor(libc: Libc, fd: number, capacity: number) {
    this.#libc = libc;
    this.#fd = fd;
    this.capacity = capacity;
    // Large enough to live outside the JavaScript heap (its address must not move).
    this.#msgs = new Uint8Array(Math.max(4096, capacity * MMSGHDR));
    this.#msgWords = new Uint32Array(this.#msgs.buffer);
    const iov = new Uint8Array(Math.max(4096, capacity * UDP_BATCH_PARTS * IOVEC));
    this.#iov = new Uint32Array(iov.buffer);
    const iovBase = addressOf(iov);
    for (let i = 0; i < capacity; i++) {
      const w = (i * MMSGHDR) / 4;
      // msg_name NULL, msg_iov, msg_iovlen, no control data.
      this.#writeAddress(this.#msgWords, w + 4, iovBase + i * UDP_BATCH_PARTS * IOVEC);
      this.#msgWords[w + 6] = UDP_BATCH_PARTS;
    }
  }

  #writeAddress(words: Uint32Array, at: number, address: number): void {
    words[at] = address % 0x100000000;
    words[at + 1] = Math.floor(address / 0x100000000);
  }

  /**
   * Sets part `part` (0..2) of datagram `i`'s scatter list: `length` bytes at `start` of `array`.
   * The datagram fills the parts in order; what does not fit is cut off (the received length
   * then equals the parts' total). `array` must stay alive (and attached) while the setting is in
   * use, and its buffer be larger than 64 bytes (smaller ones may live on the JavaScript heap,
   * which moves them).
   */
  setPart(i: number, part: number, array: Uint8Array, start: number, length: number): void {
    if (start < 0 || length < 0 || start + length > array.length) {
      throw new RangeError(`scatter part ${start}+${length} outside ${array.length} bytes`);
    }
    let base = this.#bases.get(array);
    if (base === undefined) {
      if (array.buffer.byteLength <= ON_HEAP_MAX) {
        throw new RangeError(`scatter target of ${array.buffer.byteLength} bytes may move`);
      }
      base = addressOf(array);
      this.#bases.set(array, base);
    }
    const w = ((i * UDP_BATCH_PARTS + part) * IOVEC) / 4;
    this.#writeAddress(this.#iov, w, base + start);
    this.#iov[w + 2] = length;
    this.#iov[w + 3] = 0;
  }

  /**
   * Receives what is queued, up to `count` (default {@link capacity}) datagrams, without
   * waiting. Returns how many arrived (0 when none); {@link length} tells each one's size.
   */
  receive(count = this.capacity): number {
    if (this.#closed) throw new Error("batch receiver closed");
    const n = this.#libc.symbols.recvmmsg(
      this.#fd,
      this.#msgs,
      Math.min(count, this.capacity),
      MSG_DONTWAIT,
      null,
    );
    if (n >= 0) return n;
    const errno = this.#errno();
    if (errno === EAGAIN || errno === EINTR) return 0;
    throw new Error(`recvmmsg failed: errno ${errno}`);
  }

  /** Bytes received of datagram `i` of the last {@link receive} (as far as its parts held). */
  length(i: number): number {
    return this.#msgWords[(i * MMSGHDR + 56) / 4];
  }

  #errno(): number {
    const p = this.#libc.symbols.__errno_location();
    return p === null ? -1 : new Deno.UnsafePointerView(p).getInt32();
  }

  /** Releases libc. The socket itself stays open. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#libc.close();
  }
}
