/**
 * ZMTP over real loopback sockets between our own peers and hostile raw TCP peers: reconnect
 * after the PUSH server restarts, back-pressure, PING over the wire, and bad peers that must be
 * dropped without harming the process or other peers.
 */
import assert from "node:assert/strict";
import {
  encodeGreeting,
  encodePing,
  encodeReady,
  ZmtpDecoder,
  ZmtpError,
} from "../devices/eiger/zmtp.ts";
import { connectPull, listenPush } from "../devices/eiger/zmtp_socket.ts";
import { concat as cat } from "./support/bytes.ts";
import { listenBelowEphemeral } from "./support/stable_port.ts";

const enc = new TextEncoder();

async function nextWithin<T>(it: AsyncIterator<T>, ms = 10000): Promise<IteratorResult<T>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      it.next(),
      new Promise<never>((_, rej) => {
        timer = setTimeout(() => rej(new Error(`nothing within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads from `conn` until EOF (or error); returns everything received. */
async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(4096);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
  } catch {
    // reset by peer
  }
  return cat(...chunks);
}

/** A raw TCP server that answers the first connection with `bytes` and records what it got. */
function rawServer(bytes: Uint8Array, closeAfterWrite = false) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const received = (async () => {
    const conn = await listener.accept();
    listener.close();
    await conn.write(bytes);
    if (closeAfterWrite) {
      conn.close();
      return new Uint8Array(0);
    }
    const got = await readAll(conn);
    try {
      conn.close();
    } catch {
      // closed
    }
    return got;
  })();
  return { port: (listener.addr as Deno.NetAddr).port, received };
}

Deno.test("zmtp socket: our PULL ↔ our PUSH, reconnecting after the server restarts", async () => {
  let server = listenBelowEphemeral((port) => listenPush({ hostname: "127.0.0.1", port }));
  const port = server.port;
  const ac = new AbortController();
  const log: string[] = [];
  const it = connectPull({
    host: "127.0.0.1",
    port,
    signal: ac.signal,
    reconnect: { initialMs: 10, maxMs: 100 },
    onConnect: () => log.push("connect"),
    onDisconnect: () => log.push("disconnect"),
  })[Symbol.asyncIterator]();
  try {
    const first = nextWithin(it);
    await server.send([enc.encode("a"), new Uint8Array(70000).fill(1)]);
    const r1 = await first;
    assert.deepEqual(r1.value, [enc.encode("a"), new Uint8Array(70000).fill(1)]);
    const second = nextWithin(it);
    await server.close();
    server = listenPush({ hostname: "127.0.0.1", port });
    await server.send([enc.encode("after restart")]);
    assert.deepEqual((await second).value, [enc.encode("after restart")]);
    assert.deepEqual(log, ["connect", "disconnect", "connect"]);
  } finally {
    ac.abort();
    await it.return?.();
    await server.close();
  }
});

Deno.test("zmtp socket: PUSH waits without peers, bounds its queue, drops a dead peer's queue", async () => {
  const server = listenPush({ hostname: "127.0.0.1", port: 0, highWaterMark: 2 });
  try {
    assert.equal(server.trySend([enc.encode("x")]), false, "no peer: nothing accepted");
    await assert.rejects(server.send([enc.encode("x")], AbortSignal.timeout(50)));
    // a raw PULL that completes the handshake but never reads
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await conn.write(cat(encodeGreeting(), encodeReady({ "Socket-Type": "PULL" })));
    await server.waitForPeer(AbortSignal.timeout(10000));
    const big = new Uint8Array(1 << 20);
    let accepted = 0;
    while (server.trySend([big])) {
      accepted++;
      assert.ok(accepted < 200, "the queue must fill up");
      await new Promise((r) => setTimeout(r, 1));
    }
    assert.ok(accepted >= 2);
    conn.close(); // peer dies with a full queue: its messages are lost, not re-sent elsewhere
    const deadline = Date.now() + 10000;
    while (server.connected()) {
      assert.ok(Date.now() < deadline);
      await new Promise((r) => setTimeout(r, 10));
    }
    await server.flush(AbortSignal.timeout(1000));
  } finally {
    await server.close();
  }
});

Deno.test("zmtp socket: PUSH drops hostile peers and keeps serving good ones", async () => {
  const server = listenPush({ hostname: "127.0.0.1", port: 0 });
  const hostile = [
    enc.encode("GET / HTTP/1.1\r\n\r\n"), // not ZMTP at all
    cat(encodeGreeting().map((b, i) => (i >= 12 && i < 17 ? enc.encode("PLAIN")[i - 12] : b))),
    cat(encodeGreeting(), encodeReady({ "Socket-Type": "PUB" })),
    cat(
      encodeGreeting(),
      encodeReady({ "Socket-Type": "PULL" }),
      Uint8Array.of(0x02, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
    ),
    cat(encodeGreeting(), Uint8Array.of(0x08, 0x00)),
  ];
  try {
    for (const bytes of hostile) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      await conn.write(bytes);
      const got = await readAll(conn); // the server must close the connection
      conn.close();
      assert.ok(got.length <= 64 + 28, "no messages were sent to a hostile peer");
    }
    assert.equal(server.connected(), false);
    const ac = new AbortController();
    const it = connectPull({ host: "127.0.0.1", port: server.port, signal: ac.signal })
      [Symbol.asyncIterator]();
    const next = nextWithin(it);
    await server.send([enc.encode("still fine")]);
    assert.deepEqual((await next).value, [enc.encode("still fine")]);
    ac.abort();
    await it.return?.();
  } finally {
    await server.close();
  }
});

Deno.test("zmtp socket: PULL answers a PING over the wire and fails cleanly on hostile servers", async () => {
  // PING → PONG
  const ping = rawServer(
    cat(
      encodeGreeting(0),
      encodeReady({ "Socket-Type": "PUSH" }),
      encodePing(0, enc.encode("ctx")),
      Uint8Array.of(0, 2, 0x68, 0x69),
    ),
  );
  const it = connectPull({ host: "127.0.0.1", port: ping.port, reconnect: false })
    [Symbol.asyncIterator]();
  assert.deepEqual((await nextWithin(it)).value, [enc.encode("hi")]);
  await it.return?.(); // consumer stops: connection closes
  const got = await ping.received;
  const dec = new ZmtpDecoder();
  const events = dec.push(got);
  assert.deepEqual(events.map((e) => e.type), ["greeting", "command", "command"]);
  const pong = events[2];
  assert.ok(pong.type === "command" && pong.command.name === "PONG");
  assert.deepEqual(pong.command.data, enc.encode("ctx"));

  const refuse = async (bytes: Uint8Array, pattern: RegExp) => {
    const srv = rawServer(bytes);
    const pull = connectPull({ host: "127.0.0.1", port: srv.port, reconnect: false });
    await assert.rejects(async () => {
      for await (const _ of pull) assert.fail("no message expected");
    }, (e: unknown) => e instanceof ZmtpError && pattern.test(e.message));
    await srv.received;
  };
  await refuse(enc.encode("HTTP/1.1 400 Bad Request\r\n\r\n"), /signature/);
  await refuse(cat(encodeGreeting(), encodeReady({ "Socket-Type": "PUB" })), /incompatible/);
  await refuse(
    cat(
      encodeGreeting(),
      encodeReady({ "Socket-Type": "PUSH" }),
      Uint8Array.of(2, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
    ),
    /larger than the limit/,
  );
});

Deno.test("zmtp socket: PULL reports a peer vanishing mid-message and ends on abort", async () => {
  // server sends half a frame and closes
  const srv = rawServer(
    cat(
      encodeGreeting(),
      encodeReady({ "Socket-Type": "PUSH" }),
      Uint8Array.of(0, 1, 0x41, 2, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2),
    ),
    true,
  );
  const reasons: string[] = [];
  const ac = new AbortController();
  const it = connectPull({
    host: "127.0.0.1",
    port: srv.port,
    signal: ac.signal,
    reconnect: { initialMs: 5, maxMs: 20 },
    onDisconnect: (r) => reasons.push(r),
  })[Symbol.asyncIterator]();
  assert.deepEqual((await nextWithin(it)).value, [enc.encode("A")]);
  const pending = it.next(); // reads the truncated frame, sees EOF, keeps reconnecting (refused)
  const deadline = Date.now() + 10000;
  while (reasons.length === 0) {
    assert.ok(Date.now() < deadline);
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.deepEqual(reasons, ["closed by peer"]);
  ac.abort();
  assert.equal((await pending).done, true);
  await srv.received;
});

Deno.test("zmtp socket: PULL gives up a handshake that never completes", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const pull = connectPull({
    host: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
    reconnect: false,
    handshakeTimeoutMs: 100,
  });
  const ended = (async () => {
    try {
      for await (const _ of pull) assert.fail("no message expected");
      return "ended";
    } catch (e) {
      return `threw ${(e as Error).name}`;
    }
  })();
  const conn = await accepted; // the generator runs once iterated
  assert.equal(await ended, "threw ZmtpError");
  const got = await readAll(conn); // we sent greeting + READY, then closed
  assert.equal(got.length, 64 + 28);
  conn.close();
  listener.close();
});

Deno.test("zmtp socket: PUSH drops a connection that never completes the handshake", async () => {
  const server = listenPush({ hostname: "127.0.0.1", port: 0, handshakeTimeoutMs: 100 });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    const got = await readAll(conn); // we stay silent; the server gives up and closes
    conn.close();
    assert.equal(got.length, 64 + 28, "greeting + READY, then closed");
    assert.equal(server.connected(), false);
  } finally {
    await server.close();
  }
});
