import assert from "node:assert/strict";
import {
  BULK_CHUNK,
  IDLE_READ_BYTES,
  listenOnHosts,
  type PumpHooks,
  pumpStream,
  type StreamProtocol,
} from "../core/stream_pump.ts";
import { BulkWriteGate } from "../core/write_gate.ts";
import { concat } from "./support/bytes.ts";

const filled = (length: number, seed: number) =>
  Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);

async function readExactly(conn: Deno.Conn, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let pos = 0;
  while (pos < length) {
    const n = await conn.read(out.subarray(pos));
    if (n === null) throw new Error(`EOF after ${pos} of ${length} bytes`);
    pos += n;
  }
  return out;
}

/** A protocol that sends `pieces` once and echoes nothing. */
function oneShot(pieces: Uint8Array[], received: Uint8Array[]): StreamProtocol {
  let pending = true;
  return {
    receive: (bytes) => void received.push(bytes.slice()),
    hasOutput: () => pending,
    takeOutput: () => {
      pending = false;
      return pieces;
    },
    releaseOutput: () => {},
    waitForRoom: () => Promise.resolve(),
    close: () => {},
  };
}

/** Loopback pair: the server side (for the pump) and the client side. */
async function loopbackPair(): Promise<{ server: Deno.TcpConn; client: Deno.TcpConn }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({
    hostname: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
  });
  const server = await listener.accept();
  listener.close();
  return { server, client };
}

Deno.test("stream pump: a big payload is written in gated chunks, one budget per event-loop turn", async () => {
  const { server, client } = await loopbackPair();
  // Count the bytes the pump has written when the gate asks for a later turn.
  let written = 0;
  const counting = new Proxy(server, {
    get(target, key) {
      if (key === "write") {
        return async (bytes: Uint8Array) => {
          const n = await target.write(bytes);
          written += n;
          return n;
        };
      }
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const writtenAtTurn: number[] = [];
  const gate = new BulkWriteGate(BULK_CHUNK, (turn) => {
    writtenAtTurn.push(written);
    setTimeout(turn, 0);
  });
  const header = filled(24, 1);
  const payload = filled(4 * BULK_CHUNK, 2);
  const received: Uint8Array[] = [];
  const pump = pumpStream(counting, () => oneShot([header, payload], received), { gate });
  const bytes = await readExactly(client, header.length + payload.length);
  assert.deepEqual(bytes.subarray(0, 24), header);
  assert.deepEqual(bytes.subarray(24), payload, "every byte, in order");
  // 1 KiB scratch (header + payload head), then one chunk per turn: the first turn ends after
  // the first chunk, and each further chunk but the first asks for a turn of its own.
  assert.equal(writtenAtTurn[0], 1024 + BULK_CHUNK, "first turn: scratch plus one chunk");
  assert.equal(writtenAtTurn.length, 3, "chunks 2, 3 and 4 each waited for a later turn");
  assert.equal(gate.deferrals, 3);
  // The reader side still works (adaptive read buffer): bytes larger than its idle size arrive.
  const request = filled(5000, 3);
  await client.write(request);
  client.close();
  await pump;
  const total = received.reduce((sum, b) => sum + b.length, 0);
  assert.equal(total, request.length);
  const joined = new Uint8Array(total);
  let pos = 0;
  for (const b of received) {
    joined.set(b, pos);
    pos += b.length;
  }
  assert.deepEqual(joined, request);
});

Deno.test("stream pump: an idle connection holds only the small read buffer, also after a burst", async () => {
  const { server, client } = await loopbackPair();
  let received = 0;
  let expected = 0;
  /** Whether the last read filled its buffer (then the reader reads again at once). */
  let lastFilled = false;
  /** Resolved when the reader waits for input again after `expected` bytes arrived. */
  let idle: (() => void) | undefined;
  /** Resolved when the writer finished a write (it releases its scratch right after). */
  let written: (() => void) | undefined;
  const replies: Uint8Array[][] = [];
  let hooks: PumpHooks | undefined;
  const protocol: StreamProtocol = {
    receive: (bytes) => {
      received += bytes.length;
      lastFilled = bytes.byteOffset + bytes.length === bytes.buffer.byteLength;
    },
    hasOutput: () => replies.length > 0,
    takeOutput: () => replies.shift()!,
    releaseOutput: () => written?.(),
    waitForRoom: () => {
      if (received === expected && !lastFilled && idle) {
        const wake = idle;
        idle = undefined;
        wake();
      }
      return Promise.resolve();
    },
    close: () => {},
  };
  const pump = pumpStream(server, (h) => {
    hooks = h;
    return protocol;
  });
  const idleAfter = (bytes: Uint8Array) => {
    expected += bytes.length;
    const reached = new Promise<void>((resolve) => (idle = resolve));
    void client.write(bytes);
    return reached;
  };
  // A short request and a reply of three pieces (copied together through the write scratch).
  await idleAfter(filled(72, 1));
  assert.equal(hooks!.bufferBytes(), IDLE_READ_BYTES, "a new connection: the idle read only");
  const reply = [filled(16, 2), filled(8, 3), filled(24, 4)];
  const done = new Promise<void>((resolve) => (written = resolve));
  replies.push(reply);
  hooks!.wake();
  assert.deepEqual(await readExactly(client, 48), concat(...reply));
  await done;
  assert.equal(hooks!.bufferBytes(), IDLE_READ_BYTES, "after the reply: no write scratch held");
  // A burst bigger than the idle buffer grows the adaptive read buffer while it lasts.
  await idleAfter(filled(300_000, 6));
  assert.equal(received, expected);
  assert.equal(hooks!.bufferBytes(), IDLE_READ_BYTES, "after the burst: back to the idle buffer");
  client.close();
  await pump;
});

Deno.test("listenOnHosts: a taken port falls back to one OS-assigned port for every host", () => {
  const holder = Deno.listen({ transport: "tcp", hostname: "127.0.0.1", port: 0 });
  const taken = (holder.addr as Deno.NetAddr).port;
  const heard: number[] = [];
  try {
    const { listeners, port } = listenOnHosts(["127.0.0.1"], taken, (p) => heard.push(p));
    try {
      assert.deepEqual(heard, [taken]);
      assert.notEqual(port, taken);
      assert.deepEqual(listeners.map((l) => (l.addr as Deno.NetAddr).port), [port]);
    } finally {
      for (const l of listeners) l.close();
    }
    // A free port is used as asked, without the fallback.
    const free = listenOnHosts(["127.0.0.1"], 0, (p) => heard.push(p));
    for (const l of free.listeners) l.close();
    assert.equal(heard.length, 1);
    // Any other failure is thrown, and the listeners opened before it are closed (sanitizer).
    assert.throws(() => listenOnHosts(["127.0.0.1", "not a host name"], 0, () => {}));
  } finally {
    holder.close();
  }
});
