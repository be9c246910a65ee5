import assert from "node:assert/strict";
import { acquire, CLEAR, startHarness } from "./support/controller_harness.ts";
import { fakeConfig } from "./support/fake_device.ts";

Deno.test("errors: startup throwing -> FAIL, done reports the failure", async () => {
  const h = await startHarness({ startup: () => Promise.reject(new Error("no socket")) });
  assert.equal(h.controller.state, "FAIL");
  const exit = await h.controller.done;
  assert.equal(exit.failed, true);
  assert.match(exit.reason!, /Device startup failed: no socket/);
  await assert.rejects(h.controller.request(CLEAR), /stopped/);
  await h.close();
});

Deno.test("errors: Initialize throwing -> ERROR; clear retries initialization", async () => {
  let attempts = 0;
  const h = await startHarness({
    initialize: (dev) => {
      if (++attempts === 1) return Promise.reject(new Error("detector offline"));
      dev.initialized = true;
      dev.config = fakeConfig();
      return Promise.resolve();
    },
  });
  assert.deepEqual(h.states, ["WARMUP", "ERROR"]);
  assert.match(h.controller.errors[0], /Initialize failed: detector offline/);
  await h.controller.request(CLEAR);
  await h.advance(0);
  assert.equal(h.controller.state, "READY");
  assert.deepEqual(h.controller.errors, []);
  assert.equal(attempts, 2);
  await h.close();
});

Deno.test("errors: WARMUP that never finishes times out -> ERROR", async () => {
  const h = await startHarness({ initialize: () => new Promise(() => {}) }, { warmupTimeout: 10 });
  await h.advance(9999);
  assert.equal(h.controller.state, "WARMUP");
  await h.advance(1);
  assert.equal(h.controller.state, "ERROR");
  assert.match(h.controller.errors[0], /Initialization timed out after 10 s/);
  await h.close();
});

Deno.test("errors: error event in WARMUP, READY, INTEGRATE -> ERROR", async () => {
  const inWarmup = await startHarness({
    initialize: (dev) => {
      dev.ctx.emit({ type: "error", message: "cooling failed" });
      return new Promise(() => {});
    },
  });
  assert.equal(inWarmup.controller.state, "ERROR");
  assert.deepEqual(inWarmup.controller.errors, ["cooling failed"]);
  await inWarmup.close();

  const inReady = await startHarness();
  inReady.dev.ctx.emit({ type: "error", message: "high voltage off" });
  await inReady.advance(0);
  assert.equal(inReady.controller.state, "ERROR");
  await inReady.close();

  const inIntegrate = await startHarness({ acquire: () => new Promise(() => {}) });
  await inIntegrate.controller.request(acquire(1));
  inIntegrate.dev.ctx.emit({ type: "error", message: "stream lost" });
  await inIntegrate.advance(0);
  assert.equal(inIntegrate.controller.state, "ERROR");
  assert.ok(inIntegrate.dev.calls.includes("cancel"), "running series cancelled");
  await inIntegrate.close();
});

Deno.test("errors: a failing data hook (PROCESS) -> ERROR", async () => {
  const h = await startHarness();
  h.controller.subscribe({
    data: () => Promise.reject(new Error("disk full")),
  });
  await h.controller.request(acquire(0));
  await h.advance(0);
  assert.equal(h.controller.state, "ERROR");
  assert.match(h.controller.errors[0], /Data hook failed: disk full/);
  assert.ok(h.states.includes("PROCESS"));
  await h.close();
});

Deno.test("errors: acquire throwing -> ERROR with its message", async () => {
  const h = await startHarness({ acquire: () => Promise.reject(new Error("arm refused")) });
  await h.controller.request(acquire(0));
  await h.advance(0);
  assert.equal(h.controller.state, "ERROR");
  assert.match(h.controller.errors[0], /Acquire failed: arm refused/);
  await h.controller.request(CLEAR);
  await h.advance(0);
  assert.equal(h.controller.state, "READY", "fault gone after clear");
  await h.close();
});

Deno.test("errors: fatal error event -> FAIL", async () => {
  const h = await startHarness();
  h.dev.ctx.emit({ type: "error", message: "firmware mismatch", fatal: true });
  await h.advance(0);
  assert.equal(h.controller.state, "FAIL");
  assert.deepEqual(await h.controller.done, { failed: true, reason: "firmware mismatch" });
  await h.close();
});

Deno.test("errors: invalid configuration -> FAIL", async () => {
  const h = await startHarness({ config: fakeConfig({ numImages: 0, channels: [] }) });
  assert.equal(h.controller.state, "FAIL");
  assert.match(h.controller.errors[0], /Invalid device configuration: no channels; numImages/);
  await h.close();
});

Deno.test("errors: initialized but no config -> ERROR", async () => {
  const h = await startHarness({
    initialize: (dev) => {
      dev.initialized = true;
      return Promise.resolve();
    },
  });
  assert.equal(h.controller.state, "ERROR");
  assert.match(h.controller.errors[0], /no configuration/);
  await h.close();
});

Deno.test("errors: config change -> ERROR; clear re-enters ERROR while it persists", async () => {
  const h = await startHarness({}, { runtimeInterval: 1000 });
  h.dev.config = fakeConfig({ width: 8 });
  await h.advance(1000);
  assert.equal(h.controller.state, "ERROR");
  assert.match(h.controller.errors[0], /configuration changed: width 4 -> 8/);
  await h.controller.request(CLEAR);
  await h.advance(0);
  assert.equal(h.controller.state, "ERROR", "fault persists");
  assert.ok(h.dev.calls.includes("clear"));
  assert.equal(h.states.filter((s) => s === "ERROR").length, 1, "stayed in ERROR");
  h.dev.config = fakeConfig();
  await h.controller.request(CLEAR);
  await h.advance(0);
  assert.equal(h.controller.state, "READY");
  await h.close();
});

Deno.test("errors: a config event with a change -> ERROR", async () => {
  const h = await startHarness();
  h.dev.ctx.emit({ type: "config", config: fakeConfig({ pixelType: "uint32" }) });
  await h.advance(0);
  assert.equal(h.controller.state, "ERROR");
  assert.match(h.controller.errors[0], /pixelType uint16 -> uint32/);
  await h.close();
});

Deno.test("errors: device clear failing keeps ERROR", async () => {
  const h = await startHarness({ clear: () => Promise.reject(new Error("still hot")) });
  h.dev.ctx.emit({ type: "error", message: "overheated" });
  await h.advance(0);
  await h.controller.request(CLEAR);
  await h.advance(0);
  assert.equal(h.controller.state, "ERROR");
  assert.deepEqual(h.controller.errors, ["Clear failed: still hot"]);
  await h.close();
});

Deno.test("errors: clear outside ERROR just empties the list; errors hook sees changes", async () => {
  const h = await startHarness();
  const seen: string[][] = [];
  h.controller.subscribe({ errors: (e) => seen.push([...e]) });
  h.dev.ctx.emit({ type: "error", message: "x" });
  await h.advance(0);
  await h.controller.request(CLEAR);
  await h.advance(0);
  assert.deepEqual(seen, [["x"], []]);
  await h.controller.request(CLEAR);
  assert.equal(h.controller.state, "READY");
  await h.close();
});
