/**
 * The socket side of a sans-I/O stream protocol connection (a CA circuit, a pvAccess server
 * connection): one reader task feeding received bytes in, and a writer task, started when output
 * is ready, taking it out; either ends the connection on error or EOF. The protocol object never
 * sees the socket. An idle connection holds one small pending read and nothing else; the
 * {@link AdaptiveBuffer}s for bursts are allocated while data flows, and big payloads are written
 * in chunks that each ask an optional shared {@link BulkWriteGate}.
 *
 * @module
 */

import {
  AdaptiveBuffer,
  type AdaptiveBufferSizes,
  DEFAULT_ADAPTIVE_SIZES,
} from "./socket_buffer.ts";
import type { BulkWriteGate } from "./write_gate.ts";
import { sleep, systemClock } from "./clock.ts";

/**
 * Largest single socket write of a big piece (each one asks the write gate): one image of a
 * 1028×512 uint32 detector in one write. Fewer, larger writes cost the kernel less per byte on
 * loopback than 256 KiB ones (measured with `scripts/bench/pva_ndarray.ts`: server CPU per
 * update −20 %, PVA updates/s +25–50 %); the gate still bounds the bytes per event-loop turn.
 */
export const BULK_CHUNK = 2 * 1024 * 1024;

/** What the pump drives. */
export interface StreamProtocol {
  /** Feeds received bytes. */
  receive(bytes: Uint8Array): void;
  /** Whether output is ready now. */
  hasOutput(): boolean;
  /** Takes the ready output (pieces written in order). */
  takeOutput(): Uint8Array[];
  /** The pieces of the last {@link takeOutput} were written. */
  releaseOutput(): void;
  /** Resolves when more input may be read (back-pressure). */
  waitForRoom(): Promise<void>;
  /** Releases everything; called once when the connection ends. */
  close(): void;
}

/** Hooks a protocol object uses to reach its pump. */
export interface PumpHooks {
  /** Output became available: wakes the writer. */
  wake(): void;
  /** Ends the connection (protocol error, server shutdown). */
  end(): void;
  /**
   * Bytes of socket buffers the connection holds now: {@link IDLE_READ_BYTES} while it is idle,
   * more only while data flows.
   */
  bufferBytes(): number;
}

/** Options of {@link pumpStream}. */
export interface PumpOptions {
  /**
   * Largest read buffer size (bytes, default 256 KiB); it is used for bursts (after a read
   * filled the {@link IDLE_READ_BYTES} buffer) and grows with traffic.
   */
  readBuffer?: number;
  /** Gate shared by a server's connections that bounds big-piece bytes per event-loop turn. */
  gate?: BulkWriteGate;
  /** Called after each read (e.g. to track idleness). */
  onRead?(): void;
  /** Called with the error that ended a read or write (not after a deliberate end). */
  onError?(what: "read" | "write", error: unknown): void;
  /**
   * Called once with the connection's protocol object when the connection ended (the writer may
   * still be finishing). Taking the protocol as argument lets one options object serve every
   * connection of a server.
   */
  onEnd?(protocol: StreamProtocol): void;
  /** Called once when both tasks finished and the socket is closed (as the returned promise). */
  onDone?(): void;
}

/**
 * Writes all pieces in order (a single small piece as it is), copying small ones into `buffer`'s
 * scratch (reused between calls: it is only touched while no write from it is pending; it grows
 * to what the small pieces need and shrinks back) and writing big ones (≥ a quarter of the
 * buffer's largest size) directly, in chunks of at most {@link BULK_CHUNK} (a remainder below a
 * quarter of that goes with the chunk before it, not in a write and a gate turn of its own) that
 * each ask `gate` first. Small pieces before a big one (its header) go out together with the big
 * one's first bytes, so that a message never costs a tiny write of its own: an image message is
 * three writes (header with the first pixels, the pixels, the trailer).
 */
