/**
 * The Channel Access server: thin socket adapters (`Deno.listen`, `Deno.listenDatagram`) around
 * the sans-I/O parts — {@link answerSearchDatagram} for UDP searches, {@link Circuit} per TCP
 * connection, {@link startBeacons} for RSRV_IS_UP, {@link PvStore} for the PVs.
 *
 * ```ts
 * const server = await startCaServer({ port: 0, env: { EPICS_CAS_INTF_ADDR_LIST: "127.0.0.1" } });
 * const pv = server.add({ name: "DEMO:X", type: "double", writable: true });
 * pv.post(3.14);
 * ```
 *
 * @module
 */

import { type BeaconClock, REAL_CLOCK, startBeacons } from "./beacon.ts";
import { Circuit, type CircuitLimits } from "./circuit.ts";
import type { DbrCodec } from "./codec.ts";
import { defaultCodec } from "./codec_dbr.ts";
import {
  broadcastAddresses,
  broadcastSearchBindings,
  CaEnvError,
  type InterfaceInfo,
  parseHostPortList,
  readServerEnv,
  type UdpDestination,
} from "./env.ts";
import type { CaServer, PvDefinition, PvHandle, WriteAccessHook } from "./pv.ts";
import { trimMalloc, tuneMallocForLargeArrays } from "./malloc_tuning.ts";
import { answerSearchDatagram } from "./search.ts";
import { type SearchBinding, type SearchWorker, startSearchWorker } from "./search_worker.ts";
import { PvStore } from "./store.ts";
import { readServerLimits, type ServerLimits, slowestCircuit } from "./server_limits.ts";
import { getLog } from "../core/log.ts";
import {
  acceptConnections,
  listenOnHosts,
  type PumpOptions,
  pumpStream,
} from "../core/stream_pump.ts";
import {
  BulkWriteGate,
  DEFAULT_BULK_BYTES_PER_TURN,
  type TurnScheduler,
} from "../core/write_gate.ts";
import { sleep, systemClock } from "../core/clock.ts";

const log = getLog("ca.server");

/** Options of {@link startCaServer}; each given option overrides the environment. */
export interface CaServerOptions {
  /** Environment to read `EPICS_CAS_*` from (default: the process environment). */
  env?: Record<string, string | undefined>;
  /** UDP search port and preferred TCP port; 0 = OS-assigned (then UDP and TCP may differ). */
  port?: number;
  /** Addresses to bind (default `EPICS_CAS_INTF_ADDR_LIST`, else 0.0.0.0). */
  interfaces?: string[];
  /**
   * Beacon destinations (`host` or `host:port`); default `EPICS_CAS_BEACON_ADDR_LIST`. An invalid
   * entry stops the server from starting (`CaEnvError`).
   */
  beaconAddresses?: string[];
  /** Add interface broadcast addresses to the beacon list (default from env, else true). */
  autoBeacon?: boolean;
  /** Maximum beacon period in seconds (default from env, else 15). */
  beaconPeriod?: number;
  /** Decides write access per client at channel creation (default: allow). */
  writeAccess?: WriteAccessHook;
  /** Timer functions for the beacon schedule (tests). */
  clock?: BeaconClock;
  /** DBR codec (default: `ca/dbr.ts`). */
  codec?: DbrCodec;
  /** The PV store to serve (default: a new one); lets a pvAccess server share the PVs. */
  store?: PvStore;
  /** Per-circuit resource limits. */
  limits?: Partial<CircuitLimits>;
  /** Source IPs whose UDP searches are ignored (default `EPICS_CAS_IGNORE_ADDR_LIST`). */
  ignoreAddresses?: string[];
  /**
   * Tune glibc malloc for image-sized buffers (see `ca/malloc_tuning.ts`; needs FFI permission,
   * process-wide). Default true.
   */
  tuneMalloc?: boolean;
  /** Network interfaces (default `Deno.networkInterfaces()`; tests inject their own). */
  networkInterfaces?: () => InterfaceInfo[];
  /**
   * Server-wide limits (default from `DISS_CA_MAX_CIRCUITS` / `DISS_CA_SLOW_CLIENT_MB`, see
   * `ca/server_limits.ts`).
   */
  serverLimits?: Partial<ServerLimits>;
  /** Bulk (payload) bytes all circuits write per event-loop turn (default 2 MiB). */
  bulkBytesPerTurn?: number;
  /**
   * Bulk write gate shared with other servers of the process (e.g. pvAccess); when given,
   * `bulkBytesPerTurn` and `turnScheduler` are ignored.
   */
  writeGate?: BulkWriteGate;
  /** Runs a callback on a later turn, after pending I/O (default `setImmediate`; tests). */
  turnScheduler?: TurnScheduler;
  /** Monotonic clock in ms (default `performance.now`; tests). */
  now?: () => number;
  /**
   * Answer UDP searches on a worker thread of their own (see `ca/search_worker.ts`; default
   * `DISS_CA_SEARCH_WORKER`, else false: with a worker alive every event-loop turn of the main
   * thread costs more, which cut the image rate by about a quarter under load, see docs/ca.md).
   * False, or where workers are unavailable: on the main thread.
   */
  searchWorker?: boolean;
}

