/**
 * Loads a Harp vendor library with Deno's FFI (`Deno.dlopen`) and calls it.
 *
 * Every call goes through {@link HarpLibrary.call}: calls run one after another (the vendor
 * library is not documented as thread-safe, and slow calls run on a worker thread), and a
 * negative return code becomes a {@link HarpCallError} naming the call and carrying the library's
 * own error text (`GetErrorString`).
 *
 * @module
 */

import type { CType, HarpCall, HarpFamily } from "./api.ts";
import { errorMessage } from "../../core/errors.ts";

/** An argument of a library call: a number, or a typed array the library reads or fills. */
export type HarpArg = number | Uint8Array | Int32Array | Uint32Array | Float64Array;

type Symbol = (...args: HarpArg[]) => number | Promise<number>;

/** A library call returned an error code (negative). */
export class HarpCallError extends Error {
  /** Full C name of the call, e.g. `HH_StartMeas`. */
  readonly call: string;
  /** The library's return code. */
  readonly code: number;
  constructor(call: string, code: number, text: string) {
    super(`${call} failed: ${text || "unknown error"} (error ${code})`);
    this.name = "HarpCallError";
    this.call = call;
    this.code = code;
  }
}

/** The library could not be loaded or is not the one this binding was written for. */
export class HarpLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HarpLoadError";
  }
}

const FFI_TYPE: Record<CType, Deno.NativeType> = {
  "int": "i32",
  "unsigned int": "u32",
  "char*": "buffer",
  "int*": "buffer",
  "unsigned int*": "buffer",
  "double*": "buffer",
};

/**
 * The Deno FFI symbol table of a family. With `probe`, every symbol is optional and blocking:
 * loading then succeeds with `null` for each missing symbol (Deno 2 does not report missing
 * `nonblocking` symbols that way, so presence is checked with a probe first).
 */
export function ffiSymbols(
  family: HarpFamily,
  probe = false,
): Record<string, Deno.ForeignFunction> {
  const symbols: Record<string, Deno.ForeignFunction> = {};
  for (const [call, fn] of Object.entries(family.functions)) {
    symbols[family.prefix + call] = {
      parameters: fn.params.map((p) => FFI_TYPE[p]),
      result: "i32",
      nonblocking: !probe && fn.slow === true,
      optional: probe,
    };
  }
  return symbols;
}

/** Names of the family's functions `path` lacks (loads and unloads it once). */
function missingFunctions(family: HarpFamily, path: string): string[] {
  const probe = Deno.dlopen(path, ffiSymbols(family, true));
  try {
    const symbols = probe.symbols as Record<string, unknown>;
    return Object.keys(symbols).filter((name) => symbols[name] === null);
  } finally {
    probe.close();
  }
}

/** Reads a NUL-terminated C string from `bytes`. */
export function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder("latin1").decode(end < 0 ? bytes : bytes.subarray(0, end)).trim();
}

/** The first line of an error's message. */
function firstLine(error: unknown): string {
  return errorMessage(error).split("\n")[0];
}

/** An open vendor library. */
export class HarpLibrary {
  /** The family (prefix, limits) of this library. */
  readonly family: HarpFamily;
  /** File the library was loaded from. */
  readonly path: string;
  /** Version string the library reports (`GetLibraryVersion`). */
  readonly version: string;
  readonly #lib: Deno.DynamicLibrary<Record<string, Deno.ForeignFunction>>;
  readonly #symbols: Record<string, Symbol>;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(
    family: HarpFamily,
    path: string,
    lib: Deno.DynamicLibrary<Record<string, Deno.ForeignFunction>>,
  ) {
    this.family = family;
    this.path = path;
    this.#lib = lib;
    this.#symbols = lib.symbols as unknown as Record<string, Symbol>;
    const buffer = new Uint8Array(family.limits.buffers.version);
    const code = this.#symbols[family.prefix + "GetLibraryVersion"](buffer) as number;
    this.version = cString(buffer);
    if (code < 0 || !family.versions.some((v) => this.version.startsWith(v))) {
      lib.close();
      throw new HarpLoadError(
        `${path} reports ${family.prefix}GetLibraryVersion ${
          JSON.stringify(this.version)
        } (code ${code}); this backend is written for version ${family.versions.join(" or ")}`,
      );
    }
  }

  /**
   * Loads the library from `path`, or else from the family's default locations (first that
   * loads). Throws {@link HarpLoadError} with a one-line message when FFI is not permitted, no
   * file loads, a function is missing or the version is not supported.
   */
  static open(family: HarpFamily, path?: string): HarpLibrary {
    const candidates = path !== undefined ? [path] : family.defaultPaths[Deno.build.os] ?? [];
    if (candidates.length === 0) {
      throw new HarpLoadError(`no default ${family.product} library location on ${Deno.build.os}`);
    }
    // With a path-scoped --allow-ffi=PATH, only that file may be loaded.
    const permitted = candidates.filter((c) =>
      Deno.permissions.querySync({ name: "ffi", path: c }).state === "granted"
    );
    if (permitted.length === 0) {
      throw new HarpLoadError(
        `loading ${candidates.join(" or ")} needs the FFI permission: run with --allow-ffi ` +
          `(release builds: dist/diss-ioc-ffi-<target>, README "FFI permission")`,
      );
    }
    const failures: string[] = [];
    for (const candidate of permitted) {
      let missing: string[];
      try {
        missing = missingFunctions(family, candidate);
      } catch (error) {
        failures.push(`${candidate}: ${firstLine(error)}`);
        continue;
      }
      if (missing.length > 0) {
        throw new HarpLoadError(
          `${candidate} is not a usable ${family.product} library: it lacks ${missing.join(", ")}`,
        );
      }
      return new HarpLibrary(family, candidate, Deno.dlopen(candidate, ffiSymbols(family)));
    }
    throw new HarpLoadError(
      `cannot load the ${family.product} library (${failures.join("; ")})` +
        (path === undefined ? "; set HARP_LIBRARY to its path" : ""),
    );
  }

  /** The library's text for an error code (`GetErrorString`); never throws. */
  errorString(code: number): string {
    const buffer = new Uint8Array(this.family.limits.buffers.errorString);
    try {
      const rc = this.#symbols[this.family.prefix + "GetErrorString"](buffer, code) as number;
      return rc < 0 ? "" : cString(buffer);
    } catch {
      return "";
    }
  }

  /**
   * Calls `call` with `args` after every earlier call finished; resolves with its return code
   * (>= 0). Rejects with {@link HarpCallError} on a negative code.
   */
  call(call: HarpCall, ...args: HarpArg[]): Promise<number> {
    const run = async () => {
      if (this.#closed) throw new Error(`${this.family.prefix}${call}: library closed`);
      const code = await this.#symbols[this.family.prefix + call](...args);
      if (code < 0) {
        throw new HarpCallError(this.family.prefix + call, code, this.errorString(code));
      }
      return code;
    };
    const result = this.#queue.then(run, run);
    this.#queue = result.catch(() => {});
    return result;
  }

  /** Unloads the library after the pending calls. Never throws. */
  async close(): Promise<void> {
    await this.#queue;
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#lib.close();
    } catch {
      // Nothing left to do.
    }
  }
}
