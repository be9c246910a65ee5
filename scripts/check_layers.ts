/**
 * Checks the folder layering of the program: which top-level folder may import which.
 *
 * ```
 * core/     helpers every layer may use   imports nothing of ours
 * ca/       Channel Access                imports core/
 * pva/      pvAccess                      imports core/, ca/ (the PV store; only via ca/mod.ts)
 * devices/  contract, backends, sims      imports core/
 * lib/      controller, PVs, apps, viewer imports core/, devices/, ca/, pva/ (only via their mod.ts)
 * main.ts   the program                   imports anything
 * ```
 *
 * and only program entry points (main.ts and the application runners) import the backend
 * registry `devices/registry.ts`. Usage: `deno run -A scripts/check_layers.ts` (exit 1 on any
 * problem); `tests/layers_test.ts` runs the same check.
 *
 * @module
 */

import { dirname, join, normalize, relative } from "node:path";

/** Which folders each folder may import from (besides itself). */
export const ALLOWED_IMPORTS: Readonly<Record<string, readonly string[]>> = {
  core: [],
  ca: ["core"],
  pva: ["core", "ca"],
  devices: ["core"],
  lib: ["core", "devices", "ca", "pva"],
};

/** The files that may import the backend registry (program entry points and app runners). */
export const REGISTRY_IMPORTERS: readonly string[] = [
  "main.ts",
  "lib/ioc_app.ts",
  "lib/view/app.ts",
];

const IMPORT_RE =
  /(?:^|\n)\s*(?:import|export)\s[^"';]*?from\s*"(\.{1,2}\/[^"]+)"|import\s*\(?\s*"(\.{1,2}\/[^"]+)"/g;

/** The relative import specifiers of a TypeScript source text. */
export function relativeImports(source: string): string[] {
  const out: string[] = [];
  for (const m of source.matchAll(IMPORT_RE)) out.push(m[1] ?? m[2]);
  return out;
}

function topFolder(path: string): string {
  return path.includes("/") ? path.split("/")[0] : path;
}

/**
 * Problems of a set of files given as `path → source` (paths relative to the repository root):
 * imports across folders that {@link ALLOWED_IMPORTS} does not allow, imports of `ca/` (`pva/`)
 * files other than `ca/mod.ts` (`pva/mod.ts`) from outside that folder, and imports of `devices/registry.ts` from files not in
 * {@link REGISTRY_IMPORTERS}.
 */
export function layerProblems(files: ReadonlyMap<string, string>): string[] {
  const problems: string[] = [];
  for (const [path, source] of files) {
    const from = topFolder(path);
    if (!(from in ALLOWED_IMPORTS)) continue;
    for (const spec of relativeImports(source)) {
      const target = normalize(join(dirname(path), spec));
      const to = topFolder(target);
      if (target === "deno.json") continue;
      if (to !== from && !ALLOWED_IMPORTS[from].includes(to)) {
        problems.push(`${path} imports ${target}: ${from}/ may not import ${to}/`);
      }
      for (const entry of ["ca", "pva"]) {
        if (to === entry && from !== entry && target !== `${entry}/mod.ts`) {
          problems.push(`${path} imports ${target}: outside ${entry}/, import ${entry}/mod.ts`);
        }
      }
      if (target === "devices/registry.ts" && !REGISTRY_IMPORTERS.includes(path)) {
        problems.push(`${path} imports devices/registry.ts: only entry points may`);
      }
    }
  }
  return problems;
}

/** Reads every `.ts` file under the program folders of `root` (plus main.ts). */
export async function readProgramFiles(root: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  async function walk(dir: string): Promise<void> {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) await walk(path);
      else if (entry.name.endsWith(".ts")) {
        files.set(relative(root, path), await Deno.readTextFile(path));
      }
    }
  }
  for (const folder of Object.keys(ALLOWED_IMPORTS)) await walk(join(root, folder));
  files.set("main.ts", await Deno.readTextFile(join(root, "main.ts")));
  return files;
}

if (import.meta.main) {
  const root = join(dirname(new URL(import.meta.url).pathname), "..");
  const problems = layerProblems(await readProgramFiles(root));
  for (const p of problems) console.error(`check_layers: ${p}`);
  console.log(`check_layers: ${problems.length === 0 ? "ok" : `${problems.length} problems`}`);
  Deno.exit(problems.length === 0 ? 0 : 1);
}
