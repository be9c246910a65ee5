/**
 * Server-wide limits with real sockets: the slow-client memory budget and the circuit limit close
 * the slowest circuit (with a warning naming the client) and leave every other client alone;
 * plus the pure parts (environment parsing, choice of the slowest circuit, adaptive buffers, the
 * bulk write gate).
 */
import assert from "node:assert/strict";
import { readSearchWorkerEnv, startCaServer } from "../ca/server.ts";
import { CMD, createChanRequest, DBE, eventAddRequest, nameMessage } from "../ca/messages.ts";
import { versionMessage } from "../ca/messages.ts";
import { readServerLimits, slowestCircuit } from "../ca/server_limits.ts";
import { AdaptiveBuffer } from "../core/socket_buffer.ts";
import { BulkWriteGate } from "../core/write_gate.ts";
import { setupLogging } from "../core/log.ts";
import { concat } from "./support/bytes.ts";
import { closeRaw, connectRaw } from "./support/raw_client.ts";
import { testServerEnv } from "./support/epics_env.ts";

const IMAGE = 262_144; // int32 elements: 1 MiB payloads

/** Collects log lines of this test module. */
function captureLog(): string[] {
  const lines: string[] = [];
  setupLogging({ level: "info", write: (line) => lines.push(line) });
  return lines;
}

/** A client that subscribes to `pv` (first SID of a circuit is 1) and never reads. */
async function stalledSubscriber(port: number, user: string, host: string): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(
    concat(
      versionMessage(0, 0),
      nameMessage(CMD.CLIENT_NAME, user),
      nameMessage(CMD.HOST_NAME, host),
      createChanRequest("IMG", 1),
      eventAddRequest(5, 0, 1, 1, DBE.VALUE),
    ),
  );
  return conn;
}

const yieldTurn = () => new Promise((resolve) => setTimeout(resolve, 0));

