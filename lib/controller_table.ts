/**
 * The controller's state machine as one table, free of I/O: no device calls, no timers, no
 * promises. {@link step} maps the machine and one {@link Input} to the next machine and the
 * {@link Effect}s the runner (`lib/controller.ts`) must carry out, in order. Inputs are facts the
 * runner observed (a device answer, a finished task, a timer, an application request, an outcome
 * of the series assembler); effects are what it must do next (ask the device, start a task, start
 * or stop a timer, call hooks, record an error). Queries are answered by the runner at once, by
 * feeding the answer back as the next input.
 *
 * States (the original's, served on the `state` PV):
 *
 * ```
 * INIT → WARMUP → READY → INTEGRATE → PROCESS → READY
 *         INIT → READY    INTEGRATE → CANCEL → READY
 * any but FAIL → ERROR → (Clear) READY | WARMUP | INIT      any → FAIL (final)
 * ```
 *
 * The table {@link TABLE} lists, for every state, the rule of every input; an input without a
 * rule in a state is ignored there ({@link ignored}). Leaving and entering states has fixed
 * actions ({@link transitionEffects}): entering WARMUP starts Initialize and the warm-up timer,
 * entering INTEGRATE starts the acquire task and its deadline, entering READY arms auto-acquire,
 * entering ERROR or FAIL aborts the open series.
 *
 * @module
 */

/** Controller states (served as strings on the `state` PV). */
export type ControllerState =
  | "INIT"
  | "WARMUP"
  | "READY"
  | "INTEGRATE"
  | "PROCESS"
  | "CANCEL"
  | "ERROR"
  | "FAIL";

/** Every state, in the order of their numeric codes. */
export const STATES: readonly ControllerState[] = [
  "INIT",
  "WARMUP",
  "READY",
  "INTEGRATE",
  "PROCESS",
  "CANCEL",
  "ERROR",
  "FAIL",
];

/** The machine: the state plus the few facts its rules depend on. */
export interface Machine {
  readonly state: ControllerState;
  /** The first configuration was accepted. */
  readonly configured: boolean;
  /** A device acquire task has not returned yet (of the open series or an aborted one). */
  readonly taskRunning: boolean;
  /** The open series' data stream closed (EndData or CancelData accepted). */
  readonly closed: boolean;
  /** The open series' data hooks settled (or none ran). */
  readonly settled: boolean;
  /** A Clear runs on the device; an error meanwhile cancels the recovery. */
  readonly clearing: boolean;
  /** Auto-acquire is on (an acquisition starts whenever READY). */
  readonly autoAcquire: boolean;
  /** The application is stopping the controller (no new acquisitions). */
  readonly stopping: boolean;
}

/** The machine before start. */
export function initialMachine(options: { autoAcquire?: boolean } = {}): Machine {
  return {
    state: "INIT",
    configured: false,
    taskRunning: false,
    closed: false,
    settled: true,
    clearing: false,
    autoAcquire: options.autoAcquire ?? false,
    stopping: false,
  };
}

/** Why the machine enters ERROR or FAIL; the runner turns the code into a message. */
export type Fault =
  | "startup-failed"
  | "query-failed"
  | "initialize-failed"
  | "warmup-timeout"
  | "config-error"
  | "config-invalid"
  | "device-error"
  | "device-fatal"
  | "data-violation"
  | "task-failed"
  | "task-without-end"
  | "acquire-timeout"
  | "task-timeout"
  | "cancel-timeout"
  | "hooks-failed"
  | "clear-failed"
  | "still-running";

