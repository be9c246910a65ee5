/**
 * Benchmark (not a test): how fast a fresh client connects and reads a scalar while many clients
 * stream images. For each load level N, N libca clients (`c/image_load_client.c load`) each
 * monitor two 2 MiB int32 images and two scalars, which the server posts every `--period-ms`;
 * once they are connected, `--probes` fresh processes (`… probe`, like `caget`) one after the
 * other connect to `state` and read it. Prints, per server and N: load clients connected after
 * 10 s and in all, the probe times (median / min / max, seconds from process start to the value)
 * and each load client's image rate. A probe without load is the baseline of the same run.
 * Loopback only; every wait is bounded.
 *
 *   deno run -A scripts/bench/ca_new_client.ts [--clients 30,60,100] [--probes 5]
 *     [--period-ms 100] [--ca-root DIR] [--bulk-per-turn BYTES|off] [--search-worker on|off|off,on]
 *     [--rounds 1] [--softioc PATH/TO/softIoc]
 *
 * `--search-worker off,on --rounds 4` compares the two settings in one run: each round runs both
 * at every load level, in alternating order (off,on then on,off, ...), so that a drift of the
 * machine's load affects both alike; a summary then gives, per setting and level, the range of
 * the per-run medians. The last column is the CPU of the search worker's thread while the probes
 * ran. The image rate is taken over `--rate-seconds` (default 5) once every load client is
 * connected, before the probes (each client reports its count on SIGUSR1).
 *
 * `--softioc` runs the same load against EPICS base's softIoc (rsrv) for a side-by-side number
 * (local comparison only; a waveform record per image with SCAN ".1 second" and MPST Always,
 * so use the default period). `--ca-root` loads `ca/server.ts` from another checkout.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { caClientEnv, freeUdpPort, killMarkedProcesses } from "../../tests/support/epics_env.ts";
import { lines, startLoadServer } from "./load_server_process.ts";

const { values } = parseArgs({
  options: {
    clients: { type: "string", default: "30,60,100" },
    probes: { type: "string", default: "5" },
    "period-ms": { type: "string", default: "100" },
    "ca-root": { type: "string" },
    softioc: { type: "string" },
    "bulk-per-turn": { type: "string" },
    "search-worker": { type: "string" },
    rounds: { type: "string", default: "1" },
    "rate-seconds": { type: "string", default: "5" },
  },
});
const rounds = Number(values.rounds);
const rateSeconds = Number(values["rate-seconds"]);
const levels = values.clients!.split(",").map(Number);
const probes = Number(values.probes);
const periodMs = Number(values["period-ms"]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const source = new URL("./c/image_load_client.c", import.meta.url).pathname;
const binary = await Deno.makeTempFile({ prefix: "image_load_client" });
const gcc = await new Deno.Command("gcc", { args: ["-O2", "-o", binary, source, "-lca"] })
  .output();
if (!gcc.success) throw new Error(new TextDecoder().decode(gcc.stderr));

interface Server {
  udpPort: number;
  pid: number;
  stop(): Promise<void>;
}

async function startOurs(searchWorker: string | undefined): Promise<Server> {
  return await startLoadServer({
    periodMs,
    caRoot: values["ca-root"],
    bulkPerTurn: values["bulk-per-turn"],
    searchWorker,
  });
}

async function startRsrv(softIoc: string): Promise<Server> {
  const dir = await Deno.makeTempDir();
  const db = `${dir}/bench.db`;
  const image = (n: number) =>
    `record(waveform, "BENCH:img${n}") {\n  field(FTVL, "LONG")\n  field(NELM, "524288")\n` +
    `  field(SCAN, ".1 second")\n  field(MPST, "Always")\n}\n`;
  const scalar = (n: number) =>
    `record(ai, "BENCH:s${n}") {\n  field(SCAN, ".1 second")\n  field(MDEL, "-1")\n}\n`;
  await Deno.writeTextFile(
    db,
    `record(longin, "BENCH:state") {\n  field(VAL, "1")\n  field(PINI, "YES")\n}\n` +
      `record(longout, "BENCH:acquire") {}\n` + image(1) + image(2) + scalar(1) + scalar(2),
  );
  const port = freeUdpPort();
  const child = new Deno.Command(softIoc, {
    args: ["-S", "-d", db],
    env: {
      EPICS_CAS_INTF_ADDR_LIST: "127.0.0.1",
      EPICS_CAS_SERVER_PORT: String(port),
      EPICS_CAS_BEACON_ADDR_LIST: "127.0.0.1",
      EPICS_CAS_AUTO_BEACON_ADDR_LIST: "NO",
      EPICS_CAS_BEACON_PORT: "15999",
      EPICS_CA_MAX_ARRAY_BYTES: "300000000",
      EPICS_CA_AUTO_ADDR_LIST: "NO",
      EPICS_CA_ADDR_LIST: "127.0.0.1",
    },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  await sleep(1500);
  return {
    udpPort: port,
    pid: child.pid,
    async stop() {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await child.status;
      clearTimeout(timer);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

interface LoadResult {
  connected: boolean;
  seconds?: number;
  image_updates?: number;
}

async function probe(udpPort: number, marker: string, repeaterPort: number) {
  const start = performance.now();
  const out = await new Deno.Command(binary, {
    args: ["probe", "BENCH:state", "60"],
    env: caClientEnv({ udpPort, marker, repeaterPort }),
    stdout: "piped",
    stderr: "null",
  }).output();
  const wall = (performance.now() - start) / 1000;
  const text = new TextDecoder().decode(out.stdout).trim();
  const result = text ? JSON.parse(text) : { ok: false };
  return { ok: result.ok === true, seconds: wall, connect: result.connect_s as number };
}

/**
 * CPU time and run-queue wait of all threads of `pid` so far, and the CPU time of its worker
 * threads (named `worker-N` by Deno: the search worker) alone (seconds; /proc schedstat).
 */
