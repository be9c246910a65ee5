/**
 * The controller's transition table, without device, sockets or timers: every state × every
 * input against an expected matrix written from the original's state diagram, plus the rules
 * whose outcome depends on the machine's facts.
 */

import assert from "node:assert/strict";
import {
  type ControllerState,
  type Effect,
  initialMachine,
  type Input,
  INPUT_KINDS,
  type InputKind,
  type Machine,
  refusalOf,
  STATES,
  step,
} from "../lib/controller_table.ts";

function input(kind: InputKind): Input {
  return { kind, detail: `why ${kind}` } as Input;
}

/** A typical machine in each state. */
const TYPICAL: Record<ControllerState, Machine> = {
  INIT: initialMachine(),
  WARMUP: { ...initialMachine(), state: "WARMUP" },
  READY: { ...initialMachine({ autoAcquire: true }), state: "READY", configured: true },
  INTEGRATE: { ...initialMachine(), state: "INTEGRATE", configured: true, taskRunning: true },
  PROCESS: {
    ...initialMachine(),
    state: "PROCESS",
    configured: true,
    taskRunning: true,
    closed: true,
    settled: false,
  },
  CANCEL: { ...initialMachine(), state: "CANCEL", configured: true, taskRunning: true },
  ERROR: { ...initialMachine(), state: "ERROR", configured: true, clearing: true },
  FAIL: { ...initialMachine(), state: "FAIL", configured: true },
};

const ANY_BUT_ERROR_FAIL: Partial<Record<InputKind, ControllerState>> = {
  "startup-failed": "FAIL",
  "device-error": "ERROR",
  "device-fatal": "FAIL",
  "stale-task-failed": "ERROR",
  "data-violation": "ERROR",
};

/** Expected next state of every state change; every pair not listed keeps the state. */
const EXPECTED: Record<ControllerState, Partial<Record<InputKind, ControllerState>>> = {
  INIT: {
    ...ANY_BUT_ERROR_FAIL,
    "not-initialized": "WARMUP",
    "query-failed": "ERROR",
    "config-ok": "READY",
    "config-invalid": "FAIL",
    "config-error": "ERROR",
  },
  WARMUP: {
    ...ANY_BUT_ERROR_FAIL,
    "query-failed": "ERROR",
    "config-ok": "READY",
    "config-invalid": "FAIL",
    "config-error": "ERROR",
    "initialize-failed": "ERROR",
    "warmup-timeout": "ERROR",
  },
  READY: { ...ANY_BUT_ERROR_FAIL, acquire: "INTEGRATE", "auto-acquire": "INTEGRATE" },
  INTEGRATE: {
    ...ANY_BUT_ERROR_FAIL,
    cancel: "CANCEL",
    "series-end": "PROCESS",
    "series-cancel": "CANCEL",
    "task-returned": "ERROR",
    "task-failed": "ERROR",
    "acquire-deadline": "ERROR",
  },
  PROCESS: {
    ...ANY_BUT_ERROR_FAIL,
    "hooks-failed": "ERROR",
    "task-failed": "ERROR",
    "acquire-deadline": "ERROR",
  },
  CANCEL: {
    ...ANY_BUT_ERROR_FAIL,
    "task-returned": "ERROR",
    "task-failed": "ERROR",
    "acquire-deadline": "ERROR",
    "cancel-deadline": "ERROR",
  },
  ERROR: {
    "startup-failed": "FAIL",
    "device-fatal": "FAIL",
    "not-initialized": "WARMUP",
    "config-ok": "READY",
    "config-invalid": "FAIL",
  },
  FAIL: {},
};

/** The original's diagram plus cold start, recovery paths and FAIL from anywhere. */
const ALLOWED_EDGES = new Set([
  "INIT>WARMUP",
  "INIT>READY",
  "WARMUP>READY",
  "READY>INTEGRATE",
  "INTEGRATE>PROCESS",
  "INTEGRATE>CANCEL",
  "PROCESS>READY",
  "CANCEL>READY",
  "ERROR>READY",
  "ERROR>WARMUP",
  "ERROR>INIT",
  ...STATES.filter((s) => s !== "ERROR" && s !== "FAIL").map((s) => `${s}>ERROR`),
  ...STATES.filter((s) => s !== "FAIL").map((s) => `${s}>FAIL`),
]);

