import assert from "node:assert/strict";
import { RequestRefusedError, STATE_CODES } from "../lib/controller.ts";
import { acquire, CANCEL, CLEAR, startHarness } from "./support/controller_harness.ts";
import { fakeConfig } from "./support/fake_device.ts";
import { ManualClock, sleep } from "../core/clock.ts";

Deno.test("controller: INIT -> WARMUP -> READY runs Initialize and reads the config", async () => {
  const h = await startHarness();
  assert.deepEqual(h.states, ["WARMUP", "READY"]);
  assert.deepEqual(h.dev.calls, ["startup", "initialize"]);
  assert.equal(h.controller.config?.numImages, 2);
  assert.deepEqual(h.controller.channelMeta, { a: { enerj: 1 }, b: { enerj: 2 } });
  await h.close();
  assert.ok(h.dev.tornDown);
  assert.deepEqual(await h.controller.done, { failed: false, reason: undefined });
});

Deno.test("controller: an already initialized device goes INIT -> READY directly", async () => {
  const h = await startHarness({ initialized: true });
  assert.deepEqual(h.states, ["READY"]);
  assert.ok(!h.dev.calls.includes("initialize"));
  await h.close();
});

Deno.test("controller: state codes match the original", () => {
  assert.equal(STATE_CODES.READY, 2);
  assert.equal(STATE_CODES.INTEGRATE, 4);
  assert.equal(STATE_CODES.FAIL, 8);
});

Deno.test("controller: Initialize polls IsInitialized until true", async () => {
  const h = await startHarness({
    initialize: (dev) => {
      dev.config = fakeConfig();
      return Promise.resolve();
    },
  }, { initPollInterval: 100 });
  assert.deepEqual(h.states, ["WARMUP"]);
  await h.advance(100);
  assert.equal(h.controller.state, "WARMUP");
  h.dev.initialized = true;
  await h.advance(100);
  assert.equal(h.controller.state, "READY");
  await h.close();
});

Deno.test("controller: acquisition READY -> INTEGRATE -> PROCESS -> READY with a full frame", async () => {
  const h = await startHarness();
  const accepted = h.controller.request(acquire(0.5));
  assert.equal(h.controller.state, "INTEGRATE");
  await accepted;
  await h.advance(0);
  assert.deepEqual(h.states, ["WARMUP", "READY", "INTEGRATE", "PROCESS", "READY"]);
  assert.equal(h.frames.length, 1);
  const f = h.frames[0];
  assert.equal(f.ssqcnt, 0);
  assert.equal(f.seriesNumber, 7);
  assert.equal(f.duration, 0.5);
  assert.match(f.uuid, /^[0-9a-f-]{36}$/);
  assert.equal(f.images.a.length, 2 * 4 * 3);
  assert.equal(f.images.a[0], 0);
  assert.equal(f.images.a[12], 10);
  assert.equal(f.images.b[12], 11);
  assert.deepEqual([...f.timestamps], [100, 101]);
  assert.deepEqual([...f.exposures], [0.5, 0.5]);
  await h.controller.request(acquire(0));
  await h.advance(0);
  assert.equal(h.frames[1].ssqcnt, 1);
  await h.close();
});

Deno.test("controller: ssqcnt wraps at 16", async () => {
  const h = await startHarness();
  for (let i = 0; i < 17; i++) {
    await h.controller.request(acquire(0));
    await h.advance(0);
  }
  assert.deepEqual(h.frames.map((f) => f.ssqcnt).slice(14), [14, 15, 0]);
  await h.close();
});

Deno.test("controller: refuses acquire when not READY and bad durations", async () => {
  const h = await startHarness({ acquire: () => new Promise(() => {}) }, { overdue: 0 });
  for (const d of [-1, NaN, Infinity]) {
    await assert.rejects(h.controller.request(acquire(d)), RequestRefusedError);
  }
  assert.equal(h.controller.refusal(acquire(-1))?.includes("Invalid duration"), true);
  await h.controller.request(acquire(1));
  await assert.rejects(h.controller.request(acquire(1)), /Cannot acquire in state INTEGRATE/);
  await assert.rejects(
    h.controller.request({ kind: "command", command: "Initialize" }),
    RequestRefusedError,
  );
  await h.close();
});

Deno.test("controller: cancel during INTEGRATE discards the series and returns to READY", async () => {
  const h = await startHarness({
    acquire: (dev, _d, signal) =>
      new Promise((resolve) => {
        dev.ctx.emit({ type: "start-data", seriesId: "x", seriesNumber: 1 });
        signal.addEventListener("abort", () => resolve());
        dev.script.cancel = () => {
          dev.ctx.emit({ type: "cancel-data", seriesId: "x" });
          resolve();
          return Promise.resolve();
        };
      }),
  });
  await h.controller.request(acquire(10));
  await h.advance(0);
  await assert.rejects(h.controller.request(acquire(1)), RequestRefusedError);
  await h.controller.request(CANCEL);
  assert.equal(h.controller.state, "CANCEL");
  await h.advance(0);
  assert.equal(h.controller.state, "READY");
  assert.equal(h.frames.length, 0);
  assert.ok(h.dev.calls.includes("cancel"));
  await assert.rejects(h.controller.request(CANCEL), /Nothing to cancel/);
  await h.close();
});

Deno.test("controller: a cancel the device never confirms -> ERROR", async () => {
  const h = await startHarness({ acquire: () => new Promise(() => {}) }, {
    cancelTimeout: 2,
    overdue: 0,
  });
  await h.controller.request(acquire(1));
  await h.controller.request(CANCEL);
  await h.advance(1999);
  assert.equal(h.controller.state, "CANCEL");
  await h.advance(1);
  assert.equal(h.controller.state, "ERROR");
  assert.match(h.controller.errors[0], /Cancel not confirmed/);
  await h.close();
});

