/**
 * Channel Access throughput benchmark: a 1028×512 int32 array (2 105 344 bytes) served by our
 * server and read by a C libca client (`scripts/bench/c/ca_bench_client.c`, compiled here with
 * gcc -lca), compared with raw loopback TCP moving the same bytes in the same run:
 *
 * 1. raw request/reply ping-pong (16 bytes → one reply of the CA message size)
 * 2. CA whole-array reads (ca_array_get + ca_pend_io in a loop)
 * 3. raw one-way stream
 * 4. CA monitor while the array is posted as fast as possible
 * 5. RSS over time while a client that stopped reading holds a subscription (plus a live monitor)
 *
 * Usage: `./node_modules/.bin/deno run -A [--v8-flags=--expose-gc] scripts/bench/ca_throughput.ts
 * [--seconds 3]` (with `--expose-gc` a full GC runs before each RSS sample).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { setImmediate } from "node:timers/promises";
import { startCaServer } from "../../ca/server.ts";
import {
  createChanRequest,
  DBE,
  encodeHeader,
  eventAddRequest,
  versionMessage,
} from "../../ca/messages.ts";
import { testServerEnv } from "../../tests/support/epics_env.ts";
import { compileCaBenchClient } from "./ca_bench_client.ts";

const { values } = parseArgs({
  options: { seconds: { type: "string", default: "3" } },
});
const SECONDS = Number(values.seconds);
const WIDTH = 1028;
const HEIGHT = 512;
const COUNT = WIDTH * HEIGHT;
const PAYLOAD = COUNT * 4;

const caBench = await compileCaBenchClient(15990);
/** Runs the C client; returns its JSON result. */
const client = caBench.run;

const mb = (bytes: number, seconds: number) => bytes / seconds / 1e6;
/** CPU seconds (user + system) used by this Deno process (server side) so far. */
function selfCpu(): number {
  const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
/** "client x ms + server y ms CPU per array" for a phase. */
function cpuPerArray(clientCpu: number, serverCpu: number, arrays: number): string {
  const ms = (s: number) => ((1000 * s) / arrays).toFixed(2);
  return `CPU per array: client ${ms(clientCpu)} ms, server ${ms(serverCpu)} ms`;
}
const rssMb = () => Deno.memoryUsage().rss / 1e6;

// ---- raw baselines ---------------------------------------------------------------------------
const reply = new Uint8Array(24 + PAYLOAD);
encodeHeader({ cmd: 15, size: PAYLOAD, type: 5, count: COUNT, p1: 1, p2: 1 }, reply);

async function writeAll(conn: Deno.Conn, bytes: Uint8Array) {
  let pos = 0;
  while (pos < bytes.length) pos += await conn.write(bytes.subarray(pos));
}

async function rawServer(
  mode: "pp" | "stream",
  run: (port: number) => Promise<Record<string, number>>,
) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const serving = (async () => {
    const conn = await listener.accept();
    conn.setNoDelay(true);
    try {
      if (mode === "pp") {
        const request = new Uint8Array(16);
        while (true) {
          let got = 0;
          while (got < 16) {
            const n = await conn.read(request.subarray(got));
            if (n === null) return;
            got += n;
          }
          await writeAll(conn, reply);
        }
      } else {
        while (true) await writeAll(conn, reply);
      }
    } catch {
      // Client closed.
    } finally {
      try {
        conn.close();
      } catch {
        // Closed.
      }
    }
  })();
  const result = await run(port);
  await serving;
  listener.close();
  return result;
}

const load = await Deno.readTextFile("/proc/loadavg");
console.log(`# CA throughput, ${WIDTH}x${HEIGHT} int32 (${PAYLOAD} bytes), ${SECONDS} s per phase`);
console.log(
  `# load average at start: ${load.trim()} (box shared with other jobs: numbers are noisy)`,
);

let cpu0 = selfCpu();
const rawPp = await rawServer(
  "pp",
  (port) => client(0, "rawpp", String(port), String(reply.length), String(SECONDS)),
);
const rawPpRate = rawPp.rounds / rawPp.seconds;
console.log(
  `raw ping-pong:   ${rawPpRate.toFixed(1)} round trips/s, ${
    mb(rawPp.bytes, rawPp.seconds).toFixed(0)
  } MB/s; ${cpuPerArray(rawPp.cpu, selfCpu() - cpu0, rawPp.rounds)}`,
);