/** Inputs: what the runner observed. `detail` texts travel to the error message. */
export type Input =
  // program and application
  | { kind: "start" }
  | { kind: "startup-failed"; detail: string }
  | { kind: "acquire" }
  | { kind: "auto-acquire" }
  | { kind: "cancel" }
  | { kind: "clear" }
  | { kind: "adjust" }
  | { kind: "stop" }
  // answers to the runner's queries (ask-initialized, read-config)
  | { kind: "initialized" }
  | { kind: "not-initialized" }
  | { kind: "query-failed"; detail: string }
  | { kind: "config-ok" }
  | { kind: "config-invalid"; detail: string }
  | { kind: "config-error"; detail: string }
  // device tasks and events
  | { kind: "initialize-done" }
  | { kind: "initialize-failed"; detail: string }
  | { kind: "device-initialized" }
  | { kind: "device-error"; detail: string }
  | { kind: "device-fatal"; detail: string }
  | { kind: "task-returned" }
  | { kind: "task-failed"; detail: string }
  | { kind: "stale-task-returned" }
  | { kind: "stale-task-failed"; detail: string }
  | { kind: "clear-done" }
  | { kind: "clear-failed"; detail: string }
  // outcomes of the series assembler
  | { kind: "series-start" }
  | { kind: "image" }
  | { kind: "series-end" }
  | { kind: "series-cancel" }
  | { kind: "data-violation"; detail: string }
  // data hooks
  | { kind: "hooks-settled" }
  | { kind: "hooks-failed"; detail: string }
  // timers
  | { kind: "warmup-timeout" }
  | { kind: "init-poll" }
  | { kind: "acquire-deadline" }
  | { kind: "cancel-deadline" };

/** The kinds of {@link Input}. */
export type InputKind = Input["kind"];

/** Every input kind (for exhaustive tests and documentation). */
export const INPUT_KINDS: readonly InputKind[] = [
  "start",
  "startup-failed",
  "acquire",
  "auto-acquire",
  "cancel",
  "clear",
  "adjust",
  "stop",
  "initialized",
  "not-initialized",
  "query-failed",
  "config-ok",
  "config-invalid",
  "config-error",
  "initialize-done",
  "initialize-failed",
  "device-initialized",
  "device-error",
  "device-fatal",
  "task-returned",
  "task-failed",
  "stale-task-returned",
  "stale-task-failed",
  "clear-done",
  "clear-failed",
  "series-start",
  "image",
  "series-end",
  "series-cancel",
  "data-violation",
  "hooks-settled",
  "hooks-failed",
  "warmup-timeout",
  "init-poll",
  "acquire-deadline",
  "cancel-deadline",
];

/** Timers the runner keeps for the machine. */
export type TimerName = "warmup" | "init-poll" | "acquire" | "cancel" | "auto-acquire";

/** What the runner must do, in order. */
export type Effect =
  /** Query IsInitialized; answer with initialized / not-initialized / query-failed. */
  | { kind: "ask-initialized" }
  /** Query GetConfig and check it; answer with config-ok / config-invalid / config-error. */
  | { kind: "read-config" }
  /** Start the Initialize task (answer later: initialize-done / initialize-failed). */
  | { kind: "run-initialize" }
  /** Open a series (new uuid and ssqcnt) in the assembler, before the switch to INTEGRATE. */
  | { kind: "open-series" }
  /** Start the Acquire task of the open series. */
  | { kind: "run-acquire" }
  /** Command Cancel on the device. */
  | { kind: "run-cancel" }
  /** Abort the open series: its task's signal, a device Cancel if it runs, drop its data. */
  | { kind: "abort-series" }
  /** Hand the assembled series to the data hooks (answer: hooks-settled / hooks-failed). */
  | { kind: "run-hooks" }
  /** Forget the open (finished or discarded) series. */
  | { kind: "close-series" }
  /** Empty the error list, then command Clear (answer: clear-done / clear-failed). */
  | { kind: "run-clear" }
  /** Empty the error list (Clear outside ERROR). */
  | { kind: "forget-errors" }
  /** Tell hooks the series started (StartData accepted). */
  | { kind: "announce-series" }
  | { kind: "start-timer"; timer: TimerName }
  | { kind: "stop-timer"; timer: TimerName }
  /** Record an error (ERROR) or the failure (FAIL). */
  | { kind: "raise"; fault: Fault; detail?: string }
  /** Switch state: log it and call the state hooks. */
  | { kind: "switch"; old: ControllerState; state: ControllerState }
  /** Write a log line (warnings and notes about ignored or discarded input). */
  | { kind: "note"; level: "info" | "warning"; message: string }
  /** Stop everything: FAIL reached. */
  | { kind: "finish" };

