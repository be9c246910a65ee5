import assert from "node:assert/strict";
import {
  clearChannelMessage,
  CMD,
  createChanRequest,
  echoMessage,
  encodeHeader,
  encodeMessage,
  eventAddRequest,
  eventCancelRequest,
  MessageReader,
  nameMessage,
  readNotifyRequest,
  searchRequest,
  versionMessage,
  writeRequest,
} from "../ca/messages.ts";
import { makeHarness } from "./support/circuit_harness.ts";

import { createRandom as prng } from "../core/random.ts";

function validMessages(): Uint8Array[] {
  const payload = new Uint8Array(32);
  return [
    versionMessage(0, 0),
    nameMessage(CMD.CLIENT_NAME, "fuzz"),
    nameMessage(CMD.HOST_NAME, "host"),
    createChanRequest("F:D", 1),
    createChanRequest("F:W.NELM", 2),
    createChanRequest("F:S$", 3),
    readNotifyRequest(6, 1, 1, 1),
    readNotifyRequest(20, 0, 2, 2),
    eventAddRequest(6, 0, 1, 5, 7),
    eventCancelRequest(6, 0, 1, 5),
    writeRequest(CMD.WRITE_NOTIFY, 6, 1, 1, 9, new Uint8Array(8)),
    writeRequest(CMD.WRITE, 5, 4, 2, 1, payload),
    clearChannelMessage(1, 1),
    searchRequest("F:D", 4),
    echoMessage(),
    encodeMessage({ cmd: CMD.EVENTS_OFF, type: 0, p1: 0, p2: 0 }),
    encodeMessage({ cmd: CMD.EVENTS_ON, type: 0, p1: 0, p2: 0 }),
    encodeHeader({ cmd: CMD.READ_NOTIFY, size: 0, type: 6, count: 0x10000, p1: 1, p2: 3 }),
  ];
}

Deno.test("fuzz: 120k mutated messages never throw, hang or grow memory", async () => {
  const random = prng(0xca11ab1e);
  const templates = validMessages();
  let circuits = 0;
  let closes = 0;
  let outputMessages = 0;
  let h = makeHarness();
  const setup = (harness: ReturnType<typeof makeHarness>) => {
    harness.store.add({ name: "F:D", type: "double", writable: true, maxCount: 4 });
    harness.store.add({ name: "F:W", type: "long", writable: true, maxCount: 16 });
    harness.store.add({ name: "F:S", type: "string", writable: true });
  };
  setup(h);
  const started = performance.now();
  const total = 120_000;
  for (let i = 0; i < total; i++) {
    const message = templates[Math.floor(random() * templates.length)].slice();
    const mutations = random() < 0.5 ? 0 : 1 + Math.floor(random() * 3);
    for (let k = 0; k < mutations; k++) {
      const pos = Math.floor(random() * message.length);
      message[pos] = random() < 0.5 ? Math.floor(random() * 256) : message[pos] ^ 0xff;
    }
    // Cut some messages short, split others at random points.
    const cut = random() < 0.05 ? Math.floor(random() * message.length) : message.length;
    const split = Math.floor(random() * cut);
    h.circuit.receive(message.subarray(0, split));
    h.circuit.receive(message.subarray(split, cut));
    if (i % 16 === 15 || h.circuit.closed) {
      await h.circuit.idle();
      for (const piece of h.circuit.takeOutput()) outputMessages += piece.length > 0 ? 1 : 0;
      assert.ok(h.circuit.queuedBytes < 1 << 20, "reply queue bounded");
      if (h.circuit.closed || i % 4096 === 4095) {
        if (h.circuit.closed) closes++;
        h.circuit.close();
        h = makeHarness();
        setup(h);
        circuits++;
      }
    }
  }
  await h.circuit.idle();
  h.circuit.close();
  const elapsed = performance.now() - started;
  console.log(
    `fuzz: ${total} messages, ${circuits} circuits, ${closes} closed, ${outputMessages} output pieces, ${
      elapsed.toFixed(0)
    } ms`,
  );
  assert.ok(circuits > 10, `several circuits used (${circuits})`);
  assert.ok(closes > 0, "some mutations closed their circuit");
  assert.ok(outputMessages > 1000, "valid traffic kept producing replies");
  assert.ok(elapsed < 20_000, `took ${elapsed} ms`);
});

Deno.test("fuzz: the message reader survives random byte streams", () => {
  const random = prng(42);
  let messages = 0;
  let errors = 0;
  for (let round = 0; round < 2000; round++) {
    const reader = new MessageReader({ maxPayload: 4096, requireAligned: round % 2 === 0 });
    const bytes = new Uint8Array(256);
    for (let i = 0; i < bytes.length; i++) bytes[i] = random() < 0.7 ? 0 : random() * 256;
    try {
      for (let pos = 0; pos < bytes.length; pos += 7) {
        messages += reader.push(bytes.subarray(pos, pos + 7)).length;
      }
      assert.ok(reader.buffered <= 4096 + 24);
    } catch (error) {
      assert.equal((error as Error).name, "CaProtocolError");
      errors++;
    }
  }
  assert.ok(messages > 0);
  assert.ok(errors > 0);
});
