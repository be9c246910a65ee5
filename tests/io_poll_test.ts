/**
 * The runtime's socket polling (core/io_poll.ts): how `DENO_TOKIO_EVENT_INTERVAL` and
 * `DENO_TOKIO_GLOBAL_QUEUE_INTERVAL` are read, and that the IOC warns at startup when it runs with
 * a larger value that was set explicitly (the launchers set 1; tests/support/ioc_process.ts does
 * too, and tests/eiger_stream_ca_test.ts checks that the IOC under load did not warn; without the
 * variables it restarts itself: tests/runtime_reexec_test.ts).
 */

import assert from "node:assert/strict";
import {
  DEFAULT_IO_POLL_INTERVAL,
  GLOBAL_QUEUE_ENV,
  IO_POLL_ENV,
  ioPollInterval,
  RECOMMENDED_IO_POLL_INTERVAL,
  RECOMMENDED_RUNTIME_POLLING,
  runtimePolling,
} from "../core/io_poll.ts";
import { startIoc } from "./support/ioc_process.ts";

Deno.test("io poll: the interval the runtime uses for each value of the variable", () => {
  assert.deepEqual(ioPollInterval(undefined), { interval: DEFAULT_IO_POLL_INTERVAL, ok: false });
  assert.deepEqual(ioPollInterval("1"), { interval: 1, ok: true });
  assert.deepEqual(ioPollInterval("61"), { interval: 61, ok: false });
  assert.deepEqual(ioPollInterval("2"), { interval: 2, ok: false });
  // Not a positive whole number: the runtime would not start; counted as its default.
  for (const bad of ["", "0", "-1", "1.5", "x"]) {
    assert.deepEqual(ioPollInterval(bad), { interval: DEFAULT_IO_POLL_INTERVAL, ok: false }, bad);
  }
  assert.equal(RECOMMENDED_IO_POLL_INTERVAL, 1);
});

Deno.test("io poll: both runtime intervals, which are unset, and whether all are 1", () => {
  assert.deepEqual(runtimePolling({}), {
    intervals: { [IO_POLL_ENV]: 61, [GLOBAL_QUEUE_ENV]: 31 },
    unset: [IO_POLL_ENV, GLOBAL_QUEUE_ENV],
    ok: false,
  });
  assert.deepEqual(runtimePolling(RECOMMENDED_RUNTIME_POLLING), {
    intervals: { [IO_POLL_ENV]: 1, [GLOBAL_QUEUE_ENV]: 1 },
    unset: [],
    ok: true,
  });
  // One is not enough: a task woken by a worker still waits up to 31 turns.
  assert.deepEqual(runtimePolling({ [IO_POLL_ENV]: "1" }), {
    intervals: { [IO_POLL_ENV]: 1, [GLOBAL_QUEUE_ENV]: 31 },
    unset: [GLOBAL_QUEUE_ENV],
    ok: false,
  });
  assert.equal(runtimePolling({ [IO_POLL_ENV]: "1", [GLOBAL_QUEUE_ENV]: "4" }).ok, false);
  assert.deepEqual(RECOMMENDED_RUNTIME_POLLING, { [IO_POLL_ENV]: "1", [GLOBAL_QUEUE_ENV]: "1" });
});

Deno.test("io poll: the IOC warns at startup when sockets are polled only every 61 turns", async () => {
  const ioc = await startIoc(["--backend", "sim", "--prefix", "IOP:"], {
    [IO_POLL_ENV]: String(DEFAULT_IO_POLL_INTERVAL),
  });
  try {
    const line = await ioc.waitForLine(
      /Sockets are polled only every few event-loop turns/,
      30_000,
    );
    assert.match(line, /WARN/);
    assert.match(line, new RegExp(`${IO_POLL_ENV}=${DEFAULT_IO_POLL_INTERVAL}\\b`));
    assert.match(line, /recommended=1\b/);
    // An explicit value is the user's choice: no restart, the warning instead.
    assert.match(line, /restart="the variables were set explicitly"/);
    const running = await ioc.waitForLine(/msg="IOC running"/);
    assert.match(running, new RegExp(`pid=${ioc.pid}\\b`));
  } finally {
    await ioc.stop();
  }
});
