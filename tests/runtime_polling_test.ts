/**
 * The runtime settings the IOC runs with (core/io_poll.ts) keep a socket read from waiting behind
 * a busy event loop: `tests/support/runtime_polling_probe.ts` runs as its own program — a loop of
 * 2 ms `setImmediate` turns, a worker posting a message every millisecond, and TCP round trips
 * from that worker whose replies carry the event-loop turn they were read in — and reports, per
 * round trip, the turns the read waited. Turns, not milliseconds: the result does not depend on
 * the machine's load.
 *
 * Measured (2026-12-02): with both intervals 1 at most 1 turn; with only
 * `DENO_TOKIO_EVENT_INTERVAL=1` (the IOC's setting before) p90 25, max 30 turns (the task woken by
 * the worker waits in tokio's shared queue, looked at every 31st poll); with Deno's defaults
 * median 42, max 86 turns.
 */

import assert from "node:assert/strict";
import {
  DEFAULT_RUNTIME_POLLING,
  GLOBAL_QUEUE_ENV,
  IO_POLL_ENV,
  RECOMMENDED_RUNTIME_POLLING,
} from "../core/io_poll.ts";

const DENO = new URL("../node_modules/.bin/deno", import.meta.url).pathname;
const PROBE = new URL("./support/runtime_polling_probe.ts", import.meta.url).pathname;

async function turnsWaited(env: Record<string, string>, probes: number): Promise<number[]> {
  const out = await new Deno.Command(DENO, {
    args: ["run", "-A", PROBE, String(probes)],
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", NO_COLOR: "1", ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, text + new TextDecoder().decode(out.stderr));
  const waited = (JSON.parse(text.trim().split("\n").at(-1)!) as { waited: number[] }).waited;
  assert.equal(waited.length, probes);
  return waited.sort((a, b) => a - b);
}

const summary = (w: number[]) =>
  `median ${w[w.length >> 1]}, p90 ${w[Math.floor(w.length * 0.9)]}, max ${w[w.length - 1]} turns`;

Deno.test("runtime polling: with the IOC's settings a socket read waits at most a few turns", async () => {
  const tuned = await turnsWaited({ ...RECOMMENDED_RUNTIME_POLLING }, 100);
  const defaults = await turnsWaited({
    [IO_POLL_ENV]: String(DEFAULT_RUNTIME_POLLING[IO_POLL_ENV]),
    [GLOBAL_QUEUE_ENV]: String(DEFAULT_RUNTIME_POLLING[GLOBAL_QUEUE_ENV]),
  }, 20);
  console.log(`read waited: IOC settings ${summary(tuned)}; runtime defaults ${summary(defaults)}`);
  // The probe sees the problem where it exists...
  assert.ok(defaults[defaults.length - 1] > 3, `defaults: ${summary(defaults)}`);
  // ...and the IOC's settings remove it.
  assert.ok(tuned[tuned.length - 1] <= 3, `IOC settings: ${summary(tuned)}`);
});
