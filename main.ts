/**
 * diss-ioc command line entry point: dispatches subcommands, default is the IOC itself.
 *
 * ```sh
 * deno run -A main.ts --backend sim --prefix DISS:sim:
 * ```
 *
 * @module
 */

import denoConfig from "./deno.json" with { type: "json" };
import { runIoc } from "./lib/ioc_app.ts";

/** Program version from deno.json. */
export const VERSION: string = denoConfig.version;

/** A subcommand: gets the arguments after its name, resolves to the exit code. */
export type Subcommand = (argv: string[]) => Promise<number>;

/** Subcommands by name (`diss-ioc NAME ...`); anything else runs the IOC. */
export const SUBCOMMANDS: Readonly<Record<string, Subcommand>> = {
  // view: runView,          <- the lead adds the viewer (lib/view/app.ts)
  // "eiger-sim": runEigerSim,
};

/** Runs the program with `argv`; resolves to the exit code. */
export function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  const sub = first === undefined ? undefined : SUBCOMMANDS[first];
  return sub !== undefined ? sub(rest) : runIoc(argv);
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
