/**
 * End-to-end: the IOC started as a user does, talked to by real libca (pyepics).
 */
import assert from "node:assert/strict";
import { runPyepics } from "./support/epics_env.ts";
import { startIoc } from "./support/ioc_process.ts";
import { resolveSimSettings, simGenerator } from "../devices/sim.ts";
import { sha256Hex } from "./support/bytes.ts";

/** libca's status code for a refused write. */
const ECA_PUTFAIL = 160;

const SIM_ENV = {
  SIM_SEED: "11",
  SIM_CHANNELS: "c1,c2",
  SIM_NUM_IMAGES: "2",
  SIM_IMAGE_SIZE: "48x32",
  SIM_PIXEL_TYPE: "uint16",
};

/** Python helpers: bounded polling and a put whose CA completion status we can see. */
const HELPERS = `
import ctypes
from epics import dbr
_status = {}
def _on_put(args):
    _status['s'] = args.status
_CB = dbr.make_callback(_on_put, dbr.event_handler_args)
def put_status(name, value):
    chid = ca.create_channel(name)
    ca.connect_channel(chid)
    _status.clear()
    v = ctypes.c_double(value)
    ca.libca.ca_array_put_callback(6, 1, chid, ctypes.byref(v), _CB, None)
    ca.flush_io()
    end = time.time() + 10
    while 's' not in _status and time.time() < end:
        ca.poll(0.01)
    return _status.get('s')
P = sys.argv[1]
`;

Deno.test("e2e: acquire through libca delivers the sim's deterministic images", async () => {
  const ioc = await startIoc(["--backend", "sim", "--prefix", "E2E:a:"], SIM_ENV);
  try {
    const r = await runPyepics(
      HELPERS + `
assert wait(P + 'state', 'READY')
epics.caput(P + 'duration', 0.2, wait=True)
epics.caput(P + 'acquire', 1, wait=True)
ok = wait(P + 'acquire', 0)
res = {'ok': ok, 'state': epics.caget(P + 'state', use_monitor=False)}
for c in ['c1', 'c2']:
    n = [int(epics.caget(P + c + ':asize%d' % i)) for i in range(3)]
    img = epics.caget(P + c + ':image', count=n[0] * n[1] * n[2], use_monitor=False)
    res[c] = {'asize': n, 'image': [int(v) for v in img]}
chid = ca.create_channel(P + 'c1:image')
ca.connect_channel(chid)
res['c1_field_type'] = ca.field_type(chid)
res['c1_as_double'] = [float(v) for v in ca.get(chid, ftype=6, count=8)]
res['start_ts'] = [float(v) for v in epics.caget(P + 'start_ts', use_monitor=False)]
res['acq_td'] = [float(v) for v in epics.caget(P + 'acq_td', use_monitor=False)]
res['ssqcnt'] = int(epics.caget(P + 'ssqcnt'))
res['uuid'] = epics.caget(P + 'uuid')
res['dur_status'] = put_status(P + 'duration', -1.0)
res['duration'] = float(epics.caget(P + 'duration', use_monitor=False))
res['cancel_status'] = put_status(P + 'cancel', 1.0)
epics.caput(P + 'c1:enerj', 6.5, wait=True)
res['enerj'] = float(epics.caget(P + 'c1:enerj', use_monitor=False))
# A second series runs through recycled buffers (sim pool, series stack, PV arrays, payloads).
epics.caput(P + 'acquire', 1, wait=True)
res['ok2'] = wait(P + 'acquire', 0)
for c in ['c1', 'c2']:
    img = epics.caget(P + c + ':image', use_monitor=False)
    res[c + '_second'] = [int(v) for v in img]
out(res)
`,
      { udpPort: ioc.udpPort, args: ["E2E:a:"] },
    );
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const res = r.json as Record<string, unknown> & {
      c1: { asize: number[]; image: number[] };
      c2: { asize: number[]; image: number[] };
    };
    assert.equal(res.ok, true);
    assert.equal(res.state, "READY");
    const settings = resolveSimSettings(SIM_ENV);
    const gen = simGenerator(settings);
    for (const [c, ch] of [[0, res.c1], [1, res.c2]] as const) {
      assert.deepEqual(ch.asize, [2, 32, 48]);
      assert.equal(ch.image.length, ch.asize[0] * ch.asize[1] * ch.asize[2]);
      const expected = [...gen.image(0, 0, c, 0.2), ...gen.image(0, 1, c, 0.2)];
      assert.deepEqual(ch.image, expected, `channel ${c}`);
      const second = [...gen.image(1, 0, c, 0.2), ...gen.image(1, 1, c, 0.2)];
      assert.deepEqual(res[`c${c + 1}_second`], second, `channel ${c}, second series`);
    }
    assert.equal(res.ok2, true);
    assert.equal(res.c1_field_type, 5, "uint16 images are served as DBR_LONG");
    assert.deepEqual(res.c1_as_double, res.c1.image.slice(0, 8), "DBR_DOUBLE requests work");
    const ts = res.start_ts as number[];
    assert.equal(ts.length, 2);
    assert.ok(Math.abs(ts[0] - Date.now() / 1000) < 120, `start_ts ${ts}`);
    assert.deepEqual(res.acq_td, [0.1, 0.1]);
    assert.equal(res.ssqcnt, 0);
    assert.match(String(res.uuid), /^[0-9a-f-]{36}$/);
    assert.equal(res.dur_status, ECA_PUTFAIL, "negative duration refused");
    assert.equal(res.duration, 0.2, "duration unchanged");
    assert.equal(res.cancel_status, ECA_PUTFAIL, "cancel in READY refused");
    assert.equal(res.enerj, 6.5);
    assert.ok(ioc.lines.some((l) => /msg="Write refused" pv=E2E:a:duration/.test(l)));
    assert.ok(ioc.lines.some((l) => /msg="Channel adjust" channel=c1/.test(l)));
    assert.ok(ioc.lines[0].includes("version="), "version in the first log line");
  } finally {
    assert.equal(await ioc.stop("SIGTERM"), 0, "SIGTERM exits 0");
  }
});