/** A rule's answer for one input in one state. */
export interface Outcome {
  /** Next state; omitted = stay. */
  next?: ControllerState;
  /** Facts to update. */
  set?: Partial<Omit<Machine, "state">>;
  /** Effects before the state switch (and its fixed actions). */
  effects?: Effect[];
  /** Effects after the state switch. */
  after?: Effect[];
  /** A request refused in this state, with the reason. */
  refuse?: string;
}

type Rule = (m: Machine, input: Input) => Outcome;

function detail(input: Input): string | undefined {
  return "detail" in input ? input.detail : undefined;
}

/** Enter ERROR with `fault` (from any state but FAIL; in ERROR the error is added). */
function error(fault: Fault): Rule {
  return (_m, input) => ({
    next: "ERROR",
    set: { clearing: false },
    effects: [{ kind: "raise", fault, detail: detail(input) }],
  });
}

/** Enter FAIL with `fault`. */
function failure(fault: Fault): Rule {
  return (_m, input) => ({
    next: "FAIL",
    effects: [{ kind: "raise", fault, detail: detail(input) }],
  });
}

const refuseAcquire: Rule = (m) => ({ refuse: `Cannot acquire in state ${m.state}` });
const refuseCancel: Rule = (m) => ({ refuse: `Nothing to cancel in state ${m.state}` });
const forgetErrors: Rule = () => ({ effects: [{ kind: "forget-errors" }] });
const accept: Rule = () => ({});
const failed: Rule = () => ({ refuse: "Controller failed" });
const ignoreData: Rule = (_m, input) => ({
  effects: [{
    kind: "note",
    level: "warning",
    message: `Ignoring data event while in error: ${detail(input)}`,
  }],
});
const stop: Rule = () => ({ set: { stopping: true } });
const staleReturned: Rule = () => ({ set: { taskRunning: false } });
const staleFailed: Rule = (_m, input) => ({
  next: "ERROR",
  set: { taskRunning: false, clearing: false },
  effects: [{ kind: "raise", fault: "task-failed", detail: detail(input) }],
});
const readConfig: Rule = () => ({ effects: [{ kind: "read-config" }] });
const askInitialized: Rule = () => ({ effects: [{ kind: "ask-initialized" }] });
const ready: Rule = () => ({ next: "READY", set: { configured: true } });
const acquire: Rule = () => ({ next: "INTEGRATE" });
/** The series is over when its stream closed, its task returned and its hooks settled. */
function readyWhenDone(m: Machine): Outcome {
  return !m.closed || m.taskRunning || !m.settled
    ? {}
    : { next: "READY", effects: [{ kind: "close-series" }] };
}
function merge(a: Outcome, b: Outcome): Outcome {
  return {
    next: b.next ?? a.next,
    set: { ...a.set, ...b.set },
    effects: [...(a.effects ?? []), ...(b.effects ?? [])],
  };
}

/** Rules every state shares unless it overrides them. */
const COMMON: Readonly<Partial<Record<InputKind, Rule>>> = {
  "startup-failed": failure("startup-failed"),
  acquire: refuseAcquire,
  cancel: refuseCancel,
  clear: forgetErrors,
  adjust: accept,
  stop,
  "device-error": error("device-error"),
  "device-fatal": failure("device-fatal"),
  "stale-task-returned": staleReturned,
  "stale-task-failed": staleFailed,
  "data-violation": error("data-violation"),
};

/** Rules of the states while a series is open (INTEGRATE, PROCESS, CANCEL). */
const SERIES: Readonly<Partial<Record<InputKind, Rule>>> = {
  "series-start": () => ({ effects: [{ kind: "announce-series" }] }),
  "task-failed": (_m, input) => ({
    next: "ERROR",
    set: { taskRunning: false },
    effects: [{ kind: "raise", fault: "task-failed", detail: detail(input) }],
  }),
  "acquire-deadline": (m) => ({
    next: "ERROR",
    effects: [{ kind: "raise", fault: m.closed ? "task-timeout" : "acquire-timeout" }],
  }),
};

