/**
 * Thin Deno socket adapters over the ZMTP core: a reconnecting PULL client ({@link connectPull})
 * for the DCU's stream port and a PUSH server ({@link listenPush}) for the simulator.
 *
 * @module
 */

import { setTimeout as sleep } from "node:timers/promises";
import { getLog, type Logger } from "../../core/log.ts";
import { encodeMessage, type FrameBody, type SocketType, ZmtpError, ZmtpSession } from "./zmtp.ts";
import { errorMessage } from "../../core/errors.ts";

const READ_BUFFER_BYTES = 65536;
/** Queued messages up to this size are copied into one buffer and written with one write. */
const WRITE_BATCH_BYTES = 2 * 1024 * 1024;

/** Writes all of `data`, looping over partial writes. */
async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

function closeQuietly(c: { close(): void }): void {
  try {
    c.close();
  } catch {
    // already closed
  }
}

/** Options of {@link connectPull}. */
export interface PullOptions {
  /** Host name or address of the PUSH peer (the DCU). */
  host: string;
  /** TCP port (31001 on a DCU). */
  port: number;
  /** Ends the iteration (closes the connection) when aborted. */
  signal?: AbortSignal;
  /**
   * Reconnect policy: wait `initialMs` (+ jitter) after a failure or disconnect, doubling up to
   * `maxMs`; reset after a successful handshake. Default `{initialMs: 100, maxMs: 2000}`. `false`
   * ends the iteration at the first disconnect or failed connect (errors are thrown then).
   */
  reconnect?: { initialMs?: number; maxMs?: number } | false;
  /** Logger (default `diss.eiger.zmtp`). */
  log?: Logger;
  /** Largest accepted message in bytes (default 256 MiB); larger ones drop the connection. */
  maxMessageBytes?: number;
  /** Where frame bodies are received (see `DecoderLimits.allocate`); default new arrays. */
  allocate?: (size: number) => Uint8Array;
  /** Handshake must complete within this time or the connection is dropped (default 30 000). */
  handshakeTimeoutMs?: number;
  /** Called when a connection completed the handshake (connected and ready to receive). */
  onConnect?: () => void;
  /** Called when a ready connection is lost (peer closed, protocol error); not on abort. */
  onDisconnect?: (reason: string) => void;
}

/**
 * Connects a ZMTP PULL socket to `host:port` and yields each received multipart message as an
 * array of frames. Reconnects with back-off after failures and disconnects (reported through
 * `onDisconnect`) until `signal` aborts or the consumer stops iterating. Receiving is pull-driven:
 * while the consumer is busy nothing is read, so TCP flow control throttles the sender.
 */
export async function* connectPull(opts: PullOptions): AsyncGenerator<Uint8Array[], void, void> {
  const log = opts.log ?? getLog("eiger.zmtp");
  const signal = opts.signal ?? new AbortController().signal;
  const initialMs = opts.reconnect === false ? 0 : opts.reconnect?.initialMs ?? 100;
  const maxMs = opts.reconnect === false ? 0 : opts.reconnect?.maxMs ?? 2000;
  let delay = initialMs;
  const buf = new Uint8Array(READ_BUFFER_BYTES);
  while (!signal.aborted) {
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname: opts.host, port: opts.port, signal });
    } catch (e) {
      if (signal.aborted) return;
      if (opts.reconnect === false) throw e;
      log.debug("ZMTP connect failed", {
        host: opts.host,
        port: opts.port,
        error: errorMessage(e),
      });
      if (!await pause(delay, signal)) return;
      delay = Math.min(delay * 2, maxMs);
      continue;
    }
    conn.setNoDelay(true);
    const onAbort = () => closeQuietly(conn);
    signal.addEventListener("abort", onAbort);
    const session = new ZmtpSession({
      socketType: "PULL",
      maxMessageBytes: opts.maxMessageBytes,
      allocate: opts.allocate,
    });
    let timedOut = false;
    const handshakeTimer = setTimeout(() => {
      timedOut = true;
      log.warning("ZMTP handshake timeout", { host: opts.host, port: opts.port });
      closeQuietly(conn);
    }, opts.handshakeTimeoutMs ?? 30000);
    let reason = "closed by peer";
    let failure: unknown;
    try {
      await writeAll(conn, session.start());
      for (;;) {
        const direct = session.directTarget();
        const target = direct ?? buf;
        const n = await conn.read(target);
        if (n === null) break;
        const out = direct ? session.receiveDirect(n) : session.receive(buf.subarray(0, n));
        for (const b of out.send) await writeAll(conn, b);
        if (out.readyNow) {
          clearTimeout(handshakeTimer);
          delay = initialMs;
          log.info("ZMTP connected", { host: opts.host, port: opts.port });
          opts.onConnect?.();
        }
        for (const m of out.messages) yield m;
      }
    } catch (e) {
      if (signal.aborted) return;
      failure = timedOut ? new ZmtpError("handshake timeout") : e;
      reason = errorMessage(failure);
    } finally {
      clearTimeout(handshakeTimer);
      signal.removeEventListener("abort", onAbort);
      closeQuietly(conn);
    }
    if (signal.aborted) return;
    if (session.ready) {
      log.warning("ZMTP disconnected", { host: opts.host, port: opts.port, reason });
      opts.onDisconnect?.(reason);
    } else {
      log.debug("ZMTP handshake failed", { host: opts.host, port: opts.port, reason });
    }
    if (opts.reconnect === false) {
      if (failure !== undefined) throw failure;
      return;
    }
    if (!await pause(delay + Math.floor(Math.random() * delay), signal)) return;
    delay = Math.min(Math.max(delay * 2, initialMs), maxMs);
  }
}

