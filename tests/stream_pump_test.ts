import assert from "node:assert/strict";
import { BULK_CHUNK, pumpStream, type StreamProtocol } from "../core/stream_pump.ts";
import { BulkWriteGate } from "../core/write_gate.ts";

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

Deno.test("stream pump: a big payload is written in gated chunks, one budget per event-loop turn", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({
    hostname: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
  });
  const server = await listener.accept();
  listener.close();
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
