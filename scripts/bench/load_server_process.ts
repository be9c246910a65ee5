/**
 * Starts `scripts/bench/ca_load_server.ts` (or the bare baseline `bare_tcp_server.ts`) as a child
 * process for the CA benchmarks and reads its resident memory (`VmRSS` of `/proc/<pid>/status`).
 *
 * @module
 */

/** The lines of a byte stream. */
export async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    yield* parts;
  }
  if (rest) yield rest;
}

/** A running load server. */
export interface LoadServer {
  /** UDP search port. */
  udpPort: number;
  /** TCP port. */
  tcpPort: number;
  /** Process id (for RSS). */
  pid: number;
  /** Standard-error lines seen so far (its log). */
  log: string[];
  /** `Deno.memoryUsage()` of the server (after a full GC when started with `exposeGc`). */
  memory(): Promise<Deno.MemoryUsage>;
  /** Stops the process and waits for it. */
  stop(): Promise<void>;
}

/** Options of {@link startLoadServer}. */
export interface LoadServerOptions {
  /** Seconds between image posts (`--period-ms`). */
  periodMs?: number;
  /** Image elements (int32). */
  elements?: number;
  /** Another checkout to load `ca/server.ts` from. */
  caRoot?: string;
  /** Extra environment (e.g. `DISS_CA_MAX_CIRCUITS`). */
  env?: Record<string, string>;
  /** `bulkBytesPerTurn` of the server (`off`: unbounded). */
  bulkPerTurn?: string;
  /** `on`/`off`: search worker or main thread (default: the server's default, off). */
  searchWorker?: string;
  /** Run with V8's `--expose-gc` (a full GC before each {@link LoadServer.memory}). */
  exposeGc?: boolean;
}

/** Starts the load server and waits until it listens. */
export async function startLoadServer(options: LoadServerOptions = {}): Promise<LoadServer> {
  const args = [
    "--period-ms",
    String(options.periodMs ?? 100),
    "--elements",
    String(options.elements ?? 524_288),
  ];
  if (options.caRoot) args.push("--ca-root", options.caRoot);
  if (options.bulkPerTurn) args.push("--bulk-per-turn", options.bulkPerTurn);
  if (options.searchWorker) args.push("--search-worker", options.searchWorker);
  return await spawnServer("./ca_load_server.ts", args, options);
}

/**
 * Starts `bare_tcp_server.ts` (a bare accept loop, one pending read per connection) with the same
 * runtime flags as the load server: the runtime's own cost per connection. Its `udpPort` is 0.
 */
export async function startBareServer(
  options: { exposeGc?: boolean; readBytes?: number } = {},
): Promise<LoadServer> {
  return await spawnServer(
    "./bare_tcp_server.ts",
    ["--read-bytes", String(options.readBytes ?? 64)],
    options,
  );
}

async function spawnServer(
  relativeScript: string,
  scriptArgs: string[],
  options: { env?: Record<string, string>; exposeGc?: boolean },
): Promise<LoadServer> {
  const script = new URL(relativeScript, import.meta.url).pathname;
  const args = [
    "run",
    "-A",
    `--v8-flags=--optimize-for-size${options.exposeGc ? ",--expose-gc" : ""}`,
    script,
    ...scriptArgs,
  ];
  const child = new Deno.Command(Deno.execPath(), {
    args,
    env: options.env,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const log: string[] = [];
  (async () => {
    for await (const line of lines(child.stderr)) log.push(line);
  })();
  const stdout = lines(child.stdout);
  const first = await stdout.next();
  if (first.done) throw new Error(`${relativeScript} did not start:\n${log.join("\n")}`);
  const info = JSON.parse(first.value);
  const replies: ((line: string) => void)[] = [];
  (async () => {
    for await (const line of stdout) replies.shift()?.(line);
  })();
  const writer = child.stdin.getWriter();
  return {
    udpPort: info.udpPort ?? 0,
    tcpPort: info.tcpPort,
    pid: child.pid,
    log,
    async memory() {
      const reply = new Promise<string>((resolve) => replies.push(resolve));
      await writer.write(new TextEncoder().encode("mem\n"));
      return JSON.parse(await reply);
    },
    async stop() {
      try {
        await writer.close();
      } catch {
        // Already gone.
      }
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await child.status;
      clearTimeout(timer);
    },
  };
}

/** Resident set size of process `pid` in MB (10^6 bytes). */
export function rssMb(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return kb * 1024 / 1e6;
}