export async function writePieces(
  conn: Deno.Conn,
  pieces: Uint8Array[],
  buffer: AdaptiveBuffer,
  gate?: BulkWriteGate,
): Promise<void> {
  if (pieces.length === 1 && pieces[0].length < buffer.maxSize / 4) {
    // Nothing to coalesce: written as it is, without touching the scratch.
    await writeFully(conn, pieces[0]);
    return;
  }
  const big = buffer.maxSize / 4;
  let smallBytes = 0;
  for (const piece of pieces) if (piece.length < big) smallBytes += piece.length;
  const scratch = buffer.reserve(smallBytes);
  buffer.used(smallBytes);
  let fill = 0;
  for (const piece of pieces) {
    if (piece.length >= big) {
      let head = 0;
      if (fill > 0) {
        head = Math.min(scratch.length - fill, piece.length);
        scratch.set(piece.subarray(0, head), fill);
        await writeFully(conn, scratch.subarray(0, fill + head));
      }
      fill = 0;
      for (let pos = head; pos < piece.length;) {
        let end = Math.min(pos + BULK_CHUNK, piece.length);
        if (piece.length - end < BULK_CHUNK / 4) end = piece.length;
        const wait = gate?.acquire(end - pos);
        if (wait) await wait;
        await writeFully(conn, piece.subarray(pos, end));
        pos = end;
      }
      continue;
    }
    if (fill + piece.length > scratch.length) {
      await writeFully(conn, scratch.subarray(0, fill));
      fill = 0;
    }
    scratch.set(piece, fill);
    fill += piece.length;
  }
  if (fill > 0) await writeFully(conn, scratch.subarray(0, fill));
}

async function writeFully(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let pos = 0;
  while (pos < bytes.length) pos += await conn.write(bytes.subarray(pos));
}

/**
 * Bytes of the buffer a connection's pending read waits with. A read that fills it is followed
 * at once by reads into an {@link AdaptiveBuffer} (more data was probably waiting), whose storage
 * is given up again when the data stopped; an idle connection holds only these bytes.
 */
export const IDLE_READ_BYTES = 256;

/** Sizes of the adaptive read buffer for a `readBuffer` option (default sizes when undefined). */
function readBufferSizes(max: number | undefined): Partial<AdaptiveBufferSizes> | undefined {
  return max === undefined ? undefined : { max, min: Math.min(max, DEFAULT_ADAPTIVE_SIZES.min) };
}

/** One connection's pump: the reader task, and a writer task that runs while output is pending. */
class Pump<P extends StreamProtocol> {
  #conn: Deno.TcpConn;
  #options: PumpOptions;
  #protocol: P | undefined;
  #ended = false;
  /** The running writer task (none while there is nothing to write). */
  #flushing: Promise<void> | undefined;
  /** Write scratch of the running writer task (none while idle). */
  #scratch: AdaptiveBuffer | undefined;
  /** Read buffer for bursts, created by the first burst; its storage is released after each. */
  #burst: AdaptiveBuffer | undefined;

  constructor(conn: Deno.TcpConn, options: PumpOptions) {
    this.#conn = conn;
    this.#options = options;
  }

  start(protocol: P): void {
    this.#protocol = protocol;
    if (this.#ended) {
      // Ended while it was being made.
      protocol.close();
      this.#options.onEnd?.(protocol);
    } else this.wake();
  }

