/**
 * Interop tests against real libca (Debian's python3-pyepics on EPICS 7.0.3 libca), on loopback.
 */

import assert from "node:assert/strict";
import { startCaServer } from "../ca/server.ts";
import { type CaServer, WriteRefusedError } from "../ca/pv.ts";
import { runPyepics, testServerEnv } from "./support/epics_env.ts";

const STAMP = 1_700_000_000_123; // ms
const PUT_STATUS_HELPER = `
import ctypes
from epics import dbr
_put_status = []
@ctypes.CFUNCTYPE(None, dbr.event_handler_args)
def _put_cb(args):
    _put_status.append(args.status)
def put_status(chid, value):
    """WRITE_NOTIFY via libca directly; returns the ECA status the server reported."""
    del _put_status[:]
    buf = (ctypes.c_double * 1)(value)
    ca.libca.ca_array_put_callback(6, 1, chid, buf, _put_cb, None)
    t0 = time.time()
    while not _put_status and time.time() - t0 < 10:
        ca.pend_event(0.01)
    return _put_status[0] if _put_status else None
`;

async function withServer(fn: (server: CaServer) => Promise<void>): Promise<void> {
  const server = await startCaServer({ env: testServerEnv(), port: 0 });
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

function addTypedPvs(server: CaServer): void {
  const alarm = { timestamp: STAMP, severity: 1, status: 4 };
  server.add({ name: "I:S", type: "string", description: "a string" }).post("hello", alarm);
  server.add({
    name: "I:H",
    type: "short",
    units: "cnt",
    displayLimits: [-100, 100],
    controlLimits: [-50, 50],
  }).post(-123, alarm);
  server.add({ name: "I:F", type: "float", units: "V", precision: 2 }).post(1.5, alarm);
  server.add({ name: "I:E", type: "enum", enumLabels: ["Off", "On"] }).post(1, alarm);
  server.add({ name: "I:C", type: "char" }).post(65, alarm);
  server.add({ name: "I:L", type: "long", units: "counts" }).post(123456, alarm);
  server.add({
    name: "I:D",
    type: "double",
    units: "mm",
    precision: 4,
    displayLimits: [-10, 10],
    alarmLimits: [-8, 8],
    warningLimits: [-5, 5],
    controlLimits: [-9, 9],
  }).post(3.14159, alarm);
}

type Md = Record<string, unknown>;

Deno.test("interop: plain, TIME and CTRL reads of every native type via libca", async () => {
  await withServer(async (server) => {
    addTypedPvs(server);
    const result = await runPyepics(
      `
names = ["I:S", "I:H", "I:F", "I:E", "I:C", "I:L", "I:D"]
res = {}
for n in names:
    c = ca.create_channel(n)
    assert ca.connect_channel(c, timeout=10), n
    base = ca.field_type(c)
    # pyepics maps only the plain, TIME and CTRL families (STS/GR are not in its dbr.Map).
    values = [ca.get(c, ftype=base + 7 * fam, as_numpy=False, timeout=10) for fam in (0, 2, 4)]
    res[n] = {"type": base, "values": values,
              "time": ca.get_timevars(c, timeout=10),
              "ctrl": ca.get_ctrlvars(c, timeout=10),
              "as_string": ca.get(c, ftype=0, timeout=10),
              "as_double": ca.get(c, ftype=6, timeout=10) if base != 0 else None}
out(res)
`,
      { udpPort: server.udpPort, timeoutMs: 60_000 },
    );
    assert.equal(result.code, 0, result.stderr);
    const res = result.json as Record<
      string,
      { type: number; values: unknown[]; time: Md; ctrl: Md; as_string: string; as_double: number }
    >;
    const expectValues: Record<string, unknown> = {
      "I:S": "hello",
      "I:H": -123,
      "I:F": 1.5,
      "I:E": 1,
      "I:C": 65,
      "I:L": 123456,
      "I:D": 3.14159,
    };
    const types: Record<string, number> = {
      "I:S": 0,
      "I:H": 1,
      "I:F": 2,
      "I:E": 3,
      "I:C": 4,
      "I:L": 5,
      "I:D": 6,
    };
    for (const [name, expected] of Object.entries(expectValues)) {
      const entry = res[name];
      assert.equal(entry.type, types[name], name);
      assert.deepStrictEqual(entry.values, [expected, expected, expected], name);
      assert.equal(entry.time.severity, 1, `${name} severity`);
      assert.equal(entry.time.status, 4, `${name} status`);
      assert.ok(Math.abs((entry.time.timestamp as number) - STAMP / 1000) < 1e-3, `${name} time`);
      assert.equal(entry.ctrl.severity, 1, `${name} ctrl severity`);
    }
    const d = res["I:D"].ctrl;
    assert.deepStrictEqual(
      [d.units, d.precision, d.upper_disp_limit, d.lower_alarm_limit, d.upper_warning_limit],
      ["mm", 4, 10, -8, 5],
    );
    assert.deepStrictEqual([d.upper_ctrl_limit, d.lower_ctrl_limit], [9, -9]);
    assert.equal(res["I:F"].ctrl.precision, 2);
    assert.equal(res["I:H"].ctrl.lower_ctrl_limit, -50);
    assert.equal(res["I:L"].ctrl.units, "counts");
    assert.deepStrictEqual(res["I:E"].ctrl.enum_strs, ["Off", "On"]);
    assert.equal(res["I:E"].as_string, "On");
    assert.equal(res["I:D"].as_string, "3.1416");
    assert.equal(res["I:L"].as_double, 123456);
  });
});

Deno.test("interop: puts with and without callback, enum by label, string and array", async () => {
  await withServer(async (server) => {
    const writes: string[] = [];
    server.add({
      name: "P:D",
      type: "double",
      writable: true,
      onWrite: async (v, client) => {
        await new Promise((r) => setTimeout(r, 20));
        writes.push(`${(v as Float64Array)[0]}@${client.user !== ""}`);
      },
    });
    server.add({ name: "P:E", type: "enum", writable: true, enumLabels: ["Off", "On", "Auto"] });
    server.add({ name: "P:S", type: "string", writable: true });
    server.add({ name: "P:W", type: "long", writable: true, maxCount: 100 });
    const result = await runPyepics(
      `
res = {}
res["wait"] = epics.caput("P:D", 2.5, wait=True, timeout=10)
res["after_wait"] = epics.caget("P:D", timeout=10)
epics.caput("P:D", 4.5)
res["after_nowait"] = epics.caget("P:D", timeout=10)
epics.caput("P:E", "Auto", wait=True, timeout=10)
res["enum"] = epics.caget("P:E", timeout=10)
res["enum_str"] = epics.caget("P:E", as_string=True, timeout=10)
epics.caput("P:S", "new text", wait=True, timeout=10)
res["str"] = epics.caget("P:S", timeout=10)
epics.caput("P:W", [5, 6, 7], wait=True, timeout=10)
res["arr"] = list(epics.caget("P:W", timeout=10))
out(res)
`,
      { udpPort: server.udpPort, timeoutMs: 60_000 },
    );
    assert.equal(result.code, 0, result.stderr);
    const res = result.json as Record<string, unknown>;
    assert.equal(res.wait, 1);
    assert.equal(res.after_wait, 2.5);
    assert.equal(res.after_nowait, 4.5, "WRITE then READ_NOTIFY reads back despite async handler");
    assert.equal(res.enum, 2);
    assert.equal(res.enum_str, "Auto");
    assert.equal(res.str, "new text");
    assert.deepStrictEqual(res.arr, [5, 6, 7]);
    assert.deepStrictEqual(writes, ["2.5@true", "4.5@true"]);
    assert.deepStrictEqual(Array.from(server.get("P:W")!.value() as Int32Array), [5, 6, 7]);
  });
});

Deno.test("interop: read-only PV, refused write, not-found name", async () => {
  await withServer(async (server) => {
    server.add({ name: "X:RO", type: "double", initial: 1 });
    server.add({
      name: "X:REF",
      type: "double",
      writable: true,
      initial: 3,
      onWrite: () => {
        throw new WriteRefusedError("refused by handler");
      },
    });
    const result = await runPyepics(
      PUT_STATUS_HELPER + `
res = {}
ro = ca.create_channel("X:RO"); ca.connect_channel(ro, timeout=10)
res["ro_write_access"] = ca.write_access(ro)
try:
    ca.put(ro, 5.0, wait=True, timeout=5)
    res["ro_put"] = "no error"
except Exception as e:
    res["ro_put"] = type(e).__name__
ref = ca.create_channel("X:REF"); ca.connect_channel(ref, timeout=10)
res["ref_status"] = put_status(ref, 7.0)
ca.put(ref, 8.0)
ca.pend_event(0.3)
res["ref_value"] = ca.get(ref, timeout=10)
res["missing"] = epics.caget("X:MISSING", timeout=1.5)
out(res)
`,
      { udpPort: server.udpPort, timeoutMs: 60_000 },
    );
    assert.equal(result.code, 0, result.stderr);
    const res = result.json as Record<string, unknown>;
    assert.equal(res.ro_write_access, 0);
    assert.equal(res.ro_put, "CASeverityException");
    assert.equal(res.ref_status, 160, "WRITE_NOTIFY completes with ECA_PUTFAIL");
    assert.equal(res.ref_value, 3);
    assert.equal(res.missing, null);
    assert.match(result.stderr, /Channel write request failed[\s\S]*refused by handler/);
  });
});

Deno.test("interop: monitors receive every-so-often updates and end on the latest", async () => {
  await withServer(async (server) => {
    const pv = server.add({ name: "M:D", type: "double" });
    let n = 0;
    const timer = setInterval(() => pv.post(++n), 5);
    try {
      const result = await runPyepics(
        `
seen = []
def cb(pvname=None, value=None, **kw):
    seen.append(value)
p = epics.PV("M:D", callback=cb, auto_monitor=True)
t0 = time.time()
while len(seen) < 40 and time.time() - t0 < 30:
    time.sleep(0.01)
s = list(seen)
out({"count": len(s), "first": s[0] if s else None, "last": s[-1] if s else None,
     "increasing": all(a < b for a, b in zip(s, s[1:]))})
`,
        { udpPort: server.udpPort, timeoutMs: 60_000 },
      );
      assert.equal(result.code, 0, result.stderr);
      const res = result.json as {
        count: number;
        first: number;
        last: number;
        increasing: boolean;
      };
      assert.ok(res.count >= 40, `count ${res.count}`);
      assert.ok(res.last - res.first >= 39, `first ${res.first} last ${res.last}`);
      assert.ok(res.last <= n, "never ahead of the server");
      assert.ok(res.increasing);
    } finally {
      clearInterval(timer);
    }
  });
});

Deno.test("interop: 2 MB and 50 MB arrays (extended header)", async () => {
  await withServer(async (server) => {
    const small = new Float64Array(262_144); // 2 MiB
    for (let i = 0; i < small.length; i++) small[i] = i * 0.5;
    const big = new Int32Array(13_107_200); // 50 MiB
    for (let i = 0; i < big.length; i++) big[i] = i;
    server.add({ name: "A:2MB", type: "double", maxCount: small.length }).post(small);
    server.add({ name: "A:50MB", type: "long", maxCount: big.length }).post(big);
    server.add({ name: "A:VAR", type: "long", maxCount: 1_000_000, writable: true });
    const result = await runPyepics(
      `
res = {}
a = epics.caget("A:2MB", timeout=60)
res["small"] = [len(a), float(a.sum()), float(a[-1])]
b = epics.caget("A:50MB", timeout=120)
res["big"] = [len(b), int(b.astype("int64").sum()), int(b[-1])]
import numpy
epics.caput("A:VAR", numpy.arange(700000, dtype=numpy.int32), wait=True, timeout=60)
res["var"] = len(epics.caget("A:VAR", timeout=60))
out(res)
`,
      { udpPort: server.udpPort, timeoutMs: 180_000 },
    );
    assert.equal(result.code, 0, result.stderr);
    const res = result.json as Record<string, number[] | number>;
    const n = small.length;
    assert.deepStrictEqual(res.small, [n, (0.5 * n * (n - 1)) / 2, (n - 1) * 0.5]);
    const m = big.length;
    assert.deepStrictEqual(res.big, [m, (m * (m - 1)) / 2, m - 1]);
    assert.equal(server.get("A:VAR")!.value().length, 700_000);
    assert.ok((res.var as number) >= 700_000);
  });
});

Deno.test("interop: monitor of an array whose length changes between updates", async () => {
  await withServer(async (server) => {
    const pv = server.add({ name: "V:ARR", type: "long", maxCount: 5000 });
    const lengthOf = (n: number) => 1 + ((n * 997) % 5000);
    let n = 0;
    const timer = setInterval(() => {
      n++;
      const value = new Int32Array(lengthOf(n));
      value.fill(n);
      pv.post(value);
    }, 5);
    try {
      const result = await runPyepics(
        `
seen = []
def cb(pvname=None, value=None, count=None, **kw):
    seen.append([int(value[0]), len(value), int(value[-1])])
c = ca.create_channel("V:ARR"); ca.connect_channel(c, timeout=10)
ca.create_subscription(c, callback=cb)
t0 = time.time()
while len(seen) < 30 and time.time() - t0 < 30:
    time.sleep(0.01)
out(seen)
`,
        { udpPort: server.udpPort, timeoutMs: 60_000 },
      );
      assert.equal(result.code, 0, result.stderr);
      const seen = result.json as [number, number, number][];
      assert.ok(seen.length >= 30);
      const lengths = new Set<number>();
      for (const [first, length, last] of seen) {
        assert.equal(length, lengthOf(first), `update ${first}`);
        assert.equal(last, first);
        lengths.add(length);
      }
      assert.ok(lengths.size > 10, "lengths varied");
    } finally {
      clearInterval(timer);
    }
  });
});

Deno.test("interop: .FIELD channels and $ long strings", async () => {
  await withServer(async (server) => {
    const pv = server.add({
      name: "F:D",
      type: "double",
      writable: true,
      units: "keV",
      precision: 3,
      description: "Photon energy of the beam",
      displayLimits: [1, 100],
      maxCount: 8,
      initial: [1, 2, 3],
    });
    pv.post([1, 2, 3], { severity: 2, status: 3 });
    server.add({ name: "F:S", type: "string", writable: true, initial: "short" });
    const result = await runPyepics(
      `
g = lambda n, **k: epics.caget(n, timeout=10, **k)
res = {
  "egu": g("F:D.EGU"), "prec": g("F:D.PREC"), "hopr": g("F:D.HOPR"), "lopr": g("F:D.LOPR"),
  "desc": g("F:D.DESC"), "rtyp": g("F:D.RTYP"), "name": g("F:D.NAME"),
  "nelm": g("F:D.NELM"), "nord": g("F:D.NORD"), "sevr": g("F:D.SEVR", as_string=True),
  "stat": g("F:D.STAT", as_string=True), "val": list(g("F:D.VAL")),
  "desc_long": g("F:D.DESC$", as_string=True),
}
epics.caput("F:S.VAL$", "a string that is longer than forty characters? no, 39 max", wait=True, timeout=10)
res["long_put"] = g("F:S")
out(res)
`,
      { udpPort: server.udpPort, timeoutMs: 60_000 },
    );
    assert.equal(result.code, 0, result.stderr);
    const res = result.json as Record<string, unknown>;
    assert.deepStrictEqual(res, {
      egu: "keV",
      prec: 3,
      hopr: 100,
      lopr: 1,
      desc: "Photon energy of the beam",
      rtyp: "waveform",
      name: "F:D",
      nelm: 8,
      nord: 3,
      sevr: "MAJOR",
      stat: "HIHI",
      val: [1, 2, 3],
      desc_long: "Photon energy of the beam",
      long_put: "a string that is longer than forty char",
    });
  });
});
