/**
 * The pvAccess server: thin socket adapters (`Deno.listen`, `Deno.listenDatagram`) around the
 * sans-I/O parts — {@link answerSearchDatagram} for UDP searches, {@link ServerConnection} per
 * TCP connection, {@link encodeBeacon} for beacons — serving the records of a {@link PvStore}
 * (shared with the CA server) plus explicitly added sources (NTNDArray images, PVI).
 *
 * @module
 */

import {
  broadcastAddresses,
  type PvRecord,
  type PvStore,
  type UdpDestination,
  type WriteAccessHook,
} from "../ca/mod.ts";
import { acceptConnections, listenOnHosts, pumpStream } from "../core/stream_pump.ts";
import { BulkWriteGate } from "../core/write_gate.ts";
import { getLog } from "../core/log.ts";
import { type Clock, sleep, systemClock, type TimerHandle } from "../core/clock.ts";
import { type ConnectionLimits, ServerConnection } from "./connection.ts";
import { readPvaServerEnv } from "./env.ts";
import {
  answerSearchDatagram,
  type DatagramContext,
  encodeBeacon,
  LOCAL_FORWARD_GROUP,
  type SearchReply,
  type ServerIdentity,
} from "./search.ts";
import {
  type NdArraySource,
  ndArraySource,
  type NdShape,
  type PvaSource,
  recordSource,
} from "./source.ts";

const log = getLog("pva.server");

/** Options of {@link startPvaServer}; each given option overrides the environment. */
export interface PvaServerOptions {
  /** The records to serve (the CA server's store). */
  store?: PvStore;
  /** Environment to read `EPICS_PVAS_*` / `EPICS_PVA_*` from (default: the process's). */
  env?: Record<string, string | undefined>;
  /** TCP port (0 = OS-assigned). */
  tcpPort?: number;
  /** UDP search port (0 = OS-assigned). */
  udpPort?: number;
  /** Addresses to bind (default `EPICS_PVAS_INTF_ADDR_LIST`, else 0.0.0.0). */
  interfaces?: string[];
  /** Beacon destinations; default from the environment. */
  beaconAddresses?: UdpDestination[];
  /** Decides write access per PUT (same hook as the CA server; default allow). */
  writeAccess?: WriteAccessHook;
  /** Per-connection limits. */
  limits?: Partial<ConnectionLimits>;
  /** Inactivity timeout in seconds (default from `EPICS_PVA_CONN_TMO`). */
  idleTimeout?: number;
  /** Clock of the inactivity timeout (default the system clock; tests inject a manual one). */
  clock?: Clock;
  /**
   * Bounds the bulk bytes (image payloads) all connections write per event-loop turn; pass the
   * CA server's gate to share one bound (default: a gate of its own, 2 MiB per turn).
   */
  writeGate?: BulkWriteGate;
  /**
   * Local search forwarding (spec §4.5, as EPICS's own servers do; default on): a SEARCH that
   * arrives by unicast is also forwarded, prefixed with an ORIGIN_TAG, to the loopback multicast
   * group so that the other PVA servers on this host see it, and forwarded searches from them
   * are answered. Tests switch it off (no multicast, even on loopback).
   */
  forwardSearches?: boolean;
  /**
   * Where forwarded searches go (default the group {@link LOCAL_FORWARD_GROUP} on the UDP search
   * port, which the server then also joins on 127.0.0.1 to receive the others' forwards). Any
   * other destination (a unicast test port) is only sent to.
   */
  forwardDestination?: UdpDestination;
}