const switches = (effects: Effect[]) => effects.filter((e) => e.kind === "switch");

Deno.test("table: every state x every input gives the expected next state", () => {
  for (const state of STATES) {
    for (const kind of INPUT_KINDS) {
      const m = TYPICAL[state];
      const r = step(m, input(kind));
      const want = EXPECTED[state][kind] ?? state;
      assert.equal(r.machine.state, want, `${state} + ${kind}`);
      const sw = switches(r.effects);
      if (want === state) assert.equal(sw.length, 0, `${state} + ${kind}: no switch`);
      else {
        assert.ok(ALLOWED_EDGES.has(`${state}>${want}`), `${state}>${want} is an allowed edge`);
        assert.deepEqual(sw, [{ kind: "switch", old: state, state: want }], `${state}+${kind}`);
      }
      if (r.refused !== undefined) {
        assert.deepEqual(r.effects, [], "a refused request does nothing");
        assert.equal(r.machine, m);
      }
    }
  }
});

Deno.test("table: FAIL is final and refuses every request", () => {
  for (const kind of INPUT_KINDS) {
    assert.equal(step(TYPICAL.FAIL, input(kind)).machine.state, "FAIL", kind);
  }
  for (const kind of ["acquire", "cancel", "clear", "adjust"] as const) {
    assert.equal(refusalOf(TYPICAL.FAIL, kind), "Controller failed");
  }
});

Deno.test("table: requests are refused exactly where the original refuses them", () => {
  for (const state of STATES.filter((s) => s !== "FAIL")) {
    const m = TYPICAL[state];
    assert.equal(
      refusalOf(m, "acquire"),
      state === "READY" ? undefined : `Cannot acquire in state ${state}`,
    );
    assert.equal(
      refusalOf(m, "cancel"),
      state === "INTEGRATE" || state === "CANCEL"
        ? undefined
        : `Nothing to cancel in state ${state}`,
    );
    assert.equal(refusalOf(m, "clear"), undefined);
    assert.equal(refusalOf(m, "adjust"), undefined);
  }
});

Deno.test("table: every fault raises its error before the switch; ERROR and FAIL abort the series", () => {
  for (const state of STATES) {
    for (const kind of INPUT_KINDS) {
      const r = step(TYPICAL[state], input(kind));
      const to = r.machine.state;
      if (to === state || (to !== "ERROR" && to !== "FAIL")) continue;
      const kinds = r.effects.map((e) => e.kind);
      const raise = kinds.indexOf("raise");
      assert.ok(raise >= 0 && raise < kinds.indexOf("switch"), `${state}+${kind}: ${kinds}`);
      const seriesOpen = state === "INTEGRATE" || state === "PROCESS" || state === "CANCEL";
      assert.equal(kinds.includes("abort-series"), seriesOpen, `${state}+${kind}: ${kinds}`);
      if (to === "FAIL") assert.equal(kinds.at(-1), "finish");
    }
  }
});

Deno.test("table: entering a state runs its fixed actions in order", () => {
  const acquire = step(TYPICAL.READY, input("acquire"));
  assert.deepEqual(acquire.effects.map((e) => e.kind), [
    "open-series",
    "switch",
    "start-timer",
    "run-acquire",
  ]);
  assert.deepEqual(acquire.machine, {
    ...TYPICAL.READY,
    state: "INTEGRATE",
    taskRunning: true,
    closed: false,
    settled: true,
  });
  const warm = step(TYPICAL.INIT, input("not-initialized"));
  assert.deepEqual(warm.effects.map((e) => e.kind), ["start-timer", "switch", "run-initialize"]);
  const left = step({ ...TYPICAL.WARMUP }, input("config-ok"));
  assert.deepEqual(left.effects, [
    { kind: "stop-timer", timer: "warmup" },
    { kind: "switch", old: "WARMUP", state: "READY" },
  ]);
  const auto = step({ ...TYPICAL.WARMUP, autoAcquire: true }, input("config-ok"));
  assert.deepEqual(auto.effects.at(-1), { kind: "start-timer", timer: "auto-acquire" });
  const stopping = step({ ...TYPICAL.READY, stopping: true }, input("auto-acquire"));
  assert.equal(stopping.machine.state, "READY", "no auto-acquire while stopping");
  const process = step(TYPICAL.INTEGRATE, input("series-end"));
  assert.deepEqual(process.effects.map((e) => e.kind), ["switch", "run-hooks"]);
  const cancel = step(TYPICAL.INTEGRATE, input("cancel"));
  assert.deepEqual(cancel.effects.map((e) => e.kind), [
    "note",
    "switch",
    "start-timer",
    "run-cancel",
  ]);
});

