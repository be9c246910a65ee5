/**
 * Backend lookup: built-in backends by short name, and third-party backends as `module:Class`
 * (a path relative to the current directory, an absolute path, or a URL, then the exported class).
 *
 * @module
 */

import { type DeviceClass, isDevice } from "./contract.ts";
import { SimDevice } from "./sim.ts";
import { EigerDevice } from "./eiger/backend.ts";
import { HarpDevice } from "./harp/backend.ts";
import { errorMessage } from "../core/errors.ts";
import { GigeDevice } from "./gige/backend.ts";

/**
 * Built-in backends, imported statically so they are part of a bundle. `miniquant` is the
 * original's name of the Harp backend, `pylon`
 * (its Basler row) the GigE Vision one. Only `harp` loads native code (FFI), and only when chosen.
 */
export const BUILTIN_BACKENDS: Readonly<Record<string, DeviceClass>> = {
  sim: SimDevice,
  eiger: EigerDevice,
  harp: HarpDevice,
  miniquant: HarpDevice,
  gige: GigeDevice,
  /** Alias of `gige`, the name of the original's Basler (pylon) backend row. */
  pylon: GigeDevice,
};

/** The backend spec could not be resolved (message is one line, ready for stderr). */
export class BackendError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BackendError";
  }
}

/** Splits `module:Class` at the last colon; undefined when `spec` has no usable colon. */
export function splitBackendSpec(spec: string): { module: string; className: string } | undefined {
  const i = spec.lastIndexOf(":");
  if (i <= 0 || i === spec.length - 1) return undefined;
  const className = spec.slice(i + 1);
  if (!/^[A-Za-z_$][\w$]*$/.test(className)) return undefined;
  return { module: spec.slice(0, i), className };
}

/** Turns a module reference into an import specifier (relative paths against `cwd`). */
export function moduleUrl(module: string, cwd: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(module) || module.startsWith("npm:")) return module;
  const base = cwd.endsWith("/") ? cwd : cwd + "/";
  return new URL(module, new URL(`file://${base}`)).href;
}

/**
 * Resolves a backend spec to its class: a built-in name, or `module:Class` loaded with a dynamic
 * import. Throws {@link BackendError} when the name is unknown, the module cannot be loaded, the
 * class is missing, or it does not implement the device API.
 */
export async function resolveBackend(spec: string, cwd: string = Deno.cwd()): Promise<DeviceClass> {
  const builtin = BUILTIN_BACKENDS[spec];
  if (builtin !== undefined) return builtin;
  const parts = splitBackendSpec(spec);
  if (parts === undefined) {
    throw new BackendError(
      `unknown backend ${JSON.stringify(spec)}: use one of ${
        Object.keys(BUILTIN_BACKENDS).join(", ")
      } or module:Class`,
    );
  }
  const url = moduleUrl(parts.module, cwd);
  let mod: Record<string, unknown>;
  try {
    mod = await import(url);
  } catch (err) {
    const why = errorMessage(err).split("\n")[0];
    throw new BackendError(`cannot load backend module ${parts.module}: ${why}`);
  }
  const cls = mod[parts.className];
  if (cls === undefined) {
    throw new BackendError(
      `backend module ${parts.module} has no export ${parts.className} (exports: ${
        Object.keys(mod).join(", ") || "none"
      })`,
    );
  }
  if (typeof cls !== "function" || !isDevice((cls as { prototype?: unknown }).prototype)) {
    throw new BackendError(
      `${parts.className} in ${parts.module} is not a device backend class (it must implement ` +
        `isInitialized, getConfig, initialize, acquire, cancel; see devices/base.ts)`,
    );
  }
  return cls as DeviceClass;
}