/** A running pvAccess server. */
export interface PvaServer {
  /** TCP port (announced in search replies and beacons). */
  readonly tcpPort: number;
  /** UDP search port. */
  readonly udpPort: number;
  /** 12-byte server GUID. */
  readonly guid: Uint8Array;
  /** Where unicast searches are forwarded, or undefined when local forwarding is off. */
  readonly searchForwarding: UdpDestination | undefined;
  /** Serves `source` under `name` (replacing a record of that name for PVA clients). */
  setSource(name: string, source: PvaSource): void;
  /**
   * Serves the image record `name` (of the shared store) as an NTNDArray instead of an
   * NTScalarArray; undefined when there is no such record.
   */
  serveImage(name: string, shape: NdShape): NdArraySource | undefined;
  /** Stops serving an added source; its open channels are destroyed. */
  removeSource(name: string): void;
  /** The source a name resolves to. */
  resolve(name: string): PvaSource | undefined;
  /** Open connections. */
  connectionCount(): number;
  /** Stops listening and closes every connection. */
  close(): Promise<void>;
}

/** Beacon schedule (PVXS): first at once, ten at 15 s, then every 180 s. */
function beaconDelay(sent: number): number {
  return sent === 0 ? 0 : sent <= 10 ? 15_000 : 180_000;
}

