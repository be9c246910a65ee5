/**
 * The Harp FFI bindings against the documented HHLib signatures: the backend's table, turned into
 * C prototypes, must compile together with the documented declarations (gcc reports conflicting
 * types otherwise), bind exactly the documented functions, and the stand-in library must export
 * every one of them (compiled against the same declarations).
 */

import assert from "node:assert/strict";
import { cPrototype, type HarpCall, type HarpFamily, HYDRAHARP } from "../devices/harp/api.ts";
import { ffiSymbols } from "../devices/harp/library.ts";
import { buildStandIn, DOCUMENTED_HEADER, gcc } from "./support/harp/standin.ts";

/** Compiles the documented header followed by `family`'s prototypes (syntax only). */
async function compileAgainstDocumented(family: HarpFamily, folder: string): Promise<void> {
  const calls = Object.keys(family.functions) as HarpCall[];
  const source = `${folder}/bindings.c`;
  await Deno.writeTextFile(
    source,
    `#include "${DOCUMENTED_HEADER}"\n` + calls.map((c) => `${cPrototype(family, c)};\n`).join(""),
  );
  await gcc(["-fsyntax-only", "-Werror", source]);
}

async function documentedNames(): Promise<string[]> {
  const text = await Deno.readTextFile(DOCUMENTED_HEADER);
  return [...text.matchAll(/^int (HH_\w+)\(/gm)].map((m) => m[1]).sort();
}

Deno.test("harp bindings: every bound function has the documented C signature", async () => {
  const folder = await Deno.makeTempDir({ prefix: "harp-bindings-" });
  try {
    await compileAgainstDocumented(HYDRAHARP, folder);
    const bound = Object.keys(ffiSymbols(HYDRAHARP)).sort();
    assert.deepEqual(bound, await documentedNames());
    // The check can fail: one wrong parameter type is a compile error.
    const wrong: HarpFamily = {
      ...HYDRAHARP,
      functions: {
        ...HYDRAHARP.functions,
        GetHistogram: { params: ["int", "int*", "int", "int"], slow: true },
      },
    };
    await assert.rejects(() => compileAgainstDocumented(wrong, folder), /conflicting types/);
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
});

Deno.test("harp bindings: FFI types follow the C types", () => {
  const symbols = ffiSymbols(HYDRAHARP);
  assert.deepEqual(symbols.HH_GetHistogram.parameters, ["i32", "buffer", "i32", "i32"]);
  assert.deepEqual(symbols.HH_SetInputCFD.parameters, ["i32", "i32", "i32", "i32"]);
  assert.deepEqual(symbols.HH_GetBaseResolution.parameters, ["i32", "buffer", "buffer"]);
  for (const [name, fn] of Object.entries(symbols)) {
    assert.equal(fn.result, "i32", name);
    const call = name.slice(3) as HarpCall;
    assert.equal(fn.nonblocking, HYDRAHARP.functions[call].slow === true, name);
  }
});

Deno.test("harp bindings: the stand-in exports every bound function", async () => {
  const folder = await Deno.makeTempDir({ prefix: "harp-standin-" });
  try {
    const library = await buildStandIn(folder);
    const out = await new Deno.Command("nm", { args: ["-D", "--defined-only", library] }).output();
    assert.ok(out.success, "nm ran");
    const exported = new Set(
      new TextDecoder().decode(out.stdout).split("\n").map((l) => l.split(" ").at(-1)),
    );
    for (const name of Object.keys(ffiSymbols(HYDRAHARP))) {
      assert.ok(exported.has(name), `${name} exported`);
    }
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
});
