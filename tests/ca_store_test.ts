import assert from "node:assert/strict";
import { PvRecord } from "../ca/store.ts";
import { OWNER_POSTS } from "../ca/pv.ts";
import { defaultCodec } from "../ca/codec_dbr.ts";
import { DBR, decodeDbr } from "../ca/dbr.ts";
import { assertSameBytes } from "./support/bytes.ts";

function readDoubles(pv: PvRecord, count: number): Float64Array {
  const payload = defaultCodec.encode(DBR.DOUBLE, count, {
    value: pv.value(),
    native: pv.native,
    timestamp: pv.timestamp,
    severity: pv.severity,
    status: pv.status,
    metadata: pv.metadata,
  });
  return decodeDbr(DBR.DOUBLE, count, payload).value as Float64Array;
}

Deno.test("store: uint32 posts on a DOUBLE PV are stored unconverted, served exact", () => {
  const n = 4096;
  const pv = new PvRecord({ name: "S:img", type: "double", maxCount: n }, defaultCodec);
  const a = new Uint32Array(n).map((_, i) => i * 1_000_003);
  a[0] = 0xffff_ffff;
  pv.post(a, { copy: true });
  const stored = pv.snapshot().value;
  assert.ok(stored instanceof Uint32Array, "kept as uint32 (converted only when encoded)");
  assert.notEqual(stored, a, "a copy");
  assert.deepEqual(Array.from(readDoubles(pv, 3)), [4294967295, 1_000_003, 2_000_006]);
  const native = pv.value();
  assert.ok(native instanceof Float64Array, "value() is the native form");
  assert.deepEqual(Array.from(native.subarray(0, 2)), [4294967295, 1_000_003]);
  assert.equal(pv.value(), native, "converted once per version");

  const b = new Uint32Array(n).fill(7);
  const versionBefore = pv.version;
  pv.post(b, { copy: true });
  assert.equal(pv.snapshot().value, stored, "copied into the record's own array");
  assert.equal(pv.version, versionBefore + 1);
  assert.deepEqual(Array.from(readDoubles(pv, 2)), [7, 7]);
  assert.deepEqual(Array.from(pv.value() as Float64Array).slice(0, 2), [7, 7], "value() follows");
  assert.deepEqual(Array.from(a.subarray(0, 2)), [0xffff_ffff, 1_000_003], "source untouched");
  assert.equal(pv.target("NORD")!.snapshot().value[0], n);
  // Every DBR type reads the same numbers as from the converted native array.
  for (const type of [DBR.LONG, DBR.FLOAT, DBR.SHORT, DBR.CHAR, DBR.STRING, DBR.CTRL_DOUBLE]) {
    const fromStored = pv.target("VAL")!.encoded(type, 8);
    const fromNative = defaultCodec.encode(type, 8, { ...pv.snapshot(), value: pv.value() });
    assert.deepEqual(fromStored, fromNative, `DBR type ${type}`);
  }
  // Whole arrays take the WebAssembly widening path (uint32 -> big-endian double).
  pv.post(a, { copy: true });
  const whole = pv.target("VAL")!.encoded(DBR.TIME_DOUBLE, n);
  assertSameBytes(
    whole,
    defaultCodec.encode(DBR.TIME_DOUBLE, n, { ...pv.snapshot(), value: pv.value() }),
  );
});

Deno.test("store: arrays handed over by callers or written by clients are never overwritten", () => {
  const n = 2048;
  const pv = new PvRecord({ name: "S:own", type: "double", maxCount: n }, defaultCodec);
  const mine = new Float64Array(n).fill(1.5);
  pv.post(mine);
  assert.equal(pv.value(), mine, "native arrays are kept without copying");
  pv.post(new Uint32Array(n).fill(9));
  assert.notEqual(pv.value(), mine, "a caller's array is not reused");
  assert.equal(mine[0], 1.5);

  const written = new Float64Array(n).fill(3);
  pv.storeNative(written);
  pv.post(new Uint32Array(n).fill(4));
  assert.equal(written[0], 3, "a client write's array is not reused");
  assert.equal(pv.value()[0], 4);
});

Deno.test("store: only exact widenings and equal lengths convert in place", () => {
  const n = 2048;
  const pv = new PvRecord({ name: "S:long", type: "long", maxCount: n + 1 }, defaultCodec);
  pv.post(new Uint16Array(n).fill(65535));
  const own = pv.value();
  pv.post(new Uint16Array(n + 1).fill(1)); // other length: new array
  assert.notEqual(pv.value(), own);
  const own2 = pv.value();
  pv.post(new Float64Array(n + 1).fill(2.7)); // not exact into int32: the codec converts
  assert.notEqual(pv.value(), own2);
  assert.equal(pv.value()[0], defaultCodec.toNative(new Float64Array([2.7]), "long", 1)[0]);
});

