/**
 * pvAccess image benchmark: a 1028×512 uint32 image posted by a paced frame clock and watched as
 * an NTNDArray monitor through our PVA client (a separate process), next to the CA monitor rate
 * for the same image (C libca client, `scripts/bench/c/ca_bench_client.c`; CA serves uint32 as
 * DOUBLE by default, as LONG with `--uint32-as long`) and the raw loopback stream of the same
 * bytes, all in the same run. Target: PVA updates/s ≥ CA updates/s.
 *
 * The poster works as the IOC with a fast detector: frames come at `--fps` (default 1000) from a
 * clock thread, each handed over with `keep` and the frame's `retain` (`--post copy`: one array
 * copied by every post, as before), and a frame due while the process was busy is merged into the
 * next (`--fps 0`: a `setTimeout(0)` after each post — Deno's 1 ms timer ticks make that ~2 ms per
 * turn, a cap of ~450–500 posts/s that every protocol reaches on a quiet box).
 *
 * Every round runs each phase in `2 × --cycles` slices of `--seconds / (2 × cycles)`, alternating
 * the order (A B C C B A A B C ...), so a load that changes during the round weighs on all phases
 * alike and a burst of load on the shared box hits no phase as a whole; the
 * LONG record gets the same pixels viewed as int32, as the IOC posts them. Each round prints the
 * rates, posts, client and server (this process: poster and servers; the poster also runs while
 * a client process starts) CPU per update, the PVA/CA ratios and the load average; the summary
 * gives the range (min–max) of every rate and ratio.
 * `--only a,b` keeps the phases whose label contains one of the words; `--profile DIR` runs our
 * PVA client process with `--cpu-prof-md` into DIR.
 *
 * With `--pvxs DIR` (a local PVXS build's `bin/linux-x86_64`, see docs/pva.md) the PVA phase is
 * also measured with PVXS's C++ `pvxmonitor` as the client (search over TCP to our port only).
 *
 * Usage: `./node_modules/.bin/deno run -A scripts/bench/pva_ndarray.ts [--seconds 3]
 * [--rounds 3] [--cycles 2] [--fps 1000] [--post keep|copy] [--pvxs DIR] [--only pva,long]
 * [--profile DIR]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { startCaServer } from "../../ca/server.ts";
import { PvStore } from "../../ca/store.ts";
import { defaultCodec } from "../../ca/codec_dbr.ts";
import { startLoopbackPvaServer } from "../../tests/support/pva_fixture_pvs.ts";
import type { PvHandle } from "../../ca/pv.ts";
import { testServerEnv } from "../../tests/support/epics_env.ts";
import { compileCaBenchClient } from "./ca_bench_client.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "3" },
    rounds: { type: "string", default: "3" },
    cycles: { type: "string", default: "2" },
    pvxs: { type: "string" },
    only: { type: "string" },
    profile: { type: "string" },
    fps: { type: "string", default: "1000" },
    post: { type: "string", default: "keep" },
  },
});
const SECONDS = Number(values.seconds);
/** Forward + reverse passes over the phases per round. */
const CYCLES = Math.max(1, Number(values.cycles));
/** Length of one slice of a phase (seconds). */
const HALF = String(SECONDS / (2 * CYCLES));
const ROUNDS = Math.max(1, Number(values.rounds));
const WIDTH = 1028;
const HEIGHT = 512;
const COUNT = WIDTH * HEIGHT;
const BYTES = COUNT * 4;
const DENO = new URL("../../node_modules/.bin/deno", import.meta.url).pathname;

const caBench = await compileCaBenchClient(15991);
const caClient = caBench.run;

