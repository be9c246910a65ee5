/**
 * Channel Access stays served while an EIGER series streams in at detector speed: the IOC
 * (`diss-ioc --backend eiger`, a subprocess with two decode workers) receives a series of 200
 * images of 1028×512 uint16 at 1 ms frame time from the simulator, while a libca client (pyepics)
 * repeatedly searches for a PV afresh (channel created, read, destroyed) and reads it, each time
 * followed by a raw probe (the same search, create and read as plain messages on a UDP socket and
 * a TCP circuit, no libca: `tests/support/stream_ca_probes.ts`). The test prints the split of the
 * probes that ran while the series streamed: raw round trips (the IOC, the CPU it got, the kernel)
 * against libca's own share (its search timer: a new channel waits for the next tick, 0–32 ms and
 * more once replies came late).
 *
 * What is asserted holds on a loaded 2-core machine too:
 * - every probe during the acquisition is answered, with the right value, by both clients, and
 *   several probes ran while the series was being received;
 * - no probe (pyepics, or raw in total) took longer than the idle IOC's p90 plus an allowance
 *   (`DISS_TEST_CA_BUSY_MS`, default 10 000 ms): a failure detector for gross stalls only. The
 *   issue's 100 ms cannot be asserted here: on this shared box at load 3–6 single probes take
 *   0.1–1 s for want of a CPU (the IOC's timer late by as much, its own work in that time 20 ms);
 *   `scripts/bench/eiger_stream_ca_latency.ts` measures the 100 ms target;
 * - the IOC ran with the runtime's socket polling set (`DENO_TOKIO_EVENT_INTERVAL=1` and
 *   `DENO_TOKIO_GLOBAL_QUEUE_INTERVAL=1`, set by the harness as by every launcher: no startup
 *   warning, no restart). With the runtime's defaults a stream that keeps the loop busy leaves CA
 *   requests unread for 0.3–0.83 s at a time (core/io_poll.ts, docs/eiger-stream.md);
 * - the IOC's own measure: the largest *busy* event-loop lag of the acquisition (the CPU time its
 *   thread spent on one piece of work while its timer was late, `Acquisition event-loop lag
 *   max_busy_ms=`) stays below 500 ms (`DISS_TEST_LOOP_BUSY_MS`). Time spent waiting for a CPU does
 *   not count there, so load does not make it fail; long synchronous work does.
 */

import assert from "node:assert/strict";
import { startIoc } from "./support/ioc_process.ts";
import { startTestSim } from "./support/eiger.ts";
import {
  formatSplit,
  logLineTime,
  probeSplit,
  runStreamProbes,
  type StreamProbes,
  streamSeriesEnv,
} from "./support/stream_ca_probes.ts";

const IMAGES = 200;
const ALLOWANCE_MS = Number(Deno.env.get("DISS_TEST_CA_BUSY_MS") ?? 10_000);
const LOOP_BUSY_MS = Number(Deno.env.get("DISS_TEST_LOOP_BUSY_MS") ?? 500);

Deno.test("eiger stream: CA search + get answered while 1000 frames/s stream into the IOC", async () => {
  const sim = await startTestSim({ width: 1028, height: 512, bitDepth: 16 });
  try {
    const ioc = await startIoc(
      ["--backend", "eiger", "--prefix", "CAS:"],
      sim.env(streamSeriesEnv(IMAGES)),
    );
    try {
      const running = await ioc.waitForLine(/msg="IOC running"/);
      const tcpPort = Number(/tcp_port=(\d+)/.exec(running)?.[1]);
      const log = () => ioc.lines.join("\n");
      let res: StreamProbes;
      try {
        res = await runStreamProbes({
          udpPort: ioc.udpPort,
          tcpPort,
          prefix: "CAS:",
          duration: 0.001 - 1e-7,
        });
      } catch (error) {
        throw new Error(`${error}\n${log()}`);
      }
      assert.equal(res.ready, true, log());
      assert.equal(res.state, "READY", `${res.error}\n${log()}`);
      const received = await ioc.waitForLine(/msg="Series received"/, 30_000);
      assert.match(received, new RegExp(`images=${IMAGES}\\b`));
      const version = res.idle[0].value;
      assert.ok(
        version.length > 0 && res.idle.every((p) => p.value === version),
        JSON.stringify(res.idle),
      );
      // Probes that ended while the acquisition still ran (acquire read 1 right after them).
      const during = res.busy.filter((p) => p.acquiring);
      assert.ok(during.length >= 3, `only ${during.length} probes during the acquisition`);
      for (const p of res.busy) {
        assert.equal(p.value, version, "probe answered");
        assert.equal(p.raw.value, version, "raw probe answered");
      }
      const idle = res.idle.map((p) => p.ms).sort((a, b) => a - b);
      const bound = idle[Math.floor(idle.length * 0.9)] + ALLOWANCE_MS;
      const ms = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(",");
      const lagLine = await ioc.waitForLine(/msg="Acquisition event-loop lag"/, 30_000);
      const streamStart = logLineTime(await ioc.waitForLine(/msg="Series started"/));
      const idleRaw = res.idle_raw.map((p) => p.search + p.create + p.read);
      console.log(
        `CA probes idle: pyepics ${ms(idle)} ms, raw ${ms(idleRaw.sort((a, b) => a - b))} ms\n` +
          `${formatSplit(probeSplit(res, streamStart))}\n` +
          `pyepics during the series: ${ms(during.map((p) => p.ms))} ms (bound ${
            bound.toFixed(0)
          })\nIOC: ${lagLine.replace(/^.*msg=/, "")}`,
      );
      for (const p of res.busy) {
        const raw = p.raw.search + p.raw.create + p.raw.read;
        assert.ok(
          p.ms <= bound && raw <= bound,
          `probe at ${new Date(p.at * 1000).toISOString()} took ${p.ms.toFixed(0)} ms ` +
            `(connect ${p.connect.toFixed(0)}; raw ${raw.toFixed(0)}) during the stream; bound ` +
            `${bound.toFixed(0)} ms (idle p90 + ${ALLOWANCE_MS}); idle ${ms(idle)}\n${log()}`,
        );
      }
      assert.ok(
        !ioc.lines.some((l) => /Sockets are polled only every few|restarted_by=/.test(l)),
        `the IOC ran with the runtime's default socket polling\n${log()}`,
      );
      const busyLag = /max_busy_ms=(\d+)/.exec(lagLine);
      if (busyLag !== null) { // unknown where /proc is not readable
        assert.ok(
          Number(busyLag[1]) <= LOOP_BUSY_MS,
          `the IOC's event loop was busy ${busyLag[1]} ms in one go\n${log()}`,
        );
      }
    } finally {
      await ioc.stop();
    }
  } finally {
    await sim.close();
  }
});
