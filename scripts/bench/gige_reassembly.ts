/**
 * GVSP reassembly throughput: 2048×2048 Mono8 and Mono16 frames sent as GVSP over loopback by a C
 * sender (`scripts/bench/c/gvsp_sender.c`, compiled here with gcc; sendmmsg, paced with sleeps in
 * bursts of ≤64 KiB), received in the same run by
 *
 * 1. raw: a Deno UDP socket that only counts datagrams and bytes, receiving into one reused buffer
 *    (the baseline), and
 * 2. gige: our receive path (GvspReceiver + FrameAssembler into recycled frame buffers),
 *
 * at a sweep of sender rates (MB/s) up to and beyond GigE line rate (125 MB/s). For each rate:
 * the share of packets the raw socket got, and the whole/lost frames and MB/s of the gige path.
 * Summary: the highest rate each path sustained without loss, and their ratio (gige/raw).
 *
 * UDP has no flow control: whatever the receiver does not drain in time overflows the socket's
 * receive buffer (the system default, `net.core.rmem_default`, since Deno cannot set SO_RCVBUF)
 * and is lost — on a loaded machine both paths lose packets at the same rates.
 *
 * Usage: `./node_modules/.bin/deno run -A scripts/bench/gige_reassembly.ts [--frames 10]
 * [--packet-size 9000] [--rates 25,50,125,250]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import process from "node:process";
import { FrameAssembler } from "../../devices/gige/gvsp_assembler.ts";
import { GvspReceiver } from "../../devices/gige/gvsp_receiver.ts";

const { values } = parseArgs({
  options: {
    frames: { type: "string", default: "10" },
    "packet-size": { type: "string", default: "9000" },
    rates: { type: "string", default: "25,50,125,250" },
  },
});
const FRAMES = Number(values.frames);
const PACKET_SIZE = Number(values["packet-size"]);
const RATES = values.rates!.split(",").map(Number);
const WIDTH = 2048;
const HEIGHT = 2048;
const LINE_RATE_MBPS = 125;

const dir = await Deno.makeTempDir({ prefix: "gige_bench_" });
const sender = `${dir}/gvsp_sender`;
const source = new URL("./c/gvsp_sender.c", import.meta.url).pathname;
const cc = await new Deno.Command("gcc", { args: ["-O2", "-o", sender, source] }).output();
if (!cc.success) throw new Error(new TextDecoder().decode(cc.stderr));

/** CPU this process spends spawning and reaping one sender (subtracted from the gige runs). */
let spawnCpu = 0;

interface Sent {
  packets: number;
  bytes: number;
  seconds: number;
}

