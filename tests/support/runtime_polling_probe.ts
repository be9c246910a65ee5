/**
 * Measures, in event-loop turns, how long a socket read waits while the event loop keeps itself
 * busy and a worker keeps posting messages — the situation of the IOC during a fast EIGER series
 * (core/io_poll.ts). Run as its own program (`deno run -A runtime_polling_probe.ts`) with the
 * runtime settings under test in its environment; prints one JSON line
 * `{ "waited": [turns per probe], "turns": total }`.
 *
 * The main thread runs a TCP server that answers each byte with the number of the current
 * event-loop turn, and a loop of `setImmediate` turns of 2 ms of work each (counted in shared
 * memory). A worker posts a message every millisecond (waking the runtime's operations task from
 * another thread, as decode workers do) and, as the client, sends a byte, reads the turn number
 * of the reply and subtracts the turn number it saw when it sent: the turns the read waited.
 * Counting turns instead of milliseconds makes the result independent of the machine's load.
 *
 * @module
 */

import { setImmediate } from "node:timers";

const PROBES = Number(Deno.args[0] ?? 100);
const TURN_MS = 2;

const turn = new Int32Array(new SharedArrayBuffer(4));
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const port = (listener.addr as Deno.NetAddr).port;

const serving = (async () => {
  for await (const conn of listener) {
    conn.setNoDelay(true);
    const buf = new Uint8Array(16);
    const reply = new Uint8Array(4);
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      new DataView(reply.buffer).setInt32(0, Atomics.load(turn, 0));
      await conn.write(reply);
    }
    conn.close();
  }
})();

let done = false;
const spin = () => {
  Atomics.add(turn, 0, 1);
  const t = performance.now();
  while (performance.now() - t < TURN_MS) { /* the loop's work of one turn */ }
  if (!done) setImmediate(spin);
};
spin();

const client = `
self.onmessage = async (e) => {
  const { turn, port, probes } = e.data;
  const ticker = setInterval(() => self.postMessage({ tick: true }), 1);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const buf = new Uint8Array(4);
  const waited = [];
  for (let i = 0; i < probes; i++) {
    await new Promise((r) => setTimeout(r, 5));
    const sent = Atomics.load(turn, 0);
    await conn.write(new Uint8Array([1]));
    let got = 0;
    while (got < 4) {
      const n = await conn.read(buf.subarray(got));
      if (n === null) throw new Error("closed");
      got += n;
    }
    waited.push(new DataView(buf.buffer).getInt32(0) - sent);
  }
  clearInterval(ticker);
  conn.close();
  self.postMessage({ waited });
};
`;
const worker = new Worker(
  URL.createObjectURL(new Blob([client], { type: "application/javascript" })),
  { type: "module" },
);
const waited = await new Promise<number[]>((resolve) => {
  worker.onmessage = (e) => {
    if (e.data.waited) resolve(e.data.waited);
  };
  worker.postMessage({ turn, port, probes: PROBES });
});
done = true;
worker.terminate();
listener.close();
await serving.catch(() => {});
console.log(JSON.stringify({ waited, turns: Atomics.load(turn, 0) }));
Deno.exit(0);
