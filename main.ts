/**
 * diss-ioc command line entry point: dispatches subcommands, default is the IOC itself.
 *
 * ```sh
 * deno run -A main.ts --backend sim --prefix DISS:sim:
 * ```
 *
 * @module
 */

import { runIoc } from "./lib/ioc_app.ts";
import { routeUncaughtErrors, setupLogging } from "./core/log.ts";
import { runView } from "./lib/view/app.ts";
import { runEigerSim } from "./devices/eiger_sim/main.ts";

export { VERSION } from "./lib/version.ts";

/** A subcommand: gets the arguments after its name, resolves to the exit code. */
export type Subcommand = (argv: string[]) => Promise<number>;

/** Subcommands by name (`diss-ioc NAME ...`); anything else runs the IOC. */
export const SUBCOMMANDS: Readonly<Record<string, Subcommand>> = {
  view: (argv) => {
    // The viewer owns the terminal: only errors may interleave with what it draws.
    setupLogging({ level: "error" });
    return runView(argv);
  },
  "eiger-sim": (argv) => {
    setupLogging();
    return runEigerSim(argv);
  },
};

/** Runs the program with `argv`; resolves to the exit code. */
export function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  const sub = first === undefined ? undefined : SUBCOMMANDS[first];
  return sub !== undefined ? sub(rest) : runIoc(argv);
}

if (import.meta.main) {
  routeUncaughtErrors();
  Deno.exit(await main(Deno.args));
}
