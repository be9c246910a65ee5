/**
 * End-to-end benchmark of the EIGER stream path at detector speed: `diss-ioc eiger-sim` (its own
 * process, frames pre-rendered and pre-compressed) streams series of 100 images of 1028×512
 * uint32 bslz4 at 1 ms frame time into `diss-ioc --backend eiger` (its own process, decode
 * workers), and a libca client (pyepics) watches the image PV.
 *
 * Per series it prints: the rate the simulator actually sent at (its `Series streamed` log line),
 * the rate the IOC received and decoded at (its `Series received` line: first to last image
 * handed on), the time from the detector's `end` message (simulator log time) to the image PV
 * update at the client (monitor of the first row: the update event, not 400 MB of transfer), and
 * the IOC's peak RSS (VmHWM) at the end. The baseline in the same run is the simulator's rate.
 *
 * ```sh
 * ./node_modules/.bin/deno run -A scripts/bench/eiger_stream_e2e.ts [--series 3] [--workers N]
 *   [--images 100] [--frame-ms 1]
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { runPyepics } from "../../tests/support/epics_env.ts";
import { startIoc } from "../../tests/support/ioc_process.ts";
import { RUNTIME_FLAGS } from "../build.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    series: { type: "string", default: "3" },
    workers: { type: "string" },
    images: { type: "string", default: "100" },
    "frame-ms": { type: "string", default: "1" },
    profile: { type: "string" },
  },
});
const SERIES = Number(values.series);
const IMAGES = Number(values.images);
const FRAME_S = Number(values["frame-ms"]) / 1000;
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

function field(line: string, key: string): number {
  return Number(new RegExp(`${key}=([\\d.]+)`).exec(line)?.[1]);
}

function logTime(line: string): number {
  return Date.parse(line.split(" ")[0]);
}

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
const simLog = logLines(sim.stderr);
try {
  const running = await simLog.waitFor(/EIGER simulator running/);
  const env: Record<string, string> = {
    EIGER_DEVICE_HOST: "127.0.0.1",
    EIGER_API_PORT: String(field(running, "apiPort")),
    EIGER_STREAM_PORT: String(field(running, "streamPort")),
    EIGER_DEVICE_MODE: "snapshot",
    EIGER_NUM_IMAGES: String(IMAGES),
    // Measure, do not fail, when the shared machine is too slow to keep up.
    DISS_ACQUIRE_OVERDUE: "120",
    EIGER_IMAGE_OVERDUE: "60",
  };
  if (values.workers !== undefined) env.EIGER_DECODE_WORKERS = values.workers;
  const prof = values.profile === undefined
    ? []
    : [`--cpu-prof-dir=${values.profile}`, "--cpu-prof-md", "--cpu-prof-interval=200"];
  const ioc = await startIoc(["--backend", "eiger", "--prefix", "B:"], env, 30_000, {
    denoArgs: ["run", "-A", ...prof, ...RUNTIME_FLAGS, MAIN],
  });
  const pid = Number(/pid=(\d+)/.exec(ioc.lines[0])?.[1]);
  try {
    // count_time + readout (0.1 µs in the simulator) = frame time.
    const duration = FRAME_S - 1e-7;
    const r = await runPyepics(
      `
P, n, duration = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
res = {'ready': wait(P + 'state', 'READY', 60), 'runs': []}
epics.caput(P + 'duration', duration, wait=True)
updates = []
img = epics.PV(P + 'threshold_1:image', auto_monitor=True, count=1028,
               callback=lambda **kw: updates.append(time.time()))
img.wait_for_connection(30)
time.sleep(0.5)
for i in range(n):
    before = len(updates)
    t0 = time.time()
    epics.caput(P + 'acquire', 1, wait=True)
    ok = wait(P + 'acquire', 0, 120)
    end = time.time() + 10
    while len(updates) == before and time.time() < end:
        time.sleep(0.001)
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
    if (r.code !== 0) throw new Error(`client failed: ${r.stderr}\n${ioc.lines.join("\n")}`);
    const res = r.json as {
      ready: boolean;
      runs: { ok: boolean; put: number; update: number | null; state: string }[];
    };
    const hwm = Number(
      /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))?.[1],
    ) / 1024;
    const streamed = simLog.lines.filter((l) => l.includes('msg="Series streamed"'));
    const received = ioc.lines.filter((l) => l.includes('msg="Series received"'));
    console.log(
      `${SERIES} series of ${IMAGES} images 1028x512 uint32 bslz4 at ${FRAME_S * 1000} ms frame ` +
        `time, sim -> IOC (${values.workers ?? "default"} decode workers) -> pyepics`,
    );
    console.log("series  sim sent/s  IOC decoded/s  ratio  end->PV update ms  state");
    res.runs.forEach((run, i) => {
      const s = streamed[i] ?? "";
      const d = received[i] ?? "";
      const sent = field(s, "rate");
      const decoded = field(d, "rate");
      const latency = run.update === null ? NaN : run.update * 1000 - logTime(s);
      console.log(
        `${String(i + 1).padStart(6)} ${String(sent).padStart(11)} ${
          String(decoded).padStart(14)
        } ` +
          `${(decoded / sent).toFixed(2).padStart(6)} ${
            latency.toFixed(0).padStart(18)
          }  ${run.state}`,
      );
    });
    console.log(`IOC peak RSS (VmHWM): ${hwm.toFixed(0)} MB`);
    for (const line of ioc.lines.filter((l) => / (ERROR|WARN) |loop lag/.test(l))) {
      console.log(`IOC: ${line}`);
    }
  } finally {
    await ioc.stop();
  }
} finally {
  try {
    sim.kill("SIGTERM");
  } catch {
    // exited
  }
  await sim.status;
}