/** Whether the server closed `conn`: reads (and drops) what is buffered until EOF or an error. */
async function closedByServer(conn: Deno.TcpConn, timeoutMs = 20_000): Promise<boolean> {
  const buffer = new Uint8Array(1 << 20);
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    while ((await conn.read(buffer)) !== null) { /* drain */ }
    return true;
  } catch (error) {
    return !(error instanceof Deno.errors.BadResource); // BadResource: our own timeout close
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("limits: past the slow-client budget the slowest circuit is closed, others unaffected", async () => {
  const lines = captureLog();
  const server = await startCaServer({
    env: testServerEnv(),
    port: 0,
    serverLimits: { slowClientBudget: 2.5 * 1024 * 1024 },
  });
  try {
    const pv = server.add({ name: "IMG", type: "long", maxCount: IMAGE });
    const healthy = await connectRaw(server.tcpPort, 1 << 20);
    const sid = await healthy.createChannel("IMG", 7);
    await healthy.send(eventAddRequest(5, 0, sid, 9, DBE.VALUE));
    const images = [new Int32Array(IMAGE), new Int32Array(IMAGE)];
    let posts = 0;
    const closing = () => lines.filter((l) => l.includes("Closing slow client"));
    // Three clients stall one after the other, each on a later value: each keeps one superseded
    // 1 MiB payload alive, so the third one passes the 2.5 MiB budget. (Loopback buffers hold
    // far less than the 64 MiB posted per stage.)
    const stalled: Deno.TcpConn[] = [];
    for (const name of ["slow1", "slow2", "slow3"]) {
      stalled.push(await stalledSubscriber(server.tcpPort, name, `${name}host`));
      for (let i = 0; i < 64 && closing().length === 0; i++) {
        const next = images[++posts % 2];
        next[0] = posts;
        pv.post(next);
        await yieldTurn();
      }
    }
    const closed = closing();
    assert.ok(closed.length >= 1, "the budget was enforced");
    for (const part of ["user=slow1", "host=slow1host", "address=127.0.0.1", "budgetBytes="]) {
      assert.ok(closed[0].includes(part), `the client that stalled first: ${part} in ${closed[0]}`);
    }
    assert.ok(!closed.some((l) => l.includes("user=tester")), "the reading client is never closed");
    assert.ok(await closedByServer(stalled[0]), "the first stalled socket was closed");
    // The healthy subscriber still gets the newest value.
    pv.post(images[++posts % 2].fill(posts));
    const last = await healthy.waitFor((m) =>
      m.header.cmd === CMD.EVENT_ADD && m.payload.length === IMAGE * 4 &&
      new DataView(m.payload.buffer, m.payload.byteOffset).getInt32(0) === posts
    );
    assert.equal(last.header.p2, 9);
    for (const conn of stalled.slice(1)) conn.close();
    await closeRaw(healthy);
  } finally {
    await server.close();
  }
});

Deno.test("limits: stalled clients under the budget stay open (default budget 256 MiB)", async () => {
  const lines = captureLog();
  const server = await startCaServer({ env: testServerEnv(), port: 0 });
  try {
    const pv = server.add({ name: "IMG", type: "long", maxCount: IMAGE });
    const stalled = await stalledSubscriber(server.tcpPort, "slowuser", "slowhost");
    const images = [new Int32Array(IMAGE), new Int32Array(IMAGE)];
    const second = await stalledSubscriber(server.tcpPort, "slow2", "slow2host");
    for (let i = 1; i <= 64; i++) {
      pv.post(images[i % 2]);
      await yieldTurn();
    }
    assert.ok(!lines.some((l) => l.includes("Closing slow client")));
    stalled.close();
    second.close();
  } finally {
    await server.close();
  }
});

Deno.test("limits: at the circuit limit a stalled circuit makes room; otherwise newcomers are refused", async () => {
  const lines = captureLog();
  let clock = 0;
  const server = await startCaServer({
    env: testServerEnv(),
    port: 0,
    serverLimits: { maxCircuits: 3, stalledAfterMs: 1000 },
    now: () => clock,
  });
  try {
    const pv = server.add({ name: "IMG", type: "long", maxCount: IMAGE });
    const idle = [await connectRaw(server.tcpPort), await connectRaw(server.tcpPort)];
    for (const [i, c] of idle.entries()) await c.createChannel("IMG", i + 1);
    const stalled = await stalledSubscriber(server.tcpPort, "slowuser", "slowhost");
    // Fill the stalled client's socket buffers (loopback holds far less than 64 MiB).
    const images = [new Int32Array(IMAGE), new Int32Array(IMAGE)];
    for (let i = 1; i <= 64; i++) {
      pv.post(images[i % 2]);
      await yieldTurn();
    }
    // Not stalled long enough yet: a fourth connection is refused, the three stay.
    clock = 500;
    const refused = await Deno.connect({ hostname: "127.0.0.1", port: server.tcpPort });
    assert.ok(await closedByServer(refused), "fourth connection closed at once");
    assert.ok(lines.some((l) => l.includes("Refusing connection") && l.includes("maxCircuits=3")));
    // Once its write is pending longer than stalledAfterMs, the stalled circuit makes room.
    clock = 5000;
    const newcomer = await connectRaw(server.tcpPort);
    assert.ok(await newcomer.createChannel("IMG", 5) > 0, "the newcomer is served");
    assert.ok(await closedByServer(stalled), "the stalled client was closed");
    const closing = lines.filter((l) => l.includes("Closing slow client"));
    assert.equal(closing.length, 1);
    assert.ok(
      closing[0].includes('reason="circuit limit"') || closing[0].includes("circuit limit"),
    );
    assert.ok(closing[0].includes("user=slowuser") && closing[0].includes("host=slowhost"));
    // The idle clients were not touched.
    for (const [i, c] of idle.entries()) assert.ok(await c.createChannel("IMG", 10 + i) > 0);
    for (const c of [...idle, newcomer]) await closeRaw(c);
  } finally {
    await server.close();
  }
});

Deno.test("limits: DISS_CA_MAX_CIRCUITS / DISS_CA_SLOW_CLIENT_MB parse or fail clearly", () => {
  assert.deepEqual(readServerLimits({}), {
    maxCircuits: 1024,
    slowClientBudget: 256 * 1024 * 1024,
    stalledAfterMs: 1000,
  });
  const set = readServerLimits({ DISS_CA_MAX_CIRCUITS: "10", DISS_CA_SLOW_CLIENT_MB: "0.5" });
  assert.equal(set.maxCircuits, 10);
  assert.equal(set.slowClientBudget, 512 * 1024);
  assert.equal(readServerLimits({ DISS_CA_MAX_CIRCUITS: " " }).maxCircuits, 1024);
  for (
    const [name, value] of [
      ["DISS_CA_MAX_CIRCUITS", "0"],
      ["DISS_CA_MAX_CIRCUITS", "2.5"],
      ["DISS_CA_MAX_CIRCUITS", "abc"],
      ["DISS_CA_SLOW_CLIENT_MB", "-1"],
      ["DISS_CA_SLOW_CLIENT_MB", "1e999"],
      ["DISS_CA_SLOW_CLIENT_MB", "64MB"],
    ]
  ) {
    assert.throws(() => readServerLimits({ [name]: value }), new RegExp(name), `${name}=${value}`);
  }
});

Deno.test("limits: the slowest circuit is the one whose pending write is oldest", () => {
  const circuits = [
    { name: "a", writePendingSince: undefined },
    { name: "b", writePendingSince: 30 },
    { name: "c", writePendingSince: 10 },
    { name: "d", writePendingSince: 20 },
  ];
  assert.equal(slowestCircuit(circuits)?.name, "c");
  assert.equal(slowestCircuit(circuits, 5), undefined, "none pending since 5");
  assert.equal(slowestCircuit(circuits, 25)?.name, "c");
  assert.equal(slowestCircuit([{ writePendingSince: undefined }]), undefined);
});

Deno.test("adaptive buffer: grows for big uses, shrinks back after small ones", () => {
  const buffer = new AdaptiveBuffer({ min: 1024, max: 65536, shrinkAfter: 3 });
  assert.equal(buffer.size, 1024);
  buffer.filled(1024); // a read filled it
  assert.equal(buffer.size, 4096);
  assert.equal(buffer.reserve(50_000).length, 65536);
  buffer.reserve(1 << 20);
  assert.equal(buffer.size, 65536, "capped at max");
  buffer.used(20_000); // more than a quarter: no shrink count
  buffer.used(100);
  buffer.used(100);
  assert.equal(buffer.size, 65536);
  buffer.used(100);
  assert.equal(buffer.size, 1024, "three small uses in a row: back to min");
});

Deno.test("DISS_CA_SEARCH_WORKER: off unless yes/1; anything else is refused by name", () => {
  assert.equal(readSearchWorkerEnv({}), false, "default off");
  assert.equal(readSearchWorkerEnv({ DISS_CA_SEARCH_WORKER: " Yes " }), true);
  assert.equal(readSearchWorkerEnv({ DISS_CA_SEARCH_WORKER: "1" }), true);
  assert.equal(readSearchWorkerEnv({ DISS_CA_SEARCH_WORKER: "no" }), false);
  assert.throws(
    () => readSearchWorkerEnv({ DISS_CA_SEARCH_WORKER: "maybe" }),
    /DISS_CA_SEARCH_WORKER="maybe": expected yes or no/,
  );
});

Deno.test("adaptive buffer: storage only while in use; the size is kept across a release", () => {
  const buffer = new AdaptiveBuffer({ min: 1024, max: 65536, shrinkAfter: 3 });
  assert.equal(buffer.heldBytes, 0, "nothing allocated before the first use");
  buffer.filled(buffer.get().length);
  assert.equal(buffer.heldBytes, 4096);
  buffer.release();
  assert.equal(buffer.heldBytes, 0, "released");
  assert.equal(buffer.size, 4096, "the grown size is remembered");
  assert.equal(buffer.get().length, 4096);
});

Deno.test("bulk write gate: at most the budget per turn, the rest in order on later turns", async () => {
  const turns: (() => void)[] = [];
  const gate = new BulkWriteGate(1000, (callback) => turns.push(callback));
  assert.equal(gate.acquire(600), undefined);
  assert.equal(gate.acquire(600), undefined, "the budget was not used up before this one");
  const order: string[] = [];
  const waits = ["a", "b", "c"].map((name) => gate.acquire(600)!.then(() => order.push(name)));
  assert.ok(waits.every((w) => w instanceof Promise));
  assert.equal(turns.length, 1, "one turn scheduled");
  turns.shift()!();
  await Promise.resolve();
  assert.deepEqual(order, ["a", "b"], "a and b fit the next turn's budget");
  assert.equal(turns.length, 1);
  turns.shift()!();
  await Promise.all(waits);
  assert.deepEqual(order, ["a", "b", "c"]);
  assert.equal(gate.deferrals, 3);
});

/** A Python client that searches `name` once and creates `flag` when a reply arrived. */
const SEARCH_CLIENT = `
import socket, struct, sys
port, name, flag = int(sys.argv[1]), sys.argv[2].encode() + b"\\0", sys.argv[3]
name += b"\\0" * (-len(name) % 8)
datagram = struct.pack(">HHHHII", 0, 0, 1, 13, 7, 0) + struct.pack(">HHHHII", 6, len(name), 5, 13, 1, 1) + name
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.settimeout(20)
s.sendto(datagram, ("127.0.0.1", port))
data, _ = s.recvfrom(2048)
if struct.unpack(">H", data[16:18])[0] == 6:
    open(flag, "w").close()
`;

Deno.test("search worker: searches are answered while the main thread is blocked", async () => {
  const server = await startCaServer({ env: testServerEnv(), port: 0, searchWorker: true });
  const dir = await Deno.makeTempDir();
  try {
    server.add({ name: "BUSY:state", type: "long" });
    const flag = `${dir}/answered`;
    const child = new Deno.Command("/usr/bin/python3", {
      args: ["-c", SEARCH_CLIENT, String(server.udpPort), "BUSY:state", flag],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // Block this (the main) thread until the client got its reply; 30 s only as a failure bound.
    const deadline = Date.now() + 30_000;
    let answered = false;
    while (!answered && Date.now() < deadline) {
      try {
        Deno.statSync(flag);
        answered = true;
      } catch {
        // Not yet.
      }
    }
    assert.ok(answered, "the search was answered while the main thread never yielded");
    const status = await child.output();
    assert.equal(status.code, 0, new TextDecoder().decode(status.stderr));
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