export { DEFAULT_BULK_BYTES_PER_TURN };
/** Quiet time after the last circuit closed before freed memory goes back to the system (ms). */
const TRIM_DELAY_MS = 1000;
/** Second return of freed memory, after the garbage collector had time to run (ms). */
const TRIM_AGAIN_MS = 15_000;

/**
 * `DISS_CA_SEARCH_WORKER`: `yes`/`no` (case-insensitive, also `1`/`0`; unset: no). Anything
 * else refuses the start with a {@link CaEnvError}.
 */
export function readSearchWorkerEnv(env: Record<string, string | undefined>): boolean {
  const text = env.DISS_CA_SEARCH_WORKER?.trim();
  if (!text) return false;
  const upper = text.toUpperCase();
  if (upper === "YES" || upper === "1") return true;
  if (upper === "NO" || upper === "0") return false;
  throw new CaEnvError(
    `DISS_CA_SEARCH_WORKER=${JSON.stringify(env.DISS_CA_SEARCH_WORKER)}: expected yes or no`,
  );
}

/** Starts a CA server (UDP search, TCP circuits, beacons) and returns its {@link CaServer}. */
export async function startCaServer(options: CaServerOptions = {}): Promise<CaServer> {
  const env = options.env ?? Deno.env.toObject();
  const config = readServerEnv(env);
  const beaconPort = config.beaconPort;
  // Checked before anything is bound: an invalid destination refuses the start.
  const destinations: UdpDestination[] = options.beaconAddresses
    ? parseHostPortList(options.beaconAddresses, beaconPort, { refuseInvalidAs: "beaconAddresses" })
    : [...config.beaconAddresses];
  const serverLimits: ServerLimits = { ...readServerLimits(env), ...options.serverLimits };
  const now = options.now ?? (() => performance.now());
  if (options.tuneMalloc ?? true) {
    const tuning = tuneMallocForLargeArrays();
    log.debug("malloc tuning", { ...tuning });
  }
  const codec = options.codec ?? defaultCodec;
  const store = options.store ?? new PvStore(codec);
  const interfaces = options.interfaces ?? config.interfaces;
  const hosts = interfaces.length > 0 ? interfaces : ["0.0.0.0"];
  const preferredPort = options.port ?? config.serverPort;
  const ignore = new Set(options.ignoreAddresses ?? config.ignoreAddresses);

  const autoBeacon = options.autoBeacon ?? config.autoBeacon;
  // Listed once: for broadcast search sockets (specific interfaces) and automatic beacons.
  let knownInterfaces: InterfaceInfo[] = [];
  try {
    if (interfaces.length > 0 || autoBeacon) {
      knownInterfaces = options.networkInterfaces?.() ?? Deno.networkInterfaces();
    }
  } catch (error) {
    log.warning("Cannot list network interfaces (broadcast searches, automatic beacons)", {
      error,
    });
  }

  // UDP search sockets (one per interface, same port), each answering from itself. A socket bound
  // to a unicast address misses broadcasts: also listen on each bound interface's broadcast
  // address, replying from the interface's own socket (a valid source address). On a worker
  // thread when possible, so that a busy main thread does not delay searches.
  const bindings: SearchBinding[] = [
    ...hosts.map((hostname) => ({ hostname, replyHost: hostname, optional: false })),
    ...broadcastSearchBindings(hosts, knownInterfaces).map(({ broadcast, host }) => ({
      hostname: broadcast,
      replyHost: host,
      optional: true,
    })),
  ];
  const has = (name: string) => store.resolve(name) !== undefined;
  let tcpPort = 0;
  let searchWorker: SearchWorker | undefined;
  if (options.searchWorker ?? readSearchWorkerEnv(env)) {
    searchWorker = await startSearchWorker({
      bindings,
      port: preferredPort,
      ignore: [...ignore],
      // The worker knows the record names; other names (fields, `$`) are resolved here.
      lookup: (datagram, answered) =>
        answerSearchDatagram(datagram, tcpPort, (name) => !answered.has(name) && has(name)),
      log: (level, message, fields) => log[level](message, fields),
    });
  }
  const searchSockets: { receive: Deno.DatagramConn; reply: Deno.DatagramConn }[] = [];
  let udpPort = searchWorker?.udpPort ?? preferredPort;
  if (!searchWorker) {
    const byHost = new Map<string, Deno.DatagramConn>();
    for (const binding of bindings) {
      let socket: Deno.DatagramConn;
      try {
        socket = Deno.listenDatagram({
          transport: "udp",
          hostname: binding.hostname,
          port: udpPort,
          reuseAddress: true,
        });
      } catch (error) {
        if (!binding.optional) throw error;
        log.warning("Cannot receive broadcast searches", { address: binding.hostname, error });
        continue;
      }
      udpPort = (socket.addr as Deno.NetAddr).port;
      if (!byHost.has(binding.hostname)) byHost.set(binding.hostname, socket);
      searchSockets.push({ receive: socket, reply: byHost.get(binding.replyHost) ?? socket });
    }
  }

  // TCP listeners (one per interface, same port; fall back to an OS port when taken).
  const tcp = listenOnHosts(hosts, preferredPort === 0 ? 0 : udpPort, () => {
    log.warning("TCP port taken, using an OS-assigned port", { port: preferredPort });
  });
  const listeners = tcp.listeners;
  tcpPort = tcp.port;

  const tasks = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>) => {
    tasks.add(p);
    p.finally(() => tasks.delete(p));
  };
  /** Open circuits, each with what closing it needs and names it in logs. */
  const circuits = new Map<Circuit, { port: number; end: () => void }>();
  let closing = false;
  const gate = options.writeGate ??
    new BulkWriteGate(options.bulkBytesPerTurn, options.turnScheduler);

  // Memory kept alive for slow clients: superseded payloads they still hold (counted by the
  // store) plus their own queued replies (counted here). Checked after it grew, outside of the
  // post or request that made it grow.
  let ownHeldBytes = 0;
  let budgetCheckQueued = false;
  const heldForClients = () => store.retained.bytes + ownHeldBytes;
  const closeSlow = (circuit: Circuit, reason: string, fields: Record<string, unknown>) => {
    const entry = circuits.get(circuit);
    if (!entry) return;
    const since = circuit.writePendingSince;
    log.warning("Closing slow client", {
      reason,
      host: circuit.client.host,
      user: circuit.client.user,
      address: circuit.client.address,
      port: entry.port,
      behindSeconds: since === undefined ? 0 : Number(((now() - since) / 1000).toFixed(3)),
      ...fields,
    });
    entry.end();
  };
  const enforceBudget = () => {
    budgetCheckQueued = false;
    while (heldForClients() > serverLimits.slowClientBudget) {
      const victim = slowestCircuit(circuits.keys());
      if (!victim) break;
      closeSlow(victim, "slow-client memory budget", {
        heldBytes: heldForClients(),
        budgetBytes: serverLimits.slowClientBudget,
      });
    }
  };
  const checkBudget = () => {
    if (budgetCheckQueued || heldForClients() <= serverLimits.slowClientBudget) return;
    budgetCheckQueued = true;
    queueMicrotask(enforceBudget);
  };
  store.retained.onGrow = checkBudget;
  // After clients left, give the memory malloc keeps free back to the system: TRIM_DELAY_MS after
  // the last close, and once more TRIM_AGAIN_MS later for memory that the garbage collector
  // frees only then.
  const trim = options.tuneMalloc ?? true;
  let trimTimer: ReturnType<typeof setTimeout> | undefined;
  const trimLater = (delay: number, again: boolean) => {
    clearTimeout(trimTimer);
    trimTimer = setTimeout(() => {
      trimTimer = undefined;
      const started = now();
      if (trimMalloc()) {
        log.debug("Gave free memory back to the system", { ms: (now() - started).toFixed(1) });
      }
      if (again) trimLater(TRIM_AGAIN_MS, false);
    }, delay);
  };
  const trimSoon = () => {
    if (trim && !closing) trimLater(TRIM_DELAY_MS, true);
  };
  let refusedSinceLog = 0;
  let lastRefusalLog = -Infinity;
  /** Makes room for one more circuit; false = refuse the new connection. */
  const admit = (peer: Deno.NetAddr): boolean => {
    if (circuits.size < serverLimits.maxCircuits) return true;
    const victim = slowestCircuit(circuits.keys(), now() - serverLimits.stalledAfterMs);
    if (victim) {
      closeSlow(victim, "circuit limit", { maxCircuits: serverLimits.maxCircuits });
      return true;
    }
    refusedSinceLog++;
    if (now() - lastRefusalLog >= 10_000) {
      log.warning("Refusing connection: circuit limit reached and no client is stalled", {
        address: peer.hostname,
        port: peer.port,
        maxCircuits: serverLimits.maxCircuits,
        refused: refusedSinceLog,
      });
      lastRefusalLog = now();
      refusedSinceLog = 0;
    }
    return false;
  };

  searchWorker?.serve(tcpPort);

  for (const { receive: socket, reply: replySocket } of searchSockets) {
    track((async () => {
      while (!closing) {
        let datagram: Uint8Array;
        let from: Deno.Addr;
        try {
          [datagram, from] = await socket.receive();
        } catch (error) {
          if (closing) break;
          log.warning("UDP receive failed", { error });
          await sleep(systemClock, 10);
          continue;
        }
        const peer = from as Deno.NetAddr;
        if (ignore.has(peer.hostname)) continue;
        for (const reply of answerSearchDatagram(datagram, tcpPort, has)) {
          try {
            await replySocket.send(reply, peer);
          } catch (error) {
            log.debug("UDP search reply failed", { error, peer: peer.hostname });
          }
        }
      }
    })());
  }

  // What every circuit shares (one object, no closures per circuit).
  const circuitServices = {
    resolve: (name: string) => store.resolve(name),
    codec,
    tcpPort,
    writeAccess: options.writeAccess,
    limits: options.limits,
    onHeldBytes: (delta: number) => {
      ownHeldBytes += delta;
      if (delta > 0) checkBudget();
    },
    now,
    log: (level: "info" | "warning" | "debug", message: string, fields: Record<string, unknown>) =>
      log[level](message, fields),
  };
  // Connections whose pump has not finished yet; close() waits for them.
  let pumping = 0;
  let pumpsDone: (() => void) | undefined;
  const pumpFinished = () => {
    if (--pumping === 0) pumpsDone?.();
  };
  // One options object for every connection's pump (no closures per connection).
  const pumpOptions: PumpOptions = {
    gate,
    onError: (what, error) => log.debug(`Circuit ${what} failed`, { error }),
    onDone: pumpFinished,
    onEnd: (protocol) => {
      const circuit = protocol as Circuit;
      const port = circuits.get(circuit)?.port;
      circuits.delete(circuit);
      trimSoon();
      log.debug("Circuit closed", { peer: circuit.client.address, port });
    },
  };

  const serveConn = (conn: Deno.TcpConn) => {
    const peer = conn.remoteAddr as Deno.NetAddr;
    if (closing || !admit(peer)) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
      return;
    }
    log.debug("Circuit open", { peer: peer.hostname, port: peer.port });
    pumping++;
    pumpStream(conn, (hooks) => {
      // A literal of fixed shape (no spread): the context objects of all circuits share one map.
      const circuit = new Circuit({
        resolve: circuitServices.resolve,
        codec,
        tcpPort,
        address: peer.hostname,
        writeAccess: circuitServices.writeAccess,
        limits: circuitServices.limits,
        wake: hooks.wake,
        onClose: hooks.end,
        onHeldBytes: circuitServices.onHeldBytes,
        now,
        log: circuitServices.log,
      });
      circuits.set(circuit, { port: peer.port, end: hooks.end });
      return circuit;
    }, pumpOptions);
  };

  for (const listener of listeners) {
    track(acceptConnections(
      listener,
      serveConn,
      () => closing,
      (error) => log.warning("TCP accept failed", { error }),
    ));
  }

  // Beacons.
  if (autoBeacon) {
    for (const address of broadcastAddresses(knownInterfaces, interfaces)) {
      destinations.push({ hostname: address, port: beaconPort });
    }
  }
  let beaconSocket: Deno.DatagramConn | undefined;
  let stopBeacons = () => {};
  if (destinations.length > 0) {
    beaconSocket = Deno.listenDatagram({ transport: "udp", hostname: hosts[0], port: 0 });
    const socket = beaconSocket;
    stopBeacons = startBeacons(
      tcpPort,
      destinations,
      options.beaconPeriod ?? config.beaconPeriod,
      (to, bytes) => socket.send(bytes, { transport: "udp", ...to }),
      options.clock ?? REAL_CLOCK,
      (error) => log.debug("Beacon send failed", { error }),
    );
  }
  log.info("CA server listening", {
    udpPort,
    tcpPort,
    interfaces: hosts.join(","),
    beacons: destinations.map((d) => `${d.hostname}:${d.port}`).join(","),
  });

  const server: CaServer = {
    tcpPort,
    udpPort,
    add(definition: PvDefinition): PvHandle {
      const record = store.add(definition);
      searchWorker?.names([record.name], []);
      return record;
    },
    remove(name: string): void {
      if (store.remove(name)) searchWorker?.names([], [name]);
    },
    get(name: string): PvHandle | undefined {
      return store.get(name);
    },
    names(): string[] {
      return store.names();
    },
    async close(): Promise<void> {
      if (closing) return;
      closing = true;
      clearTimeout(trimTimer);
      stopBeacons();
      beaconSocket?.close();
      for (const { receive } of searchSockets) receive.close();
      await searchWorker?.close();
      for (const l of listeners) l.close();
      for (const { end } of [...circuits.values()]) end();
      if (pumping > 0) await new Promise<void>((resolve) => (pumpsDone = resolve));
      while (tasks.size > 0) await Promise.allSettled([...tasks]);
    },
  };
  return server;
}