/**
 * The table: for each state, the rule of each input (in addition to {@link COMMON}). Inputs
 * without a rule are ignored in that state.
 */
export const TABLE: Readonly<Record<ControllerState, Readonly<Partial<Record<InputKind, Rule>>>>> =
  {
    INIT: {
      ...COMMON,
      start: askInitialized,
      initialized: readConfig,
      "not-initialized": () => ({ next: "WARMUP" }),
      "query-failed": error("query-failed"),
      "config-ok": ready,
      "config-invalid": failure("config-invalid"),
      "config-error": error("config-error"),
    },
    WARMUP: {
      ...COMMON,
      initialized: readConfig,
      "not-initialized": () => ({ effects: [{ kind: "start-timer", timer: "init-poll" }] }),
      "query-failed": error("query-failed"),
      "config-ok": ready,
      "config-invalid": failure("config-invalid"),
      "config-error": error("config-error"),
      "initialize-done": askInitialized,
      "initialize-failed": error("initialize-failed"),
      "device-initialized": readConfig,
      "init-poll": askInitialized,
      "warmup-timeout": error("warmup-timeout"),
    },
    READY: {
      ...COMMON,
      acquire,
      "auto-acquire": (m) =>
        m.autoAcquire && !m.stopping
          ? {
            next: "INTEGRATE",
            effects: [{ kind: "note", level: "info", message: "Auto-acquire" }],
          }
          : {},
    },
    INTEGRATE: {
      ...COMMON,
      ...SERIES,
      cancel: () => ({
        next: "CANCEL",
        effects: [{ kind: "note", level: "info", message: "Cancel" }],
        after: [{ kind: "start-timer", timer: "cancel" }, { kind: "run-cancel" }],
      }),
      "series-end": () => ({ next: "PROCESS", set: { closed: true, settled: false } }),
      "series-cancel": (m) => ({
        next: "CANCEL",
        set: { closed: true },
        effects: m.stopping
          ? []
          : [{ kind: "note", level: "warning", message: "Device cancelled the series on its own" }],
      }),
      "task-returned": () => ({
        next: "ERROR",
        set: { taskRunning: false },
        effects: [{ kind: "raise", fault: "task-without-end" }],
      }),
    },
    PROCESS: {
      ...COMMON,
      ...SERIES,
      "hooks-settled": (m) =>
        merge({ set: { settled: true } }, readyWhenDone({ ...m, settled: true })),
      "hooks-failed": error("hooks-failed"),
      "task-returned": (m) =>
        merge({ set: { taskRunning: false } }, readyWhenDone({ ...m, taskRunning: false })),
    },
    CANCEL: {
      ...COMMON,
      ...SERIES,
      cancel: () => ({}),
      "series-end": (m) =>
        merge(
          {
            set: { closed: true },
            effects: [{
              kind: "note",
              level: "info",
              message: "Series completed before the cancel took effect; discarded",
            }],
          },
          readyWhenDone({ ...m, closed: true }),
        ),
      "series-cancel": (m) =>
        merge({ set: { closed: true } }, readyWhenDone({ ...m, closed: true })),
      "task-returned": (m) =>
        m.closed
          ? merge({ set: { taskRunning: false } }, readyWhenDone({ ...m, taskRunning: false }))
          : {
            next: "ERROR",
            set: { taskRunning: false },
            effects: [{ kind: "raise", fault: "task-without-end" }],
          },
      "cancel-deadline": error("cancel-timeout"),
    },
    ERROR: {
      ...COMMON,
      clear: (m) => m.clearing ? {} : { set: { clearing: true }, effects: [{ kind: "run-clear" }] },
      "clear-done": (m) => {
        if (!m.clearing) return {};
        if (m.taskRunning) {
          return {
            set: { clearing: false },
            effects: [{ kind: "raise", fault: "still-running" }],
          };
        }
        return m.configured
          ? { set: { clearing: false }, effects: [{ kind: "ask-initialized" }] }
          : { next: "INIT", set: { clearing: false }, after: [{ kind: "ask-initialized" }] };
      },
      "clear-failed": (m, input) =>
        m.clearing
          ? {
            set: { clearing: false },
            effects: [{ kind: "raise", fault: "clear-failed", detail: detail(input) }],
          }
          : {},
      initialized: readConfig,
      "not-initialized": () => ({ next: "WARMUP" }),
      "query-failed": error("query-failed"),
      "config-ok": ready,
      "config-invalid": failure("config-invalid"),
      "config-error": error("config-error"),
      "stale-task-failed": staleReturned,
      "hooks-failed": error("hooks-failed"),
      "data-violation": ignoreData,
    },
    FAIL: {
      acquire: failed,
      cancel: failed,
      clear: failed,
      adjust: failed,
      stop,
      "stale-task-returned": staleReturned,
      "stale-task-failed": staleReturned,
      "data-violation": ignoreData,
    },
  };

