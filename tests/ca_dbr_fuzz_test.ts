import assert from "node:assert/strict";
import {
  DbrError,
  dbrPayloadSize,
  type DbrSource,
  decodeDbr,
  decodeDbrWrite,
  encodeDbr,
  isReadableDbrType,
} from "../ca/dbr.ts";
import type { NativeType, NativeValue } from "../ca/pv.ts";

/** Deterministic xorshift32 generator. */
function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x1_0000_0000;
  };
}

const NATIVES: NativeType[] = ["string", "short", "float", "enum", "char", "long", "double"];
const VALUES: Record<NativeType, NativeValue> = {
  string: ["1.5", "Off", "", "x".repeat(45)],
  short: Int16Array.of(-1, 2, 300),
  float: Float32Array.of(1.5, NaN, -Infinity),
  enum: Uint16Array.of(0, 1, 2),
  char: Uint8Array.of(48, 0, 255),
  long: Int32Array.of(-5, 7, 2147483647),
  double: Float64Array.of(3.14159, -1e300, 0),
};
const LABEL_SETS: (readonly string[] | undefined)[] = [undefined, [], ["Off", "On", "Fault"]];

function checkDecoded(value: NativeValue, count: number, payload: Uint8Array): void {
  assert.ok(value.length <= count, "more elements than the count");
  if (Array.isArray(value)) {
    assert.ok(value.length * 40 <= payload.length || value.length === 0);
  } else {
    assert.ok((value as Uint8Array).byteLength <= payload.length, "bigger than the payload");
  }
}

function checkWritten(value: NativeValue, payload: Uint8Array): void {
  assert.ok(value.length <= Math.max(1, payload.length), "more elements than payload bytes");
  if (Array.isArray(value)) {
    for (const s of value) assert.ok(s.length <= payload.length + 40, "string too long");
  }
}

Deno.test("fuzz: 120k random and mutated payloads only return or throw DbrError", () => {
  const random = prng(0x5eed1234);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  // Valid payloads of every readable type and native as mutation seeds.
  const seeds: { type: number; count: number; payload: Uint8Array }[] = [];
  for (const native of NATIVES) {
    for (let type = 0; type <= 38; type++) {
      if (!isReadableDbrType(type)) continue;
      const source: DbrSource = {
        value: VALUES[native],
        type: native,
        timestamp: 1.7e12,
        severity: 1,
        status: 3,
        metadata: { units: "mm", precision: 2, enumLabels: ["Off", "On", "Fault"] },
      };
      for (const count of [1, 3]) {
        try {
          seeds.push({ type, count, payload: encodeDbr(type, count, source) });
        } catch (e) {
          assert.ok(e instanceof DbrError); // e.g. "Off" read as a number
        }
      }
    }
  }
  assert.ok(seeds.length > 400);
  let returned = 0;
  let refused = 0;
  const iterations = 120_000;
  for (let i = 0; i < iterations; i++) {
    let type: number;
    let count: number;
    let payload: Uint8Array;
    const mode = random();
    if (mode < 0.6) {
      const seed = pick(seeds);
      payload = seed.payload.slice();
      const flips = 1 + Math.floor(random() * 4);
      for (let k = 0; k < flips && payload.length > 0; k++) {
        payload[Math.floor(random() * payload.length)] = Math.floor(random() * 256);
      }
      if (random() < 0.3) payload = payload.subarray(0, Math.floor(random() * payload.length));
      type = random() < 0.85 ? seed.type : Math.floor(random() * 41);
      count = random() < 0.8 ? seed.count : Math.floor(random() * 6);
    } else {
      payload = new Uint8Array(Math.floor(random() * 520));
      for (let k = 0; k < payload.length; k++) payload[k] = Math.floor(random() * 256);
      if (random() < 0.5) payload.fill(0x30, 0, Math.min(payload.length, 6)); // digits
      type = random() < 0.9 ? Math.floor(random() * 41) : pick([65535, -1, 2.5, NaN]);
      count = random() < 0.9 ? Math.floor(random() * 20) : pick([2 ** 31, 2 ** 32 - 1, -3, 0.5]);
    }
    const native = pick(NATIVES);
    const labels = pick(LABEL_SETS);
    const maxCount = random() < 0.5 ? undefined : Math.floor(random() * 5);
    try {
      checkWritten(decodeDbrWrite(type, count, payload, native, labels, maxCount), payload);
      returned++;
    } catch (e) {
      if (!(e instanceof DbrError)) throw e;
      refused++;
    }
    try {
      checkDecoded(decodeDbr(type, count, payload).value, count, payload);
      returned++;
    } catch (e) {
      if (!(e instanceof DbrError)) throw e;
      refused++;
    }
  }
  assert.equal(returned + refused, 2 * iterations);
  // Both outcomes must be exercised substantially for the fuzz to mean anything.
  assert.ok(returned > iterations / 4, `returned ${returned}`);
  assert.ok(refused > iterations / 4, `refused ${refused}`);
});

Deno.test("fuzz: 20k random encodes give exactly the padded size or a DbrError", () => {
  const random = prng(0xc0ffee);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  let encoded = 0;
  for (let i = 0; i < 20_000; i++) {
    const native = pick(NATIVES);
    const type = random() < 0.95 ? Math.floor(random() * 40) : pick([65535, -2, 7.5]);
    const count = random() < 0.95 ? Math.floor(random() * 8) : pick([-1, 0.5, 2 ** 32]);
    const room = pick([0, 1, 16, 24]);
    const source: DbrSource = {
      value: VALUES[native],
      type: native,
      timestamp: random() < 0.9 ? random() * 4e12 : pick([NaN, -1, Infinity]),
      severity: Math.floor(random() * 4),
      status: Math.floor(random() * 22),
      metadata: {
        units: pick(["", "mm", "a very long unit"]),
        precision: pick([undefined, 0, 3, 12, -1]),
        displayLimits: pick([undefined, [-1e40, 1e40] as const, [0, 255] as const]),
        enumLabels: pick(LABEL_SETS),
      },
    };
    try {
      const out = encodeDbr(type, count, source, room);
      assert.equal(out.length, room + dbrPayloadSize(type, count));
      encoded++;
    } catch (e) {
      if (!(e instanceof DbrError)) throw e;
    }
  }
  assert.ok(encoded > 10_000, `encoded ${encoded}`);
});
