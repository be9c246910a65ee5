/**
 * Randomized robustness of the GigE decoders: mutated GVCP acknowledges and commands, GVSP packets
 * (fed to the frame assembler, which must keep counting and never throw), description URLs,
 * zip archives and XML. Each input either decodes or throws the decoder's own error class — never
 * a RangeError/TypeError. Seeded, so failures reproduce.
 */
import assert from "node:assert/strict";
import {
  decodeAck,
  decodeCommand,
  decodeDiscoveryAck,
  encodeAck,
  encodeCommand,
  GvcpCommand,
  GvcpFormatError,
  readMemPayload,
} from "../devices/gige/gvcp.ts";
import { type ImageLeader, packetizeImage } from "../devices/gige/gvsp.ts";
import { FrameAssembler } from "../devices/gige/gvsp_assembler.ts";
import { DescriptionError, parseDescriptionUrl, unzipFirst } from "../devices/gige/description.ts";
import { parseXml, XmlError } from "../devices/gige/xml.ts";
import { GenicamError, NodeMap } from "../devices/gige/genicam.ts";
import { SIM_CAMERA_XML } from "../devices/gige_sim/camera.ts";
import { zipArchive } from "../devices/gige_sim/zip_writer.ts";
import { createRandom } from "../core/random.ts";

const rand = createRandom(20261202);
const int = (n: number) => Math.floor(rand() * n);

function mutate(src: Uint8Array): Uint8Array {
  let out = src.slice();
  const kind = int(5);
  if (kind === 0 && out.length > 0) {
    for (let i = 0, n = 1 + int(4); i < n; i++) out[int(out.length)] ^= 1 << int(8);
  } else if (kind === 1 && out.length > 0) {
    for (let i = 0, n = 1 + int(3); i < n; i++) out[int(Math.min(out.length, 24))] = int(256);
  } else if (kind === 2) {
    out = out.subarray(0, int(out.length + 1));
  } else if (kind === 3) {
    const at = int(out.length + 1);
    const extra = Uint8Array.from({ length: 1 + int(8) }, () => int(256));
    const grown = new Uint8Array(out.length + extra.length);
    grown.set(out.subarray(0, at));
    grown.set(extra, at);
    grown.set(out.subarray(at), at + extra.length);
    out = grown;
  } else {
    out = Uint8Array.from({ length: int(64) }, () => int(256));
  }
  return out;
}

function expectOwn(f: () => unknown, ...classes: (new (...a: never[]) => Error)[]): void {
  try {
    f();
  } catch (err) {
    if (!classes.some((c) => err instanceof c)) throw err;
  }
}

Deno.test("fuzz: 20 000 mutated GVCP acks and commands decode or raise GvcpFormatError", () => {
  const seeds = [
    encodeAck(0, 0x81, 7, new Uint8Array([0, 0, 0, 2])),
    encodeAck(0, 0x85, 8, new Uint8Array(68)),
    encodeAck(0, 0x03, 1, new Uint8Array(0xf8)),
    encodeAck(0x8006, 0x83, 9, new Uint8Array(4)),
    encodeCommand(GvcpCommand.READMEM, 3, readMemPayload(0x200, 64)),
  ];
  for (let i = 0; i < 20_000; i++) {
    const m = mutate(seeds[int(seeds.length)]);
    expectOwn(() => {
      const ack = decodeAck(m);
      if (ack.ack === 0x03) decodeDiscoveryAck(ack.payload);
    }, GvcpFormatError);
    expectOwn(() => decodeCommand(m), GvcpFormatError);
  }
});

Deno.test("fuzz: 30 000 mutated GVSP packets never break the assembler; clean frames still complete", () => {
  const leader: ImageLeader = {
    payloadType: 1,
    timestamp: 1n,
    pixelFormat: 0x01080001,
    width: 50,
    height: 10,
    offsetX: 0,
    offsetY: 0,
    paddingX: 0,
    paddingY: 0,
  };
  const data = Uint8Array.from({ length: 500 }, (_, i) => i & 0xff);
  for (const resend of [false, true]) {
    const a = new FrameAssembler({ payloadSize: 500, packetSize: 136, resend, windowMs: 20 });
    let now = 0;
    let block = 1;
    let clean = 0;
    let exact = 0;
    for (let i = 0; i < 15_000; i++) {
      const packets = packetizeImage(block, leader, data, 136);
      block = block >= 0xffff ? 1 : block + 1;
      if (i % 50 === 0) {
        // An intact frame among the junk must come out whole.
        for (const p of packets) a.feed(p, now);
        clean++;
      } else {
        a.feed(mutate(packets[int(packets.length)]), now);
      }
      now += 1;
      if (i % 7 === 0) a.poll(now);
      a.takeResends();
      for (let out = a.takeOutput(); out !== undefined; out = a.takeOutput()) {
        if (out.kind === "frame") {
          assert.ok(out.data.length <= 500);
          if (out.data.length === 500 && out.data.every((v, k) => v === data[k])) exact++;
          a.recycle(out.buffer);
        }
      }
    }
    // A junk packet whose mutated id names a clean block, or lies a few blocks ahead (making the
    // clean one "late"), can cost that one frame (UDP checksums prevent this on a real link);
    // the rest must come out byte-exact.
    assert.ok(exact >= clean * 0.85, `${exact} of ${clean} exact; ${JSON.stringify(a.stats)}`);
    assert.ok(a.stats.malformed > 0);
  }
});

Deno.test("fuzz: mutated URLs, zip archives and descriptions raise their own errors", async () => {
  const url = new TextEncoder().encode("Local:Basler_Ace.zip;c0000000;10cca?SchemaVersion=1.1.0");
  for (let i = 0; i < 5_000; i++) {
    const text = new TextDecoder().decode(mutate(url));
    expectOwn(() => parseDescriptionUrl(text), DescriptionError);
  }
  const xml = new TextEncoder().encode(SIM_CAMERA_XML);
  const zip = await zipArchive("a.xml", xml);
  assert.equal((await unzipFirst(zip)).data.length, xml.length);
  for (let i = 0; i < 300; i++) {
    try {
      await unzipFirst(mutate(zip));
    } catch (err) {
      if (!(err instanceof DescriptionError)) throw err;
    }
  }
  const port = {
    readMemory: () => Promise.resolve(new Uint8Array(8)),
    writeMemory: () => Promise.resolve(),
  };
  for (let i = 0; i < 2_000; i++) {
    const text = new TextDecoder().decode(mutate(xml.subarray(0, 400 + int(600))));
    expectOwn(() => parseXml(text), XmlError);
    expectOwn(() => NodeMap.parse(text, port), GenicamError);
  }
});