async function pvaClient(port: number, pv: string): Promise<Record<string, number>> {
  const out = await new Deno.Command(DENO, {
    args: [
      "run",
      "-A",
      ...(values.profile === undefined ? [] : ["--cpu-prof-md", "--cpu-prof-dir", values.profile]),
      new URL("./pva_monitor_client.ts", import.meta.url).pathname,
      "127.0.0.1",
      String(port),
      pv,
      HALF,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/**
 * Paces the poster. `--fps N` (default 1000, a fast detector): a worker thread sleeps until each
 * frame's due time (`Atomics.wait`, sub-millisecond) and sends the main thread a message, so a
 * frame arrives as an event of its own, as from a detector stream — between two frames the event
 * loop polls the sockets and the servers write; frames due while the main thread was busy are
 * merged into one post (the newest), as a detector does not wait. `--fps 0`: the previous poster,
 * a `setTimeout(0)` turn after each post, which Deno rounds to its 1 ms timer ticks (~2 ms per
 * turn on this box, ~450–500 posts/s with nothing else to do) — a cap that every protocol
 * reaches on a quiet machine, hiding their differences.
 */
function frameTicker(fps: number): { next: () => Promise<void>; close: () => void } {
  if (fps <= 0) {
    return { next: () => new Promise((resolve) => setTimeout(resolve, 0)), close: () => {} };
  }
  // [0]: stop, [1]: a frame message is in flight (not yet taken by the main thread).
  const flags = new Int32Array(new SharedArrayBuffer(8));
  const code = `
    self.onmessage = ({ data }) => {
      const [flags, period] = data;
      const t0 = performance.now();
      for (let k = 1; Atomics.load(flags, 0) === 0; k++) {
        const wait = t0 + k * period - performance.now();
        if (wait > 0) Atomics.wait(flags, 0, 0, wait);
        if (Atomics.compareExchange(flags, 1, 0, 1) === 0) self.postMessage(k);
      }
    };`;
  const worker = new Worker(URL.createObjectURL(new Blob([code], { type: "text/javascript" })), {
    type: "module",
  });
  let waiting: (() => void) | undefined;
  let due = false;
  worker.onmessage = () => {
    Atomics.store(flags, 1, 0);
    const w = waiting;
    waiting = undefined;
    if (w) w();
    else due = true;
  };
  worker.postMessage([flags, 1000 / fps]);
  return {
    next: () => {
      if (due) {
        due = false;
        return Promise.resolve();
      }
      return new Promise((resolve) => (waiting = resolve));
    },
    close: () => {
      Atomics.store(flags, 0, 1);
      Atomics.notify(flags, 0);
      worker.terminate();
    },
  };
}

/** The frame clock of every phase (one thread for the whole run). */
const ticker = frameTicker(Number(values.fps));

/** A detector frame of the `keep` poster: pixels plus the references readers hold. */
interface PoolFrame {
  pixels: Uint32Array;
  refs: number;
}

/** Frames of the `keep` poster: a free one is reused, at most 8 are made (then a frame drops). */
const pool: PoolFrame[] = [];

/** A free frame of the pool (nobody references it), or a new one; undefined when all 8 are held. */
function freeFrame(image: Uint32Array): PoolFrame | undefined {
  const free = pool.find((f) => f.refs === 0);
  if (free !== undefined || pool.length >= 8) return free;
  const frame = { pixels: image.slice(), refs: 0 };
  pool.push(frame);
  return frame;
}

/** `Frame.retain` of a pool frame: one more reference, given back once by the returned function. */
function retainOf(frame: PoolFrame): () => () => void {
  return () => {
    frame.refs++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      frame.refs--;
    };
  };
}

/**
 * Posts images as fast as the frame clock ({@link frameTicker}) allows until stopped. `--post
 * keep` (default): as the IOC posts a detector's frames (`lib/ioc_pvs.ts`) — each frame is an
 * array of a pool, handed over with `keep` and its `retain` and held by the poster until the next
 * frame replaced it; readers may borrow it longer, and a frame is reused only once nobody refers
 * to it. `--post copy`: one image array, copied by every post (`copy: true`). LONG records get the
 * pixels as an int32 view, as the IOC posts uint32 on a LONG PV.
 */
function poster(pv: PvHandle, image: Uint32Array, asLong: boolean): {
  stop: () => Promise<{ posts: number; dropped: number }>;
} {
  let running = true;
  let posts = 0;
  let dropped = 0;
  const view = (a: Uint32Array) => asLong ? new Int32Array(a.buffer, a.byteOffset, a.length) : a;
  const done = (async () => {
    let held: (() => void) | undefined;
    try {
      while (running) {
        if (values.post === "copy") {
          image[0] = posts;
          pv.post(view(image), { copy: true });
          posts++;
        } else {
          const frame = freeFrame(image);
          if (frame === undefined) dropped++;
          else {
            frame.pixels[0] = posts;
            const retain = retainOf(frame);
            const release = retain();
            pv.post(view(frame.pixels), { keep: true, retain });
            held?.();
            held = release;
            posts++;
          }
        }
        await ticker.next();
      }
    } finally {
      held?.();
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
      return { posts, dropped };
    },
  };
}

const load = await Deno.readTextFile("/proc/loadavg");
console.log(
  `# PVA NTNDArray monitor, ${WIDTH}x${HEIGHT} uint32 (${BYTES} bytes), ${SECONDS} s/phase`,
);
console.log(`# load average at start: ${load.trim()} (shared box: numbers are noisy)`);

// Raw loopback stream of the same bytes (one 2 MB message after the other).
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const block = new Uint8Array(24 + BYTES);
const serving = (async () => {
  const conn = await listener.accept();
  try {
    for (;;) {
      let at = 0;
      while (at < block.length) at += await conn.write(block.subarray(at));
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
const raw = await caClient(
  0,
  "rawstream",
  String((listener.addr as Deno.NetAddr).port),
  String(SECONDS),
);
await serving;
listener.close();
const rawRate = raw.bytes / raw.seconds / BYTES;
console.log(`raw stream:        ${rawRate.toFixed(1)} images/s`);

const store = new PvStore(defaultCodec);
const ca = await startCaServer({ env: testServerEnv(), port: 0, store });
const pva = await startLoopbackPvaServer(store);
const image = Uint32Array.from({ length: COUNT }, (_, i) => i * 7);
const asDouble = ca.add({ name: "B:dbl", type: "double", maxCount: COUNT });
const asLong = ca.add({ name: "B:lng", type: "long", maxCount: COUNT });
const forPva = ca.add({ name: "B:nd", type: "double", maxCount: COUNT });
pva.serveImage("B:nd", { width: WIDTH, height: HEIGHT, images: 1, pixel: "uint" });

/** Counts the updates `pvxmonitor` prints in one slice (one `uniqueId` line per update). */
async function pvxmonitor(port: number, pv: string): Promise<Record<string, number>> {
  const child = new Deno.Command(`${values.pvxs}/pvxmonitor`, {
    args: ["-#", "2", "-F", "delta", pv],
    env: {
      PATH: "/usr/bin:/bin",
      EPICS_PVA_NAME_SERVERS: `127.0.0.1:${port}`,
      EPICS_PVA_ADDR_LIST: "",
      EPICS_PVA_AUTO_ADDR_LIST: "NO",
    },
    clearEnv: true,
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let updates = -1;
  let t0 = 0;
  const counting = (async () => {
    let rest = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop()!;
      for (const l of lines) {
        if (!/uniqueId/.test(l)) continue;
        if (updates < 0) t0 = performance.now();
        updates++;
      }
    }
  })();
  await new Promise((r) => setTimeout(r, Number(HALF) * 1000));
  const seconds = (performance.now() - t0) / 1000;
  const counted = updates;
  child.kill("SIGINT");
  await counting;
  await child.status;
  return { updates: counted, seconds, cpu: 0 };
}

type Phase = [string, PvHandle, () => Promise<Record<string, number>>];
let phases: Phase[] = [
  ["CA DOUBLE monitor", asDouble, () => caClient(ca.udpPort, "monitor", "B:dbl", HALF)],
  ["CA LONG monitor", asLong, () => caClient(ca.udpPort, "monitor", "B:lng", HALF)],
  ["PVA NTNDArray", forPva, () => pvaClient(pva.tcpPort, "B:nd")],
];
if (values.pvxs !== undefined) {
  phases.push(["PVA pvxmonitor", forPva, () => pvxmonitor(pva.tcpPort, "B:nd")]);
}
if (values.only !== undefined) {
  const words = values.only.toLowerCase().split(",");
  phases = phases.filter(([label]) => words.some((w) => label.toLowerCase().includes(w)));
}
/** Every measured value per name, over the rounds. */
const samples = new Map<string, number[]>();
const sample = (name: string, v: number) => {
  if (!samples.has(name)) samples.set(name, []);
  samples.get(name)!.push(v);
};
/** CPU seconds (user + system) this process (poster and both servers) used so far. */
function serverCpu(): number {
  const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
interface Tally {
  updates: number;
  seconds: number;
  clientCpu: number;
  serverCpu: number;
  posts: number;
  dropped: number;
}
/** One slice of a phase. */
async function runHalf([label, pv, run]: Phase): Promise<Tally> {
  const cpu0 = serverCpu();
  const post = poster(pv, image, label.includes("LONG"));
  const r = await run();
  const { posts, dropped } = await post.stop();
  return {
    updates: r.updates,
    seconds: r.seconds,
    clientCpu: r.cpu,
    serverCpu: serverCpu() - cpu0,
    posts,
    dropped,
  };
}
for (let round = 1; round <= ROUNDS; round++) {
  // A B C C B A, `CYCLES` times: a load that rises or falls during the round weighs on every
  // phase alike.
  const tallies = new Map<string, Tally>();
  const order: Phase[] = [];
  for (let c = 0; c < CYCLES; c++) order.push(...phases, ...[...phases].reverse());
  for (const phase of order) {
    const t = await runHalf(phase);
    const sum = tallies.get(phase[0]);
    if (sum === undefined) tallies.set(phase[0], t);
    else for (const k of Object.keys(t) as (keyof Tally)[]) sum[k] += t[k];
  }
  const results: Record<string, number> = {};
  for (const [label] of phases) {
    const t = tallies.get(label)!;
    const rate = t.updates / t.seconds;
    results[label] = rate;
    sample(label, rate);
    const perUpdate = (cpu: number) => (1000 * cpu / Math.max(1, t.updates)).toFixed(2);
    console.log(
      `[${round}] ${(label + ":").padEnd(19)}${rate.toFixed(1)} updates/s (${t.posts} posts` +
        `${t.dropped > 0 ? `, ${t.dropped} frames dropped` : ""}; ` +
        `CPU ms/update: client ${perUpdate(t.clientCpu)}, server ${perUpdate(t.serverCpu)}; ` +
        `client got ${(100 * t.clientCpu / t.seconds).toFixed(0)} % of a core) → ` +
        `${(100 * rate / rawRate).toFixed(0)} % of raw`,
    );
  }
  for (const label of ["PVA NTNDArray", "PVA pvxmonitor"]) {
    for (const ca of ["CA DOUBLE monitor", "CA LONG monitor"]) {
      if (results[label] === undefined || results[ca] === undefined) continue;
      const name = `${label} / ${ca.split(" ").slice(0, 2).join(" ")}`;
      sample(name, results[label] / results[ca]);
      console.log(`[${round}] ${name}: ${(results[label] / results[ca]).toFixed(2)}`);
    }
  }
  const loadNow = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  console.log(`[${round}] load average after the round: ${loadNow}`);
}
console.log(`# summary over ${ROUNDS} round(s): min–max (target: every PVA / CA ratio ≥ 1)`);
for (const [name, vs] of samples) {
  const unit = name.includes("/") ? "" : " updates/s";
  const digits = name.includes("/") ? 2 : 1;
  console.log(
    `${name}: ${Math.min(...vs).toFixed(digits)}–${Math.max(...vs).toFixed(digits)}${unit}`,
  );
}
await pva.close();
await ca.close();
await caBench.remove();
ticker.close();
