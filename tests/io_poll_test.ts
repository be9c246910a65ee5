/**
 * The socket-poll interval of the runtime (core/io_poll.ts): how `DENO_TOKIO_EVENT_INTERVAL` is
 * read, and that the IOC warns at startup when it runs with the runtime's default (the launchers
 * set 1; tests/support/ioc_process.ts does too, and tests/eiger_stream_ca_test.ts checks that the
 * IOC under load did not warn).
 */

import assert from "node:assert/strict";
import {
  DEFAULT_IO_POLL_INTERVAL,
  IO_POLL_ENV,
  ioPollInterval,
  RECOMMENDED_IO_POLL_INTERVAL,
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
  } finally {
    await ioc.stop();
  }
});
