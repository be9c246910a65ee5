/**
 * core/udp_receive_buffer.ts: SO_RCVBUF through FFI on a Deno UDP socket. Checked by behaviour:
 * a burst no one reads while it arrives overflows a socket with the system default buffer (the
 * kernel counts drops in /proc/net/udp) and fits entirely in a raised one.
 */
import assert from "node:assert/strict";
import { raiseUdpReceiveBuffer, udpSocketDescriptor } from "../core/udp_receive_buffer.ts";

const DATAGRAMS = 300;
const SIZE = 4000;

function drops(port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  for (const line of Deno.readTextFileSync("/proc/net/udp").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 13 && f[1].split(":")[1] === hex) return Number(f[12]);
  }
  throw new Error(`port ${port} not in /proc/net/udp`);
}

/** Sends the burst to `conn` without reading; returns datagrams then readable and drops. */
async function burst(conn: Deno.DatagramConn): Promise<{ read: number; dropped: number }> {
  const port = (conn.addr as Deno.NetAddr).port;
  const sender = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const payload = new Uint8Array(SIZE);
  try {
    for (let i = 0; i < DATAGRAMS; i++) await sender.send(payload, conn.addr);
  } finally {
    sender.close();
  }
  const dropped = drops(port);
  const read = DATAGRAMS - dropped;
  // Loopback delivers synchronously: what was not dropped is queued and reads at once.
  const buffer = new Uint8Array(65536);
  for (let i = 0; i < read; i++) await conn.receive(buffer);
  return { read, dropped };
}

Deno.test({
  name: "udp receive buffer: a raised SO_RCVBUF holds a burst the default one drops",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const rmemMax = Number(Deno.readTextFileSync("/proc/sys/net/core/rmem_max"));
    const rmemDefault = Number(Deno.readTextFileSync("/proc/sys/net/core/rmem_default"));
    const ask = 4 * 1024 * 1024;
    const plain = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const raised = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    try {
      assert.notEqual(udpSocketDescriptor((raised.addr as Deno.NetAddr).port), undefined);
      const result = raiseUdpReceiveBuffer(raised, ask);
      // The kernel caps at rmem_max and reports twice what it grants.
      assert.equal(result.bytes, 2 * Math.min(ask, rmemMax), JSON.stringify(result));
      assert.equal(result.applied, rmemMax >= ask / 2);
      if (rmemMax * 2 < DATAGRAMS * SIZE * 2 || rmemMax <= rmemDefault) {
        console.log(`rmem_max ${rmemMax}: too small to tell the buffers apart by behaviour`);
        return;
      }
      const before = await burst(plain);
      assert.ok(before.dropped > 0, "the default buffer overflows");
      const after = await burst(raised);
      assert.deepEqual(after, { read: DATAGRAMS, dropped: 0 });
    } finally {
      plain.close();
      raised.close();
    }
  },
});
