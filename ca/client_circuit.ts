/**
 * One client-side virtual circuit (TCP connection to a CA server): handshake, ordered writes,
 * message framing and liveness (ECHO after a silent period). Messages are handed to the owner;
 * this module knows nothing about channels.
 *
 * @module
 */

import {
  type CaMessage,
  CaProtocolError,
  CMD,
  echoMessage,
  MessageReader,
  nameMessage,
  versionMessage,
} from "./messages.ts";

/** Options of {@link openCircuit}. */
export interface CircuitOptions {
  hostname: string;
  port: number;
  /** User name sent with CLIENT_NAME. */
  user: string;
  /** Host name sent with HOST_NAME. */
  host: string;
  /** Largest payload accepted. */
  maxPayload: number;
  /** Silence (ms) after which an ECHO is sent; the circuit dies 5 s later without traffic. */
  echoAfterMs?: number;
  /** Called for every received message. */
  onMessage(message: CaMessage): void;
  /** Called once when the circuit is gone (peer closed, error, or {@link ClientCircuit.close}). */
  onClose(reason: string): void;
}

/** An open circuit. */
export interface ClientCircuit {
  /** `host:port` of the server. */
  readonly key: string;
  /** Queues bytes for sending (in order). */
  send(bytes: Uint8Array): void;
  /** Closes the connection (onClose fires). */
  close(): void;
  /** Whether the circuit has closed. */
  readonly closed: boolean;
  /** Settles when the reader and writer have finished after closing. */
  readonly done: Promise<void>;
}

/** Connects to a server and performs the client side of the handshake. */
export async function openCircuit(options: CircuitOptions): Promise<ClientCircuit> {
  const conn = await Deno.connect({ hostname: options.hostname, port: options.port });
  conn.setNoDelay(true);
  const key = `${options.hostname}:${options.port}`;
  let closed = false;
  let writing = Promise.resolve();
  let lastHeard = Date.now();
  let echoSent = 0;
  const echoAfter = options.echoAfterMs ?? 30_000;

  const close = (reason: string) => {
    if (closed) return;
    closed = true;
    clearInterval(watchdog);
    try {
      conn.close();
    } catch {
      // already closed
    }
    options.onClose(reason);
  };

  const send = (bytes: Uint8Array) => {
    if (closed) return;
    writing = writing.then(async () => {
      if (closed) return;
      let off = 0;
      while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    }).catch((err) => close(`write failed: ${(err as Error).message}`));
  };

  const watchdog = setInterval(() => {
    const now = Date.now();
    if (echoSent > 0 && now - echoSent > 5000) close("server did not answer ECHO");
    else if (echoSent === 0 && now - lastHeard > echoAfter) {
      echoSent = now;
      send(echoMessage());
    }
  }, Math.min(1000, echoAfter));

  send(versionMessage(0, 0));
  send(nameMessage(CMD.CLIENT_NAME, options.user));
  send(nameMessage(CMD.HOST_NAME, options.host));

  const reading = (async () => {
    const reader = new MessageReader({ maxPayload: options.maxPayload });
    const buf = new Uint8Array(256 * 1024);
    try {
      while (!closed) {
        const n = await conn.read(buf);
        if (n === null) break;
        lastHeard = Date.now();
        echoSent = 0;
        for (const msg of reader.push(buf.subarray(0, n))) {
          if (msg.header.cmd === CMD.ECHO) continue; // our liveness probe answered
          options.onMessage(msg);
        }
      }
      close("server closed the connection");
    } catch (err) {
      close(
        err instanceof CaProtocolError ? `protocol error: ${err.message}` : (err as Error).message,
      );
    }
  })();

  return {
    key,
    send,
    close: () => close("closed by client"),
    done: reading.then(() => writing),
    get closed() {
      return closed;
    },
  };
}
