/**
 * Interop with libca from C (scripts/bench/c/ca_bench_client.c, compiled with gcc -lca): every DBR
 * request type 0..34, 37, 38 for every native type, including the STS and GR families that
 * pyepics cannot request. libca converts each struct to host order; we check status, severity,
 * time, metadata and the converted value at the spec's offsets.
 */

import assert from "node:assert/strict";
import { startCaServer } from "../ca/server.ts";
import type { CaServer } from "../ca/pv.ts";
import {
  caClientEnv,
  freeUdpPort,
  killMarkedProcesses,
  testServerEnv,
} from "./support/epics_env.ts";

const STAMP = 1_700_000_000_123;
const VALUE_OFFSET = [
  [0, 0, 0, 0, 0, 0, 0],
  [4, 4, 4, 4, 5, 4, 8],
  [12, 14, 12, 14, 15, 12, 16],
  [4, 24, 40, 422, 19, 36, 64],
  [4, 28, 48, 422, 21, 44, 80],
];

async function buildClient(dir: string): Promise<string> {
  const binary = `${dir}/ca_bench_client`;
  const source = new URL("../scripts/bench/c/ca_bench_client.c", import.meta.url).pathname;
  const out = await new Deno.Command("gcc", { args: ["-O2", "-o", binary, source, "-lca"] })
    .output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return binary;
}

async function families(binary: string, server: CaServer, pv: string) {
  const marker = crypto.randomUUID();
  try {
    const out = await new Deno.Command(binary, {
      args: ["families", pv],
      env: caClientEnv({ udpPort: server.udpPort, marker, repeaterPort: freeUdpPort() }),
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const parsed = JSON.parse(new TextDecoder().decode(out.stdout)) as Record<string, string>;
    const result = new Map<number, DataView | string>();
    for (const [type, hex] of Object.entries(parsed)) {
      if (hex.startsWith("error")) {
        result.set(Number(type), hex);
        continue;
      }
      const bytes = Uint8Array.from(hex.match(/../g)!, (h) => parseInt(h, 16));
      result.set(Number(type), new DataView(bytes.buffer));
    }
    return result;
  } finally {
    killMarkedProcesses(marker);
  }
}

function cString(view: DataView, offset: number, max = 40): string {
  let s = "";
  for (let i = 0; i < max && offset + i < view.byteLength; i++) {
    const c = view.getUint8(offset + i);
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

function readValue(view: DataView, base: number, offset: number): number | string {
  switch (base) {
    case 0:
      return cString(view, offset);
    case 1:
      return view.getInt16(offset, true);
    case 2:
      return view.getFloat32(offset, true);
    case 3:
      return view.getUint16(offset, true);
    case 4:
      return view.getUint8(offset);
    case 5:
      return view.getInt32(offset, true);
    default:
      return view.getFloat64(offset, true);
  }
}

/** C-cast conversions of a numeric value to each base type, plus its string form. */
function conversions(x: number, text: string): (number | string)[] {
  const t = Math.trunc(x);
  return [
    text,
    (t << 16) >> 16,
    Math.fround(x),
    t & 0xffff,
    t & 0xff,
    t | 0,
    x,
  ];
}

Deno.test("interop C: every DBR type of every native type through libca", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ca_interop_c_" });
  const server = await startCaServer({ env: testServerEnv(), port: 0 });
  try {
    const binary = await buildClient(dir);
    const alarm = { timestamp: STAMP, severity: 1, status: 4 };
    server.add({ name: "C:D", type: "double", units: "mm", precision: 4, displayLimits: [-10, 10] })
      .post(3.14159, alarm);
    server.add({ name: "C:F", type: "float", precision: 2 }).post(1.5, alarm);
    server.add({ name: "C:L", type: "long", units: "cnt" }).post(123456, alarm);
    server.add({ name: "C:H", type: "short" }).post(-123, alarm);
    server.add({ name: "C:C", type: "char" }).post(65, alarm);
    server.add({ name: "C:E", type: "enum", enumLabels: ["Off", "On"] }).post(1, alarm);
    server.add({ name: "C:S", type: "string" }).post("hello", alarm);
    const numeric: [string, number, string, string][] = [
      ["C:D", 3.14159, "3.1416", "ai"],
      ["C:F", 1.5, "1.50", "ai"],
      ["C:L", 123456, "123456", "longin"],
      ["C:H", -123, "-123", "longin"],
      ["C:C", 65, "65", "longin"],
      ["C:E", 1, "On", "mbbi"],
    ];
    for (const [name, x, text, rtyp] of numeric) {
      const result = await families(binary, server, name);
      const expected = conversions(x, text);
      for (let type = 0; type <= 34; type++) {
        const family = Math.floor(type / 7);
        const base = type % 7;
        const view = result.get(type);
        assert.ok(view instanceof DataView, `${name} type ${type}: ${view}`);
        const offset = base === 0 && family >= 3 ? 4 : VALUE_OFFSET[family][base];
        assert.deepStrictEqual(
          readValue(view, base, offset),
          expected[base],
          `${name} type ${type}`,
        );
        if (family >= 1) {
          assert.equal(view.getInt16(0, true), 4, `${name} type ${type} status`);
          assert.equal(view.getInt16(2, true), 1, `${name} type ${type} severity`);
        }
        if (family === 2) {
          assert.equal(view.getUint32(4, true), Math.floor(STAMP / 1000) - 631152000);
          assert.equal(view.getUint32(8, true), 123_000_000, `${name} nanoseconds`);
        }
      }
      const classView = result.get(38);
      assert.ok(classView instanceof DataView);
      assert.equal(cString(classView, 0), rtyp, `${name} class name`);
      const ack = result.get(37);
      assert.ok(ack instanceof DataView);
      assert.equal(cString(ack, 8), text, `${name} STSACK_STRING value`);
    }
    const d = await families(binary, server, "C:D");
    const grDouble = d.get(27) as DataView;
    assert.equal(grDouble.getInt16(4, true), 4, "precision");
    assert.equal(cString(grDouble, 8, 8), "mm");
    assert.equal(grDouble.getFloat64(16, true), 10, "upper display limit");
    assert.equal(cString(d.get(26) as DataView, 4, 8), "mm", "GR_LONG units");
    const e = await families(binary, server, "C:E");
    const grEnum = e.get(24) as DataView;
    assert.equal(grEnum.getInt16(4, true), 2);
    assert.deepStrictEqual([cString(grEnum, 6, 26), cString(grEnum, 32, 26)], ["Off", "On"]);
    const s = await families(binary, server, "C:S");
    for (const type of [0, 7, 14, 21, 28, 37]) {
      const view = s.get(type) as DataView;
      const offset = type === 37 ? 8 : type === 14 ? 12 : type === 0 ? 0 : 4;
      assert.equal(cString(view, offset), "hello", `string type ${type}`);
    }
    assert.match(String(s.get(6)), /^error/, "non-numeric string read as DOUBLE fails");
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
