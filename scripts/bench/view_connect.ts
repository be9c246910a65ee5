/**
 * End-to-end benchmark of `view --connect`: starts `diss-ioc --backend sim` (auto-acquire,
 * 1028×512 uint32 frames) as a subprocess on loopback (UDP/TCP port 18500), then runs the viewer
 * in-process against it with sixel output into a discarding terminal, and prints the frames per
 * second shown next to the rate at which the IOC posted series (its ssqcnt advance).
 *
 * Run: ./node_modules/.bin/deno run -A scripts/bench/view_connect.ts [frames] [size]
 *
 * @module
 */

import { createCaClient } from "../../ca/client.ts";
import { EXIT, runView } from "../../lib/view/app.ts";
import type { TerminalIo } from "../../lib/view/tty.ts";
import { testPvaServerEnv } from "../../tests/support/epics_env.ts";

const frames = Number(Deno.args[0] ?? 40);
const size = Deno.args[1] ?? "1028x512";
const PORT = 18500;
const env = {
  PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
  HOME: Deno.env.get("HOME") ?? "/tmp",
  EPICS_CAS_SERVER_PORT: String(PORT),
  EPICS_CAS_INTF_ADDR_LIST: "127.0.0.1",
  EPICS_CAS_BEACON_ADDR_LIST: "127.0.0.1",
  EPICS_CAS_AUTO_BEACON_ADDR_LIST: "NO",
  EPICS_CAS_BEACON_PORT: "18501",
  SIM_CHANNELS: "threshold_1,threshold_2",
  SIM_IMAGE_SIZE: size,
  SIM_NUM_IMAGES: "1",
  SIM_PIXEL_TYPE: "uint32",
  SIM_SEED: "1",
  DISS_LOG_LEVEL: "warning",
  // pvAccess on loopback only: OS-assigned ports, no beacons, no search forwarding.
  ...testPvaServerEnv(),
};
const ioc = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    "main.ts",
    "--backend",
    "sim",
    "--prefix",
    "BENCH:",
    "--auto-acquire",
    "0.05",
  ],
  env,
  clearEnv: true,
  stdout: "null",
  stderr: "inherit",
}).spawn();

let bytes = 0;
let draws = 0;
const sink: TerminalIo = {
  outputIsTerminal: true,
  inputIsTerminal: false,
  write(b) {
    bytes += b.length;
    draws++;
    return Promise.resolve();
  },
  size: () => ({ cols: 120, rows: 40 }),
  setRaw() {},
  read: () => Promise.resolve(null),
  onResize: () => () => {},
};

try {
  // warm-up: wait until the IOC serves and one frame arrived
  const caEnv = { EPICS_CA_AUTO_ADDR_LIST: "NO", EPICS_CA_ADDR_LIST: `127.0.0.1:${PORT}` };
  const warm = await runView(
    [
      "--connect",
      "BENCH:",
      "--channels",
      "threshold_1,threshold_2",
      "--frames",
      "1",
      "--output",
      "sixel",
      "--timeout",
      "30",
      "--cell",
      "10x20",
    ],
    { io: sink, env: caEnv, message: (m) => console.error(m) },
  );
  if (warm !== EXIT.OK) throw new Error(`viewer failed to start (exit ${warm})`);
  // baseline: image monitor updates the IOC delivers to a bare CA client (no rendering)
  const client = createCaClient({ env: caEnv });
  let updates = 0;
  const ch = client.channel("BENCH:threshold_1:image");
  await ch.connected(AbortSignal.timeout(10_000));
  ch.subscribe(() => updates++);
  await new Promise((r) => setTimeout(r, 3000));
  const rawRate = (updates - 1) / 3;
  await client.close();
  console.log(`baseline: bare CA monitor of one image PV: ${rawRate.toFixed(1)} updates/s`);
  bytes = 0;
  draws = 0;
  const t0 = performance.now();
  const code = await runView(
    [
      "--connect",
      "BENCH:",
      "--channels",
      "threshold_1,threshold_2",
      "--frames",
      String(frames),
      "--output",
      "sixel",
      "--timeout",
      "10",
      "--cell",
      "10x20",
    ],
    { io: sink, env: caEnv, message: (m) => console.error(m) },
  );
  const s = (performance.now() - t0) / 1000;
  console.log(
    `view --connect, 2 channels ${size} uint32 (served as DOUBLE), sixel 120x40 cells: ` +
      `${frames} frames in ${s.toFixed(2)} s = ${(frames / s).toFixed(1)} frames/s ` +
      `(${draws} writes, ${(bytes / 1e6 / s).toFixed(1)} MB/s of terminal output), exit ${code}`,
  );
} finally {
  ioc.kill("SIGTERM");
  await ioc.status;
}
