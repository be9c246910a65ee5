import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { layerProblems, readProgramFiles, relativeImports } from "../scripts/check_layers.ts";

const ROOT = join(dirname(new URL(import.meta.url).pathname), "..");

Deno.test("layers: no folder imports against core <- ca, devices <- lib; registry only from entry points", async () => {
  const files = await readProgramFiles(ROOT);
  assert.ok(files.has("devices/contract.ts") && files.has("core/log.ts"), "the tree was read");
  assert.deepStrictEqual(layerProblems(files), []);
});

Deno.test("layers: the check finds an upward import, a reach into ca/ and a registry import", () => {
  const problems = layerProblems(
    new Map([
      [
        "devices/x.ts",
        'import { getLog } from "../core/log.ts";\nimport type { A } from "../lib/a.ts";',
      ],
      ["core/y.ts", 'export { b } from "../devices/contract.ts";'],
      [
        "lib/z.ts",
        'import {\n  c,\n} from "../ca/pv.ts";\nconst r = await import("../devices/registry.ts");',
      ],
      ["pva/p.ts", 'import { s } from "../ca/store.ts";\nimport { v } from "../lib/view/app.ts";'],
      ["lib/q.ts", 'import { t } from "../pva/wire.ts";\nimport { u } from "../pva/mod.ts";'],
      [
        "lib/ok.ts",
        'import { d } from "../ca/mod.ts";\nimport { e } from "../devices/contract.ts";',
      ],
    ]),
  );
  assert.deepStrictEqual(problems, [
    "devices/x.ts imports lib/a.ts: devices/ may not import lib/",
    "core/y.ts imports devices/contract.ts: core/ may not import devices/",
    "lib/z.ts imports ca/pv.ts: outside ca/, import ca/mod.ts",
    "lib/z.ts imports devices/registry.ts: only entry points may",
    "pva/p.ts imports ca/store.ts: outside ca/, import ca/mod.ts",
    "pva/p.ts imports lib/view/app.ts: pva/ may not import lib/",
    "lib/q.ts imports pva/wire.ts: outside pva/, import pva/mod.ts",
  ]);
  assert.deepStrictEqual(relativeImports('import "./a.ts";\nimport x from "npm:y";'), ["./a.ts"]);
});