Deno.test("table: a series ends when stream, task and hooks are all done, in any order", () => {
  const orders: InputKind[][] = [
    ["hooks-settled", "task-returned"],
    ["task-returned", "hooks-settled"],
  ];
  for (const order of orders) {
    let m = TYPICAL.PROCESS;
    const seen: ControllerState[] = [];
    for (const kind of order) {
      const r = step(m, input(kind));
      m = r.machine;
      seen.push(m.state);
    }
    assert.deepEqual(seen, ["PROCESS", "READY"], order.join(","));
  }
  for (const order of [["series-cancel", "task-returned"], ["series-end", "task-returned"]]) {
    let m = TYPICAL.CANCEL;
    const seen: ControllerState[] = [];
    for (const kind of order as InputKind[]) {
      const r = step(m, input(kind));
      m = r.machine;
      seen.push(m.state);
      if (m.state === "READY") assert.ok(r.effects.some((e) => e.kind === "close-series"));
    }
    assert.deepEqual(seen, ["CANCEL", "READY"], order.join(","));
  }
  const ownCancel = step(TYPICAL.INTEGRATE, input("series-cancel"));
  assert.equal(ownCancel.machine.closed, true);
  assert.deepEqual(step(ownCancel.machine, input("task-returned")).machine.state, "READY");
  const timeout = step({ ...TYPICAL.PROCESS }, input("acquire-deadline"));
  assert.deepEqual(timeout.effects[0], { kind: "raise", fault: "task-timeout" });
  const open = step(TYPICAL.INTEGRATE, input("acquire-deadline"));
  assert.deepEqual(open.effects[0], { kind: "raise", fault: "acquire-timeout" });
});

Deno.test("table: Clear in ERROR recovers through the device, unless something is still wrong", () => {
  const idle = { ...TYPICAL.ERROR, clearing: false };
  const clear = step(idle, input("clear"));
  assert.deepEqual(clear.effects, [{ kind: "run-clear" }]);
  assert.equal(clear.machine.clearing, true);
  assert.deepEqual(step(clear.machine, input("clear")).effects, [], "one Clear at a time");
  const configured = step(clear.machine, input("clear-done"));
  assert.deepEqual(configured.effects, [{ kind: "ask-initialized" }]);
  assert.equal(configured.machine.state, "ERROR", "READY only once the device answered");
  const fresh = step({ ...clear.machine, configured: false }, input("clear-done"));
  assert.equal(fresh.machine.state, "INIT");
  assert.deepEqual(fresh.effects.at(-1), { kind: "ask-initialized" });
  const running = step({ ...clear.machine, taskRunning: true }, input("clear-done"));
  assert.deepEqual(running.effects, [{ kind: "raise", fault: "still-running" }]);
  const interrupted = step(clear.machine, input("device-error"));
  assert.equal(interrupted.machine.clearing, false, "an error meanwhile cancels the recovery");
  assert.deepEqual(step(interrupted.machine, input("clear-done")).effects, []);
  const failed = step(clear.machine, input("clear-failed"));
  assert.deepEqual(failed.effects, [{
    kind: "raise",
    fault: "clear-failed",
    detail: "why clear-failed",
  }]);
  assert.deepEqual(step(TYPICAL.READY, input("clear")).effects, [{ kind: "forget-errors" }]);
  const stale = step(idle, input("stale-task-failed"));
  assert.deepEqual(stale.effects, [], "an aborted task's failure adds nothing in ERROR");
  assert.equal(stale.machine.taskRunning, false);
});
