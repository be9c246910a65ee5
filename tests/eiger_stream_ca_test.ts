/**
 * Channel Access stays served while an EIGER series streams in at detector speed: the IOC
 * (`diss-ioc --backend eiger`, a subprocess with its decode workers) receives a series of 500
 * images of 1028×512 at 1 ms frame time from the simulator, while a libca client (pyepics)
 * repeatedly searches for a PV afresh (channel created, read, destroyed) and reads it.
 *
 * On a shared, loaded 2-core machine an absolute bound is meaningless, so the test measures the
 * same probe against the idle IOC first and asserts that every probe while images arrive is
 * answered within `idle p90 + 100 ms` (the extra allowance can be changed with
 * `DISS_TEST_CA_BUSY_MS`). It also checks that the probes really overlapped the stream and that
 * the series completed. Runs only with `DISS_TEST_STREAM_CA=1` (see the test's note).
 */

import assert from "node:assert/strict";
import { runPyepics } from "./support/epics_env.ts";
import { startIoc } from "./support/ioc_process.ts";
import { startTestSim } from "./support/eiger.ts";

const IMAGES = 500;
const ALLOWANCE_MS = Number(Deno.env.get("DISS_TEST_CA_BUSY_MS") ?? 100);

Deno.test({
  name: "eiger stream: CA search + get answered while 1000 frames/s stream into the IOC",
  // Opt-in (DISS_TEST_STREAM_CA=1): heavy (two processes at full speed, a 500 MB image stack) and
  // not yet reliable on the shared 2-core box, where probes took up to 1.7 s and one timed out.
  ignore: Deno.env.get("DISS_TEST_STREAM_CA") !== "1",
}, async () => {
  const sim = await startTestSim({ width: 1028, height: 512, bitDepth: 16 });
  try {
    const ioc = await startIoc(
      ["--backend", "eiger", "--prefix", "CAS:"],
      sim.env({
        EIGER_DEVICE_MODE: "snapshot",
        EIGER_NUM_IMAGES: String(IMAGES),
        EIGER_DECODE_WORKERS: "2",
        // Not under test here: a loaded machine may send or decode slower than 1 kHz.
        DISS_ACQUIRE_OVERDUE: "300",
        EIGER_IMAGE_OVERDUE: "240",
        EIGER_DECODE_BACKLOG: String(IMAGES + 10),
        EIGER_REQUEST_TIMEOUT: "60",
        EIGER_POLL_INTERVAL: "1",
      }),
    );
    // Images the simulator has sent, sampled by this process while the client probes.
    const sentAt: [number, number][] = [];
    const sampler = setInterval(() => sentAt.push([Date.now(), sim.detector.imagesSent]), 20);
    try {
      const r = await runPyepics(
        `
P, duration = sys.argv[1], float(sys.argv[2])
res = {'ready': wait(P + 'state', 'READY', 60)}
def probe(name=P + 'version'):
    t0 = time.time()
    chid = ca.create_channel(name, connect=False, auto_cb=False)  # a search goes out
    ok = ca.connect_channel(chid, timeout=10)
    value = ca.get(chid, timeout=10, as_string=True) if ok else None
    t1 = time.time()
    ca.clear_channel(chid)
    ca._cache[ca.current_context()].pop(name, None)  # the next probe searches afresh
    return {'ms': (t1 - t0) * 1000, 'value': value, 'at': t0 * 1000, 'end': t1 * 1000}
res['idle'] = [probe() for _ in range(12)]
acq = epics.PV(P + 'acquire')
acq.wait_for_connection(10)
epics.caput(P + 'duration', duration, wait=True)
acq.put(1, wait=True)
busy = []
deadline = time.time() + 240
while time.time() < deadline:
    busy.append(probe())
    if acq.get(use_monitor=False) == 0:
        break
    time.sleep(0.005)
res['busy'] = busy
res['state'] = epics.caget(P + 'state', use_monitor=False)
res['error'] = epics.caget(P + 'error', use_monitor=False, as_string=True)
out(res)
`,
        { udpPort: ioc.udpPort, args: ["CAS:", String(0.001 - 1e-7)], timeoutMs: 300_000 },
      );
      clearInterval(sampler);
      const log = ioc.lines.join("\n");
      assert.equal(r.code, 0, r.stderr + r.stdout + log);
      const res = r.json as {
        ready: boolean;
        idle: { ms: number; value: string }[];
        busy: { ms: number; value: string; at: number; end: number }[];
        state: string;
        error: string;
      };
      assert.equal(res.ready, true, log);
      assert.equal(res.state, "READY", `${res.error}\n${log}`);
      const version = res.idle[0].value;
      assert.ok(
        version.length > 0 && res.idle.every((p) => p.value === version),
        JSON.stringify(res.idle),
      );
      const idle = res.idle.map((p) => p.ms).sort((a, b) => a - b);
      const bound = idle[Math.floor(idle.length * 0.9)] + ALLOWANCE_MS;
      // Probes that ran while images were arriving (the sampler saw the count grow around them).
      const sentDuring = (p: { at: number; end: number }) => {
        const before = sentAt.filter(([t]) => t <= p.at).at(-1)?.[1] ?? 0;
        const after = sentAt.find(([t]) => t >= p.end)?.[1] ?? IMAGES;
        return after > before && before < IMAGES;
      };
      const overlapped = res.busy.filter(sentDuring);
      assert.ok(overlapped.length >= 3, `only ${overlapped.length} probes during the stream`);
      for (const p of res.busy) assert.equal(p.value, version, "probe answered");
      for (const p of overlapped) {
        assert.ok(
          p.ms <= bound,
          `probe took ${p.ms.toFixed(1)} ms during the stream; bound ${bound.toFixed(1)} ms ` +
            `(idle p90 + ${ALLOWANCE_MS}); idle ${idle.map((x) => x.toFixed(1)).join(",")}`,
        );
      }
      // After the last image the controller publishes the series (the whole image stack): not
      // bounded here, but shown.
      const after = res.busy.filter((p) => !sentDuring(p)).map((p) => p.ms.toFixed(0));
      console.log(
        `CA probes: idle ${idle.map((x) => x.toFixed(0)).join(",")} ms; during the stream ` +
          `${overlapped.map((p) => p.ms.toFixed(0)).join(",")} ms; after it ${after.join(",")} ms`,
      );
      const received = await ioc.waitForLine(/msg="Series received"/, 10_000);
      assert.match(received, new RegExp(`images=${IMAGES}\\b`));
    } finally {
      clearInterval(sampler);
      await ioc.stop();
    }
  } finally {
    await sim.close();
  }
});
