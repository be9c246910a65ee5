/**
 * Channel Access latency while an EIGER series streams into the IOC: the target "search
 * and a caget answered within 100 ms while 1000 frames/s stream in", measured against a baseline
 * in the same run.
 *
 * Each round starts `diss-ioc --backend eiger` (two decode workers) against the simulator in this
 * process (1028×512 uint16, `--images` at `--frame-ms`), waits until the IOC's series stacks are
 * ready (`Series stack ready`; `--cold` starts at once, the first series then also writes new
 * memory), and runs `tests/support/stream_ca_probes.ts`: pyepics probes (search afresh, connect,
 * read) each followed by a raw probe (plain UDP search, create and read on a TCP circuit) until
 * the acquisition ends. Rounds alternate the runtime's socket polling (`--polling`):
 * `default` (Deno's intervals 61/31: the IOC started with `DISS_REEXEC=no` and without the
 * variables), `event` (only `DENO_TOKIO_EVENT_INTERVAL=1`, the setting before), `tuned` (both 1,
 * what every launcher sets and the IOC restarts itself with), `tuned-sw` (both 1 and UDP searches
 * answered on a worker thread, `DISS_CA_SEARCH_WORKER=yes`).
 *
 * Only probes that began after the IOC's `Series started` count (not those while the detector was
 * armed). Printed per round: the probes during the series (pyepics and raw, median/max, count over 100 ms),
 * the IOC's largest event-loop lag and its busy part, the decoded rate; at the end per setting the
 * share of pyepics probes within 100 ms and the median ratio against `default`.
 *
 * ```sh
 * nice ./node_modules/.bin/deno run -A scripts/bench/eiger_stream_ca_latency.ts
 *   [--rounds 2] [--polling default,event,tuned] [--images 200] [--frame-ms 1] [--cold]
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { startIoc } from "../../tests/support/ioc_process.ts";
import { startTestSim } from "../../tests/support/eiger.ts";
import {
  formatSplit,
  logLineTime,
  medianMax,
  probesDuringStream,
  probeSplit,
  runStreamProbes,
  streamSeriesEnv,
} from "../../tests/support/stream_ca_probes.ts";
import { GLOBAL_QUEUE_ENV, IO_POLL_ENV } from "../../core/io_poll.ts";
import { REEXEC_ENV } from "../../lib/runtime_reexec.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "2" },
    polling: { type: "string", default: "default,event,tuned" },
    images: { type: "string", default: "200" },
    "frame-ms": { type: "string", default: "1" },
    cold: { type: "boolean", default: false },
  },
});
const ROUNDS = Number(values.rounds);
const IMAGES = Number(values.images);
const FRAME_S = Number(values["frame-ms"]) / 1000;
const SETTINGS = values.polling.split(",").map((s) => s.trim());

/** Environment and variables to remove per setting. */
const POLLING: Record<string, { env: Record<string, string>; unset: string[] }> = {
  default: { env: { [REEXEC_ENV]: "no" }, unset: [IO_POLL_ENV, GLOBAL_QUEUE_ENV] },
  event: { env: { [REEXEC_ENV]: "no", [IO_POLL_ENV]: "1" }, unset: [GLOBAL_QUEUE_ENV] },
  tuned: { env: { [IO_POLL_ENV]: "1", [GLOBAL_QUEUE_ENV]: "1" }, unset: [] },
  "tuned-sw": {
    env: { [IO_POLL_ENV]: "1", [GLOBAL_QUEUE_ENV]: "1", DISS_CA_SEARCH_WORKER: "yes" },
    unset: [],
  },
};
for (const s of SETTINGS) if (!(s in POLLING)) throw new Error(`unknown --polling ${s}`);

const loadavg = () => Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");

interface Round {
  setting: string;
  pyepics: number[];
  server: number[];
}

async function round(setting: string): Promise<Round> {
  const sim = await startTestSim({ width: 1028, height: 512, bitDepth: 16 });
  try {
    const ioc = await startIoc(
      ["--backend", "eiger", "--prefix", "CAL:"],
      sim.env({ ...streamSeriesEnv(IMAGES), ...POLLING[setting].env }),
      60_000,
      { unsetEnv: POLLING[setting].unset },
    );
    try {
      const running = await ioc.waitForLine(/msg="IOC running"/);
      if (!values.cold) await ioc.waitForLine(/msg="Series stack ready"/, 300_000);
      const probes = await runStreamProbes({
        udpPort: ioc.udpPort,
        tcpPort: Number(/tcp_port=(\d+)/.exec(running)?.[1]),
        prefix: "CAL:",
        duration: FRAME_S - 1e-7,
      });
      const lag = (await ioc.waitForLine(/msg="Acquisition event-loop lag"/, 60_000))
        .replace(/^.*msg="Acquisition event-loop lag" /, "");
      const received = /rate=(\d+)/.exec(await ioc.waitForLine(/msg="Series received"/))?.[1];
      const started = logLineTime(await ioc.waitForLine(/msg="Series started"/));
      const split = probeSplit(probes, started);
      console.log(`  ${setting}: ${formatSplit(split)}; IOC lag ${lag}; decoded ${received}/s`);
      const during = probesDuringStream(probes, started);
      return {
        setting,
        pyepics: during.map((p) => p.ms),
        server: during.map((p) => p.raw.search + p.raw.create + p.raw.read),
      };
    } finally {
      await ioc.stop();
    }
  } finally {
    await sim.close();
  }
}

console.log(
  `eiger_stream_ca_latency: ${IMAGES} images 1028x512 uint16 at ${FRAME_S * 1000} ms, ` +
    `${ROUNDS} rounds of ${SETTINGS.join(",")}${values.cold ? " (cold stacks)" : ""}; ` +
    `load average ${loadavg()}`,
);
const rounds: Round[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 === 0 ? SETTINGS : [...SETTINGS].reverse();
  console.log(`round ${r + 1} (load average ${loadavg()})`);
  for (const setting of order) rounds.push(await round(setting));
}
console.log(`summary (load average ${loadavg()}): probes during the series, all rounds`);
const base = medianMax(rounds.filter((r) => r.setting === SETTINGS[0]).flatMap((r) => r.pyepics));
for (const setting of SETTINGS) {
  const mine = rounds.filter((r) => r.setting === setting);
  const py = mine.flatMap((r) => r.pyepics);
  const server = mine.flatMap((r) => r.server);
  const within = py.filter((ms) => ms <= 100).length;
  const m = medianMax(py);
  const s = medianMax(server);
  console.log(
    `  ${setting}: pyepics median ${m.median.toFixed(0)} max ${m.max.toFixed(0)} ms, ` +
      `${within}/${py.length} within 100 ms (${(100 * within / py.length).toFixed(0)} %); ` +
      `raw median ${s.median.toFixed(0)} max ${s.max.toFixed(0)} ms; median vs ${SETTINGS[0]} ` +
      `${(m.median / base.median).toFixed(2)}x`,
  );
}
