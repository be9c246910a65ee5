/**
 * ZMTP interop against real libzmq (Debian python3-zmq): our PULL client ↔ pyzmq PUSH server and
 * our PUSH server ↔ pyzmq PULL client; multipart, long frames, a 5 MB frame, reconnects.
 */
import assert from "node:assert/strict";
import { connectPull, listenPush } from "../devices/eiger/zmtp_socket.ts";
import { startPy } from "./support/py/peer.ts";
import { sha256Hex } from "./support/bytes.ts";
import { listenBelowEphemeral } from "./support/stable_port.ts";

const enc = new TextEncoder();

function seq(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = i % 251;
  return b;
}

/** Next value of an iterator, failing after `ms`. */
async function nextWithin<T>(it: AsyncIterator<T>, ms = 15000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const r = await Promise.race([
      it.next(),
      new Promise<never>((_, rej) => {
        timer = setTimeout(() => rej(new Error(`no message within ${ms} ms`)), ms);
      }),
    ]);
    if (r.done) throw new Error("iterator ended");
    return r.value;
  } finally {
    clearTimeout(timer);
  }
}

async function startPyPush(port = 0) {
  const py = startPy("zmq_peer.py", ["push", String(port)]);
  const first = await py.line();
  const m = /^PORT (\d+)$/.exec(first);
  assert.ok(m, `unexpected first line ${first}`);
  return { py, port: Number(m[1]) };
}

Deno.test("zmtp: pyzmq PUSH → our PULL: single, long, multipart and 5 MB messages", async () => {
  const { py, port } = await startPyPush();
  const ac = new AbortController();
  const it = connectPull({ host: "127.0.0.1", port, signal: ac.signal })[Symbol.asyncIterator]();
  try {
    const cmds = [
      [{ text: "hello" }],
      [{ fill: 0x78, n: 300 }],
      [{ text: "ab" }, { text: "cd" }],
      [{ fill: 0x61, n: 255 }, { fill: 0x62, n: 256 }, { text: "" }],
      [{ seq: 5_000_000 }],
    ];
    const received = (async () => {
      const out: Uint8Array[][] = [];
      for (let i = 0; i < cmds.length; i++) out.push(await nextWithin(it));
      return out;
    })();
    for (const c of cmds) {
      await py.send(JSON.stringify(["send", c]));
      assert.equal(await py.line(), "SENT");
    }
    const msgs = await received;
    assert.deepEqual(msgs[0], [enc.encode("hello")]);
    assert.deepEqual(msgs[1], [new Uint8Array(300).fill(0x78)]);
    assert.deepEqual(msgs[2], [enc.encode("ab"), enc.encode("cd")]);
    assert.deepEqual(msgs[3], [
      new Uint8Array(255).fill(0x61),
      new Uint8Array(256).fill(0x62),
      new Uint8Array(0),
    ]);
    assert.equal(msgs[4].length, 1);
    assert.equal(await sha256Hex(msgs[4][0]), await sha256Hex(seq(5_000_000)));
  } finally {
    ac.abort();
    await it.return?.();
    await py.close();
  }
});

Deno.test("zmtp: our PULL reports the disconnect and reconnects when pyzmq PUSH restarts", async () => {
  let { py, port } = await startPyPush();
  const ac = new AbortController();
  const events: string[] = [];
  let onEvent: () => void = () => {};
  const it = connectPull({
    host: "127.0.0.1",
    port,
    signal: ac.signal,
    reconnect: { initialMs: 20, maxMs: 200 },
    onConnect: () => (events.push("connect"), onEvent()),
    onDisconnect: (reason) => (events.push(`disconnect:${reason}`), onEvent()),
  })[Symbol.asyncIterator]();
  const waitEvents = async (n: number) => {
    const deadline = Date.now() + 15000;
    while (events.length < n) {
      assert.ok(Date.now() < deadline, `events: ${events.join(",")}`);
      await new Promise<void>((r) => {
        onEvent = r;
        setTimeout(r, 50);
      });
    }
  };
  try {
    const first = nextWithin(it);
    await py.send(JSON.stringify(["send", [{ text: "one" }]]));
    assert.deepEqual(await first, [enc.encode("one")]);
    assert.equal(await py.line(), "SENT");
    const second = nextWithin(it, 20000); // keeps the generator reading across the restart
    await py.close(); // peer disappears mid-series
    await waitEvents(2);
    assert.equal(events[0], "connect");
    assert.match(events[1], /^disconnect:/);
    ({ py } = await startPyPush(port));
    await py.send(JSON.stringify(["send", [{ text: "two" }]]));
    assert.deepEqual(await second, [enc.encode("two")]);
    assert.equal(await py.line(), "SENT");
    assert.deepEqual(events.slice(0, 3).map((e) => e.split(":")[0]), [
      "connect",
      "disconnect",
      "connect",
    ]);
  } finally {
    ac.abort();
    await it.return?.();
    await py.close();
  }
});