async function send(port: number, packetSize: number, bpp: number, rate: number): Promise<Sent> {
  const out = await new Deno.Command(sender, {
    args: [
      "127.0.0.1",
      String(port),
      String(packetSize),
      String(WIDTH),
      String(HEIGHT),
      String(bpp),
      String(FRAMES),
      String(rate),
    ],
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  const [, , packets, bytes, seconds] = new TextDecoder().decode(out.stdout).trim().split(" ");
  return { packets: Number(packets), bytes: Number(bytes), seconds: Number(seconds) };
}

interface Result {
  mbps: number;
  framesPerSecond: number;
  whole: number;
  lost: number;
  packetsReceived: number;
  packetsSent: number;
  /** Process CPU time (user + system) per received packet, µs, from the first packet on. */
  cpuPerPacket: number;
}

function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** Raw baseline: count datagrams until the sender is done and the socket is idle for 300 ms. */
async function raw(packetSize: number, bpp: number, rate: number): Promise<Result> {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (conn.addr as Deno.NetAddr).port;
  let packets = 0;
  let bytes = 0;
  let first = 0;
  let last = 0;
  let done = false;
  let cpu0 = 0;
  const buffer = new Uint8Array(65536);
  const reader = (async () => {
    while (!done) {
      let data: Uint8Array;
      try {
        [data] = await conn.receive(buffer);
      } catch {
        return;
      }
      last = performance.now();
      if (packets === 0) {
        first = last;
        cpu0 = cpuMicros();
      }
      packets++;
      bytes += data.length - 8;
    }
  })();
  const sent = await send(port, packetSize, bpp, rate);
  while (performance.now() - last < 300) await new Promise((r) => setTimeout(r, 50));
  const cpu = cpuMicros() - cpu0;
  done = true;
  conn.close();
  await reader;
  const seconds = (last - first) / 1000;
  const frameBytes = (WIDTH * HEIGHT * bpp) / 8;
  const perFrame = Math.ceil(frameBytes / (packetSize - 36)) + 2;
  return {
    mbps: bytes / seconds / 1e6,
    framesPerSecond: packets / perFrame / seconds,
    whole: NaN,
    lost: NaN,
    packetsReceived: packets,
    packetsSent: sent.packets,
    cpuPerPacket: cpu / Math.max(1, packets - 1),
  };
}

/** Our receive path: whole frames into recycled buffers. */
async function gige(packetSize: number, bpp: number, rate: number): Promise<Result> {
  const frameBytes = (WIDTH * HEIGHT * bpp) / 8;
  const receiver = new GvspReceiver({
    localAddress: "127.0.0.1",
    device: { host: "127.0.0.1", port: 9 },
  });
  const assembler = new FrameAssembler({
    payloadSize: frameBytes,
    packetSize,
    resend: false,
    windowMs: 200,
  });
  receiver.setAssembler(assembler);
  let whole = 0;
  let lost = 0;
  let first = 0;
  let last = 0;
  const stop = new AbortController();
  const consumer = (async () => {
    while (whole + lost < FRAMES) {
      let out;
      try {
        out = await receiver.next(stop.signal);
      } catch {
        return;
      }
      last = performance.now();
      if (out.kind === "frame") {
        if (whole === 0) first = last;
        whole++;
        assembler.recycle(out.buffer);
      } else {
        lost++;
      }
    }
  })();
  const cpu0 = cpuMicros();
  const sent = await send(receiver.port, packetSize, bpp, rate);
  const deadline = performance.now() + 3000;
  while (whole + lost < FRAMES && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  stop.abort();
  await consumer;
  const packetsReceived = assembler.stats.packets;
  const cpu = cpuMicros() - cpu0 - spawnCpu;
  await receiver.close();
  lost = FRAMES - whole;
  // Rate over the frames after the first (the first frame's arrival starts the clock).
  const seconds = (last - first) / 1000;
  return {
    mbps: whole > 1 ? ((whole - 1) * frameBytes) / seconds / 1e6 : 0,
    framesPerSecond: whole > 1 ? (whole - 1) / seconds : 0,
    whole,
    lost,
    packetsReceived,
    packetsSent: sent.packets,
    cpuPerPacket: cpu / Math.max(1, packetsReceived),
  };
}

{
  const c0 = cpuMicros();
  for (let i = 0; i < 5; i++) {
    await new Deno.Command(sender, {
      args: ["127.0.0.1", "9", String(PACKET_SIZE), "8", "8", "8", "0", "0"],
    }).output();
  }
  spawnCpu = (cpuMicros() - c0) / 5;
}
console.log(
  `GVSP reassembly, ${WIDTH}x${HEIGHT}, ${FRAMES} frames per run, packet size ${PACKET_SIZE}, ` +
    `loopback, rmem_default ${Deno.readTextFileSync("/proc/sys/net/core/rmem_default").trim()} B`,
);
for (const [format, bpp] of [["Mono8", 8], ["Mono16", 16]] as const) {
  console.log(`-- ${format}`);
  let rawBest = 0;
  let gigeBest = 0;
  const rawCpu: number[] = [];
  const gigeCpu: number[] = [];
  for (const rate of RATES) {
    const r = await raw(PACKET_SIZE, bpp, rate);
    const g = await gige(PACKET_SIZE, bpp, rate);
    const rawShare = r.packetsReceived / r.packetsSent;
    rawCpu.push(r.cpuPerPacket);
    gigeCpu.push(g.cpuPerPacket);
    if (rawShare >= 1) rawBest = rate;
    if (g.lost === 0) gigeBest = rate;
    console.log(
      `rate ${String(rate).padStart(4)} MB/s | raw: ${
        (100 * rawShare).toFixed(1).padStart(5)
      } % of packets ` +
        `${r.mbps.toFixed(1).padStart(6)} MB/s | gige: whole ${g.whole}/${FRAMES} ` +
        `${g.mbps.toFixed(1).padStart(6)} MB/s ${
          g.framesPerSecond.toFixed(1).padStart(5)
        } frames/s`,
    );
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const dataPerPacket = PACKET_SIZE - 36;
  const rawCapacity = dataPerPacket / median(rawCpu);
  const gigeCapacity = dataPerPacket / median(gigeCpu);
  console.log(
    `${format}: CPU-bound capacity on one free core: raw ${rawCapacity.toFixed(0)} MB/s, gige ${
      gigeCapacity.toFixed(0)
    } MB/s; ratio gige/raw ${(gigeCapacity / rawCapacity).toFixed(2)}; line rate ${
      gigeCapacity >= LINE_RATE_MBPS ? "within" : "BEYOND"
    } the gige path's capacity`,
  );
  console.log(
    `${format}: lossless up to raw ${rawBest} MB/s, gige ${gigeBest} MB/s; ratio gige/raw ${
      rawBest > 0 ? (gigeBest / rawBest).toFixed(2) : "n/a (raw lost packets at every rate)"
    }; GigE line rate (${LINE_RATE_MBPS} MB/s) ${
      gigeBest >= LINE_RATE_MBPS ? "sustained" : "NOT sustained"
    }`,
  );
}
await Deno.remove(dir, { recursive: true });
