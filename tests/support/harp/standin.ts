/**
 * Builds the HydraHarp stand-in library (`hhlib_standin.c`) with gcc into a temporary folder and
 * drives it: environment for the backend, the control file (injected faults, hang, unplug), the
 * call log and the dumped histograms. See the C file for the simulated behaviour.
 *
 * @module
 */

const HERE = new URL(".", import.meta.url).pathname;
/** The stand-in's C source. */
export const STANDIN_SOURCE = `${HERE}hhlib_standin.c`;
/** The documented prototypes the stand-in is compiled against. */
export const DOCUMENTED_HEADER = `${HERE}hhlib_documented.h`;

/** Runs gcc with `args`; throws with its output on failure. */
export async function gcc(args: string[]): Promise<void> {
  const out = await new Deno.Command("gcc", { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`gcc ${args.join(" ")} failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Compiles the stand-in into `folder` (with extra `-D` defines); returns the library path. */
export async function buildStandIn(folder: string, defines: string[] = []): Promise<string> {
  const library = `${folder}/hhlib_standin${defines.length > 0 ? "_" + defines.join("_") : ""}.so`;
  await gcc([
    "-Wall",
    "-Wextra",
    "-Werror",
    "-O1",
    "-shared",
    "-fPIC",
    "-include",
    DOCUMENTED_HEADER,
    ...defines.map((d) => `-D${d}`),
    "-o",
    library,
    STANDIN_SOURCE,
  ]);
  return library;
}

/** Parameters the stand-in's histogram depends on (see the formula in the C file). */
export interface StandInHistogramParams {
  /** Input index (0-based). */
  input: number;
  /** Measurement time in ms. */
  measuredMs: number;
  /** Binning code (default 0). */
  binning?: number;
  /** Histogram offset in ns (default 0). */
  offsetNs?: number;
  /** The input's channel offset in ps (default 0). */
  channelOffsetPs?: number;
  /** Histogram length. */
  bins: number;
}

/** The histogram the stand-in documents for `params`, computed here independently. */
export function expectedHistogram(params: StandInHistogramParams): Uint32Array {
  const p = { binning: 0, offsetNs: 0, channelOffsetPs: 0, ...params };
  const out = new Uint32Array(p.bins);
  const width = 2 ** p.binning;
  const t0 = 1000 * (p.input + 1) + p.channelOffsetPs;
  const half = 2000 * (p.input + 1);
  const peak = BigInt((p.input + 1) * p.measuredMs);
  const background = Math.floor(p.measuredMs / 100);
  for (let b = 0; b < p.bins; b++) {
    const t = p.offsetNs * 1000 + b * width;
    let counts = background;
    if (t >= t0) {
      const shift = Math.floor((t - t0) / half);
      if (shift < 63) counts += Number(peak >> BigInt(shift));
    }
    out[b] = Math.min(counts, 0xffffffff);
  }
  return out;
}

/** A built stand-in with its own control file, call log and dump folder. */
export interface StandIn {
  /** Folder holding everything (removed by {@link StandIn.remove}). */
  folder: string;
  /** The built library. */
  library: string;
  /** Environment for the backend (`HARP_LIBRARY` and the stand-in's variables). */
  env(extra?: Record<string, string>): Record<string, string>;
  /** Replaces the control file's lines (e.g. `fail StartMeas -16`, `hang`, `unplug`). */
  control(...lines: string[]): Promise<void>;
  /** Calls logged so far, as `HH_Name a b c` lines. */
  calls(): Promise<string[]>;
  /** Empties the call log. */
  clearCalls(): Promise<void>;
  /** The histogram of `input` the stand-in last returned (its dump file). */
  dumped(input: number): Promise<Uint32Array>;
  /** Deletes the folder. */
  remove(): Promise<void>;
}

const builds = new Map<string, Promise<Uint8Array>>();

/** The compiled stand-in for `defines`, built once per test process. */
function compiled(defines: string[]): Promise<Uint8Array> {
  const key = defines.join(" ");
  let build = builds.get(key);
  if (build === undefined) {
    build = (async () => {
      const folder = await Deno.makeTempDir({ prefix: "hhstandin-build-" });
      try {
        return await Deno.readFile(await buildStandIn(folder, defines));
      } finally {
        await Deno.remove(folder, { recursive: true });
      }
    })();
    builds.set(key, build);
  }
  return build;
}

/**
 * A stand-in in a fresh temporary folder: its own copy of the library file, so that its simulated
 * devices are separate from those of other stand-ins loaded by the same process.
 */
export async function createStandIn(defines: string[] = []): Promise<StandIn> {
  const folder = await Deno.makeTempDir({ prefix: "hhstandin-" });
  const library = `${folder}/hhlib_standin.so`;
  await Deno.writeFile(library, await compiled(defines));
  const controlPath = `${folder}/control`;
  const logPath = `${folder}/calls.log`;
  const dumpDir = `${folder}/dump`;
  await Deno.mkdir(dumpDir);
  await Deno.writeTextFile(controlPath, "");
  return {
    folder,
    library,
    env: (extra = {}) => ({
      HARP_LIBRARY: library,
      HHSTANDIN_CONTROL: controlPath,
      HHSTANDIN_LOG: logPath,
      HHSTANDIN_DUMP: dumpDir,
      ...extra,
    }),
    control: (...lines) => Deno.writeTextFile(controlPath, lines.join("\n") + "\n"),
    calls: async () => {
      try {
        return (await Deno.readTextFile(logPath)).split("\n").filter((l) => l !== "");
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return [];
        throw error;
      }
    },
    clearCalls: () => Deno.writeTextFile(logPath, ""),
    dumped: async (input) => {
      const bytes = await Deno.readFile(`${dumpDir}/histogram_${input}.u32`);
      return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    },
    remove: () => Deno.remove(folder, { recursive: true }),
  };
}