function schedTimes(pid: number): { cpu: number; wait: number; workers: number } {
  let cpu = 0;
  let wait = 0;
  let workers = 0;
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const dir = `/proc/${pid}/task/${task.name}`;
      const [run, queued] = Deno.readTextFileSync(`${dir}/schedstat`).split(" ").map(Number);
      cpu += run / 1e9;
      wait += queued / 1e9;
      if (Deno.readTextFileSync(`${dir}/comm`).startsWith("worker-")) workers += run / 1e9;
    } catch {
      // Thread ended.
    }
  }
  return { cpu, wait, workers };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const stats = (xs: number[]) => {
  if (xs.length === 0) return "—";
  const s = [...xs].sort((a, b) => a - b);
  return `${median(s).toFixed(2)} (${s[0].toFixed(2)}–${s[s.length - 1].toFixed(2)})`;
};

/** Per-run medians by server name and load level (for the summary of several rounds). */
const perRun = new Map<string, { probe: number[]; rate: number[]; all: string[] }>();

async function run(name: string, start: () => Promise<Server>, n: number) {
  const server = await start();
  const marker = crypto.randomUUID();
  const repeaterPort = freeUdpPort();
  const env = caClientEnv({ udpPort: server.udpPort, marker, repeaterPort });
  const t0 = performance.now();
  const connectedAt: number[] = [];
  const children = Array.from({ length: n }, () =>
    new Deno.Command(binary, {
      args: ["load", "BENCH:", "600"],
      env,
      stdout: "piped",
      stderr: "null",
    }).spawn());
  /** Per child: the "mark <images> <seconds>" lines it printed on SIGUSR1. */
  const marks = children.map(() => [] as { images: number; seconds: number }[]);
  const results = children.map(async (child, i) => {
    let result: LoadResult = { connected: false };
    for await (const line of lines(child.stdout)) {
      if (line.startsWith("connected ")) connectedAt.push((performance.now() - t0) / 1000);
      else if (line.startsWith("mark ")) {
        const [, images, seconds] = line.split(" ").map(Number);
        marks[i].push({ images, seconds });
      } else if (line.startsWith("{")) result = JSON.parse(line);
    }
    await child.status;
    return result;
  });
  try {
    while (connectedAt.length < n && performance.now() - t0 < 10_000) await sleep(100);
    const at10 = connectedAt.length;
    while (connectedAt.length < n && performance.now() - t0 < 60_000) await sleep(200);
    const all = connectedAt.length;
    await sleep(2000);
    // Image rate over a fixed window once every client is connected (before the probes, so that
    // faster or slower probes do not change the window).
    const mark = () => {
      for (const child of children) {
        try {
          child.kill("SIGUSR1");
        } catch {
          // Already ended.
        }
      }
    };
    mark();
    await sleep(rateSeconds * 1000);
    mark();
    await sleep(500);
    const times: number[] = [];
    const connects: number[] = [];
    let failed = 0;
    const sched0 = schedTimes(server.pid);
    const wall0 = performance.now();
    for (let i = 0; i < probes; i++) {
      const p = await probe(server.udpPort, marker, repeaterPort);
      if (p.ok) {
        times.push(p.seconds);
        connects.push(p.connect);
      } else failed++;
    }
    const sched1 = schedTimes(server.pid);
    const wall = (performance.now() - wall0) / 1000;
    const cpu = `${((sched1.cpu - sched0.cpu) / wall * 100).toFixed(0)} % / ${
      ((sched1.wait - sched0.wait) / wall * 100).toFixed(0)
    } %`;
    const workerCpu = `${((sched1.workers - sched0.workers) / wall * 100).toFixed(2)} %`;
    for (const child of children) {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already ended.
      }
    }
    await Promise.all(results);
    // Images per image PV and second between the two marks (two image PVs per client).
    const rates = marks.filter((m) => m.length >= 2).map(([a, b]) =>
      (b.images - a.images) / (b.seconds - a.seconds) / 2
    );
    const key = `${name} | ${n}`;
    const entry = perRun.get(key) ?? { probe: [], rate: [], all: [] };
    perRun.set(key, entry);
    if (times.length > 0) entry.probe.push(median(times));
    if (rates.length > 0) entry.rate.push(median(rates));
    entry.all.push(`${all}/${n}`);
    console.log(
      `| ${name} | ${n} | ${at10}/${n} | ${all}/${n} | ${stats(times)}${
        failed ? `, ${failed} failed` : ""
      } | ${stats(connects)} | ${stats(rates)} | ${cpu} | ${workerCpu} |`,
    );
  } finally {
    for (const child of children) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already ended.
      }
    }
    await Promise.allSettled(results);
    killMarkedProcesses(marker);
    await server.stop();
  }
}

