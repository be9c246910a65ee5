/**
 * The reproduction, as users run it: `diss-ioc eiger-sim` and `diss-ioc --backend eiger`
 * as two processes, an acquisition through Channel Access (pyepics), then the simulator killed
 * (SIGKILL) and started again on the same ports. The IOC must show ERROR naming the lost
 * configuration, and after `clear` the next acquisition must deliver an image again.
 */

import assert from "node:assert/strict";
import { PYEPICS_ACQUIRE_ONCE, runPyepics } from "./support/epics_env.ts";
import { startIoc } from "./support/ioc_process.ts";

const DENO = new URL("../node_modules/.bin/deno", import.meta.url).pathname;
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const P = "EIG:rst:";

interface SimProcess {
  apiPort: number;
  streamPort: number;
  kill(): Promise<void>;
}

/** Starts `diss-ioc eiger-sim` on the given ports (0 = any) and reads the ports it bound. */
async function startSimProcess(apiPort = 0, streamPort = 0): Promise<SimProcess> {
  const child = new Deno.Command(DENO, {
    args: [
      "run",
      "-A",
      MAIN,
      "eiger-sim",
      "--api-port",
      String(apiPort),
      "--stream-port",
      String(streamPort),
      "--width",
      "32",
      "--height",
      "16",
    ],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  // Safety bound only: a simulator that never starts is killed, which ends the read loop.
  const guard = setTimeout(() => child.kill("SIGKILL"), 30_000);
  let text = "";
  let ports: RegExpExecArray | null = null;
  while (ports === null) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
    ports = /EIGER simulator running.*apiPort=(\d+) streamPort=(\d+)/.exec(text);
  }
  clearTimeout(guard);
  // Keep draining stderr so the simulator never blocks on a full pipe.
  const drain = (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })().catch(() => {});
  if (ports === null) throw new Error(`eiger-sim did not start: ${text}`);
  return {
    apiPort: Number(ports[1]),
    streamPort: Number(ports[2]),
    async kill() {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await child.status;
      await drain;
    },
  };
}

Deno.test("eiger e2e: the simulator is killed and restarted under a running IOC", async () => {
  let sim = await startSimProcess();
  const { apiPort, streamPort } = sim;
  try {
    const ioc = await startIoc(["--backend", "eiger", "--prefix", P], {
      EIGER_DEVICE_HOST: "127.0.0.1",
      EIGER_API_PORT: String(apiPort),
      EIGER_STREAM_PORT: String(streamPort),
      EIGER_POLL_INTERVAL: "0.2",
      EIGER_REQUEST_TIMEOUT: "5",
    });
    try {
      // One script for both phases; `recover` first expects ERROR and clears it.
      const script = `
P, phase = sys.argv[1], sys.argv[2]
res = {}
if phase == 'recover':
    res['error_state'] = wait(P + 'state', 'ERROR', 30)
    res['error'] = epics.caget(P + 'error', as_string=True, use_monitor=False)
    epics.caput(P + 'clear', 1, wait=True)
${PYEPICS_ACQUIRE_ONCE}
res['numid'] = int(epics.caget(P + 'numid', use_monitor=False))
out(res)
`;
      const run = (phase: string) =>
        runPyepics(script, { udpPort: ioc.udpPort, args: [P, phase], timeoutMs: 90_000 });
      const first = await run("acquire");
      assert.equal(first.code, 0, first.stderr + first.stdout + ioc.lines.join("\n"));
      assert.deepEqual(first.json, { ready: true, done: true, state: "READY", numid: 1 });

      await sim.kill();
      sim = await startSimProcess(apiPort, streamPort);
      await ioc.waitForLine(/DCU lost its configuration/);

      const second = await run("recover");
      assert.equal(second.code, 0, second.stderr + second.stdout + ioc.lines.join("\n"));
      const res = second.json as Record<string, unknown>;
      assert.equal(res.error_state, true, ioc.lines.join("\n"));
      assert.match(String(res.error), /lost its configuration|status poll/);
      assert.equal(res.ready, true, ioc.lines.join("\n"));
      assert.equal(res.done, true, ioc.lines.join("\n"));
      assert.equal(res.state, "READY", ioc.lines.join("\n"));
      assert.equal(res.numid, 1, "series 1 of the restarted DCU");
      assert.equal(await ioc.stop("SIGTERM"), 0);
    } finally {
      await ioc.stop("SIGKILL");
    }
  } finally {
    await sim.kill();
  }
});