Deno.test("controller: auto-acquire re-triggers on every READY", async () => {
  const clock = new ManualClock();
  const h = await startHarness({
    acquire: async (dev, duration) => {
      await sleep(clock, duration * 1000);
      dev.emitSeries(`s${dev.calls.length}`);
    },
  }, { autoAcquire: 0.25, clock });
  await h.advance(0);
  assert.equal(h.controller.state, "INTEGRATE");
  await h.advance(250);
  assert.equal(h.frames.length, 1);
  assert.equal(h.frames[0].duration, 0.25);
  await h.advance(250);
  assert.equal(h.frames.length, 2);
  await h.close();
  const n = h.dev.calls.filter((c) => c === "acquire").length;
  await h.advance(1000);
  assert.equal(h.dev.calls.filter((c) => c === "acquire").length, n, "stopped after stop()");
});

Deno.test("controller: ChannelAdjust updates metadata via the device read-back", async () => {
  const h = await startHarness();
  const seen: unknown[] = [];
  h.controller.subscribe({ channel: (ch, v) => seen.push([ch, v]) });
  await h.controller.request({
    kind: "command",
    command: "ChannelAdjust",
    channel: "a",
    values: { enerj: 5 },
  });
  await h.advance(0);
  assert.deepEqual(h.controller.channelMeta.a, { enerj: 5 });
  assert.deepEqual(seen, [["a", { enerj: 5 }]]);
  await assert.rejects(
    h.controller.request({ kind: "command", command: "ChannelAdjust", channel: "zz", values: {} }),
    /Unknown channel zz/,
  );
  await assert.rejects(
    h.controller.request({
      kind: "command",
      command: "ChannelAdjust",
      channel: "a",
      values: { nope: 1 },
    }),
    /Unknown metadata/,
  );
  await assert.rejects(
    h.controller.request({
      kind: "command",
      command: "ChannelAdjust",
      channel: "a",
      values: { enerj: "x" },
    }),
    /must be a number/,
  );
  await h.close();
});

Deno.test("controller: stop during INTEGRATE cancels the device and tears it down", async () => {
  const h = await startHarness({ acquire: () => new Promise(() => {}) });
  await h.controller.request(acquire(1));
  await h.close();
  assert.ok(h.dev.calls.includes("cancel"));
  assert.ok(h.dev.tornDown);
  assert.equal((await h.controller.done).failed, false);
  await assert.rejects(h.controller.request(CLEAR), /stopped/);
});

Deno.test("controller: stop does not hang on a backend whose cancel and teardown hang", async () => {
  const h = await startHarness({
    acquire: () => new Promise(() => {}),
    cancel: () => new Promise(() => {}),
  });
  h.dev.teardown = () => new Promise(() => {});
  await h.controller.request(acquire(1));
  const stopped = h.close();
  await h.advance(3000);
  await h.advance(3000);
  await stopped;
  assert.equal((await h.controller.done).failed, false);
});

/** Idle turns a test runs by hand: the controller's `idleTurn` and a runner counting them. */
function manualIdleTurns() {
  const turns: (() => void)[] = [];
  return {
    idleTurn: (callback: () => void) => {
      turns.push(callback);
      return () => {
        const i = turns.indexOf(callback);
        if (i >= 0) turns.splice(i, 1);
      };
    },
    /** Runs the pending turns (and those they queue); returns how many ran. */
    runTurns: () => {
      let n = 0;
      for (; turns.length > 0; n++) turns.shift()!();
      return n;
    },
  };
}

/**
 * Runs the idle turns that prepare the stacks, then checks that the first refresh pass (one step
 * for the small stacks of the fake device) comes `ms` after, not before.
 */
async function firstRefreshAfter(
  h: { advance: (ms?: number) => Promise<void> },
  runTurns: () => number,
  ms: number,
): Promise<void> {
  assert.ok(runTurns() > 0, "stacks are prepared on idle turns");
  await h.advance(ms - 1);
  assert.equal(runTurns(), 0, `no refresh before ${ms} ms`);
  await h.advance(1);
  assert.equal(runTurns(), 1, `a refresh pass at ${ms} ms`);
}

Deno.test("controller: prepared stacks are read again every stackRefreshMs while idle, not during a series", async () => {
  const { idleTurn, runTurns } = manualIdleTurns();
  let finishSeries: (() => void) | undefined;
  const h = await startHarness({
    acquire: (dev) =>
      new Promise<void>((resolve) => {
        finishSeries = () => {
          dev.emitSeries("s1");
          resolve();
        };
      }),
  }, {
    stackRefreshMs: 1000,
    idleTurn,
  });
  try {
    await firstRefreshAfter(h, runTurns, 1000);
    await h.advance(1000);
    assert.equal(runTurns(), 1, "and the next one");
    await h.advance(500);
    await h.controller.request(acquire(0));
    await h.advance(0);
    assert.equal(h.controller.state, "INTEGRATE");
    runTurns();
    await h.advance(4000); // within the acquisition's overdue allowance (5 s)
    assert.equal(runTurns(), 0, "no refresh while the series is open");
    finishSeries!();
    await h.advance(0);
    assert.equal(h.controller.state, "READY", `errors: ${h.controller.errors}`);
    runTurns(); // warming after the series
    await h.advance(1000);
    assert.equal(runTurns(), 1, "refreshing again once idle");
  } finally {
    await h.close();
  }
});

Deno.test("controller: without stackRefreshMs, prepared stacks are read again every 5 s", async () => {
  const { idleTurn, runTurns } = manualIdleTurns();
  const h = await startHarness({}, { idleTurn });
  try {
    await firstRefreshAfter(h, runTurns, 5000);
  } finally {
    await h.close();
  }
});
