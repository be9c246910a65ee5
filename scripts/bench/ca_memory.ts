/**
 * Benchmark (not a test): resident memory of the CA server process before, during and after
 * (1) 2,000 idle TCP circuits, (2) 100 subscribers to a 2 MiB image that never read, and
 * (3) 10,000 connect/close cycles — all on loopback, each phase bounded in count and time.
 * The server is `ca_load_server.ts` in its own process, posting its images every 100 ms.
 *
 * Phase (1) first runs the same idle connections against a baseline in the same run:
 * `bare_tcp_server.ts`, a bare Deno accept loop (same runtime, same V8 flags) holding one pending
 * read per connection, so the report reads "ours N KB per connection, bare runtime M KB, ratio".
 * Both servers run with `--expose-gc`, and the JavaScript heap after a full GC
 * (`Deno.memoryUsage()`: used, and committed by V8) is reported per connection next to RSS.
 *
 *   deno run -A scripts/bench/ca_memory.ts [--idle 2000] [--stalled 100] [--cycles 10000]
 *     [--ca-root DIR] [--settle 3] [--phases idle,stalled,cycles,quiet]
 *
 * `DISS_CA_MAX_CIRCUITS` is set to 4096 for the server so the idle phase is not capped; the
 * slow-client budget is the default unless `DISS_CA_SLOW_CLIENT_MB` is set in this environment.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  CMD,
  createChanRequest,
  DBE,
  eventAddRequest,
  nameMessage,
  versionMessage,
} from "../../ca/messages.ts";
import { type LoadServer, rssMb, startBareServer, startLoadServer } from "./load_server_process.ts";

const { values } = parseArgs({
  options: {
    idle: { type: "string", default: "2000" },
    stalled: { type: "string", default: "100" },
    cycles: { type: "string", default: "10000" },
    settle: { type: "string", default: "3" },
    "ca-root": { type: "string" },
    phases: { type: "string", default: "idle,stalled,cycles,quiet" },
  },
});
const phases = new Set(values.phases!.split(","));
const settleMs = Number(values.settle) * 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

const hello = concat(
  versionMessage(0, 0),
  nameMessage(CMD.CLIENT_NAME, "bench"),
  nameMessage(CMD.HOST_NAME, "localhost"),
);

async function connectAll(port: number, count: number, first: Uint8Array, deadline: number) {
  const conns: Deno.TcpConn[] = [];
  for (let i = 0; i < count && Date.now() < deadline; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, count - i) }, async () => {
        const c = await Deno.connect({ hostname: "127.0.0.1", port });
        await c.write(first);
        return c;
      }),
    );
    conns.push(...batch);
  }
  return conns;
}

function closeAll(conns: Deno.TcpConn[]) {
  for (const c of conns) {
    try {
      c.close();
    } catch {
      // Closed by the server.
    }
  }
}

/** RSS and JS heap used and committed (after a full GC) of a server process, in MB. */
async function measure(server: LoadServer): Promise<Measure> {
  const memory = await server.memory();
  return {
    rss: rssMb(server.pid),
    heap: memory.heapUsed / 1e6,
    heapCommitted: memory.heapTotal / 1e6,
    newSpace: ((memory as { newSpace?: number }).newSpace ?? 0) / 1e6,
  };
}

interface Measure {
  rss: number;
  heap: number;
  heapCommitted: number;
  /** Of `heapCommitted`, the young generation (grows with the allocation rate, not per object). */
  newSpace: number;
}

interface IdleResult {
  connections: number;
  before: Measure;
  during: Measure;
  after: Measure;
}

/** Holds `count` idle connections to `server` (each sends `hello`, then nothing). */
async function idlePhase(server: LoadServer, count: number): Promise<IdleResult> {
  const before = await measure(server);
  const conns = await connectAll(server.tcpPort, count, hello, Date.now() + 60_000);
  await sleep(settleMs);
  const during = await measure(server);
  closeAll(conns);
  await sleep(settleMs);
  return { connections: conns.length, before, during, after: await measure(server) };
}

const kbPer = (r: IdleResult, key: keyof Measure) =>
  (r.during[key] - r.before[key]) * 1e3 / Math.max(1, r.connections);

// 0. Baseline: the bare runtime holding the same idle connections.
let bare: IdleResult | undefined;
if (phases.has("idle")) {
  const baseline = await startBareServer({ exposeGc: true });
  try {
    await sleep(settleMs);
    bare = await idlePhase(baseline, Number(values.idle));
  } finally {
    await baseline.stop();
  }
}

