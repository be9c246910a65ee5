/**
 * Release builds.
 *
 * - `bundle`: `dist/diss-ioc.js`, one JavaScript file with every dependency inlined, stamped with
 *   the git description. Runs with `deno run <permissions> <V8 flags> dist/diss-ioc.js` from any
 *   folder (`build.ts permissions` prints both).
 * - `compile [--target T ...]`: one executable per target, `dist/diss-ioc-<target>[.exe]`,
 *   compiled from the stamped bundle with the permissions and V8 flags below baked in. `deno compile` fetches
 *   the runtime ("denort") for each target; for offline builds point `DENORT_BIN` at a denort
 *   binary of the target platform (passed through unchanged).
 * - `compile --ffi`: the same with the FFI permission added (`dist/diss-ioc-ffi-<target>`), for
 *   backends that load a vendor library (`--backend harp`). The default executables cannot load
 *   native code at all.
 * - `permissions [--ffi]`: prints the permission set and V8 flags for `deno run`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { errorMessage } from "../core/errors.ts";

/** Targets `compile` builds by default (all platforms we ship). */
export const TARGETS: readonly string[] = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
];

/**
 * Permissions the program needs, narrower than `-A`: network (CA server and client, detector
 * REST and stream), environment (configuration), read (user backends given as `module:Class`),
 * write (`view --png`, the sd_notify socket), host name and interface list (CA beacons and
 * client identification), imports of user backends by URL, and the unstable UDP API.
 */
export const PERMISSION_FLAGS: readonly string[] = [
  "--allow-net",
  "--allow-env",
  "--allow-read",
  "--allow-write",
  "--allow-sys=hostname,networkInterfaces",
  "--allow-import",
  "--unstable-net",
];

/**
 * The permission set of builds for backends that load a vendor C library (the PicoQuant Harp
 * backend): {@link PERMISSION_FLAGS} plus `--allow-ffi`. Kept separate so that the default
 * release cannot load native code.
 */
export const FFI_PERMISSION_FLAGS: readonly string[] = [...PERMISSION_FLAGS, "--allow-ffi"];

/**
 * Granted to compiled binaries only: running `/proc/self/exe`, that is the binary itself (with
 * its baked-in permissions), so that the IOC can restart itself once with the runtime's socket
 * polling set (`lib/runtime_reexec.ts`). Not part of {@link PERMISSION_FLAGS}: under `deno run`
 * `/proc/self/exe` is the Deno executable, which could run anything with any permission.
 */
export const SELF_RESTART_PERMISSION = "--allow-run=/proc/self/exe";

/**
 * V8 flags the IOC runs with (`deno task start`, the compiled binary, the tests and benchmarks):
 * `--optimize-for-size` keeps the JavaScript heap near what is live instead of letting it grow
 * with the allocation rate. Measured with the sim at 1028×512 uint32 and auto-acquire as fast as
 * possible: peak RSS 96 MB instead of 150–170 MB, at the same acquisition rate and latency.
 * `--always-sparkplug` compiles every function to baseline machine code on its first call instead
 * of interpreting it first: the first EIGER series after start (100 images at 1 kHz) then costs
 * 2.0 instead of 2.55 ms of IOC CPU per image and decodes at 0.93 instead of 0.77 of the rate sent
 * (medians of 6 alternating pairs, `eiger_stream_e2e.ts`); later series, the sim backend's latency
 * and rate, and RSS stayed within the run-to-run spread (`docs/eiger-stream.md`).
 * V8 reads these at start-up only (setting them from inside the program has no effect).
 */
export const RUNTIME_FLAGS: readonly string[] = [
  "--v8-flags=--optimize-for-size,--always-sparkplug",
];

const DENO = Deno.execPath();
const ROOT = new URL("..", import.meta.url).pathname;
const BUNDLE = `${ROOT}dist/diss-ioc.js`;

/** Output file name of the executable for one target (`ffi`: the FFI permission set). */
export function executableName(target: string, ffi = false): string {
  const variant = ffi ? "ffi-" : "";
  return `dist/diss-ioc-${variant}${target}${target.includes("windows") ? ".exe" : ""}`;
}

async function run(args: string[], env?: Record<string, string>): Promise<void> {
  console.error(`build: deno ${args.join(" ")}`);
  const status = await new Deno.Command(DENO, { args, cwd: ROOT, env, stdout: "inherit" })
    .spawn().status;
  if (!status.success) throw new Error(`deno ${args[0]} failed with exit code ${status.code}`);
}

async function gitDescription(): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("git", {
      args: ["describe", "--tags", "--always", "--dirty"],
      cwd: ROOT,
      stdout: "piped",
      stderr: "null",
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim();
    return out.success && text !== "" ? text : undefined;
  } catch {
    return undefined;
  }
}

/** Replaces the version placeholder in bundled source by `description` (once, required). */
export function stampBundle(source: string, description: string): string {
  const placeholder = "@@" + "DISS_BUILD_STAMP@@";
  const count = source.split(placeholder).length - 1;
  if (count !== 1) {
    throw new Error(`expected one version placeholder in the bundle, found ${count}`);
  }
  return source.replace(placeholder, description.replaceAll('"', "").replaceAll("\\", ""));
}

/** Builds and stamps the bundle (default `dist/diss-ioc.js`); returns its path. */
export async function bundle(output: string = BUNDLE): Promise<string> {
  await Deno.mkdir(new URL(".", `file://${output}`).pathname, { recursive: true });
  await run(["bundle", "--quiet", "-o", output, "main.ts"]);
  const description = await gitDescription();
  if (description !== undefined) {
    await Deno.writeTextFile(output, stampBundle(await Deno.readTextFile(output), description));
  }
  console.error(`build: wrote ${output} (git ${description ?? "unknown"})`);
  return output;
}

/** Compiles the stamped bundle for each target (`ffi`: with the FFI permission set). */
export async function compile(targets: readonly string[], ffi = false): Promise<void> {
  await bundle();
  for (const target of targets) {
    if (!TARGETS.includes(target)) throw new Error(`unknown target ${target}`);
    await run(compileArgs(target, ffi));
  }
}

/**
 * Arguments of `deno compile` for one target: permissions (`ffi`: {@link FFI_PERMISSION_FLAGS},
 * plus {@link SELF_RESTART_PERMISSION}) and V8 flags baked into the binary.
 */
export function compileArgs(target: string, ffi = false): string[] {
  return [
    "compile",
    "--no-check",
    ...(ffi ? FFI_PERMISSION_FLAGS : PERMISSION_FLAGS),
    SELF_RESTART_PERMISSION,
    ...RUNTIME_FLAGS,
    "--target",
    target,
    "-o",
    executableName(target, ffi),
    BUNDLE,
  ];
}

if (import.meta.main) {
  const { positionals, values } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: { target: { type: "string", multiple: true }, ffi: { type: "boolean" } },
  });
  const ffi = values.ffi === true;
  try {
    if (positionals[0] === "bundle") await bundle();
    else if (positionals[0] === "compile") await compile(values.target ?? TARGETS, ffi);
    else if (positionals[0] === "permissions") {
      console.log([...(ffi ? FFI_PERMISSION_FLAGS : PERMISSION_FLAGS), ...RUNTIME_FLAGS].join(" "));
    } else {
      throw new Error(
        "usage: build.ts bundle | compile [--target T ...] [--ffi] | permissions [--ffi]",
      );
    }
  } catch (err) {
    console.error(`build: ${errorMessage(err)}`);
    Deno.exit(1);
  }
}
