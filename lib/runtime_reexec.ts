/**
 * Restarts the IOC once with the runtime's socket polling set (`core/io_poll.ts`) when it was
 * started without it — by hand, from a script or an old unit file. The runtime reads those
 * variables only when it starts, so the one way to apply them is a new process: the same
 * executable with the same command line (`/proc/self/cmdline`: for `deno run` the runtime's own
 * flags, permissions and V8 flags included; for a compiled binary its arguments), the
 * environment plus the variables (and glibc's huge-page tunable, `core/huge_pages.ts`, which is
 * also read only at startup), stdin/stdout/stderr inherited. The first process stays as a
 * thin parent: it forwards the signals a user or service manager sends (SIGINT, SIGTERM, SIGHUP,
 * SIGQUIT, SIGUSR1, SIGUSR2) and exits with the child's exit code (128 + signal number when the
 * child was killed by a signal). The child has the variables set, plus {@link REEXEC_PARENT_ENV},
 * so it never restarts again; it stops itself (SIGTERM, a normal shutdown) when its parent is gone.
 *
 * The child's `IOC running` log line names the parent (`restarted_by=`). Nothing is restarted, and
 * the IOC's startup warning names the reason instead, when `DISS_REEXEC=no`, when a variable was set
 * explicitly to another value (the user's choice is kept), off Linux (no `/proc/self/cmdline`),
 * or without permission to run `/proc/self/exe` (`deno run` with narrow permissions: `-A` or
 * `--allow-run=/proc/self/exe` allow it; the compiled release binary has that grant).
 *
 * @module
 */

import { RECOMMENDED_RUNTIME_POLLING, runtimePolling } from "../core/io_poll.ts";
import { GLIBC_TUNABLES_ENV, withHugePages } from "../core/huge_pages.ts";
import { getLog } from "../core/log.ts";
import { errorMessage } from "../core/errors.ts";

/** Opt-out: `DISS_REEXEC=no` (or `0`) keeps the process as started. */
export const REEXEC_ENV = "DISS_REEXEC";

/** Set in the restarted child: the parent's PID (also: never restart again). */
export const REEXEC_PARENT_ENV = "DISS_REEXEC_PARENT";

/** What {@link planReexec} decided. */
export type ReexecPlan =
  | { action: "none" }
  | { action: "skip"; reason: string }
  | { action: "restart"; command: string; args: string[]; env: Record<string, string> };

/** Inputs of {@link planReexec}, gathered by the caller. */
export interface ReexecFacts {
  /** The process environment. */
  env: Readonly<Record<string, string | undefined>>;
  /** `/proc/self/cmdline` split at NUL (argv[0] first), or undefined when not readable. */
  cmdline: string[] | undefined;
  /** Whether running `/proc/self/exe` is permitted (without prompting). */
  mayRun: boolean;
  /** This process's PID. */
  pid: number;
}

/** Decides whether to restart and with what; plain code over the facts (no I/O). */
export function planReexec(facts: ReexecFacts): ReexecPlan {
  const { env } = facts;
  if (env[REEXEC_PARENT_ENV] !== undefined) return { action: "none" };
  const polling = runtimePolling(env);
  if (polling.ok) return { action: "none" };
  const opt = env[REEXEC_ENV]?.trim().toLowerCase();
  if (opt === "no" || opt === "0") return { action: "skip", reason: `${REEXEC_ENV}=no` };
  if (polling.unset.length === 0) {
    return { action: "skip", reason: "the variables were set explicitly" };
  }
  if (facts.cmdline === undefined || facts.cmdline.length === 0) {
    return { action: "skip", reason: "the command line is unknown (/proc/self/cmdline)" };
  }
  if (!facts.mayRun) {
    return { action: "skip", reason: "no permission to run /proc/self/exe" };
  }
  const childEnv: Record<string, string> = { [REEXEC_PARENT_ENV]: String(facts.pid) };
  for (const name of polling.unset) childEnv[name] = RECOMMENDED_RUNTIME_POLLING[name];
  // The new process also gets huge pages for its large buffers (core/huge_pages.ts).
  const tunables = withHugePages(env[GLIBC_TUNABLES_ENV]);
  if (tunables !== env[GLIBC_TUNABLES_ENV]) childEnv[GLIBC_TUNABLES_ENV] = tunables;
  return {
    action: "restart",
    command: "/proc/self/exe",
    args: facts.cmdline.slice(1),
    env: childEnv,
  };
}

