/**
 * IOC benchmark through real libca: a small C client (scripts/bench/c/ioc_client.c, compiled with
 * gcc into a temp dir, linked with -lca) against `main.ts --backend sim` at 1028x512 uint32,
 * 2 channels, 1 image, duration 0, started as `deno task start` does (with `RUNTIME_FLAGS`).
 *
 * (a) latency from the client's put of `acquire` 1 to the arrival of the last channel's image
 *     monitor update (median, p99), with a 64x64 run as baseline;
 * (b) sustained acquisitions/s with auto-acquire (duration 1 µs), counted at the client;
 * (c) peak RSS (VmHWM) of the IOC process.
 *
 * ```sh
 * ./node_modules/.bin/deno run -A scripts/bench/ioc_latency.ts [--n 300] [--seconds 5]
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { caClientEnv, freeUdpPort, killMarkedProcesses } from "../../tests/support/epics_env.ts";
import { type IocProcess, startIoc } from "../../tests/support/ioc_process.ts";
import { SimImageGenerator } from "../../devices/sim_image.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    n: { type: "string", default: "300" },
    seconds: { type: "string", default: "5" },
    "uint32-as": { type: "string", default: "both" },
  },
});
/** Image transports to measure: DOUBLE (default, exact) and/or LONG (`--uint32-as long`). */
const MODES = values["uint32-as"] === "both" ? ["double", "long"] : [values["uint32-as"]!];
const N = Number(values.n);
const SECONDS = Number(values.seconds);
const WARMUP = 30;

async function compileClient(): Promise<{ exe: string; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "diss-bench-" });
  const exe = `${dir}/ioc_client`;
  const src = new URL("./c/ioc_client.c", import.meta.url).pathname;
  const out = await new Deno.Command("gcc", {
    args: ["-O2", "-Wall", "-o", exe, src, "-lca", "-lpthread"],
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`gcc failed: ${new TextDecoder().decode(out.stderr)}`);
  return { exe, dir };
}

async function runClient(exe: string, ioc: IocProcess, args: string[]): Promise<string> {
  const marker = crypto.randomUUID();
  try {
    const out = await new Deno.Command(exe, {
      args,
      env: caClientEnv({ udpPort: ioc.udpPort, marker, repeaterPort: freeUdpPort() }),
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    if (!out.success) {
      throw new Error(`client failed: ${new TextDecoder().decode(out.stderr)}\n${text}`);
    }
    return text;
  } finally {
    killMarkedProcesses(marker);
  }
}

function peakRssMb(ioc: IocProcess): number {
  const pid = Number(/pid=(\d+)/.exec(ioc.lines[0])?.[1]);
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

async function latency(
  exe: string,
  size: string,
  mode: string,
): Promise<{ median: number; p99: number; rss: number }> {
  const ioc = await startIoc(["--backend", "sim", "--prefix", "BENCH:", "--uint32-as", mode], {
    SIM_CHANNELS: "c1,c2",
    SIM_IMAGE_SIZE: size,
    SIM_PIXEL_TYPE: "uint32",
    SIM_NUM_IMAGES: "1",
    SIM_SEED: "1",
  });
  try {
    const text = await runClient(exe, ioc, ["BENCH:", "c2", "latency", String(N + WARMUP)]);
    const ms = [...text.matchAll(/latency_ms=([\d.]+)/g)].map((m) => Number(m[1])).slice(WARMUP);
    ms.sort((a, b) => a - b);
    return { median: percentile(ms, 0.5), p99: percentile(ms, 0.99), rss: peakRssMb(ioc) };
  } finally {
    await ioc.stop("SIGTERM");
  }
}

async function rate(exe: string, mode: string): Promise<{ rate: number; rss: number }> {
  const ioc = await startIoc(
    [
      "--backend",
      "sim",
      "--prefix",
      "BENCH:",
      "--auto-acquire",
      "0.000001",
      "--uint32-as",
      mode,
    ],
    {
      SIM_CHANNELS: "c1,c2",
      SIM_IMAGE_SIZE: "1028x512",
      SIM_PIXEL_TYPE: "uint32",
      SIM_NUM_IMAGES: "1",
      SIM_SEED: "1",
    },
  );
  try {
    await runClient(exe, ioc, ["BENCH:", "c2", "rate", "1"]); // warm-up
    const text = await runClient(exe, ioc, ["BENCH:", "c2", "rate", String(SECONDS)]);
    return { rate: Number(/rate=([\d.]+)/.exec(text)?.[1]), rss: peakRssMb(ioc) };
  } finally {
    await ioc.stop("SIGTERM");
  }
}

/** Milliseconds per sim image (1028x512 uint32) once the JIT warmed up, in this process. */
function simImageMs(): number {
  const gen = new SimImageGenerator({
    seed: 1,
    width: 1028,
    height: 512,
    pixelType: "uint32",
    channels: 2,
  });
  for (let i = 0; i < 200; i++) gen.image(i, 0, i % 2, 0);
  const t = performance.now();
  for (let i = 0; i < 50; i++) gen.image(i, 0, i % 2, 0);
  return (performance.now() - t) / 50;
}

if (import.meta.main) {
  const { exe, dir } = await compileClient();
  try {
    console.log(`sim image 1028x512 uint32:  ${simImageMs().toFixed(2)} ms per image`);
    for (const mode of MODES) {
      const base = await latency(exe, "64x64", mode);
      const big = await latency(exe, "1028x512", mode);
      const sustained = await rate(exe, mode);
      const [cpu] = Deno.loadavg();
      console.log(`--- uint32 images served as ${mode.toUpperCase()} (--uint32-as ${mode})`);
      console.log(
        `load average (1 min) at end: ${cpu.toFixed(2)} on ${navigator.hardwareConcurrency} cores`,
      );
      console.log(
        `baseline 64x64 uint32 x2:   median ${base.median.toFixed(2)} ms  p99 ${
          base.p99.toFixed(2)
        } ms`,
      );
      console.log(
        `1028x512 uint32 x2 (a):    median ${big.median.toFixed(2)} ms  p99 ${
          big.p99.toFixed(2)
        } ms` +
          `  (x${(big.median / base.median).toFixed(1)} of baseline median; target <3 / <10 ms)`,
      );
      console.log(
        `auto-acquire rate (b):     ${sustained.rate.toFixed(1)} acq/s (target >= 100)`,
      );
      console.log(
        `peak RSS (c):              ${Math.max(big.rss, sustained.rss).toFixed(1)} MB ` +
          `(latency run ${big.rss.toFixed(1)}, rate run ${sustained.rss.toFixed(1)}; target < 150)`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
