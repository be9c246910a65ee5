/**
 * PVI against the rules of ophyd-async's PVI reader (restated in
 * `tests/support/ophyd_pvi_reader.ts`, first checked on the layout of their own docstring
 * example).
 */
import assert from "node:assert/strict";
import { type PviPv, pviStructure } from "../pva/pvi.ts";
import { pviLayout } from "../lib/ioc_pvs.ts";
import type { StructValue } from "../pva/pvdata.ts";
import { buildTree, DEVICE_ATTRIBUTES, signalOf, type Tree } from "./support/ophyd_pvi_reader.ts";

function served(pvs: PviPv[]): (pv: string) => Promise<StructValue> {
  const byName = new Map(pvs.map((p) => [p.name, p.value]));
  return (pv) => {
    const v = byName.get(pv);
    return v === undefined ? Promise.reject(new Error(`no PV ${pv}`)) : Promise.resolve(v);
  };
}

Deno.test("pvi reader port: their docstring layout gives their documented tree", async () => {
  // PviTree docstring, example 1 (a device with sub-devices and signals) and 2 (a vector).
  const layout: Record<string, StructValue> = {
    "TEST-PANDA:PVI": {
      value: {
        bit: { d: "TEST-PANDA:Bits:PVI" },
        calc: { d: "TEST-PANDA:Calc:PVI" },
        a: { rw: "TEST-PANDA:Bits:A" },
      },
    },
    "TEST-PANDA:Bits:PVI": { value: {} },
    "TEST-PANDA:Calc:PVI": {
      value: { __1: { d: "TEST-PANDA:Calc:2:PVI" }, __2: { d: "TEST-PANDA:Calc:1:PVI" } },
    },
    "TEST-PANDA:Calc:1:PVI": { value: {} },
    "TEST-PANDA:Calc:2:PVI": { value: {} },
  };
  const tree = await buildTree("TEST-PANDA:PVI", (pv) => Promise.resolve(layout[pv]));
  assert.deepEqual(tree.signals, {
    a: { kind: "SignalRW", read: "TEST-PANDA:Bits:A", write: "TEST-PANDA:Bits:A" },
  });
  assert.deepEqual(Object.keys(tree.devices), ["bit", "calc"]);
  assert.deepEqual(Object.keys(tree.devices.calc.vector), ["1", "2"]);
  assert.equal((tree.devices.calc.vector[1] as Tree).pviPv, "TEST-PANDA:Calc:2:PVI");
  assert.throws(() => signalOf({ d: "X", x: "Y" }), TypeError);
});

/** The IOC's PVI (`lib/ioc_pvs.ts`) for an EIGER-like configuration with two thresholds. */
function iocPvi(prefix: string): PviPv[] {
  const { top, children } = pviLayout({
    channels: ["threshold_1", "threshold_2"].map((name) => ({
      name,
      meta: { threshold_energy: 8000 },
    })),
    numImages: 1,
    width: 4,
    height: 3,
    pixelType: "uint32",
  });
  return pviStructure(prefix, top, children);
}

Deno.test("pvi: the IOC's structure reads as the intended ophyd-async device", async () => {
  const P = "DISS:det:";
  const tree = await buildTree(`${P}PVI`, served(iocPvi(P)));
  assert.deepEqual(tree.commands, { cancel: `${P}cancel`, clear: `${P}clear` });
  assert.deepEqual(tree.signals.acquire, {
    kind: "SignalRW",
    read: `${P}acquire`,
    write: `${P}acquire`,
  });
  assert.deepEqual(tree.signals.state, { kind: "SignalR", read: `${P}state`, write: `${P}state` });
  assert.deepEqual(Object.keys(tree.devices), ["threshold_1", "threshold_2"]);
  const t1 = tree.devices.threshold_1;
  assert.equal(t1.pviPv, `${P}threshold_1:PVI`);
  assert.deepEqual(t1.signals.image, {
    kind: "SignalR",
    read: `${P}threshold_1:image`,
    write: `${P}threshold_1:image`,
  });
  assert.equal(t1.signals.threshold_energy.kind, "SignalRW");
  assert.deepEqual(tree.vector, {}, "no DeviceVector entries");
  // Every entry name is an attribute ophyd-async can create.
  const names = (t: Tree): string[] => [
    ...Object.keys(t.signals),
    ...Object.keys(t.commands),
    ...Object.keys(t.devices),
    ...Object.values(t.devices).flatMap(names),
  ];
  for (const name of names(tree)) {
    assert.match(name, /^[A-Za-z_][A-Za-z0-9_]*$/, name);
    assert.ok(!DEVICE_ATTRIBUTES.includes(name), name);
  }
  // The served type is the QSRV group layout: value.<entry>.<role> strings.
  const top = iocPvi(P)[0];
  const valueType = top.type.fields.find((f) => f.name === "value")!.type;
  assert.equal(valueType.kind, "structure");
});

Deno.test("pvi: names become identifiers, never vector indices, and none is lost", async () => {
  const pvs = pviStructure("X:", [
    { name: "a-b", r: "a-b" },
    { name: "a_b", r: "a_b" },
    { name: "2theta", rw: "2theta" },
    { name: "__1", r: "__1" },
  ], []);
  const tree = await buildTree("X:PVI", served(pvs));
  assert.deepEqual(tree.vector, {}, "`__1` is not taken for a DeviceVector element");
  assert.deepEqual(
    Object.fromEntries(Object.entries(tree.signals).map(([k, v]) => [k, v.read])),
    { a_b: "X:a-b", a_b_2: "X:a_b", _2theta: "X:2theta", _1: "X:__1" },
  );
});