Deno.test("zmtp: our PUSH → pyzmq PULL: single, long, multipart and 5 MB messages", async () => {
  const server = listenPush({ hostname: "127.0.0.1", port: 0 });
  const big = seq(5_000_000);
  const msgs: Uint8Array[][] = [
    [enc.encode("hello")],
    [new Uint8Array(300).fill(0x78)],
    [enc.encode("ab"), enc.encode("cd")],
    [new Uint8Array(255).fill(1), new Uint8Array(256).fill(2), new Uint8Array(0)],
    [big],
  ];
  const py = startPy("zmq_peer.py", ["pull", String(server.port), String(msgs.length)]);
  try {
    assert.equal(await py.line(), "READY");
    await server.waitForPeer(AbortSignal.timeout(15000));
    for (const m of msgs) await server.send(m);
    for (const m of msgs) {
      const got = JSON.parse(await py.line()) as [number, string][];
      const want = await Promise.all(m.map(async (f) => [f.length, await sha256Hex(f)]));
      assert.deepEqual(got, want);
    }
    assert.equal(await py.wait(), 0);
  } finally {
    await py.close();
    await server.close();
  }
});

Deno.test("zmtp: our PUSH round-robins over two pyzmq PULL peers and survives a peer leaving", async () => {
  const server = listenPush({ hostname: "127.0.0.1", port: 0 });
  const a = startPy("zmq_peer.py", ["pull", String(server.port), "2"]);
  const b = startPy("zmq_peer.py", ["pull", String(server.port), "3"]);
  try {
    assert.equal(await a.line(), "READY");
    assert.equal(await b.line(), "READY");
    const deadline = Date.now() + 15000;
    while (server.peerCount() < 2) {
      assert.ok(Date.now() < deadline, "both peers connect");
      await new Promise((r) => setTimeout(r, 20));
    }
    for (let i = 0; i < 4; i++) await server.send([enc.encode(`m${i}`)]);
    const shaOf = (l: string) => (JSON.parse(l) as [number, string][])[0][1];
    const la = [shaOf(await a.line()), shaOf(await a.line())];
    const lb = [shaOf(await b.line()), shaOf(await b.line())];
    const m = await Promise.all([0, 1, 2, 3].map((i) => sha256Hex(enc.encode(`m${i}`))));
    // alternating: one peer got m0 and m2, the other m1 and m3
    const even = [m[0], m[2]];
    const odd = [m[1], m[3]];
    assert.ok(
      (la.join() === even.join() && lb.join() === odd.join()) ||
        (la.join() === odd.join() && lb.join() === even.join()),
      "messages alternate between the peers",
    );
    assert.equal(await a.wait(), 0); // peer a leaves after its 2 messages
    const leftDeadline = Date.now() + 15000;
    while (server.peerCount() > 1) {
      assert.ok(Date.now() < leftDeadline, "server notices the peer leaving");
      await new Promise((r) => setTimeout(r, 20));
    }
    await server.send([enc.encode("last")]);
    const last = JSON.parse(await b.line()) as [number, string][];
    assert.deepEqual(last, [[4, await sha256Hex(enc.encode("last"))]]);
    assert.equal(await b.wait(), 0);
  } finally {
    await a.close();
    await b.close();
    await server.close();
  }
});

Deno.test("zmtp: pyzmq PULL reconnects to our PUSH server after it restarts", async () => {
  let server = listenBelowEphemeral((port) => listenPush({ hostname: "127.0.0.1", port }));
  const port = server.port;
  const py = startPy("zmq_peer.py", ["pull", String(port), "2"]);
  try {
    assert.equal(await py.line(), "READY");
    await server.send([enc.encode("before")]);
    assert.deepEqual(JSON.parse(await py.line()), [[6, await sha256Hex(enc.encode("before"))]]);
    await server.close(); // the simulator restarts
    server = listenPush({ hostname: "127.0.0.1", port });
    await server.waitForPeer(AbortSignal.timeout(15000)); // libzmq reconnects by itself
    await server.send([enc.encode("after")]);
    assert.deepEqual(JSON.parse(await py.line()), [[5, await sha256Hex(enc.encode("after"))]]);
    assert.equal(await py.wait(), 0);
  } finally {
    await py.close();
    await server.close();
  }
});

Deno.test("zmtp: libzmq heartbeats (PING with TTL) are answered, so the link stays up", async () => {
  const py = startPy("zmq_peer.py", ["push", "0", "50"]); // PING every 50 ms, drop after 200 ms
  const m = /^PORT (\d+)$/.exec(await py.line());
  assert.ok(m);
  const ac = new AbortController();
  const events: string[] = [];
  const it = connectPull({
    host: "127.0.0.1",
    port: Number(m[1]),
    signal: ac.signal,
    onConnect: () => events.push("connect"),
    onDisconnect: (r) => events.push(`disconnect:${r}`),
  })[Symbol.asyncIterator]();
  try {
    const first = nextWithin(it);
    await py.send(JSON.stringify(["send", [{ text: "one" }]]));
    assert.deepEqual(await first, [enc.encode("one")]);
    assert.equal(await py.line(), "SENT");
    const second = nextWithin(it); // keeps reading (and answering PINGs) while idle
    // The peer's idle time must exceed libzmq's heartbeat timeout: this wait is the test itself.
    await py.send(JSON.stringify(["sleep", 1.0]));
    assert.equal(await py.line(), "SLEPT");
    await py.send(JSON.stringify(["send", [{ text: "two" }]]));
    assert.deepEqual(await second, [enc.encode("two")]);
    assert.equal(await py.line(), "SENT");
    assert.deepEqual(events, ["connect"], "no disconnect during the idle second");
  } finally {
    ac.abort();
    await it.return?.();
    await py.close();
  }
});
