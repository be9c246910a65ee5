/**
 * The socket side of a sans-I/O stream protocol connection (a CA circuit, a pvAccess server
 * connection): one reader task feeding received bytes in, one writer task taking output out,
 * both ending the connection on error or EOF. The protocol object never sees the socket.
 * Both tasks use {@link AdaptiveBuffer}s (a few KB while the connection is quiet), and big
 * payloads are written in chunks that each ask an optional shared {@link BulkWriteGate}.
 *
 * @module
 */

import { AdaptiveBuffer, DEFAULT_ADAPTIVE_SIZES } from "./socket_buffer.ts";
import type { BulkWriteGate } from "./write_gate.ts";
import { sleep, systemClock } from "./clock.ts";

/** Largest single socket write of a big piece (each one asks the write gate). */
export const BULK_CHUNK = 256 * 1024;

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
}

/** Options of {@link pumpStream}. */
export interface PumpOptions {
  /** Largest read buffer size (bytes, default 256 KiB); it starts small and grows with traffic. */
  readBuffer?: number;
  /** Gate shared by a server's connections that bounds big-piece bytes per event-loop turn. */
  gate?: BulkWriteGate;
  /** Called after each read (e.g. to track idleness). */
  onRead?(): void;
  /** Called with the error that ended a read or write (not after a deliberate end). */
  onError?(what: "read" | "write", error: unknown): void;
  /** Called once when the connection ended. */
  onEnd?(): void;
}

/**
 * Writes all pieces in order, copying small ones into `buffer`'s scratch (reused between calls:
 * it is only touched while no write from it is pending; it grows to what the small pieces need
 * and shrinks back) and writing big ones (≥ a quarter of the buffer's largest size) directly, in
 * chunks of at most {@link BULK_CHUNK} that each ask `gate` first. Small pieces before a big one
 * (its header) go out together with the big one's first bytes, so that a message never costs a
 * tiny write of its own.
 */
export async function writePieces(
  conn: Deno.Conn,
  pieces: Uint8Array[],
  buffer: AdaptiveBuffer,
  gate?: BulkWriteGate,
): Promise<void> {
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
      for (let pos = head; pos < piece.length; pos += BULK_CHUNK) {
        const chunk = piece.subarray(pos, Math.min(pos + BULK_CHUNK, piece.length));
        const wait = gate?.acquire(chunk.length);
        if (wait) await wait;
        await writeFully(conn, chunk);
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
 * Runs `make(hooks)`'s protocol over `conn` until either side ends; resolves when both tasks
 * finished and the socket is closed.
 */
export async function pumpStream<P extends StreamProtocol>(
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
  let wakeWriter: (() => void) | undefined;
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    protocol.close();
    try {
      conn.close();
    } catch {
      // Already closed.
    }
    wakeWriter?.();
    options.onEnd?.();
  };
  const protocol: P = make({
    wake: () => {
      const w = wakeWriter;
      wakeWriter = undefined;
      w?.();
    },
    end: () => end(),
  });
  const writer = (async () => {
    const scratch = new AdaptiveBuffer();
    try {
      while (!ended) {
        if (!protocol.hasOutput()) {
          await new Promise<void>((resolve) => (wakeWriter = resolve));
          continue;
        }
        await writePieces(conn, protocol.takeOutput(), scratch, options.gate);
        protocol.releaseOutput();
      }
    } catch (error) {
      if (!ended) options.onError?.("write", error);
    } finally {
      end();
    }
  })();
  const reader = (async () => {
    const buffer = new AdaptiveBuffer(
      options.readBuffer === undefined ? {} : {
        max: options.readBuffer,
        min: Math.min(options.readBuffer, DEFAULT_ADAPTIVE_SIZES.min),
      },
    );
    try {
      while (!ended) {
        await protocol.waitForRoom();
        if (ended) break;
        const bytes = buffer.get();
        const n = await conn.read(bytes);
        if (n === null) break;
        options.onRead?.();
        protocol.receive(bytes.subarray(0, n));
        buffer.filled(n);
      }
    } catch (error) {
      if (!ended) options.onError?.("read", error);
    } finally {
      end();
    }
  })();
  await Promise.all([reader, writer]);
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