  /** Output became available: starts the writer unless it runs. */
  wake(): void {
    const protocol = this.#protocol;
    if (this.#flushing !== undefined || this.#ended || !protocol?.hasOutput()) return;
    this.#flushing = this.#flush(protocol);
  }

  async #flush(protocol: P): Promise<void> {
    const scratch = this.#scratch = new AdaptiveBuffer();
    try {
      // Start after the code that woke us finished: what it queues goes out in one write.
      await Promise.resolve();
      while (!this.#ended && protocol.hasOutput()) {
        await writePieces(this.#conn, protocol.takeOutput(), scratch, this.#options.gate);
        protocol.releaseOutput();
      }
    } catch (error) {
      if (!this.#ended) this.#options.onError?.("write", error);
      this.end();
    } finally {
      this.#scratch = undefined;
      this.#flushing = undefined;
    }
  }

  bufferBytes(): number {
    return IDLE_READ_BYTES + (this.#burst?.heldBytes ?? 0) + (this.#scratch?.heldBytes ?? 0);
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#protocol?.close();
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
    if (this.#protocol !== undefined) this.#options.onEnd?.(this.#protocol);
  }

  /** The reader task; ends the connection at EOF or on error, then waits for the writer. */
  async run(protocol: P): Promise<void> {
    const conn = this.#conn;
    const options = this.#options;
    const idle = new Uint8Array(IDLE_READ_BYTES);
    try {
      reading: while (!this.#ended) {
        await protocol.waitForRoom();
        if (this.#ended) break;
        const n = await conn.read(idle);
        if (n === null) break;
        options.onRead?.();
        protocol.receive(idle.subarray(0, n));
        if (n < idle.length) continue;
        // The small buffer was filled: read what is waiting into the adaptive buffer, until a
        // read no longer fills it.
        const buffer = this.#burst ??= new AdaptiveBuffer(readBufferSizes(options.readBuffer));
        while (!this.#ended) {
          await protocol.waitForRoom();
          if (this.#ended) break;
          const bytes = buffer.get();
          const m = await conn.read(bytes);
          if (m === null) break reading;
          options.onRead?.();
          protocol.receive(bytes.subarray(0, m));
          buffer.filled(m);
          if (m < bytes.length) break;
        }
        buffer.release();
      }
    } catch (error) {
      if (!this.#ended) options.onError?.("read", error);
    } finally {
      this.#burst?.release();
      this.end();
    }
    while (this.#flushing !== undefined) await this.#flushing;
    options.onDone?.();
  }
}

/**
 * Runs `make(hooks)`'s protocol over `conn` until either side ends; resolves when both tasks
 * finished and the socket is closed. While the connection is idle it holds one pending read into
 * {@link IDLE_READ_BYTES} bytes and no writer task or write buffer.
 */
export function pumpStream<P extends StreamProtocol>(
  conn: Deno.TcpConn,
  make: (hooks: PumpHooks) => P,
  options: PumpOptions = {},
): Promise<void> {
  try {
    conn.setNoDelay(true);
    conn.setKeepAlive(true);
  } catch {
    // Not fatal.
  }
  const pump = new Pump<P>(conn, options);
  const protocol = make({
    wake: () => pump.wake(),
    end: () => pump.end(),
    bufferBytes: () => pump.bufferBytes(),
  });
  pump.start(protocol);
  return pump.run(protocol);
}

/**
 * Accepts TCP connections on one listener until `closing()` is true and hands each to `serve`
 * (not awaited: connections run concurrently). A failed accept is reported through
 * `onAcceptError` and retried after 100 ms; a failure while closing ends the loop.
 */
export async function acceptConnections(
  listener: Deno.Listener<Deno.TcpConn>,
  serve: (conn: Deno.TcpConn) => void,
  closing: () => boolean,
  onAcceptError: (error: unknown) => void,
): Promise<void> {
  while (!closing()) {
    let conn: Deno.TcpConn;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (closing()) break;
      onAcceptError(error);
      await sleep(systemClock, 100);
      continue;
    }
    serve(conn);
  }
}

/** Result of {@link listenOnHosts}. */
export interface HostListeners {
  /** One listener per host, all on {@link HostListeners.port}. */
  listeners: Deno.TcpListener[];
  /** The port they listen on (the requested one, or an OS-assigned one when it was taken). */
  port: number;
}

/**
 * Opens one TCP listener per host on `port` (0: the OS picks one, then every host uses it). When
 * the port is taken, the listeners opened so far are closed, `onPortTaken` hears of it, and all
 * hosts listen on an OS-assigned port instead; any other error closes them and is thrown.
 */
export function listenOnHosts(
  hosts: readonly string[],
  port: number,
  onPortTaken: (port: number) => void,
): HostListeners {
  const listeners: Deno.TcpListener[] = [];
  const listenAll = (wanted: number): number => {
    let p = wanted;
    for (const hostname of hosts) {
      const listener = Deno.listen({ transport: "tcp", hostname, port: p });
      p = (listener.addr as Deno.NetAddr).port;
      listeners.push(listener);
    }
    return p;
  };
  try {
    return { listeners, port: listenAll(port) };
  } catch (error) {
    for (const l of listeners.splice(0)) l.close();
    if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    onPortTaken(port);
    return { listeners, port: listenAll(0) };
  }
}