/** Signals the parent passes on to the child. */
export const FORWARDED_SIGNALS: readonly Deno.Signal[] = [
  "SIGINT",
  "SIGTERM",
  "SIGHUP",
  "SIGQUIT",
  "SIGUSR1",
  "SIGUSR2",
];

const log = getLog("ioc");

function readCmdline(): string[] | undefined {
  if (Deno.build.os !== "linux") return undefined;
  try {
    const path = "/proc/self/cmdline";
    if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") return undefined;
    const parts = new TextDecoder().decode(Deno.readFileSync(path)).split("\0");
    if (parts.at(-1) === "") parts.pop();
    return parts;
  } catch {
    return undefined;
  }
}

function mayRunSelf(): boolean {
  try {
    return Deno.permissions.querySync({ name: "run", command: "/proc/self/exe" }).state ===
      "granted";
  } catch {
    return false;
  }
}

/** What {@link restartWithRuntimePolling} did. */
export type RestartOutcome =
  /** This process goes on: nothing to do, or the child of a restart. */
  | { kind: "none" }
  /** This process goes on, not restarted although its settings are not the recommended ones. */
  | { kind: "skipped"; reason: string }
  /** The child ran and ended with this exit code. */
  | { kind: "exited"; code: number };

/**
 * Restarts the program as described in the module doc when that is needed and possible, and
 * resolves once the child ended. In a child, starts watching the parent. Logs nothing above debug
 * level (a restart shows in the child's `IOC running` line, a skip in the IOC's warning).
 */
export async function restartWithRuntimePolling(
  env: Readonly<Record<string, string | undefined>>,
): Promise<RestartOutcome> {
  const parent = env[REEXEC_PARENT_ENV];
  if (parent !== undefined) {
    watchParent(Number(parent));
    return { kind: "none" };
  }
  const plan = planReexec({ env, cmdline: readCmdline(), mayRun: mayRunSelf(), pid: Deno.pid });
  if (plan.action === "none") return { kind: "none" };
  if (plan.action === "skip") return { kind: "skipped", reason: plan.reason };
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(plan.command, {
      args: plan.args,
      env: plan.env,
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
  } catch (error) {
    return { kind: "skipped", reason: `cannot start /proc/self/exe: ${errorMessage(error)}` };
  }
  log.debug("Restarting with the runtime's socket polling set", {
    child_pid: child.pid,
    ...plan.env,
  });
  const forwards = FORWARDED_SIGNALS.map((signal) => {
    const listener = () => {
      try {
        child.kill(signal);
      } catch {
        // The child has exited already.
      }
    };
    try {
      Deno.addSignalListener(signal, listener);
    } catch {
      return undefined; // not supported here
    }
    return [signal, listener] as const;
  });
  const status = await child.status;
  for (const entry of forwards) if (entry) Deno.removeSignalListener(entry[0], entry[1]);
  return { kind: "exited", code: status.code };
}

/** Checks every second whether the parent is still there; stops this process when it is not. */
function watchParent(parent: number): void {
  if (!Number.isInteger(parent) || parent <= 1) return;
  const timer = setInterval(() => {
    if (Deno.ppid === parent) return;
    clearInterval(timer);
    log.warning("The parent process is gone: stopping", { parent_pid: parent });
    Deno.kill(Deno.pid, "SIGTERM");
  }, 1000);
  Deno.unrefTimer(timer);
}