Deno.test("store: a narrower array posted without copy is still not aliased", () => {
  const n = 2048;
  const pv = new PvRecord({ name: "S:alias", type: "double", maxCount: n }, defaultCodec);
  const mine = new Uint32Array(n).fill(5);
  pv.post(mine);
  mine.fill(6); // allowed: only native-typed arrays are kept by reference
  assert.equal(pv.value()[0], 5);
  assert.deepEqual(Array.from(readDoubles(pv, 1)), [5]);
});

Deno.test("store: a write handler answering OWNER_POSTS leaves storing and posting to the owner", async () => {
  const owner: { pv?: PvRecord } = {};
  const pvr = new PvRecord({
    name: "S:go",
    type: "long",
    writable: true,
    onWrite: (value) => {
      if (value[0] === 2) owner.pv!.post(1); // the owner's own post, e.g. from a state hook
      return OWNER_POSTS;
    },
  }, defaultCodec);
  owner.pv = pvr;
  const version = pvr.version;
  await pvr.write(new Int32Array([5]), { user: "", host: "", address: "127.0.0.1" });
  assert.deepEqual(Array.from(pvr.value() as Int32Array), [0], "written value not stored");
  assert.equal(pvr.version, version, "nothing posted");
  await pvr.write(new Int32Array([2]), { user: "", host: "", address: "127.0.0.1" });
  assert.deepEqual(Array.from(pvr.value() as Int32Array), [1], "only the owner's post");
  assert.equal(pvr.version, version + 1);
});

Deno.test("store: a narrower array handed over with keep is served in place", () => {
  const n = 2048;
  const pv = new PvRecord({ name: "S:keep", type: "double", maxCount: n }, defaultCodec);
  const pixels = new Uint32Array(n).fill(0xffff_ffff);
  pv.post(pixels, { keep: true });
  assert.equal(pv.snapshot().value, pixels, "kept by reference, unconverted");
  assert.deepEqual(Array.from(readDoubles(pv, 2)), [4294967295, 4294967295]);
  pv.post(new Uint32Array(n).fill(1));
  assert.equal(pixels[0], 0xffff_ffff, "a handed-over array is never written by the store");
});

Deno.test("store: a lent value array is never overwritten; copying posts fill the one given back", () => {
  // Image-sized (stored as posted, not converted to DOUBLE).
  const n = 2048;
  const pv = new PvRecord({ name: "L:img", type: "double", maxCount: n }, defaultCodec);
  const frame = Uint32Array.from({ length: n }, (_, i) => i + 1);
  pv.post(frame, { copy: true });
  const a = pv.holdValue()!;
  assert.ok(a.value instanceof Uint32Array);
  assert.equal(a.value[n - 1], n);
  frame[0] = 10;
  pv.post(frame, { copy: true }); // a is lent: stored in a new array
  assert.equal(a.value[0], 1, "the lent array keeps its bytes");
  const b = pv.holdValue()!;
  assert.notEqual(b.value, a.value);
  assert.equal(b.value[0], 10);
  a.release();
  frame[0] = 20;
  pv.post(frame, { copy: true }); // b is lent: fills a, given back
  assert.equal(b.value[0], 10, "the second lent array keeps its bytes");
  assert.equal(pv.snapshot().value, a.value, "the array given back is reused");
  assert.equal(pv.snapshot().value[0], 20);
  b.release();
  frame[0] = 30;
  pv.post(frame, { copy: true }); // nothing lent now: in place
  assert.equal(pv.snapshot().value, a.value);
  assert.equal(a.value[0], 30);
  // Arrays handed over by the caller are not lent (the caller may reuse them once replaced)...
  pv.post(Uint32Array.from(frame), { keep: true });
  assert.equal(pv.holdValue(), undefined);
  // ...unless the post says how to take a reference to them: the loan is that reference.
  const kept = Uint32Array.from(frame);
  let refs = 0;
  pv.post(kept, {
    keep: true,
    retain: () => {
      refs++;
      return () => refs--;
    },
  });
  const c = pv.holdValue()!;
  assert.equal(c.value, kept, "the caller's array itself");
  assert.equal(refs, 1);
  c.release();
  assert.equal(refs, 0, "release gives the reference back");
  pv.post(Uint32Array.from(frame), { keep: true });
  assert.equal(pv.holdValue(), undefined, "a retain applies to its own post only");
});