/** Sleeps `ms`; false when aborted. */
async function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  try {
    await sleep(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}

/** Options of {@link listenPush}. */
export interface PushOptions {
  /** Address to bind (default `0.0.0.0`; tests use `127.0.0.1`). */
  hostname?: string;
  /** Port to bind; 0 = ephemeral (see {@link PushServer.port}). */
  port: number;
  /** Closes the server when aborted. */
  signal?: AbortSignal;
  /** Messages queued per peer before that peer counts as full (default 64). */
  highWaterMark?: number;
  /** Logger (default `diss.eiger.zmtp`). */
  log?: Logger;
  /** Peer socket types accepted in READY (default `["PULL"]`). */
  accept?: SocketType[];
  /** A connection that has not completed the handshake by then is dropped (default 30 000). */
  handshakeTimeoutMs?: number;
}

/** A bound ZMTP PUSH socket. */
export interface PushServer {
  /** The bound TCP port. */
  readonly port: number;
  /**
   * Queues a multipart message for the next ready PULL peer (round-robin, skipping full peers).
   * Waits while no peer is connected or all queues are full (back-pressure); rejects when the
   * server closes or `signal` aborts. Messages queued for a peer that disconnects are lost.
   */
  send(frames: FrameBody[], signal?: AbortSignal): Promise<void>;
  /** Like {@link PushServer.send} but never waits: false when no peer can take the message now. */
  trySend(frames: FrameBody[]): boolean;
  /** Whether at least one PULL peer completed the handshake. */
  connected(): boolean;
  /** Number of ready peers. */
  peerCount(): number;
  /** Resolves when at least one peer is ready (rejects on close/abort). */
  waitForPeer(signal?: AbortSignal): Promise<void>;
  /** Waits until every queued message has been written (rejects on close/abort). */
  flush(signal?: AbortSignal): Promise<void>;
  /** Closes the listener and all connections; resolves when all I/O has stopped. */
  close(): Promise<void>;
}

interface Peer {
  conn: Deno.Conn;
  session: ZmtpSession;
  queue: FrameBody[][];
  alive: boolean;
  wake: (() => void) | undefined;
  /** Serialises writes (messages and PONGs never interleave). */
  chain: Promise<void>;
}

/** Binds a ZMTP PUSH server (NULL security) for PULL clients such as pyzmq or diss-ioc. */
export function listenPush(opts: PushOptions): PushServer {
  const log = opts.log ?? getLog("eiger.zmtp");
  const hwm = opts.highWaterMark ?? 64;
  const listener = Deno.listen({ hostname: opts.hostname ?? "0.0.0.0", port: opts.port });
  const port = (listener.addr as Deno.NetAddr).port;
  const peers: Peer[] = []; // ready peers, round-robin order
  const all = new Set<Peer>(); // every open connection, also those still in the handshake
  const tasks = new Set<Promise<void>>();
  let rr = 0;
  let closed = false;
  let waiters: (() => void)[] = [];

  const notify = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  const changed = (signal?: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      if (closed) return reject(new ZmtpError("PUSH server closed"));
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => reject(signal!.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      waiters.push(() => {
        signal?.removeEventListener("abort", onAbort);
        if (closed) reject(new ZmtpError("PUSH server closed"));
        else resolve();
      });
    });
  const track = (p: Promise<void>) => {
    tasks.add(p);
    p.finally(() => tasks.delete(p));
  };

  const write = (peer: Peer, parts: Uint8Array[]): Promise<void> => {
    const p = peer.chain.then(async () => {
      if (!peer.alive) return;
      for (const b of parts) await writeAll(peer.conn, b);
    });
    peer.chain = p.catch(() => drop(peer, "write failed"));
    return peer.chain;
  };

  const drop = (peer: Peer, reason: string) => {
    if (!peer.alive) return;
    peer.alive = false;
    closeQuietly(peer.conn);
    all.delete(peer);
    const i = peers.indexOf(peer);
    if (i >= 0) peers.splice(i, 1);
    if (peer.session.ready) {
      log.info("ZMTP peer gone", { reason, lost: peer.queue.length });
    }
    peer.queue = [];
    peer.wake?.();
    notify();
  };

  /**
   * Writes a peer's queued messages: as many as fit in {@link WRITE_BATCH_BYTES} are copied into
   * one reused buffer and written at once (one socket operation for several frames); a larger
   * message is written from where its pieces lie.
   */
  const writer = async (peer: Peer) => {
    let batch: Uint8Array | undefined;
    while (peer.alive) {
      if (peer.queue.length === 0) {
        await new Promise<void>((r) => (peer.wake = r));
        peer.wake = undefined;
        continue;
      }
      const parts: Uint8Array[] = [];
      let bytes = 0;
      let count = 0;
      for (const msg of peer.queue) {
        const encoded = encodeMessage(msg);
        let length = 0;
        for (const part of encoded) length += part.length;
        if (count > 0 && bytes + length > WRITE_BATCH_BYTES) break;
        parts.push(...encoded);
        bytes += length;
        count++;
      }
      if (bytes <= WRITE_BATCH_BYTES) {
        batch ??= new Uint8Array(WRITE_BATCH_BYTES);
        let o = 0;
        for (const part of parts) {
          batch.set(part, o);
          o += part.length;
        }
        await write(peer, [batch.subarray(0, o)]);
      } else {
        await write(peer, parts);
      }
      peer.queue.splice(0, count);
      notify();
    }
  };

  const serve = async (conn: Deno.Conn) => {
    const session = new ZmtpSession({ socketType: "PUSH", accept: opts.accept ?? ["PULL"] });
    const peer: Peer = {
      conn,
      session,
      queue: [],
      alive: true,
      wake: undefined,
      chain: Promise.resolve(),
    };
    all.add(peer);
    const handshakeTimer = setTimeout(
      () => drop(peer, "handshake timeout"),
      opts.handshakeTimeoutMs ?? 30000,
    );
    const buf = new Uint8Array(4096);
    try {
      await write(peer, [session.start()]);
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        const out = session.receive(buf.subarray(0, n));
        if (out.send.length > 0) await write(peer, out.send);
        if (out.readyNow && peer.alive) {
          clearTimeout(handshakeTimer);
          peers.push(peer);
          log.info("ZMTP peer ready", { peers: peers.length });
          track(writer(peer));
          notify();
        }
        // PULL peers never send messages; ignore any that arrive.
      }
      drop(peer, "closed by peer");
    } catch (e) {
      drop(peer, errorMessage(e));
    } finally {
      clearTimeout(handshakeTimer);
    }
  };

  const acceptLoop = async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return; // listener closed
      }
      if (closed) {
        closeQuietly(conn);
        return;
      }
      (conn as Deno.TcpConn).setNoDelay(true);
      track(serve(conn));
    }
  };
  track(acceptLoop());

  const pick = (): Peer | undefined => {
    for (let i = 0; i < peers.length; i++) {
      const p = peers[(rr + i) % peers.length];
      if (p.queue.length < hwm) {
        rr = (rr + i + 1) % peers.length;
        return p;
      }
    }
    return undefined;
  };

  const trySend = (frames: FrameBody[]): boolean => {
    if (closed) throw new ZmtpError("PUSH server closed");
    if (frames.length === 0) throw new ZmtpError("a message needs at least one frame");
    const p = pick();
    if (!p) return false;
    p.queue.push(frames);
    p.wake?.();
    return true;
  };

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    if (closing) return closing;
    closed = true;
    opts.signal?.removeEventListener("abort", onAbort);
    closeQuietly(listener);
    for (const p of [...all]) drop(p, "server closed");
    notify();
    closing = (async () => {
      while (tasks.size > 0) await Promise.allSettled([...tasks]);
    })();
    return closing;
  };
  const onAbort = () => void close();
  opts.signal?.addEventListener("abort", onAbort, { once: true });

  return {
    port,
    async send(frames, signal) {
      while (!trySend(frames)) await changed(signal);
    },
    trySend,
    connected: () => peers.length > 0,
    peerCount: () => peers.length,
    async waitForPeer(signal) {
      while (peers.length === 0) await changed(signal);
    },
    async flush(signal) {
      while (peers.some((p) => p.queue.length > 0)) await changed(signal);
    },
    close,
  };
}