/** Starts a pvAccess server. */
export async function startPvaServer(options: PvaServerOptions = {}): Promise<PvaServer> {
  const config = readPvaServerEnv(options.env ?? Deno.env.toObject());
  const hosts = (options.interfaces ?? config.interfaces).length > 0
    ? options.interfaces ?? config.interfaces
    : ["0.0.0.0"];
  const guid = crypto.getRandomValues(new Uint8Array(12));
  const sources = new Map<string, PvaSource>();
  const recordSources = new WeakMap<PvRecord, PvaSource>();
  const ignore = new Set(config.ignoreAddresses);
  const idleMs = (options.idleTimeout ?? config.idleTimeout) * 1000;
  const clock = options.clock ?? systemClock;

  const resolve = (name: string): PvaSource | undefined => {
    const explicit = sources.get(name);
    if (explicit) return explicit;
    const record = options.store?.get(name);
    if (record === undefined) return undefined;
    let s = recordSources.get(record);
    if (s === undefined) {
      s = recordSource(record);
      recordSources.set(record, s);
    }
    return s;
  };

  // TCP listeners: the requested port, else an OS-assigned one when taken (as PVXS).
  const wantTcp = options.tcpPort ?? config.serverPort;
  const { listeners, port: tcpPort } = listenOnHosts(hosts, wantTcp, (port) => {
    log.warning("PVA TCP port taken, using an OS-assigned port", { port });
  });
  const identity: ServerIdentity = { guid, tcpPort };

  const udpSockets: Deno.DatagramConn[] = [];
  let udpPort = options.udpPort ?? config.broadcastPort;
  try {
    for (const hostname of hosts) {
      const s = Deno.listenDatagram({
        transport: "udp",
        hostname,
        port: udpPort,
        reuseAddress: true,
      });
      udpPort = (s.addr as Deno.NetAddr).port;
      udpSockets.push(s);
    }
  } catch (error) {
    for (const l of listeners) l.close();
    for (const s of udpSockets) s.close();
    throw error;
  }

  let closing = false;
  const tasks = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>) => {
    tasks.add(p);
    p.finally(() => tasks.delete(p));
  };
  const connections = new Set<ServerConnection>();
  const conns = new Set<Deno.Conn>();
  const gate = options.writeGate ?? new BulkWriteGate();

  // Local search forwarding: sent from a socket of its own (so that our own copies, which the
  // group hands back to us, are recognised by their source port and not answered twice).
  const forwarding = options.forwardSearches ?? true;
  const forwardTo: UdpDestination = options.forwardDestination ??
    { hostname: LOCAL_FORWARD_GROUP, port: udpPort };
  let forwardSocket: Deno.DatagramConn | undefined;
  let groupSocket: Deno.DatagramConn | undefined;
  if (forwarding) {
    try {
      // Bound to loopback: Linux then sends multicast through the loopback interface (TTL 1).
      forwardSocket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
      if (options.forwardDestination === undefined) {
        groupSocket = Deno.listenDatagram({
          transport: "udp",
          hostname: LOCAL_FORWARD_GROUP,
          port: udpPort,
          reuseAddress: true,
        });
        await groupSocket.joinMulticastV4(LOCAL_FORWARD_GROUP, "127.0.0.1");
      }
    } catch (error) {
      log.warning("PVA local search forwarding unavailable", { error });
      forwardSocket?.close();
      groupSocket?.close();
      forwardSocket = groupSocket = undefined;
    }
  }
  const forwardPort = (forwardSocket?.addr as Deno.NetAddr | undefined)?.port;

  const sendReplies = async (
    via: Deno.DatagramConn,
    replies: SearchReply[],
    from: Deno.NetAddr,
  ) => {
    for (const reply of replies) {
      try {
        await via.send(reply.bytes, {
          transport: "udp",
          hostname: reply.address ?? from.hostname,
          port: reply.port,
        });
      } catch (error) {
        log.debug("PVA search reply failed", { peer: from.hostname, error });
      }
    }
  };

  const serveDatagrams = (socket: Deno.DatagramConn, context: Omit<DatagramContext, "source">) =>
    track((async () => {
      while (!closing) {
        let datagram: Uint8Array;
        let from: Deno.NetAddr;
        try {
          const [d, addr] = await socket.receive();
          datagram = d;
          from = addr as Deno.NetAddr;
        } catch (error) {
          if (closing) break;
          log.warning("PVA UDP receive failed", { error });
          await sleep(systemClock, 10);
          continue;
        }
        if (ignore.has(from.hostname)) continue;
        // Our own forwarded copy, back from the group: answered when it arrived.
        if (context.route === "forwarded" && from.port === forwardPort) continue;
        let answer;
        try {
          answer = answerSearchDatagram(
            datagram,
            identity,
            (n) => resolve(n) !== undefined,
            { ...context, source: from.hostname },
          );
        } catch (error) {
          log.debug("PVA bad search datagram", { peer: from.hostname, error: String(error) });
          continue;
        }
        if (answer.forward !== undefined && forwardSocket !== undefined) {
          try {
            await forwardSocket.send(answer.forward, { transport: "udp", ...forwardTo });
          } catch (error) {
            log.debug("PVA search forwarding failed", { peer: from.hostname, error });
          }
        }
        // Direct searches are answered from the socket they came to; forwarded ones (the group
        // socket is bound to the multicast address) from the first search socket.
        await sendReplies(
          context.route === "direct" ? socket : udpSockets[0],
          answer.replies,
          from,
        );
      }
    })());

  for (const socket of udpSockets) {
    const bound = (socket.addr as Deno.NetAddr).hostname;
    serveDatagrams(socket, {
      route: "direct",
      forward: forwardSocket !== undefined,
      destination: bound === "0.0.0.0" ? undefined : bound,
    });
  }
  if (groupSocket !== undefined) serveDatagrams(groupSocket, { route: "forwarded" });

  const serveConn = async (conn: Deno.TcpConn) => {
    const peer = conn.remoteAddr as Deno.NetAddr;
    let lastRx = clock.now();
    let end = () => {};
    let idleTimer: TimerHandle | undefined;
    const checkIdle = () => {
      if (clock.now() - lastRx > idleMs) {
        idleTimer = undefined;
        log.info("PVA connection idle, closing", { peer: peer.hostname });
        end();
        return;
      }
      idleTimer = clock.setTimeout(checkIdle, Math.max(500, idleMs / 4));
    };
    checkIdle();
    log.debug("PVA connection open", { peer: peer.hostname, port: peer.port });
    conns.add(conn);
    await pumpStream(conn, (hooks) => {
      end = hooks.end;
      const connection = new ServerConnection({
        resolve,
        identity,
        address: peer.hostname,
        writeAccess: options.writeAccess,
        limits: options.limits,
        wake: hooks.wake,
        onClose: hooks.end,
        log: (level, message, fields) => log[level](message, fields),
      });
      connections.add(connection);
      return connection;
    }, {
      readBuffer: 64 * 1024,
      gate,
      onRead: () => (lastRx = clock.now()),
      onError: (what, error) => log.debug(`PVA ${what} failed`, { peer: peer.hostname, error }),
      onEnd: () => {
        if (idleTimer !== undefined) clock.clearTimeout(idleTimer);
        conns.delete(conn);
        for (const c of connections) if (!c.open) connections.delete(c);
      },
    });
    log.debug("PVA connection closed", { peer: peer.hostname, port: peer.port });
  };

  for (const listener of listeners) {
    track(acceptConnections(
      listener,
      (conn) => track(serveConn(conn)),
      () => closing,
      (error) => log.warning("PVA accept failed", { error }),
    ));
  }

  // Beacons.
  const destinations = [...(options.beaconAddresses ?? config.beaconAddresses)];
  if (options.beaconAddresses === undefined && config.autoBeacon) {
    try {
      for (const address of broadcastAddresses(Deno.networkInterfaces(), config.interfaces)) {
        destinations.push({ hostname: address, port: config.broadcastPort });
      }
    } catch (error) {
      log.warning("Cannot list network interfaces (PVA beacons)", { error });
    }
  }
  let beaconTimer: ReturnType<typeof setTimeout> | undefined;
  let beaconSocket: Deno.DatagramConn | undefined;
  if (destinations.length > 0) {
    beaconSocket = Deno.listenDatagram({ transport: "udp", hostname: hosts[0], port: 0 });
    let sent = 0;
    const beacon = () => {
      const bytes = encodeBeacon(identity, sent, 0);
      for (const d of destinations) {
        beaconSocket!.send(bytes, { transport: "udp", ...d }).catch((error) =>
          log.debug("PVA beacon send failed", { error })
        );
      }
      sent++;
      beaconTimer = setTimeout(beacon, beaconDelay(sent));
    };
    beaconTimer = setTimeout(beacon, 0);
  }

  log.info("PVA server listening", {
    tcpPort,
    udpPort,
    interfaces: hosts.join(","),
    searchForwarding: forwardSocket === undefined
      ? "off"
      : `${forwardTo.hostname}:${forwardTo.port}${groupSocket ? " (joined)" : ""}`,
    beacons: destinations.map((d) => `${d.hostname}:${d.port}`).join(","),
  });

  const server: PvaServer = {
    tcpPort,
    udpPort,
    guid,
    searchForwarding: forwardSocket === undefined ? undefined : { ...forwardTo },
    setSource(name, source) {
      const old = sources.get(name) ?? resolveExisting(name);
      sources.set(name, source);
      if (old !== undefined) { for (const c of connections) c.disconnectChannelsOf(old); }
    },
    serveImage(name, shape) {
      const record = options.store?.get(name);
      if (record === undefined) return undefined;
      const source = ndArraySource(record, shape);
      server.setSource(name, source);
      return source;
    },
    removeSource(name) {
      const old = sources.get(name);
      sources.delete(name);
      if (old !== undefined) { for (const c of connections) c.disconnectChannelsOf(old); }
    },
    resolve,
    connectionCount: () => connections.size,
    async close() {
      if (closing) return;
      closing = true;
      if (beaconTimer !== undefined) clearTimeout(beaconTimer);
      beaconSocket?.close();
      forwardSocket?.close();
      groupSocket?.close();
      for (const s of udpSockets) s.close();
      for (const l of listeners) l.close();
      for (const c of [...connections]) c.close("server closing");
      for (const c of [...conns]) {
        try {
          c.close();
        } catch {
          // Already closed.
        }
      }
      while (tasks.size > 0) await Promise.allSettled([...tasks]);
    },
  };
  return server;

  function resolveExisting(name: string): PvaSource | undefined {
    const record = options.store?.get(name);
    return record === undefined ? undefined : recordSources.get(record);
  }
}