console.log(`images posted every ${periodMs} ms; ${probes} probes per row`);
console.log(
  "| server | load clients | connected after 10 s | connected (60 s) | new client connect+read s: median (min–max) | of which search+connect | images/s per image per client: median (min–max) | server CPU / waiting for CPU (% of a core) | of which search worker thread |",
);
console.log("|---|---|---|---|---|---|---|---|---|");
const workerSettings = values["search-worker"]?.split(",") ?? [undefined];
const servers: [string, () => Promise<Server>][] = workerSettings.map((setting) => [
  setting === undefined ? "diss-ioc" : `diss-ioc (worker ${setting})`,
  () => startOurs(setting),
]);
if (values.softioc) servers.push(["rsrv", () => startRsrv(values.softioc!)]);
for (let round = 0; round < rounds; round++) {
  // Alternate the order every round (ABBA), so a drifting background load hits both alike.
  const order = round % 2 === 0 ? servers : [...servers].reverse();
  for (const n of [0, ...levels]) {
    for (const [name, start] of order) await run(name, start, n);
  }
}
if (rounds > 1) {
  console.log(`\nSummary over ${rounds} rounds: range (median) of the per-run medians`);
  console.log(
    "| server | load clients | new client connect+read s | images/s per image per client | connected |",
  );
  console.log("|---|---|---|---|---|");
  const range = (xs: number[]) =>
    xs.length === 0
      ? "—"
      : `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)} (${median(xs).toFixed(2)})`;
  for (const [key, { probe, rate, all }] of perRun) {
    console.log(`| ${key} | ${range(probe)} | ${range(rate)} | ${all.join(", ")} |`);
  }
}
await Deno.remove(binary);
