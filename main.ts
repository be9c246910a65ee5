/**
 * diss-ioc command line entry point (placeholder until the IOC core lands).
 *
 * @module
 */

import denoConfig from "./deno.json" with { type: "json" };

/** Program version from deno.json. */
export const VERSION: string = denoConfig.version;

if (import.meta.main) {
  console.log(`diss-ioc ${VERSION}`);
}