/** Effects of leaving `old` for `next`, the switch itself, and of entering `next`. */
export function transitionEffects(m: Machine, old: ControllerState): Effect[] {
  const next = m.state;
  const out: Effect[] = [];
  const seriesOpen = (s: ControllerState) => s === "INTEGRATE" || s === "PROCESS" || s === "CANCEL";
  if (old === "WARMUP") out.push({ kind: "stop-timer", timer: "warmup" });
  if (seriesOpen(old) && !seriesOpen(next)) {
    out.push({ kind: "stop-timer", timer: "acquire" }, { kind: "stop-timer", timer: "cancel" });
    if (next === "ERROR" || next === "FAIL") out.push({ kind: "abort-series" });
  }
  if (next === "WARMUP") out.push({ kind: "start-timer", timer: "warmup" });
  if (next === "INTEGRATE") out.push({ kind: "open-series" });
  out.push({ kind: "switch", old, state: next });
  if (next === "WARMUP") out.push({ kind: "run-initialize" });
  if (next === "INTEGRATE") {
    out.push({ kind: "start-timer", timer: "acquire" }, { kind: "run-acquire" });
  }
  if (next === "PROCESS") out.push({ kind: "run-hooks" });
  if (next === "READY" && m.autoAcquire && !m.stopping) {
    out.push({ kind: "start-timer", timer: "auto-acquire" });
  }
  if (next === "FAIL") out.push({ kind: "finish" });
  return out;
}

/** The rule of `kind` in `state`, or undefined when the input is ignored there. */
export function ruleOf(state: ControllerState, kind: InputKind): Rule | undefined {
  return TABLE[state][kind];
}

/** Whether `kind` is ignored in `state` (no rule). */
export function ignored(state: ControllerState, kind: InputKind): boolean {
  return ruleOf(state, kind) === undefined;
}

/** Result of {@link step}. */
export interface Step {
  machine: Machine;
  effects: Effect[];
  /** Set when the input was a request refused in this state. */
  refused?: string;
}

/**
 * One transition: the machine after `input` and the effects to carry out, in order. A refused
 * request leaves the machine unchanged and has no effects.
 */
export function step(m: Machine, input: Input): Step {
  const rule = ruleOf(m.state, input.kind);
  if (rule === undefined) return { machine: m, effects: [] };
  const outcome = rule(m, input);
  if (outcome.refuse !== undefined) return { machine: m, effects: [], refused: outcome.refuse };
  const entering = outcome.next;
  let machine: Machine = { ...m, ...outcome.set };
  const effects = [...(outcome.effects ?? [])];
  if (entering !== undefined && entering !== m.state) {
    machine = { ...machine, state: entering };
    if (entering === "INTEGRATE") {
      machine = { ...machine, taskRunning: true, closed: false, settled: true };
    }
    effects.push(...transitionEffects(machine, m.state));
  }
  effects.push(...(outcome.after ?? []));
  return { machine, effects };
}

/** Why a request input would be refused in machine `m` (undefined: it would be accepted). */
export function refusalOf(
  m: Machine,
  kind: "acquire" | "cancel" | "clear" | "adjust",
): string | undefined {
  return step(m, { kind }).refused;
}
