/**
 * core/udp_batch_receive.ts: recvmmsg through FFI on a Deno UDP socket. Datagrams queued on
 * loopback are taken in one call, each scattered over its three parts in order and cut off where
 * they end; nothing queued gives 0 without waiting; the socket's own receive still works after;
 * without FFI permission there is no batch receiver and the reason says so.
 */
import assert from "node:assert/strict";
import { openUdpBatchReceiver } from "../core/udp_batch_receive.ts";

async function sendAll(to: Deno.Addr, datagrams: Uint8Array[]): Promise<void> {
  const sender = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    for (const d of datagrams) await sender.send(d, to);
  } finally {
    sender.close();
  }
}

Deno.test("udp batch receive: queued datagrams in one call, scattered and cut off", async () => {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const opened = openUdpBatchReceiver(conn, 8);
  assert.ok(opened.receiver, opened.reason);
  const batch = opened.receiver;
  try {
    assert.equal(batch.receive(), 0, "nothing queued: 0 at once");
    const head = new Uint8Array(8 * 64);
    const body = new Uint8Array(8 * 100);
    const guard = new Uint8Array(128);
    for (let i = 0; i < 8; i++) {
      batch.setPart(i, 0, head, i * 64, 4);
      batch.setPart(i, 1, body, i * 100 + 3, 10);
      batch.setPart(i, 2, guard, i, 1);
    }
    const datagrams = [2, 14, 15, 40, 9].map((n, k) =>
      Uint8Array.from({ length: n }, (_, j) => (k * 40 + j + 1) & 0xff)
    );
    // Loopback queues each datagram before send returns.
    await sendAll(conn.addr, datagrams);
    const n = batch.receive(4);
    assert.equal(n, 4, "at most the count asked for");
    assert.deepEqual([0, 1, 2, 3].map((i) => batch.length(i)), [2, 14, 15, 15]);
    for (let i = 0; i < 4; i++) {
      const d = datagrams[i];
      assert.deepEqual(head.subarray(i * 64, i * 64 + Math.min(4, d.length)), d.subarray(0, 4));
      const inBody = Math.max(0, Math.min(10, d.length - 4));
      assert.deepEqual(body.subarray(i * 100 + 3, i * 100 + 3 + inBody), d.subarray(4, 4 + inBody));
      assert.equal(guard[i], d.length > 14 ? d[14] : 0, `guard byte of datagram ${i}`);
    }
    assert.equal(body[3 * 100 + 2], 0, "nothing written before a part");
    assert.equal(body[3 * 100 + 13], 0, "nothing written after a part");
    assert.equal(batch.receive(), 1, "the rest");
    assert.equal(batch.length(0), 9);
    assert.equal(batch.receive(), 0);
    // The socket's own receive is untouched.
    await sendAll(conn.addr, [Uint8Array.of(7, 7, 7)]);
    const [data] = await conn.receive(new Uint8Array(16));
    assert.deepEqual(data, Uint8Array.of(7, 7, 7));
    assert.throws(() => batch.setPart(0, 0, head, head.length - 2, 4), RangeError);
    assert.throws(() => batch.setPart(0, 0, new Uint8Array(16), 0, 4), /may move/);
  } finally {
    batch.close();
    conn.close();
  }
  assert.throws(() => batch.receive(), /closed/);
});

Deno.test({
  name: "udp batch receive: without FFI permission none, and the reason says so",
  permissions: { net: true, read: true, ffi: false },
  fn() {
    const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    try {
      const opened = openUdpBatchReceiver(conn, 8);
      assert.equal(opened.receiver, undefined);
      assert.equal(opened.reason, "no FFI permission");
    } finally {
      conn.close();
    }
  },
});
