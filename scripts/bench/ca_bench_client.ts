/**
 * The C libca benchmark client (`scripts/bench/c/ca_bench_client.c`), compiled with gcc into a
 * temporary folder and run with a loopback-only CA environment; shared by the CA and PVA
 * benchmarks.
 *
 * @module
 */

import { caClientEnv, killMarkedProcesses } from "../../tests/support/epics_env.ts";

/** A compiled client: run it, then remove it. */
export interface CaBenchClient {
  /** Runs the client with `args` (searching `udpPort`); resolves to its JSON result. */
  run(udpPort: number, ...args: string[]): Promise<Record<string, number>>;
  /** Removes the temporary folder. */
  remove(): Promise<void>;
}

/** Compiles the client (exits the process with gcc's message when that fails). */
export async function compileCaBenchClient(repeaterPort: number): Promise<CaBenchClient> {
  const dir = await Deno.makeTempDir({ prefix: "ca_bench_" });
  const binary = `${dir}/ca_bench_client`;
  const source = new URL("./c/ca_bench_client.c", import.meta.url).pathname;
  const gcc = await new Deno.Command("gcc", { args: ["-O2", "-o", binary, source, "-lca"] })
    .output();
  if (!gcc.success) {
    console.error(new TextDecoder().decode(gcc.stderr));
    Deno.exit(1);
  }
  return {
    async run(udpPort, ...args) {
      const marker = crypto.randomUUID();
      try {
        const out = await new Deno.Command(binary, {
          args,
          env: caClientEnv({ udpPort, marker, repeaterPort }),
          clearEnv: true,
          stdout: "piped",
          stderr: "piped",
        }).output();
        const text = new TextDecoder().decode(out.stdout).trim();
        if (!out.success) {
          throw new Error(`client ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
        }
        return JSON.parse(text);
      } finally {
        killMarkedProcesses(marker);
      }
    },
    remove: () => Deno.remove(dir, { recursive: true }),
  };
}
