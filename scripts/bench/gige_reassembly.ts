/**
 * GVSP reassembly: the highest sustained lossless rate of our receive path next to the raw UDP
 * receive rate, measured in the same run.
 *
 * A C sender (`scripts/bench/c/gvsp_sender.c`, compiled here with gcc) sends 2048×2048 Mono8 and
 * Mono16 frames as GVSP over loopback, paced like a camera on a link of the given rate, for
 * `--seconds` per trial. Two receivers:
 *
 * 1. raw: a Deno UDP socket that only counts datagrams, receiving into one reused buffer (the
 *    baseline: the fastest a Deno program receives datagrams at all);
 * 2. gige: our receive path, `GvspReceiver` + `FrameAssembler` (payload packets received in place
 *    into recycled frame buffers), a consumer taking each frame, spot-checking its pixels and
 *    recycling it. One receiver and assembler per format for all its trials, reset at each trial,
 *    as the backend keeps them from acquisition to acquisition. `--receive batch` (default): as the IOC receives with FFI permission, what
 *    queued up behind each awaited datagram taken by `recvmmsg` batches; `--receive datagram`: one
 *    Deno receive per datagram, as without FFI permission.
 *
 * For each path a bisection over the rate (geometric, `--min`..`--max` MB/s, `--steps` halvings,
 * raw and gige trials alternating so both see the same machine load) finds the highest rate at
 * which a whole trial lost nothing: raw received every datagram sent; gige delivered every frame
 * whole. A trial with loss is run again (`--retries`, default 1) before the rate counts as too
 * high, so that one load spike of a shared machine does not decide. The rate reported is the one the sender achieved (bytes sent / its send time). Summary
 * per format: lossless rates, ratio gige/raw, and whether GigE line rate (125 MB/s) was sustained.
 * Also printed: CPU time per packet of each path (process user+system, incl. the runtime's I/O
 * threads), a load-independent view of the cost.
 *
 * Both sockets get the same kernel receive buffer (`--rcvbuf` MiB via SO_RCVBUF, which needs
 * `--allow-ffi`, here `-A`; 0 keeps the system default `net.core.rmem_default`).
 *
 * Usage: `nice ./node_modules/.bin/deno run -A scripts/bench/gige_reassembly.ts [--seconds 3]
 * [--packet-size 9000] [--min 50] [--max 1600] [--steps 6] [--retries 1] [--rcvbuf 32]
 * [--formats Mono8,Mono16] [--receive batch|datagram]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import process from "node:process";
import { FrameAssembler } from "../../devices/gige/gvsp_assembler.ts";
import { GvspReceiver } from "../../devices/gige/gvsp_receiver.ts";
import { raiseUdpReceiveBuffer } from "../../core/udp_receive_buffer.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "3" },
    "packet-size": { type: "string", default: "9000" },
    min: { type: "string", default: "50" },
    max: { type: "string", default: "1600" },
    steps: { type: "string", default: "6" },
    rcvbuf: { type: "string", default: "32" },
    retries: { type: "string", default: "1" },
    formats: { type: "string", default: "Mono8,Mono16" },
    receive: { type: "string", default: "batch" },
  },
});
const SECONDS = Number(values.seconds);
const PACKET_SIZE = Number(values["packet-size"]);
const MIN_RATE = Number(values.min);
const MAX_RATE = Number(values.max);
const STEPS = Number(values.steps);
const RCVBUF = Number(values.rcvbuf) * 1024 * 1024;
const RETRIES = Number(values.retries);
const FORMATS = values.formats!.split(",");
const WIDTH = 2048;
const HEIGHT = 2048;
const LINE_RATE_MBPS = 125;
const BPP: Record<string, number> = { Mono8: 8, Mono16: 16 };
for (const f of FORMATS) if (BPP[f] === undefined) throw new Error(`format ${f}: Mono8 or Mono16`);
const RECEIVE = values.receive!;
if (RECEIVE !== "batch" && RECEIVE !== "datagram") throw new Error("--receive batch or datagram");

const dir = await Deno.makeTempDir({ prefix: "gige_bench_" });
const sender = `${dir}/gvsp_sender`;
const source = new URL("./c/gvsp_sender.c", import.meta.url).pathname;
const cc = await new Deno.Command("gcc", { args: ["-O2", "-o", sender, source] }).output();
if (!cc.success) throw new Error(new TextDecoder().decode(cc.stderr));

interface Sent {
  packets: number;
  bytes: number;
  seconds: number;
}

async function send(port: number, bpp: number, frames: number, rate: number): Promise<Sent> {
  const out = await new Deno.Command(sender, {
    args: ["127.0.0.1", String(port), String(PACKET_SIZE), String(WIDTH), String(HEIGHT)]
      .concat([String(bpp), String(frames), String(rate)]),
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  const [, , packets, bytes, seconds] = new TextDecoder().decode(out.stdout).trim().split(" ");
  return { packets: Number(packets), bytes: Number(bytes), seconds: Number(seconds) };
}

/** One trial's outcome. */
interface Trial {
  lossless: boolean;
  /** Rate the sender achieved, MB/s. */
  sentMbps: number;
  /** What was lost, for the log line. */
  detail: string;
  /** Process CPU µs per received packet. */
  cpuPerPacket: number;
  /** The kernel's share of it (system time: copying datagrams out, mostly), µs per packet. */
  sysPerPacket: number;
}

