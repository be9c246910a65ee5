/**
 * Benchmark helper process: subscribes to one PV with our pvAccess client for a number of seconds
 * and prints `{updates, bytes, seconds, cpu}` as JSON. Reusable-buffer decode unless `RECYCLE=0`;
 * pipelined with queue size 8 (`QS=n`; `PIPE=0`: not pipelined). A queue of 4 (acknowledged every
 * 2) throttles 2 MB updates: the server waits for acknowledgements while the client drains what
 * the socket holds (measured under load: client 1.1–1.4 ms CPU per update at 4, 0.8–1.0 at 8 and
 * not pipelined).
 *
 * Usage: `deno run -A scripts/bench/pva_monitor_client.ts HOST PORT PV SECONDS`
 *
 * @module
 */

import { PvaClient } from "../../pva/client.ts";
import type { UnionValue } from "../../pva/pvdata.ts";

const [host, port, pv, seconds] = Deno.args;

function cpu(): number {
  const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const client = await PvaClient.connect(host, Number(port), {
  recycleLargeMessages: Deno.env.get("RECYCLE") !== "0",
});
let updates = -1; // the first update is the current value, not a post
let bytes = 0;
let t0 = 0;
let cpu0 = 0;
const sub = await client.monitor(pv, (u) => {
  if (updates < 0) {
    t0 = performance.now();
    cpu0 = cpu();
  } else {
    const value = (u.value.value as UnionValue).value as ArrayBufferView;
    bytes += value.byteLength;
  }
  updates++;
}, { pipeline: Deno.env.get("PIPE") !== "0", queueSize: Number(Deno.env.get("QS") ?? 8) });
await new Promise((r) => setTimeout(r, Number(seconds) * 1000));
const elapsed = (performance.now() - t0) / 1000;
sub.close();
client.close();
console.log(JSON.stringify({ updates, bytes, seconds: elapsed, cpu: cpu() - cpu0 }));