Deno.test("e2e: cancel during INTEGRATE; acquire refused while integrating; SIGINT exits 0", async () => {
  const ioc = await startIoc(["--backend", "sim", "--prefix", "E2E:b:"], SIM_ENV);
  try {
    const r = await runPyepics(
      HELPERS + `
assert wait(P + 'state', 'READY')
epics.caput(P + 'duration', 30, wait=True)
epics.caput(P + 'acquire', 1, wait=True)
res = {'integrating': wait(P + 'state', 'INTEGRATE'), 'acquire': int(epics.caget(P + 'acquire', use_monitor=False))}
res['again_status'] = put_status(P + 'acquire', 1.0)
epics.caput(P + 'cancel', 1, wait=True)
res['ready'] = wait(P + 'state', 'READY', 10)
res['acquire_after'] = int(epics.caget(P + 'acquire', use_monitor=False))
epics.caput(P + 'duration', 30, wait=True)
epics.caput(P + 'acquire', 1, wait=True)
res['integrating2'] = wait(P + 'state', 'INTEGRATE')
out(res)
`,
      { udpPort: ioc.udpPort, args: ["E2E:b:"] },
    );
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(r.json, {
      integrating: true,
      acquire: 1,
      again_status: (r.json as { again_status: number }).again_status,
      ready: true,
      acquire_after: 0,
      integrating2: true,
    });
    assert.equal((r.json as { again_status: number }).again_status, ECA_PUTFAIL);
    assert.ok(ioc.lines.some((l) => /new=CANCEL/.test(l)));
  } finally {
    // Stopping while INTEGRATE: the running acquisition is cancelled, exit code 0.
    assert.equal(await ioc.stop("SIGINT"), 0);
  }
  assert.ok(ioc.lines.some((l) => /Cancelling the running acquisition before shutdown/.test(l)));
});

