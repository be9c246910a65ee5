/**
 * CA server process for the CA benchmarks (`ca_memory.ts`, `ca_new_client.ts`): serves
 * `<prefix>state` and `<prefix>acquire` (scalars that never change), `<prefix>img1` and
 * `<prefix>img2` (int32 images, 2 MiB by default) and `<prefix>s1`, `<prefix>s2` (scalars),
 * posting both images and both scalars every `--period-ms`. Loopback only. Prints one JSON line
 * `{"udpPort":…,"tcpPort":…}` once listening and serves until stdin closes or SIGTERM.
 *
 *   deno run -A --v8-flags=--optimize-for-size scripts/bench/ca_load_server.ts \
 *     [--prefix BENCH:] [--elements 524288] [--period-ms 100] [--ca-root DIR]
 *     [--bulk-per-turn BYTES|off] [--search-worker on|off]
 *
 * `--ca-root` loads `ca/server.ts` from another checkout (e.g. an export of main) to compare
 * versions in one benchmark run; `--bulk-per-turn` sets the server's `bulkBytesPerTurn` (`off`: no
 * bound); the search worker follows the server's default (off, or `DISS_CA_SEARCH_WORKER`) unless
 * `--search-worker on|off` is given. `DISS_CA_*` variables of the environment are passed on.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { getHeapSpaceStatistics } from "node:v8";

const { values } = parseArgs({
  options: {
    prefix: { type: "string", default: "BENCH:" },
    elements: { type: "string", default: "524288" },
    "period-ms": { type: "string", default: "100" },
    "ca-root": { type: "string" },
    "bulk-per-turn": { type: "string" },
    "search-worker": { type: "string" },
  },
});
const root = values["ca-root"]
  ? new URL(`file://${Deno.realPathSync(values["ca-root"])}/`)
  : new URL("../../", import.meta.url);
const { startCaServer } = await import(new URL("ca/server.ts", root).href);
// Logging lives in core/ (older checkouts: lib/).
const { setupLogging } = await import(new URL("core/log.ts", root).href).catch(() =>
  import(new URL("lib/log.ts", root).href)
);
setupLogging({ level: Deno.env.get("DISS_LOG_LEVEL") ?? "info" });
const prefix = values.prefix!;
const elements = Number(values.elements);
const period = Number(values["period-ms"]);

const env: Record<string, string> = {
  EPICS_CAS_INTF_ADDR_LIST: "127.0.0.1",
  EPICS_CAS_BEACON_ADDR_LIST: "127.0.0.1",
  EPICS_CAS_AUTO_BEACON_ADDR_LIST: "NO",
  EPICS_CAS_BEACON_PORT: "15999",
};
for (const [name, value] of Object.entries(Deno.env.toObject())) {
  if (name.startsWith("DISS_CA_")) env[name] = value;
}
const bulk = values["bulk-per-turn"];
const server = await startCaServer({
  env,
  port: 0,
  bulkBytesPerTurn: bulk === undefined ? undefined : bulk === "off" ? Infinity : Number(bulk),
  searchWorker: values["search-worker"] === undefined
    ? undefined
    : values["search-worker"] !== "off",
});
server.add({ name: `${prefix}state`, type: "long", initial: 1 });
server.add({ name: `${prefix}acquire`, type: "long", writable: true, initial: 0 });
const images = [1, 2].map((i) =>
  server.add({ name: `${prefix}img${i}`, type: "long", maxCount: elements })
);
const scalars = [1, 2].map((i) => server.add({ name: `${prefix}s${i}`, type: "double" }));
const buffers = [new Int32Array(elements), new Int32Array(elements)];
let n = 0;
const timer = setInterval(() => {
  n++;
  for (const image of images) {
    const pixels = buffers[n % 2];
    pixels.fill(n, 0, 16);
    image.post(pixels, { copy: true });
  }
  for (const scalar of scalars) scalar.post(n);
}, period);
console.log(JSON.stringify({ udpPort: server.udpPort, tcpPort: server.tcpPort, pid: Deno.pid }));

const stop = async () => {
  clearInterval(timer);
  await server.close();
  Deno.exit(0);
};
Deno.addSignalListener("SIGTERM", stop);
// Each "mem" line on stdin: one JSON line with Deno.memoryUsage() (after a full GC when the
// process runs with --expose-gc).
(async () => {
  const decoder = new TextDecoder();
  for await (const chunk of Deno.stdin.readable) {
    if (!decoder.decode(chunk).includes("mem")) continue;
    (globalThis as { gc?: () => void }).gc?.();
    console.log(JSON.stringify({ ...Deno.memoryUsage(), newSpace: newSpaceBytes() }));
  }
  await stop();
})();

/** Bytes V8 has committed to its young generation (new space). */
function newSpaceBytes(): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.space_size ?? 0;
}
