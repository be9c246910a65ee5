/**
 * A minimal raw CA TCP client for server tests: send message bytes, wait for messages matching a
 * predicate (with a deadline), built on `ca/messages.ts`.
 *
 * @module
 */

import {
  type CaMessage,
  CMD,
  createChanRequest,
  MessageReader,
  nameMessage,
  versionMessage,
} from "../../ca/messages.ts";

/** A connected raw client. */
export interface RawClient {
  /** The TCP connection. */
  conn: Deno.TcpConn;
  /** Every message received so far (consumed ones are removed by {@link RawClient.waitFor}). */
  inbox: CaMessage[];
  /** Sends bytes. */
  send(...messages: Uint8Array[]): Promise<void>;
  /** Waits for the first message matching `match` (removes and returns it). */
  waitFor(match: (m: CaMessage) => boolean, timeoutMs?: number): Promise<CaMessage>;
  /** Creates a channel (handshake done at connect); returns its SID. */
  createChannel(name: string, cid: number): Promise<number>;
  /** Closes the connection. */
  close(): void;
  /** Resolves when the read loop has ended. */
  done: Promise<void>;
}

/** Connects to `127.0.0.1:port`, sends VERSION/CLIENT_NAME/HOST_NAME. */
export async function connectRaw(port: number, readChunk = 1 << 16): Promise<RawClient> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const reader = new MessageReader({ maxPayload: 1 << 30 });
  const inbox: CaMessage[] = [];
  let notify: (() => void) | undefined;
  let ended = false;
  const pump = (async () => {
    const buffer = new Uint8Array(readChunk);
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        inbox.push(...reader.push(buffer.subarray(0, n)));
        notify?.();
      }
    } catch {
      // Closed.
    } finally {
      ended = true;
      notify?.();
    }
  })();
  const client: RawClient = {
    conn,
    inbox,
    async send(...messages) {
      for (const m of messages) {
        let pos = 0;
        while (pos < m.length) pos += await conn.write(m.subarray(pos));
      }
    },
    async waitFor(match, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (true) {
        const i = inbox.findIndex(match);
        if (i >= 0) return inbox.splice(i, 1)[0];
        if (ended) throw new Error("connection closed while waiting");
        const left = deadline - Date.now();
        if (left <= 0) throw new Error("timed out waiting for a message");
        let timer: ReturnType<typeof setTimeout> | undefined;
        await new Promise<void>((resolve) => {
          notify = resolve;
          timer = setTimeout(resolve, left);
        });
        clearTimeout(timer);
        notify = undefined;
      }
    },
    async createChannel(name, cid) {
      await client.send(createChanRequest(name, cid));
      const reply = await client.waitFor((m) =>
        (m.header.cmd === CMD.CREATE_CHAN || m.header.cmd === CMD.CREATE_CH_FAIL) &&
        m.header.p1 === cid
      );
      if (reply.header.cmd !== CMD.CREATE_CHAN) throw new Error(`no channel ${name}`);
      return reply.header.p2;
    },
    close() {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    },
    done: pump,
  };
  await client.send(
    versionMessage(0, 0),
    nameMessage(CMD.CLIENT_NAME, "tester"),
    nameMessage(CMD.HOST_NAME, "localhost"),
  );
  return client;
}

/** Closes a raw client and waits until its read loop ended. */
export async function closeRaw(client: RawClient): Promise<void> {
  client.close();
  await client.done;
}