const server = await startLoadServer({
  caRoot: values["ca-root"],
  env: { DISS_CA_MAX_CIRCUITS: "4096", ...pick(Deno.env.toObject(), "DISS_CA_SLOW_CLIENT_MB") },
  exposeGc: true,
});
function pick(env: Record<string, string>, name: string): Record<string, string> {
  return env[name] !== undefined ? { [name]: env[name] } : {};
}

const rows: { phase: string; before: number; during: number; after: number; note: string }[] = [];
let ours: IdleResult | undefined;
try {
  await sleep(settleMs);
  // 1. Idle circuits: each sends VERSION/CLIENT_NAME/HOST_NAME and then nothing.
  if (bare) {
    const idleRow = (phase: string, r: IdleResult, per: string) => ({
      phase,
      before: r.before.rss,
      during: r.during.rss,
      after: r.after.rss,
      note: `${kbPer(r, "rss").toFixed(1)} KB per ${per} (JS heap ${
        kbPer(r, "heap").toFixed(2)
      } KB used, ${kbPer(r, "heapCommitted").toFixed(2)} KB committed, of which young generation ${
        kbPer(r, "newSpace").toFixed(2)
      } KB)`,
    });
    rows.push(idleRow(`bare runtime: ${bare.connections} idle connections`, bare, "connection"));
    ours = await idlePhase(server, Number(values.idle));
    rows.push(idleRow(`${ours.connections} idle circuits`, ours, "circuit"));
  }
  // 2. Stalled image subscribers: subscribe to img1 and never read.
  if (phases.has("stalled")) {
    const before = rssMb(server.pid);
    const count = Number(values.stalled);
    const closedBefore = server.log.filter((l) => l.includes("Closing slow client")).length;
    const subscribe = concat(
      hello,
      createChanRequest("BENCH:img1", 1),
      eventAddRequest(5, 0, 1, 1, DBE.VALUE),
    );
    const conns = await connectAll(server.tcpPort, count, subscribe, Date.now() + 60_000);
    let peak = 0;
    for (let i = 0; i < 10; i++) {
      await sleep(settleMs / 2);
      peak = Math.max(peak, rssMb(server.pid));
    }
    const closed = server.log.filter((l) => l.includes("Closing slow client")).length -
      closedBefore;
    closeAll(conns);
    await sleep(settleMs);
    rows.push({
      phase: `${conns.length} stalled image subscribers`,
      before,
      during: peak,
      after: rssMb(server.pid),
      note: `${closed} closed by the slow-client budget`,
    });
  }
  // 3. Connect/close cycles, 50 at a time, each sending VERSION and closing.
  if (phases.has("cycles")) {
    const before = rssMb(server.pid);
    const count = Number(values.cycles);
    const deadline = Date.now() + 120_000;
    let done = 0;
    let peak = before;
    while (done < count && Date.now() < deadline) {
      const conns = await connectAll(server.tcpPort, Math.min(50, count - done), hello, deadline);
      closeAll(conns);
      done += conns.length;
      if (done % 1000 === 0) peak = Math.max(peak, rssMb(server.pid));
    }
    await sleep(settleMs);
    rows.push({
      phase: `${done} connect/close cycles`,
      before,
      during: peak,
      after: rssMb(server.pid),
      note: "",
    });
  }
  // 4. Twenty seconds without clients (the server returns freed memory 1 s and 16 s after the
  // last close).
  const idleBefore = rssMb(server.pid);
  if (phases.has("quiet")) await sleep(20_000);
  if (phases.has("quiet")) {
    rows.push({
      phase: "20 s later, no clients",
      before: idleBefore,
      during: idleBefore,
      after: rssMb(server.pid),
      note: `at the start ${ours?.before.rss.toFixed(0) ?? "?"} MB`,
    });
  }
} finally {
  await server.stop();
}
console.log("| phase | RSS before (MB) | during (peak) | after | |");
console.log("|---|---|---|---|---|");
for (const r of rows) {
  console.log(
    `| ${r.phase} | ${r.before.toFixed(0)} | ${r.during.toFixed(0)} | ${
      r.after.toFixed(0)
    } | ${r.note} |`,
  );
}
if (bare && ours) {
  const o = kbPer(ours, "rss");
  const b = kbPer(bare, "rss");
  console.log(
    `\nidle connection: ours ${o.toFixed(1)} KB, bare runtime ${b.toFixed(1)} KB, ratio ${
      (o / b).toFixed(2)
    }, ours above the runtime ${(o - b).toFixed(1)} KB (JS heap: ours ${
      kbPer(ours, "heap").toFixed(2)
    } KB, bare ${kbPer(bare, "heap").toFixed(2)} KB per connection)`,
  );
}
