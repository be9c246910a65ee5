/**
 * Stand-alone entry of the EIGER simulator (`deno run -A devices/eiger_sim/cli.ts --api-port 8080`);
 * the IOC program offers the same as `diss-ioc eiger-sim`. Kept out of `main.ts` so that bundling
 * the IOC never runs it.
 *
 * @module
 */

import { setupLogging } from "../../core/log.ts";
import { runEigerSim } from "./main.ts";

setupLogging();
Deno.exit(await runEigerSim(Deno.args));
