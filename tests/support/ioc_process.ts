/**
 * Starts `diss-ioc` as a subprocess the way a user does (`deno run -A <V8 flags> main.ts ...`, as
 * `deno task start`), isolated on loopback with OS-assigned CA ports, and reads its log to learn
 * the UDP port.
 *
 * @module
 */

import { testPvaServerEnv, testServerEnv } from "./epics_env.ts";
import { RECOMMENDED_RUNTIME_POLLING } from "../../core/io_poll.ts";
import { GLIBC_TUNABLES_ENV, HUGE_PAGES_TUNABLE } from "../../core/huge_pages.ts";
import { RUNTIME_FLAGS } from "../../scripts/build.ts";

const DENO = new URL("../../node_modules/.bin/deno", import.meta.url).pathname;
const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** A running IOC subprocess. */
export interface IocProcess {
  /** UDP search port from the "IOC running" log line. */
  udpPort: number;
  /** pvAccess TCP port from the same line (NaN with `--pva off`). */
  pvaTcpPort: number;
  /** pvAccess UDP search port (NaN with `--pva off`). */
  pvaUdpPort: number;
  /** Log lines so far. */
  lines: string[];
  /** Resolves with the first log line matching `pattern` (rejects after `timeoutMs`). */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends `signal` and waits for exit; returns the exit code. */
  stop(signal?: Deno.Signal): Promise<number>;
  /** Exit status once exited. */
  status: Promise<Deno.CommandStatus>;
  /** PID of the process started (the IOC's, unless it restarted itself: see `lib/runtime_reexec.ts`). */
  pid: number;
}

/** How to launch the program; default `deno run -A main.ts` in the current folder. */
export interface IocLaunch {
  /** Deno arguments before the program's own, e.g. `["run", "--allow-net", "/tmp/x.js"]`. */
  denoArgs?: string[];
  /** Working directory of the subprocess. */
  cwd?: string;
  /** Variables the subprocess must not have (even the harness's defaults). */
  unsetEnv?: string[];
}

function withoutKeys(env: Record<string, string>, keys: readonly string[]): Record<string, string> {
  const out = { ...env };
  for (const key of keys) delete out[key];
  return out;
}

/** Starts the IOC with `args` and extra `env`; resolves once it logged "IOC running". */
export async function startIoc(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 30_000,
  launch: IocLaunch = {},
): Promise<IocProcess> {
  const child = new Deno.Command(DENO, {
    args: [...(launch.denoArgs ?? ["run", "-A", ...RUNTIME_FLAGS, MAIN]), ...args],
    cwd: launch.cwd,
    env: withoutKeys({
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/tmp",
      NO_COLOR: "1",
      ...testServerEnv(),
      ...testPvaServerEnv(),
      EPICS_CAS_SERVER_PORT: "0",
      // As every launcher of the IOC (core/io_poll.ts): sockets polled after every turn.
      ...RECOMMENDED_RUNTIME_POLLING,
      // As the launchers: huge pages for the large buffers (core/huge_pages.ts).
      [GLIBC_TUNABLES_ENV]: HUGE_PAGES_TUNABLE,
      ...env,
    }, launch.unsetEnv ?? []),
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  const reader = (async () => {
    let rest = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      const parts = rest.split("\n");
      rest = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        for (const w of [...waiters]) {
          if (w.pattern.test(line)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(line);
          }
        }
      }
    }
  })();
  const status = child.status.then(async (s) => {
    await reader;
    return s;
  });
  const waitForLine = (pattern: RegExp, ms = timeoutMs): Promise<string> => {
    const found = lines.find((l) => pattern.test(l));
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(entry), 1);
        reject(new Error(`no log line ${pattern} within ${ms} ms; log:\n${lines.join("\n")}`));
      }, ms);
      const entry = {
        pattern,
        resolve: (line: string) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      waiters.push(entry);
      void status.then(() => {
        if (!waiters.includes(entry)) return;
        waiters.splice(waiters.indexOf(entry), 1);
        clearTimeout(timer);
        reject(new Error(`IOC exited before ${pattern}; log:\n${lines.join("\n")}`));
      });
    });
  };
  const stop = async (signal: Deno.Signal = "SIGTERM") => {
    try {
      child.kill(signal);
    } catch {
      // already exited
    }
    return (await status).code;
  };
  let running: string;
  try {
    running = await waitForLine(/msg="IOC running"/);
  } catch (err) {
    await stop("SIGKILL");
    throw err;
  }
  const udpPort = Number(/udp_port=(\d+)/.exec(running)?.[1]);
  const pvaTcpPort = Number(/pva_tcp_port=(\d+)/.exec(running)?.[1]);
  const pvaUdpPort = Number(/pva_udp_port=(\d+)/.exec(running)?.[1]);
  return { udpPort, pvaTcpPort, pvaUdpPort, lines, waitForLine, stop, status, pid: child.pid };
}
