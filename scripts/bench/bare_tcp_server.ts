/**
 * Baseline process for `ca_memory.ts`: a bare Deno TCP accept loop on 127.0.0.1 that keeps one
 * pending read per connection (into a buffer of `--read-bytes`, default 64) and discards what
 * arrives. Run with the same runtime and V8 flags as `ca_load_server.ts`, its resident memory per
 * idle connection is what the runtime itself costs, before any code of ours. Prints one JSON line
 * `{"tcpPort":…,"pid":…}` once listening; answers each `mem` line on stdin with
 * `Deno.memoryUsage()` (after a full GC when run with `--expose-gc`); ends when stdin closes.
 *
 *   deno run -A --v8-flags=--optimize-for-size scripts/bench/bare_tcp_server.ts [--read-bytes 64]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { getHeapSpaceStatistics } from "node:v8";

const { values } = parseArgs({ options: { "read-bytes": { type: "string", default: "64" } } });
const readBytes = Number(values["read-bytes"]);
const listener = Deno.listen({ transport: "tcp", hostname: "127.0.0.1", port: 0 });
console.log(JSON.stringify({ tcpPort: (listener.addr as Deno.NetAddr).port, pid: Deno.pid }));

async function hold(conn: Deno.TcpConn): Promise<void> {
  const buffer = new Uint8Array(readBytes);
  try {
    while ((await conn.read(buffer)) !== null) { /* discard */ }
  } catch {
    // Reset by the peer.
  }
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

(async () => {
  for await (const conn of listener) void hold(conn);
})().catch(() => {});

const decoder = new TextDecoder();
for await (const chunk of Deno.stdin.readable) {
  if (!decoder.decode(chunk).includes("mem")) continue;
  (globalThis as { gc?: () => void }).gc?.();
  console.log(JSON.stringify({ ...Deno.memoryUsage(), newSpace: newSpaceBytes() }));
}
listener.close();
Deno.exit(0);

/** Bytes V8 has committed to its young generation (new space). */
function newSpaceBytes(): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.space_size ?? 0;
}
