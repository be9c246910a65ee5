import assert from "node:assert/strict";
import { BULK_CHUNK, writePieces } from "../core/stream_pump.ts";
import { AdaptiveBuffer } from "../core/socket_buffer.ts";
import { concat } from "./support/bytes.ts";

/** A connection that records each write and accepts at most `chunk` bytes per call. */
function recordingConn(chunk: number): { conn: Deno.Conn; writes: Uint8Array[] } {
  const writes: Uint8Array[] = [];
  const conn = {
    write(bytes: Uint8Array): Promise<number> {
      const n = Math.min(chunk, bytes.length);
      writes.push(bytes.slice(0, n));
      return Promise.resolve(n);
    },
  } as unknown as Deno.Conn;
  return { conn, writes };
}

const filled = (length: number, seed: number) =>
  Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);

Deno.test("writePieces: bytes arrive in order; a header rides with its payload's first bytes", async () => {
  const scratch = new AdaptiveBuffer({ min: 1024, max: 1024 });
  const header = filled(24, 1);
  const payload = filled(5000, 2); // big: ≥ scratch/4
  const small = filled(100, 3);
  const tail = filled(40, 4);
  const pieces = [header, payload, small, filled(900, 5), tail];
  const { conn, writes } = recordingConn(1 << 20);
  await writePieces(conn, pieces, scratch);
  assert.deepEqual(concat(...writes), concat(...pieces), "every byte, in order");
  assert.equal(writes[0].length, 1024, "header plus the payload's head fill the scratch");
  assert.deepEqual(writes[0].subarray(0, 24), header);
  assert.ok(writes.every((w) => w.length >= 24), "no tiny write of a header alone");
  assert.deepEqual(payload, filled(5000, 2), "the payload itself is not modified");
});

Deno.test("writePieces: partial writes are continued until everything is written", async () => {
  const scratch = new AdaptiveBuffer({ min: 256, max: 256 });
  const pieces = [filled(16, 7), filled(3000, 8), filled(16, 9), filled(16, 10)];
  const { conn, writes } = recordingConn(100);
  await writePieces(conn, pieces, scratch);
  assert.deepEqual(concat(...writes), concat(...pieces));
  assert.ok(writes.every((w) => w.length <= 100));
});

Deno.test("writePieces: an image message is three writes - header with the first pixels, pixels, trailer", async () => {
  const scratch = new AdaptiveBuffer();
  const header = filled(24, 11);
  // A little more than one chunk: the remainder goes with the chunk, not in a write of its own.
  const pixels = filled(BULK_CHUNK + 9000, 12);
  const trailer = filled(158, 13);
  const { conn, writes } = recordingConn(1 << 30);
  await writePieces(conn, [header, pixels, trailer], scratch);
  assert.deepEqual(concat(...writes), concat(header, pixels, trailer), "every byte, in order");
  assert.deepEqual(writes.map((w) => w.length), [1024, 24 + pixels.length - 1024, 158]);
  assert.deepEqual(writes[0].subarray(0, 24), header, "the header rides with the first pixels");
  // A payload of several chunks: full chunks, the last one takes the small remainder.
  const large = filled(3 * BULK_CHUNK + 100, 14);
  const second = recordingConn(1 << 30);
  await writePieces(second.conn, [header, large], scratch);
  assert.deepEqual(concat(...second.writes), concat(header, large));
  assert.deepEqual(
    second.writes.map((w) => w.length),
    [1024, BULK_CHUNK, BULK_CHUNK, BULK_CHUNK + 100 + 24 - 1024],
  );
});
