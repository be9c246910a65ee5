/**
 * End-to-end benchmark of the EIGER stream path at detector speed, in three parts that can run
 * alone (`--part`), so that the capacity of each side is known separately:
 *
 * - `sim`: `diss-ioc eiger-sim` (its own process; frames pre-rendered and pre-compressed) streams
 *   series of 100 images of 1028×512 uint32 bslz4 at 1 ms frame time to a PULL socket in this
 *   process that only counts the frames: the rate the simulator achieves (its `Series streamed`
 *   log line) with nothing decoding on the machine.
 * - `decode`: the IOC's receiving side on a pre-recorded in-memory stream (the same frames,
 *   encoded once): frames copied into receive buffers as the socket reader does, decoded by the
 *   worker pool (`EIGER_DECODE_WORKERS`), checked by the series collector and copied into the
 *   series stack by the assembler — all frames pushed at once, timed from the first push to the
 *   end of the series. No simulator on the CPU.
 * - `e2e`: the simulator streams into `diss-ioc --backend eiger` (its own process) while a libca
 *   client (pyepics) watches the image PV: per series the simulator's rate, the rate the IOC
 *   received and decoded at (`Series received`: first to last image handed on), the time from
 *   the detector's `end` message (the simulator's log time) to the image PV update at the client
 *   (a monitor of the first row: the update event, not 200 MB of transfer), the largest event-loop
 *   lag the IOC saw during the acquisition, the IOC's CPU time per image of each series (from the
 *   client's acquire to the PV update; all threads, and the main thread's part) and over the whole
 *   run, and the IOC's peak RSS (VmHWM) at the end. The IOC
 *   prepares its series stacks after start (`Series stack ready`); the series begin after that.
 *
 * Run it niced on a shared machine; it prints the load average before and after.
 *
 * ```sh
 * nice ./node_modules/.bin/deno run -A scripts/bench/eiger_stream_e2e.ts [--part all|sim|decode|e2e]
 *   [--series 3] [--images 100] [--frame-ms 1] [--workers N] [--in-place 1|0] [--profile DIR]
 *   [--warm-sim 1] [--ioc-flags "--v8-flags=..."] [--ioc-env "KEY=VALUE ..."] [--ioc-log FILE]
 *   [--idle-s 0]
 * ```
 *
 * `decode` alternates rounds that decode in place (the series stack lent to the decoder, as the
 * controller does) with rounds into buffers of their own that the assembler copies (the baseline,
 * in the same run), and prints new output buffers and minor page faults per round. `e2e` runs the
 * IOC with `EIGER_DECODE_IN_PLACE` from `--in-place` (1: default; 0: the copying baseline) and
 * prints per series minor page faults per image, how many images were decoded in place, and the
 * largest decode backlog of the series (`max_backlog`: frames waiting when one arrived, itself
 * included; 1–10 means decoding kept pace with the stream, the bound is 256).
 *
 * `e2e` first lets the simulator stream `--warm-sim` series (default 1) to a counting socket, so
 * that the simulator's own first-series cost (about three times its later CPU per image) does not
 * load the machine the IOC is measured on; the IOC's first series stays cold. `--ioc-flags` replaces
 * the Deno flags the IOC runs with (default `RUNTIME_FLAGS`, as `deno task start`), and
 * `--ioc-env` adds variables to its environment, for A/B runs; `--ioc-log FILE` writes the IOC's whole
 * log there (the benchmark prints only its warnings and errors). The client waits for each series on
 * monitors, not by polling, and the benchmark samples the IOC's CPU every 20 ms: both share the two
 * cores with the simulator and the IOC. Long series (`--images 1000`) need 2 × 2 GB of stacks.
 * `--idle-s N` waits N seconds between the IOC's `Series stack ready` and its first series (an IOC
 * that sat idle between scans: memory left alone can be slow to write again).
 *
 * `--workers` sets `EIGER_DECODE_WORKERS` (default: one per core); `--profile DIR` writes V8 CPU
 * profiles of the IOC (main thread and workers) with Markdown summaries into DIR.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { runPyepics } from "../../tests/support/epics_env.ts";
import { startIoc } from "../../tests/support/ioc_process.ts";
import { RUNTIME_FLAGS } from "../build.ts";
import { connectPull } from "../../devices/eiger/zmtp_socket.ts";
import { SimplonClient } from "../../devices/eiger/simplon.ts";
import { recordSimSeries } from "../../tests/support/eiger.ts";
import { encodeSimMessage } from "../../devices/eiger_sim/encode.ts";
import { defaultDecodeWorkers, StreamDecoder } from "../../devices/eiger/decode_pool.ts";
import { FrameBufferPool } from "../../devices/eiger/frame_buffers.ts";
import { imageTarget } from "../../devices/eiger/image_target.ts";
import { decodeBuffersMade } from "../../devices/eiger/decode_buffers.ts";
import { SeriesCollector } from "../../devices/eiger/series.ts";
import { SeriesAssembler } from "../../lib/series_assembler.ts";
import type { DeviceConfig } from "../../devices/contract.ts";
import { parseProcStat, type ProcStat } from "../../core/proc_stat.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    part: { type: "string", default: "all" },
    series: { type: "string", default: "3" },
    workers: { type: "string" },
    images: { type: "string", default: "100" },
    "frame-ms": { type: "string", default: "1" },
    profile: { type: "string" },
    "in-place": { type: "string", default: "1" },
    "warm-sim": { type: "string", default: "1" },
    "ioc-flags": { type: "string" },
    "ioc-env": { type: "string" },
    "ioc-log": { type: "string" },
    "idle-s": { type: "string", default: "0" },
  },
});
const PART = values.part;
if (!["all", "sim", "decode", "e2e"].includes(PART)) throw new Error(`--part ${PART}?`);
const SERIES = Number(values.series);
const IMAGES = Number(values.images);
const FRAME_S = Number(values["frame-ms"]) / 1000;
const WORKERS = values.workers === undefined ? defaultDecodeWorkers() : Number(values.workers);
const WIDTH = 1028;
const HEIGHT = 512;
const DENO = new URL("../../node_modules/.bin/deno", import.meta.url).pathname;
const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** Log lines of a subprocess, with waiting for a pattern. */
function logLines(stream: ReadableStream<Uint8Array>) {
  const lines: string[] = [];
  let waiters: (() => void)[] = [];
  void (async () => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      lines.push(...parts);
      const w = waiters;
      waiters = [];
      w.forEach((f) => f());
    }
  })();
  const waitFor = async (pattern: RegExp, from = 0, timeoutMs = 60_000): Promise<string> => {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const hit = lines.slice(from).find((l) => pattern.test(l));
      if (hit !== undefined) return hit;
      if (Date.now() > deadline) throw new Error(`no ${pattern}; log:\n${lines.join("\n")}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        timer = setTimeout(resolve, 200);
      });
      clearTimeout(timer);
    }
  };
  return { lines, waitFor };
}

/** `--ioc-env "K=V K2=V2"`: extra environment of the IOC, for A/B runs. */
function iocEnv(spec: string | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of (spec ?? "").split(" ").filter((p) => p !== "")) {
    const eq = pair.indexOf("=");
    if (eq < 1) throw new Error(`--ioc-env: ${pair}: expected KEY=VALUE`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return env;
}

function field(line: string, key: string): number {
  return Number(new RegExp(`${key}=([\\d.]+)`).exec(line)?.[1]);
}

function logTime(line: string): number {
  return Date.parse(line.split(" ")[0]);
}

/** CPU time (user + system, all threads; ms, 10 ms resolution) and minor faults of `pid`. */
function processStat(pid: number): ProcStat {
  return parseProcStat(Deno.readTextFileSync(`/proc/${pid}/stat`));
}

/** CPU time (user + system, all threads) of process `pid` so far, ms (10 ms resolution). */
function processCpuMs(pid: number): number {
  return processStat(pid).cpuMs;
}

/** CPU time (user + system) of thread `tid` of process `pid` so far, ms (10 ms resolution). */
function threadCpuMs(pid: number, tid: number): number {
  return parseProcStat(Deno.readTextFileSync(`/proc/${pid}/task/${tid}/stat`)).cpuMs;
}

/**
 * CPU samples of a process (all threads, and its main thread) every 20 ms, by wall time: two
 * small `/proc` reads per sample, so that the benchmark itself takes little of the CPU it
 * measures (the counters tick in 10 ms anyway).
 */
function sampleCpu(pid: number): {
  at: (ms: number) => { all: number; main: number; faults: number };
  stop: () => void;
} {
  const samples: { t: number; all: number; main: number; faults: number }[] = [];
  const take = () => {
    try {
      const { cpuMs, minorFaults } = processStat(pid);
      samples.push({ t: Date.now(), all: cpuMs, main: threadCpuMs(pid, pid), faults: minorFaults });
    } catch {
      // the process ended
    }
  };
  take();
  const timer = setInterval(take, 20);
  return {
    /** The last sample taken at or before wall time `ms`. */
    at: (ms) => samples.findLast((s) => s.t <= ms) ?? samples[0],
    stop: () => clearInterval(timer),
  };
}

function loadAverage(): string {
  return Deno.loadavg().map((x) => x.toFixed(2)).join(" ");
}

function range(xs: number[]): string {
  const ok = xs.filter(Number.isFinite);
  if (ok.length === 0) return "n/a";
  return `${Math.min(...ok).toFixed(0)}..${Math.max(...ok).toFixed(0)}`;
}

/** Starts `diss-ioc eiger-sim` (uint32 images) and waits until it serves. */
async function startSim() {
  const sim = new Deno.Command(DENO, {
    args: [
      "run",
      "-A",
      ...RUNTIME_FLAGS,
      MAIN,
      "eiger-sim",
      "--api-port",
      "0",
      "--stream-port",
      "0",
      "--bit-depth",
      "32",
    ],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const log = logLines(sim.stderr);
  const running = await log.waitFor(/EIGER simulator running/);
  return {
    log,
    pid: sim.pid,
    apiPort: field(running, "apiPort"),
    streamPort: field(running, "streamPort"),
    async close() {
      try {
        sim.kill("SIGTERM");
      } catch {
        // exited
      }
      await sim.status;
    },
  };
}

/** A simulator started by {@link startSim}. */
type Sim = Awaited<ReturnType<typeof startSim>>;

/**
 * Streams `series` series from `sim` to a PULL socket that only counts frames; returns the rate
 * of each (`Series streamed`) and the simulator's CPU time per image while it streamed.
 */
async function streamToCounter(
  sim: Sim,
  series: number,
): Promise<{ rates: number[]; cpu: number[]; frames: number }> {
  const stop = new AbortController();
  let frames = 0;
  let connected!: () => void;
  const ready = new Promise<void>((resolve) => connected = resolve);
  const reader = (async () => {
    for await (
      const message of connectPull({
        host: "127.0.0.1",
        port: sim.streamPort,
        signal: stop.signal,
        onConnect: () => connected(),
      })
    ) frames += message.length;
  })();
  try {
    await ready;
    const dcu = new SimplonClient({ host: "127.0.0.1", port: sim.apiPort, timeoutMs: 30_000 });
    await dcu.discoverVersion();
    for (
      const [key, value] of [
        ["trigger_mode", "ints"],
        ["ntrigger", 1],
        ["nimages", IMAGES],
        ["count_time", FRAME_S - 1e-7],
      ] as const
    ) await dcu.put("detector", key, value);
    await dcu.put("stream", "format", "cbor");
    await dcu.put("stream", "mode", "enabled");
    const rates: number[] = [];
    const cpu: number[] = [];
    for (let i = 0; i < series; i++) {
      const from = sim.log.lines.length;
      await dcu.command("arm"); // renders and compresses the frames: not counted below
      const cpuBefore = processCpuMs(sim.pid);
      await dcu.command("trigger", { timeoutMs: 120_000 });
      const line = await sim.log.waitFor(/msg="Series streamed"/, from, 120_000);
      cpu.push((processCpuMs(sim.pid) - cpuBefore) / IMAGES);
      rates.push(field(line, "rate"));
      await dcu.command("disarm");
    }
    return { rates, cpu, frames };
  } finally {
    stop.abort();
    await reader.catch(() => {});
  }
}

/** The simulator alone, streaming to a PULL socket that only counts frames. */
async function simPart(): Promise<number[]> {
  const sim = await startSim();
  try {
    const { rates, cpu, frames } = await streamToCounter(sim, SERIES);
    console.log(
      `sim alone: ${SERIES} series of ${IMAGES} images at ${FRAME_S * 1000} ms frame time, ` +
        `sent ${rates.join(", ")} images/s; sim CPU per image ${
          cpu.map((x) => x.toFixed(2)).join(", ")
        } ms (${frames} frames received by a counting PULL socket)`,
    );
    return rates;
  } finally {
    await sim.close();
  }
}

/** Records the simulator's stream of one series (start, images, end) as frames. */
async function recordSeries(): Promise<Uint8Array[]> {
  const { messages } = await recordSimSeries({
    width: WIDTH,
    height: HEIGHT,
    bitDepth: 32,
    images: IMAGES,
  });
  return messages.map(encodeSimMessage);
}

/** The IOC's receiving side on a pre-recorded stream: rates in images/s per round. */
async function decodePart(): Promise<number[]> {
  const recorded = await recordSeries();
  const config: DeviceConfig = {
    channels: [{ name: "threshold_1", meta: {} }],
    numImages: IMAGES,
    width: WIDTH,
    height: HEIGHT,
    pixelType: "uint32",
  };
  const assembler = new SeriesAssembler();
  while (assembler.warm(config, 64 * 2 ** 20));
  const receive = new FrameBufferPool();
  let collector: SeriesCollector | undefined;
  let ended: (() => void) | undefined;
  const decoder = new StreamDecoder(
    { workers: WORKERS, backlog: IMAGES + 16, frames: receive },
    (event) => {
      collector?.handle(event);
      if (collector?.ended || collector?.error !== undefined) ended?.();
    },
  );
  // Alternating rounds: images decoded in place into the series stack (lent to the decoder,
  // as the controller does), and the baseline of the same run: into buffers of their own that
  // the assembler copies into the stack.
  const modes = ["in place", "copy"] as const;
  const results = new Map(
    modes.map((
      m,
    ) => [m, {
      rates: [] as number[],
      cpu: [] as number[],
      faults: [] as number[],
      made: [] as number[],
    }]),
  );
  try {
    // Two rounds to start and warm up the workers (one per mode), then the measured ones.
    for (let round = 0; round < 2 * (SERIES + 1); round++) {
      const mode = modes[round % 2];
      const done = new Promise<void>((resolve) => ended = resolve);
      collector = new SeriesCollector("bench", {
        numImages: IMAGES,
        channels: ["threshold_1"],
        width: WIDTH,
        height: HEIGHT,
        pixelType: "uint32",
      }, (event) => {
        const outcome = assembler.accept(event);
        if (outcome.kind === "data-violation") throw new Error(outcome.detail);
      });
      collector.armed(1);
      assembler.open({
        uuid: `round ${round}`,
        ssqcnt: 0,
        duration: FRAME_S,
        seriesNumber: -1,
        startedAt: 0,
      }, config);
      decoder.setTarget(mode === "in place" ? imageTarget(assembler.lendable()) : undefined);
      const started = performance.now();
      const cpuBefore = processCpuMs(Deno.pid);
      const faultsBefore = processStat(Deno.pid).minorFaults;
      const madeBefore = decoder.workerBuffersMade + decodeBuffersMade();
      for (const bytes of recorded) {
        const frame = receive.take(bytes.length);
        frame.set(bytes);
        decoder.push(frame);
      }
      await done;
      const seconds = (performance.now() - started) / 1000;
      if (collector.error !== undefined) throw new Error(collector.error);
      decoder.setTarget(undefined);
      assembler.frame().retain()();
      assembler.close();
      if (round >= 2) {
        const r = results.get(mode)!;
        r.rates.push(Math.round(IMAGES / seconds));
        r.cpu.push((processCpuMs(Deno.pid) - cpuBefore) / IMAGES);
        r.faults.push((processStat(Deno.pid).minorFaults - faultsBefore) / IMAGES);
        r.made.push(decoder.workerBuffersMade + decodeBuffersMade() - madeBefore);
      }
    }
  } finally {
    decoder.close();
  }
  console.log(
    `IOC receiving side alone (${WORKERS} decode workers, pre-recorded stream of ${IMAGES} ` +
      `images, receive buffers + decode + collector + series stack), alternating rounds:`,
  );
  for (const mode of modes) {
    const r = results.get(mode)!;
    console.log(
      `  ${mode.padEnd(8)}: ${r.rates.join(", ")} images/s; CPU per image (all threads) ${
        r.cpu.map((x) => x.toFixed(2)).join(", ")
      } ms (at most ${
        r.cpu.map((x) => Math.round((1000 * navigator.hardwareConcurrency) / x)).join(", ")
      } images/s on ${navigator.hardwareConcurrency} idle cores); minor faults per image ${
        r.faults.map((x) => x.toFixed(0)).join(", ")
      }; new output buffers per series ${r.made.join(", ")}`,
    );
  }
  const inPlace = results.get("in place")!;
  const copy = results.get("copy")!;
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  console.log(
    `  in place / copy: rate ${(median(inPlace.rates) / median(copy.rates)).toFixed(2)}x, ` +
      `CPU per image ${(median(inPlace.cpu) / median(copy.cpu)).toFixed(2)}x (medians)`,
  );
  return inPlace.rates;
}

/** The simulator streaming into the IOC, watched by pyepics. */
async function e2ePart(): Promise<void> {
  const sim = await startSim();
  try {
    // The simulator's own first series is its costliest (see the module doc): `--warm-sim` series
    // go to a counting socket before the IOC starts; the IOC's first series stays cold.
    const warmSeries = Number(values["warm-sim"]);
    if (warmSeries > 0) {
      const warm = await streamToCounter(sim, warmSeries);
      console.log(
        `sim warm-up: ${warmSeries} series streamed to a counting socket first (sent ${
          warm.rates.join(", ")
        } images/s, sim CPU per image ${warm.cpu.map((x) => x.toFixed(2)).join(", ")} ms)`,
      );
    }
    const streamedLines = () => sim.log.lines.filter((l) => l.includes('msg="Series streamed"'));
    const streamedBefore = streamedLines().length;
    const env: Record<string, string> = {
      EIGER_DEVICE_HOST: "127.0.0.1",
      EIGER_API_PORT: String(sim.apiPort),
      EIGER_STREAM_PORT: String(sim.streamPort),
      EIGER_DEVICE_MODE: "snapshot",
      EIGER_NUM_IMAGES: String(IMAGES),
      EIGER_DECODE_WORKERS: String(WORKERS),
      EIGER_DECODE_IN_PLACE: values["in-place"],
      // Measure, do not fail, when the shared machine is too slow to keep up.
      DISS_ACQUIRE_OVERDUE: "120",
      EIGER_IMAGE_OVERDUE: "60",
      ...iocEnv(values["ioc-env"]),
    };
    const prof = values.profile === undefined
      ? []
      : [`--cpu-prof-dir=${values.profile}`, "--cpu-prof-md", "--cpu-prof-interval=200"];
    const ioc = await startIoc(["--backend", "eiger", "--prefix", "B:"], env, 30_000, {
      denoArgs: [
        "run",
        "-A",
        ...prof,
        ...(values["ioc-flags"] === undefined
          ? RUNTIME_FLAGS
          : values["ioc-flags"].split(" ").filter((flag) => flag !== "")),
        MAIN,
      ],
    });
    const pid = Number(/pid=(\d+)/.exec(ioc.lines[0])?.[1]);
    try {
      await ioc.waitForLine(/msg="Series stack ready"/, 120_000);
      // An IOC that sat idle before its first series, as on a beamline between scans.
      const idleS = Number(values["idle-s"]);
      if (idleS > 0) await new Promise((resolve) => setTimeout(resolve, idleS * 1000));
      const cpuAtStart = processCpuMs(pid);
      const cpuSamples = sampleCpu(pid);
      // count_time + readout (0.1 µs in the simulator) = frame time.
      const duration = FRAME_S - 1e-7;
      const r = await runPyepics(
        `
P, n, duration = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
res = {'ready': wait(P + 'state', 'READY', 60), 'runs': []}
epics.caput(P + 'duration', duration, wait=True)
# Waits on monitors, as a beamline client (ophyd) does: no polling while the series streams.
import threading
updates, got, done = [], threading.Event(), threading.Event()
def on_image(**kw):
    updates.append(time.time())
    got.set()
img = epics.PV(P + 'threshold_1:image', auto_monitor=True, count=1028, callback=on_image)
acq = epics.PV(P + 'acquire', auto_monitor=True,
               callback=lambda value=None, **kw: done.set() if value == 0 else None)
img.wait_for_connection(30)
acq.wait_for_connection(30)
time.sleep(0.5)
for i in range(n):
    before = len(updates)
    got.clear()
    done.clear()
    t0 = time.time()
    epics.caput(P + 'acquire', 1, wait=True)
    ok = False
    for _ in range(120):
        if done.wait(1) or epics.caget(P + 'acquire', use_monitor=False) == 0:
            ok = True
            break
    end = time.time() + 10
    while len(updates) == before and time.time() < end:
        got.wait(0.5)
    res['runs'].append({'ok': ok, 'put': t0, 'update': updates[before] if len(updates) > before else None,
                        'state': epics.caget(P + 'state', use_monitor=False)})
    time.sleep(0.3)
out(res)
`,
        {
          udpPort: ioc.udpPort,
          args: ["B:", String(SERIES), String(duration)],
          timeoutMs: 600_000,
          env: { EPICS_CA_MAX_ARRAY_BYTES: "100000000" },
        },
      );
      cpuSamples.stop();
      if (r.code !== 0) throw new Error(`client failed: ${r.stderr}\n${ioc.lines.join("\n")}`);
      const res = r.json as {
        ready: boolean;
        runs: { ok: boolean; put: number; update: number | null; state: string }[];
      };
      const hwm = Number(
        /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))?.[1],
      ) / 1024;
      const streamed = streamedLines().slice(streamedBefore);
      const received = ioc.lines.filter((l) => l.includes('msg="Series received"'));
      const lags = ioc.lines.filter((l) => l.includes('msg="Acquisition event-loop lag"'));
      const iocCpu = (processCpuMs(pid) - cpuAtStart) / (SERIES * IMAGES);
      const stack = field(ioc.lines.find((l) => l.includes("Series stack ready")) ?? "", "mb");
      console.log(
        `e2e: ${SERIES} series of ${IMAGES} images ${WIDTH}x${HEIGHT} uint32 bslz4 at ` +
          `${FRAME_S * 1000} ms frame time, sim -> IOC (${WORKERS} decode workers) -> pyepics`,
      );
      console.log(
        "series  sim sent/s  IOC decoded/s  ratio  end->PV update ms  max lag ms (busy)" +
          "  IOC CPU/image ms (main thread)  minflt/image  in place  max backlog  state",
      );
      const latencies: number[] = [];
      const decodedRates: number[] = [];
      const seriesCpu: number[] = [];
      res.runs.forEach((run, i) => {
        // The IOC's CPU from the client's acquire to the image PV update (receive, decode, post).
        const from = cpuSamples.at(run.put * 1000);
        const to = cpuSamples.at(run.update === null ? Infinity : run.update * 1000);
        const cpu = (to.all - from.all) / IMAGES;
        const faults = (to.faults - from.faults) / IMAGES;
        seriesCpu.push(cpu);
        const s = streamed[i] ?? "";
        const sent = field(s, "rate");
        const decoded = field(received[i] ?? "", "rate");
        const latency = run.update === null ? NaN : run.update * 1000 - logTime(s);
        latencies.push(latency);
        decodedRates.push(decoded);
        console.log(
          `${String(i + 1).padStart(6)} ${String(sent).padStart(11)} ${
            String(decoded).padStart(14)
          } ${(decoded / sent).toFixed(2).padStart(6)} ${latency.toFixed(0).padStart(18)} ${
            `${field(lags[i] ?? "", "max_ms")} (${field(lags[i] ?? "", "max_busy_ms")})`
              .padStart(18)
          } ${`${cpu.toFixed(2)} (${((to.main - from.main) / IMAGES).toFixed(2)})`.padStart(32)} ${
            faults.toFixed(0).padStart(13)
          } ${String(field(received[i] ?? "", "in_place")).padStart(9)} ${
            String(field(received[i] ?? "", "max_backlog")).padStart(12)
          }  ${run.state}`,
        );
      });
      console.log(
        `e2e summary: decoded ${range(decodedRates)} images/s, end->PV ${
          range(latencies)
        } ms, IOC CPU per image ${
          seriesCpu.map((x) => x.toFixed(2)).join(", ")
        } ms in the series (acquire to PV update), ${
          iocCpu.toFixed(2)
        } ms over the whole run (all threads, incl. idle turns and the client's reads), ` +
          `IOC peak RSS (VmHWM) ${hwm.toFixed(0)} MB (series stacks: 2 x ${stack} MB)`,
      );
      for (const line of ioc.lines.filter((l) => / (ERROR|WARN) /.test(l))) {
        console.log(`IOC: ${line}`);
      }
    } finally {
      await ioc.stop();
      if (values["ioc-log"] !== undefined) {
        await Deno.writeTextFile(values["ioc-log"], ioc.lines.join("\n") + "\n");
      }
    }
  } finally {
    await sim.close();
  }
}

console.log(`load average before: ${loadAverage()} (${navigator.hardwareConcurrency} cores)`);
if (PART === "all" || PART === "sim") await simPart();
if (PART === "all" || PART === "decode") await decodePart();
if (PART === "all" || PART === "e2e") await e2ePart();
console.log(`load average after: ${loadAverage()}`);