Deno.test("e2e: auto-acquire keeps acquiring; ssqcnt counts up", async () => {
  const ioc = await startIoc(
    ["--backend", "sim", "--prefix", "E2E:c:", "--auto-acquire", "0.05"],
    SIM_ENV,
  );
  try {
    const r = await runPyepics(
      HELPERS + `
seen = set()
end = time.time() + 20
while len(seen) < 4 and time.time() < end:
    seen.add(int(epics.caget(P + 'ssqcnt', use_monitor=False)))
    time.sleep(0.02)
out(sorted(seen))
`,
      { udpPort: ioc.udpPort, args: ["E2E:c:"] },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.ok((r.json as number[]).length >= 4, `ssqcnt values ${r.json}`);
  } finally {
    assert.equal(await ioc.stop("SIGTERM"), 0);
  }
});

const BROKEN_BACKEND = `
export class Hangs {
  constructor(ctx) { this.ctx = ctx; }
  isInitialized() { return true; }
  getConfig() {
    return { channels: [{ name: "x", meta: {} }], numImages: 1, width: 2, height: 2, pixelType: "uint8" };
  }
  async initialize() {}
  acquire() {
    this.ctx.emit({ type: "start-data", seriesId: "h", seriesNumber: 1 });
    return new Promise(() => {});
  }
  async cancel() {}
}
export class Dies extends Hangs {
  acquire() {
    this.ctx.emit({ type: "error", message: "sensor destroyed", fatal: true });
    return Promise.resolve();
  }
}
`;

Deno.test("e2e: a hanging backend ends in ERROR (state/error PVs); a fatal one exits 1", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/broken.js`, BROKEN_BACKEND);
    const ioc = await startIoc([
      "--backend",
      `${dir}/broken.js:Hangs`,
      "--prefix",
      "E2E:d:",
      "--overdue",
      "0.5",
    ]);
    try {
      const r = await runPyepics(
        HELPERS + `
assert wait(P + 'state', 'READY')
epics.caput(P + 'duration', 0, wait=True)
epics.caput(P + 'acquire', 1, wait=True)
ok = wait(P + 'state', 'ERROR', 10)
out({'ok': ok, 'error': epics.caget(P + 'error', use_monitor=False),
     'acquire': int(epics.caget(P + 'acquire', use_monitor=False))})
`,
        { udpPort: ioc.udpPort, args: ["E2E:d:"] },
      );
      assert.equal(r.code, 0, r.stderr);
      const res = r.json as { ok: boolean; error: string; acquire: number };
      assert.equal(res.ok, true);
      assert.match(res.error, /^Acquisition timed out after 0.5 s/);
      assert.equal(res.acquire, 0);
    } finally {
      assert.equal(await ioc.stop("SIGTERM"), 0);
    }

    const dies = await startIoc([
      "--backend",
      `${dir}/broken.js:Dies`,
      "--prefix",
      "E2E:e:",
      "--auto-acquire",
      "yes",
    ]);
    const status = await dies.status;
    assert.equal(status.code, 1, dies.lines.join("\n"));
    assert.ok(dies.lines.some((l) => /FATAL .*sensor destroyed/.test(l)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("e2e: systemd notifications: READY, STATUS, WATCHDOG, STOPPING", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/notify.sock`;
  const sock = Deno.listenDatagram({ transport: "unixpacket", path });
  const received: string[] = [];
  const reader = (async () => {
    try {
      for (;;) {
        const [data] = await sock.receive();
        received.push(new TextDecoder().decode(data));
      }
    } catch {
      // closed
    }
  })();
  try {
    const ioc = await startIoc(["--backend", "sim", "--prefix", "E2E:n:"], {
      ...SIM_ENV,
      NOTIFY_SOCKET: path,
      WATCHDOG_USEC: "100000",
    });
    await ioc.waitForLine(/new=READY/);
    const deadline = Date.now() + 10_000;
    while (!received.some((m) => m === "WATCHDOG=1") && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(await ioc.stop("SIGTERM"), 0);
    assert.ok(received.some((m) => m.includes("READY=1")), JSON.stringify(received));
    assert.ok(received.some((m) => m === "STATUS=E2E:n:state=READY"), JSON.stringify(received));
    assert.ok(received.includes("WATCHDOG=1"), JSON.stringify(received));
    assert.ok(received.includes("STOPPING=1"), JSON.stringify(received));
  } finally {
    sock.close();
    await reader;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("e2e: uint32 images as DOUBLE (default, exact) and with --uint32-as long (same bits)", async () => {
  const env = { ...SIM_ENV, SIM_PIXEL_TYPE: "uint32", SIM_NUM_IMAGES: "1" };
  const gen = simGenerator(resolveSimSettings(env));
  // The sim's hot pixels hold the type maximum, so the flag value 2^32-1 is part of the data.
  const expected = Array.from(gen.image(0, 0, 0, 0.2) as Uint32Array);
  assert.ok(expected.includes(0xffff_ffff), "test data contains 2^32-1");
  for (const mode of ["double", "long"] as const) {
    const prefix = `E2E:u${mode[0]}:`;
    const ioc = await startIoc(["--backend", "sim", "--prefix", prefix, "--uint32-as", mode], env);
    try {
      const r = await runPyepics(
        `
P = sys.argv[1]
assert wait(P + 'state', 'READY')
epics.caput(P + 'duration', 0.2, wait=True)
epics.caput(P + 'acquire', 1, wait=True)
assert wait(P + 'acquire', 0)
chid = ca.create_channel(P + 'c1:image')
ca.connect_channel(chid)
img = epics.caget(P + 'c1:image', use_monitor=False)
out({'type': ca.field_type(chid), 'image': [float(v) for v in img]})
`,
        { udpPort: ioc.udpPort, args: [prefix] },
      );
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const res = r.json as { type: number; image: number[] };
      if (mode === "double") {
        assert.equal(res.type, 6, "DBR_DOUBLE");
        assert.deepEqual(res.image, expected);
      } else {
        assert.equal(res.type, 5, "DBR_LONG");
        assert.deepEqual(res.image, Array.from(new Int32Array(Uint32Array.from(expected).buffer)));
        assert.ok(res.image.includes(-1), "2^32-1 reads as -1");
      }
    } finally {
      assert.equal(await ioc.stop("SIGTERM"), 0);
    }
  }
});

Deno.test("e2e: images monitored during fast auto-acquire are whole, exact and never older", async () => {
  // Buffer reuse must never let an update carry a newer image's bytes (a torn image) or an older
  // one: every update's SHA-256 must be that of the sim's image of some series, and the series must
  // not go backwards. 512x512 uint32 (1-2 MB per update) keeps socket writes pending while new
  // images arrive, so payload recycling is exercised for real.
  const env = {
    SIM_SEED: "21",
    SIM_CHANNELS: "c1,c2",
    SIM_NUM_IMAGES: "1",
    SIM_IMAGE_SIZE: "512x512",
    SIM_PIXEL_TYPE: "uint32",
  };
  const duration = 0.000001;
  const gen = simGenerator(resolveSimSettings(env));
  for (const mode of ["double", "long"] as const) {
    const prefix = `E2E:m${mode[0]}:`;
    const ioc = await startIoc(
      [
        "--backend",
        "sim",
        "--prefix",
        prefix,
        "--auto-acquire",
        String(duration),
        "--uint32-as",
        mode,
      ],
      env,
    );
    try {
      const script = `
import hashlib
import numpy
P = sys.argv[1]
got = []
def cb(value=None, **kw):
    got.append(hashlib.sha256(numpy.asarray(value).astype('<u4').tobytes()).hexdigest())
pv = epics.PV(P + 'c2:image', auto_monitor=True, callback=cb)
end = time.time() + 20
while len(got) < 150 and time.time() < end:
    time.sleep(0.01)
pv.clear_callbacks()
out({'updates': got, 'numid': int(epics.caget(P + 'numid', use_monitor=False))})
`;
      // (Payloads recycled under a pending write: tests/buffer_reuse_test.ts, stalled client.)
      for (const r of [await runPyepics(script, { udpPort: ioc.udpPort, args: [prefix] })]) {
        assert.equal(r.code, 0, r.stderr + r.stdout);
        const res = r.json as { updates: string[]; numid: number };
        assert.ok(res.updates.length >= 150, `${mode}: ${res.updates.length} updates`);
        // Walk forward through the series: each update must be the image of the series reached
        // so far or a later one (newest-value monitors skip, but never go back or mix images).
        const into = new Uint32Array(512 * 512);
        let k = 0;
        let digestK = await sha256Hex(gen.image(0, 0, 1, duration, into));
        for (const [i, digest] of res.updates.entries()) {
          while (digest !== digestK && k < res.numid) {
            k++;
            digestK = await sha256Hex(gen.image(k, 0, 1, duration, into));
          }
          assert.equal(digest, digestK, `${mode}: update ${i} is no image of series ≥ ${k}`);
        }
        assert.ok(k > 0, `${mode}: several series seen`);
      }
    } finally {
      assert.equal(await ioc.stop("SIGTERM"), 0);
    }
  }
});