const server = await startCaServer({ env: testServerEnv(), port: 0 });
const imageA = new Int32Array(COUNT);
const imageB = new Int32Array(COUNT);
for (let i = 0; i < COUNT; i++) imageA[i] = imageB[i] = i;
const pv = server.add({ name: "BENCH:IMG", type: "long", maxCount: COUNT });
pv.post(imageA);

cpu0 = selfCpu();
const reads = await client(server.udpPort, "read", "BENCH:IMG", String(SECONDS));
const readsServerCpu = selfCpu() - cpu0;
const readRate = reads.reads / reads.seconds;
console.log(
  `CA reads:        ${readRate.toFixed(1)} reads/s, ${
    mb(reads.bytes, reads.seconds).toFixed(0)
  } MB/s` +
    `  → ${(100 * readRate / rawPpRate).toFixed(0)} % of raw ping-pong (target ≥ 40 %); ` +
    cpuPerArray(reads.cpu, readsServerCpu, reads.reads),
);

cpu0 = selfCpu();
const rawStream = await rawServer(
  "stream",
  (port) => client(0, "rawstream", String(port), String(SECONDS)),
);
const rawStreamMb = mb(rawStream.bytes, rawStream.seconds);
console.log(
  `raw stream:      ${rawStreamMb.toFixed(0)} MB/s (${
    (rawStream.bytes / rawStream.seconds / reply.length).toFixed(1)
  } arrays/s); ${cpuPerArray(rawStream.cpu, selfCpu() - cpu0, rawStream.bytes / reply.length)}`,
);

/**
 * Posts as fast as possible until stopped: bursts of 10 synchronous posts, then one yield to the
 * event loop (a busy producer; yielding after every post measured slower for the consumer).
 */
function poster(): { stop: () => Promise<number> } {
  let running = true;
  let posts = 0;
  const done = (async () => {
    while (running) {
      const image = posts % 2 === 0 ? imageB : imageA;
      image[0] = posts;
      pv.post(image);
      posts++;
      if (posts % 10 === 0) await setImmediate();
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
      return posts;
    },
  };
}

cpu0 = selfCpu();
let post = poster();
const startPost = performance.now();
const mon = await client(server.udpPort, "monitor", "BENCH:IMG", String(SECONDS));
const posts = await post.stop();
const postRate = posts / ((performance.now() - startPost) / 1000);
const monMb = mb(mon.bytes, mon.seconds);
console.log(
  `CA monitor:      ${(mon.updates / mon.seconds).toFixed(1)} updates/s, ${monMb.toFixed(0)} MB/s` +
    ` (posting ${postRate.toFixed(0)} values/s)  → ${
      (100 * monMb / rawStreamMb).toFixed(0)
    } % of raw stream (target ≥ 60 %); ${
      cpuPerArray(mon.cpu, selfCpu() - cpu0, mon.updates)
    } (server includes the busy posting loop)`,
);

// ---- stalled subscriber: RSS over time ----------------------------------------------------------
const stalled = await Deno.connect({ hostname: "127.0.0.1", port: server.tcpPort });
await writeAll(stalled, versionMessage(0, 0));
await writeAll(stalled, createChanRequest("BENCH:IMG", 1));
await writeAll(stalled, eventAddRequest(5, 0, 1, 1, DBE.VALUE));
const samples: string[] = [];
post = poster();
const sampleEvery = 250;
let sampling = true;
const sampler = (async () => {
  const t0 = performance.now();
  const gc = (globalThis as { gc?: () => void }).gc;
  while (sampling) {
    gc?.(); // only with --v8-flags=--expose-gc: then RSS shows what is really retained
    samples.push(`${((performance.now() - t0) / 1000).toFixed(2)}s:${rssMb().toFixed(0)}MB`);
    await new Promise((r) => setTimeout(r, sampleEvery));
  }
})();
const live = await client(server.udpPort, "monitor", "BENCH:IMG", String(SECONDS * 2));
const stalledPosts = await post.stop();
sampling = false;
await sampler;
console.log(
  `stalled client:  ${stalledPosts} posts of 2.1 MB while one client never reads; a live monitor ` +
    `meanwhile got ${(live.updates / live.seconds).toFixed(1)} updates/s`,
);
console.log(`RSS over time:   ${samples.join(" ")}`);
stalled.close();
await server.close();
await caBench.remove();
