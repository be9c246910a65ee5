/**
 * A larger kernel receive buffer (SO_RCVBUF) for a Deno UDP socket.
 *
 * Deno's `Deno.listenDatagram` has no receive-buffer option, and its `node:dgram` accepts
 * `recvBufferSize` / `setRecvBufferSize` without applying them (`ss -uam` still shows the system
 * default). A stream of 125 MB/s overruns the usual default of 208 KiB in under 2 ms of
 * scheduling delay. On Linux, with FFI permission already granted (never prompts), this finds the
 * socket's descriptor (its port in `/proc/net/udp`, the inode among `/proc/self/fd`) and calls
 * `setsockopt(SO_RCVBUF)` through libc; the kernel caps the size at `net.core.rmem_max` and
 * doubles it for its bookkeeping. Without FFI the socket keeps the system default.
 *
 * @module
 */

import { errorMessage } from "./errors.ts";

const SOL_SOCKET = 1;
const SO_RCVBUF = 8;

/** Outcome of {@link raiseUdpReceiveBuffer}. */
export interface UdpReceiveBuffer {
  /** Whether the size asked for (or more) is in effect. */
  applied: boolean;
  /** The kernel's receive buffer size now, as getsockopt reports it (undefined when unknown). */
  bytes?: number;
  /** Why not (no FFI permission, capped by rmem_max, socket not found, ...). */
  reason?: string;
}

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

/** Inodes of the IPv4 UDP sockets bound to local `port` (from /proc/net/udp). */
function socketInodes(port: number): Set<string> {
  const out = new Set<string>();
  const table = readText("/proc/net/udp") ?? "";
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  for (const line of table.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10) continue;
    if (fields[1].split(":")[1] === hexPort) out.add(fields[9]);
  }
  return out;
}

/** This process's descriptor of the UDP socket bound to `port`, or undefined. */
export function udpSocketDescriptor(port: number): number | undefined {
  const inodes = socketInodes(port);
  if (inodes.size === 0) return undefined;
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    let link: string;
    try {
      link = Deno.readLinkSync(`/proc/self/fd/${entry.name}`);
    } catch {
      continue;
    }
    const m = /^socket:\[(\d+)\]$/.exec(link);
    if (m !== null && inodes.has(m[1])) return Number(entry.name);
  }
  return undefined;
}

/**
 * Asks for a kernel receive buffer of `bytes` on the UDP socket `conn` (see the module doc).
 * Never throws; the result says what is in effect.
 */
export function raiseUdpReceiveBuffer(conn: Deno.DatagramConn, bytes: number): UdpReceiveBuffer {
  if (Deno.build.os !== "linux") return { applied: false, reason: "not Linux" };
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      return { applied: false, reason: "no FFI permission (system default kept)" };
    }
    const port = (conn.addr as Deno.NetAddr).port;
    const fd = udpSocketDescriptor(port);
    if (fd === undefined) return { applied: false, reason: `socket of port ${port} not found` };
    const libc = Deno.dlopen("libc.so.6", {
      setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
      getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
    });
    try {
      const value = new Int32Array([Math.min(bytes, 0x7fffffff)]);
      if (libc.symbols.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, value, 4) !== 0) {
        return { applied: false, reason: "setsockopt(SO_RCVBUF) failed" };
      }
      const now = new Int32Array(1);
      const length = new Uint32Array([4]);
      libc.symbols.getsockopt(fd, SOL_SOCKET, SO_RCVBUF, now, length);
      // The kernel reports twice the usable size it granted.
      if (now[0] >= bytes) return { applied: true, bytes: now[0] };
      const max = readText("/proc/sys/net/core/rmem_max")?.trim();
      return { applied: false, bytes: now[0], reason: `capped by net.core.rmem_max=${max}` };
    } finally {
      libc.close();
    }
  } catch (error) {
    return { applied: false, reason: errorMessage(error) };
  }
}