function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

function sysMicros(): number {
  return process.cpuUsage().system;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

function bufferNote(conn: Deno.DatagramConn): string {
  if (RCVBUF === 0) return "";
  const r = raiseUdpReceiveBuffer(conn, RCVBUF);
  const mib = (n: number | undefined) => n === undefined ? "?" : `${(n / 1048576).toFixed(1)} MiB`;
  return `SO_RCVBUF asked ${mib(RCVBUF)}, in effect ${mib(r.bytes)} (as the kernel counts it)${
    r.applied ? "" : `: ${r.reason}`
  }`;
}

let warned = false;

/** Raw baseline: count datagrams until the sender is done and the socket idle for 200 ms. */
async function raw(bpp: number, frames: number, rate: number): Promise<Trial> {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const note = bufferNote(conn);
  if (note && !warned) {
    console.log(note);
    warned = true;
  }
  let packets = 0;
  let last = performance.now();
  let done = false;
  const buffer = new Uint8Array(65536);
  const reader = (async () => {
    while (!done) {
      try {
        await conn.receive(buffer);
      } catch {
        return;
      }
      packets++;
      last = performance.now();
    }
  })();
  const cpu0 = cpuMicros();
  const sys0 = sysMicros();
  const sent = await send((conn.addr as Deno.NetAddr).port, bpp, frames, rate);
  const deadline = performance.now() + 2000;
  while (packets < sent.packets && performance.now() - last < 200 && performance.now() < deadline) {
    await pause(20);
  }
  const cpu = cpuMicros() - cpu0;
  const sys = sysMicros() - sys0;
  done = true;
  conn.close();
  await reader;
  return {
    lossless: packets === sent.packets,
    sentMbps: sent.bytes / sent.seconds / 1e6,
    detail: `${sent.packets - packets} of ${sent.packets} packets lost`,
    cpuPerPacket: cpu / Math.max(1, packets),
    sysPerPacket: sys / Math.max(1, packets),
  };
}

/** Our receive path of one format: one receiver and assembler for all its trials. */
interface GigePath {
  receiver: GvspReceiver;
  assembler: FrameAssembler;
}

const gigePaths = new Map<number, GigePath>();

/**
 * The receiver and assembler of `bpp`, made at the first trial and kept, as the backend keeps its
 * stream socket for the session and its assembler (frame buffers) from acquisition to acquisition.
 */
async function gigePath(bpp: number): Promise<GigePath> {
  let path = gigePaths.get(bpp);
  if (path !== undefined) return path;
  const receiver = new GvspReceiver({
    localAddress: "127.0.0.1",
    device: { host: "127.0.0.1", port: 9 },
    receiveBufferBytes: RCVBUF === 0 ? undefined : RCVBUF,
    batchReceive: RECEIVE === "batch",
  });
  if (RECEIVE === "batch" && receiver.receiveMode.mode !== "batch") {
    await receiver.close();
    throw new Error(`batch receive unavailable: ${receiver.receiveMode.reason}`);
  }
  const assembler = new FrameAssembler({
    payloadSize: (WIDTH * HEIGHT * bpp) / 8,
    packetSize: PACKET_SIZE,
    resend: false,
    windowMs: 200,
  });
  path = { receiver, assembler };
  gigePaths.set(bpp, path);
  return path;
}

/** Our receive path: whole frames into recycled buffers, pixels spot-checked. */
async function gige(bpp: number, frames: number, rate: number): Promise<Trial> {
  const frameBytes = (WIDTH * HEIGHT * bpp) / 8;
  const { receiver, assembler } = await gigePath(bpp);
  // A new acquisition, as the backend starts one.
  assembler.reset();
  receiver.setAssembler(assembler);
  let whole = 0;
  let failed = 0;
  let corrupt = 0;
  const stop = new AbortController();
  const consumer = (async () => {
    while (whole + failed < frames) {
      let out;
      try {
        out = await receiver.next(stop.signal);
      } catch {
        return;
      }
      if (out.kind !== "frame") {
        failed++;
        continue;
      }
      whole++;
      // The sender's pixels are (i * 7) & 0xff: check every 4099th byte and the last one.
      const d = out.data;
      if (d.length !== frameBytes) corrupt++;
      else {
        for (let i = 0; i < d.length; i += 4099) {
          if (d[i] !== ((i * 7) & 0xff)) {
            corrupt++;
            break;
          }
        }
        if (d[d.length - 1] !== (((d.length - 1) * 7) & 0xff)) corrupt++;
      }
      assembler.recycle(out.buffer);
    }
  })();
  const cpu0 = cpuMicros();
  const sys0 = sysMicros();
  const sent = await send(receiver.port, bpp, frames, rate);
  const deadline = performance.now() + 2000;
  while (whole + failed < frames && performance.now() < deadline) await pause(20);
  const cpu = cpuMicros() - cpu0;
  const sys = sysMicros() - sys0;
  stop.abort();
  await consumer;
  const packets = assembler.stats.packets;
  receiver.setAssembler(undefined);
  if (corrupt > 0) {
    throw new Error(`${corrupt} frames with wrong pixels: the receive path is broken`);
  }
  return {
    lossless: whole === frames,
    sentMbps: sent.bytes / sent.seconds / 1e6,
    detail: `${frames - whole} of ${frames} frames lost (${sent.packets - packets} packets)`,
    cpuPerPacket: cpu / Math.max(1, packets),
    sysPerPacket: sys / Math.max(1, packets),
  };
}

/** Bisection state of one path. */
interface Search {
  name: string;
  run: (bpp: number, frames: number, rate: number) => Promise<Trial>;
  lo: number;
  hi: number;
  /** Highest achieved rate of a lossless trial. */
  best: number;
  cpu: number[];
}

console.log(
  `GVSP reassembly, ${WIDTH}x${HEIGHT}, loopback, packet size ${PACKET_SIZE}, ` +
    `${SECONDS} s per trial, rates ${MIN_RATE}..${MAX_RATE} MB/s in ${STEPS} halvings, ` +
    `SO_RCVBUF ${RCVBUF === 0 ? "system default" : `${values.rcvbuf} MiB`}, ` +
    `gige receive ${RECEIVE === "batch" ? "batched (recvmmsg)" : "one datagram per call"}, ` +
    `load average ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`,
);
for (const format of FORMATS) {
  const bpp = BPP[format];
  const frameBytes = (WIDTH * HEIGHT * bpp) / 8;
  const searches: Search[] = [
    { name: "raw", run: raw, lo: MIN_RATE, hi: MAX_RATE, best: 0, cpu: [] },
    { name: "gige", run: gige, lo: MIN_RATE, hi: MAX_RATE, best: 0, cpu: [] },
  ];
  // Rates to try: the bounds first, then the geometric middle of what is still open.
  for (let step = -2; step < STEPS; step++) {
    for (const s of searches) {
      if (step >= 0 && s.hi / s.lo < 1.02) continue;
      const rate = step === -2 ? MIN_RATE : step === -1 ? MAX_RATE : Math.sqrt(s.lo * s.hi);
      if (step === -1 && s.best === 0) continue; // lossy at the minimum already
      const frames = Math.max(3, Math.ceil((rate * 1e6 * SECONDS) / frameBytes));
      let t = await s.run(bpp, frames, rate);
      for (let retry = 0; retry < RETRIES && !t.lossless; retry++) {
        console.log(
          `${format} ${s.name.padEnd(4)} asked ${rate.toFixed(0).padStart(5)} MB/s: ` +
            `loss (${t.detail}), once more`,
        );
        t = await s.run(bpp, frames, rate);
      }
      s.cpu.push(t.cpuPerPacket);
      if (t.lossless) {
        s.lo = rate;
        s.best = Math.max(s.best, t.sentMbps);
        if (step === -1) s.hi = rate; // lossless even at the maximum: done
      } else {
        s.hi = rate;
        if (step === -2) s.lo = s.hi = rate;
      }
      console.log(
        `${format} ${s.name.padEnd(4)} asked ${rate.toFixed(0).padStart(5)} MB/s, sent ${
          t.sentMbps.toFixed(0).padStart(5)
        } MB/s, ${frames} frames: ${t.lossless ? "lossless" : `LOSS, ${t.detail}`}; ${
          t.cpuPerPacket.toFixed(1)
        } µs CPU/packet (${t.sysPerPacket.toFixed(1)} system)`,
      );
    }
  }
  const [r, g] = searches;
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const bound = (s: Search) =>
    s.best === 0
      ? `< ${MIN_RATE}`
      : s.lo >= MAX_RATE
      ? `≥ ${s.best.toFixed(0)}`
      : s.best.toFixed(0);
  console.log(
    `${format}: highest lossless rate for ${SECONDS} s: raw ${bound(r)} MB/s, gige ${
      bound(g)
    } MB/s (${(g.best * 1e6 / frameBytes).toFixed(1)} frames/s); ` +
      `ratio gige/raw ${
        r.best > 0
          ? `${(g.best / r.best).toFixed(2)} (target ≥ 0.50 ${
            g.best >= r.best / 2 ? "met" : "NOT met"
          })`
          : "n/a"
      }; GigE line rate (${LINE_RATE_MBPS} MB/s) ${
        g.best >= LINE_RATE_MBPS ? "sustained" : "NOT sustained"
      }; CPU per packet (median) raw ${median(r.cpu).toFixed(1)} µs, gige ${
        median(g.cpu).toFixed(1)
      } µs, ratio raw/gige ${(median(r.cpu) / median(g.cpu)).toFixed(2)}`,
  );
}
for (const path of gigePaths.values()) await path.receiver.close();
console.log(`load average ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
await Deno.remove(dir, { recursive: true });
