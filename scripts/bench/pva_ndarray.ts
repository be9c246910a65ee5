/**
 * pvAccess image benchmark: a 1028×512 uint32 image posted as fast as possible and watched as an
 * NTNDArray monitor through our PVA client (a separate process), next to the CA monitor rate for
 * the same image (C libca client, `scripts/bench/c/ca_bench_client.c`; CA serves uint32 as DOUBLE
 * by default, as LONG with `--uint32-as long`) and the raw loopback stream of the same bytes, all
 * in the same run. Target: PVA updates/s ≥ CA updates/s.
 *
 * The phases run in alternation for `--rounds` rounds (same image, same server, same run); each
 * round prints PVA/CA ratios, and the summary gives the range (min–max) of every rate and ratio.
 * `--only a,b` keeps the phases whose label contains one of the words; `--profile DIR` runs our
 * PVA client process with `--cpu-prof-md` into DIR.
 *
 * With `--pvxs DIR` (a local PVXS build's `bin/linux-x86_64`, see docs/pva.md) the PVA phase is
 * also measured with PVXS's C++ `pvxmonitor` as the client (search over TCP to our port only).
 *
 * Usage: `./node_modules/.bin/deno run -A scripts/bench/pva_ndarray.ts [--seconds 3]
 * [--rounds 3] [--pvxs DIR] [--only pva,long] [--profile DIR]`
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
    pvxs: { type: "string" },
    only: { type: "string" },
    profile: { type: "string" },
  },
});
const SECONDS = Number(values.seconds);
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
      String(SECONDS),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/**
 * Posts images as fast as possible until stopped, yielding to the event loop (a timer turn, so
 * that socket I/O is polled) after each post, as frames arriving from a detector do. Bursts of
 * posts, or `setImmediate` yields, starve the socket writers of every protocol.
 */
function poster(pvs: PvHandle[], image: Uint32Array): { stop: () => Promise<number> } {
  let running = true;
  let posts = 0;
  const done = (async () => {
    while (running) {
      image[0] = posts;
      for (const pv of pvs) pv.post(image, { copy: true });
      posts++;
      await new Promise((resolve) => setTimeout(resolve, 0));
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

/** Counts the updates `pvxmonitor` prints in SECONDS (one `uniqueId` line per update). */
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
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const seconds = (performance.now() - t0) / 1000;
  const counted = updates;
  child.kill("SIGINT");
  await counting;
  await child.status;
  return { updates: counted, seconds, cpu: 0 };
}

type Phase = [string, PvHandle, () => Promise<Record<string, number>>];
let phases: Phase[] = [
  ["CA DOUBLE monitor", asDouble, () => caClient(ca.udpPort, "monitor", "B:dbl", String(SECONDS))],
  ["CA LONG monitor", asLong, () => caClient(ca.udpPort, "monitor", "B:lng", String(SECONDS))],
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
for (let round = 1; round <= ROUNDS; round++) {
  const results: Record<string, number> = {};
  for (const [label, pv, run] of phases) {
    const post = poster([pv], image);
    const r = await run();
    const posts = await post.stop();
    const rate = r.updates / r.seconds;
    results[label] = rate;
    sample(label, rate);
    console.log(
      `[${round}] ${(label + ":").padEnd(19)}${rate.toFixed(1)} updates/s (${posts} posts; ` +
        `client CPU ${(1000 * r.cpu / Math.max(1, r.updates)).toFixed(2)} ms/update) → ` +
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
