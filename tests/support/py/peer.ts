/**
 * Runs a Python peer script from `tests/support/py/` with Debian's `/usr/bin/python3` and talks to
 * it line by line (stdin commands, stdout replies). Used by the ZMTP and stream interop tests.
 *
 * @module
 */

/** A running Python peer. */
export interface PyPeer {
  /** Next stdout line; rejects after `timeoutMs` or when the process ends. */
  line(timeoutMs?: number): Promise<string>;
  /** Writes one line to the script's stdin. */
  send(line: string): Promise<void>;
  /** Waits for a clean exit (closing stdin first); returns the exit code. */
  wait(): Promise<number>;
  /** Kills the process (if still running) and releases all resources. */
  close(): Promise<void>;
}

/** Absolute path of a script in this folder. */
export function pyScript(name: string): string {
  return new URL(`./${name}`, import.meta.url).pathname;
}

/** Starts `/usr/bin/python3 <script> ...args`. */
export function startPy(script: string, args: string[]): PyPeer {
  const child = new Deno.Command("/usr/bin/python3", {
    args: [pyScript(script), ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const stderrText = new Response(child.stderr).text();
  let pending = "";
  let stdinOpen = true;
  let done = false;
  const status = child.status.then((s) => {
    done = true;
    return s;
  });

  const line = async (timeoutMs = 15000): Promise<string> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const nl = pending.indexOf("\n");
      if (nl >= 0) {
        const l = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        return l;
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`python peer ${script}: no output within ${timeoutMs} ms`)),
          Math.max(0, deadline - Date.now()),
        );
      });
      try {
        const r = await Promise.race([reader.read(), timeout]);
        if (r.done) {
          throw new Error(`python peer ${script} ended: ${await stderrText}`);
        }
        pending += r.value;
      } finally {
        clearTimeout(timer);
      }
    }
  };

  const closeStdin = async () => {
    if (!stdinOpen) return;
    stdinOpen = false;
    try {
      await writer.close();
    } catch {
      // process already gone
    }
  };

  return {
    line,
    async send(l: string) {
      await writer.write(new TextEncoder().encode(l + "\n"));
    },
    async wait() {
      await closeStdin();
      const s = await status;
      await reader.cancel().catch(() => {});
      await stderrText;
      return s.code;
    },
    async close() {
      if (!done) {
        try {
          child.kill("SIGKILL");
        } catch {
          // already exited
        }
      }
      await closeStdin();
      await status;
      await reader.cancel().catch(() => {});
      await stderrText;
    },
  };
}

/** Runs `script ...args` to its end: it must print "DONE" within `timeoutMs` and exit with 0. */
export async function runPyToDone(script: string, args: string[], timeoutMs = 60_000) {
  const py = startPy(script, args);
  try {
    const line = await py.line(timeoutMs);
    if (line !== "DONE") throw new Error(`python peer ${script}: "${line}" instead of DONE`);
    const code = await py.wait();
    if (code !== 0) throw new Error(`python peer ${script} exited with ${code}`);
  } finally {
    await py.close();
  }
}
