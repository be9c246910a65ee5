/**
 * Channel Access client (pure TypeScript): UDP name search with retries to the search
 * destinations (`EPICS_CA_ADDR_LIST`), one TCP circuit per server, channel creation, reads
 * (READ_NOTIFY) and monitors (EVENT_ADD) including large arrays (extended headers). When a server
 * goes away its channels return to searching (fast at first, then backing off) and reconnect by
 * themselves; monitors are re-established on the new circuit.
 *
 * ```ts
 * const client = createCaClient({ env: { EPICS_CA_ADDR_LIST: "127.0.0.1:5064" } });
 * const ch = client.channel("DISS:example:state");
 * await ch.connected(AbortSignal.timeout(5000));
 * console.log((await ch.get()).value);
 * ch.subscribe((v) => console.log(v.value));
 * await client.close();
 * ```
 *
 * @module
 */

import { getLog } from "../core/log.ts";
import { type CaClientEnvConfig, readClientEnv, type SearchDestination } from "./client_env.ts";
import { type ClientCircuit, openCircuit } from "./client_circuit.ts";
import { DBR, decodeDbr, type DecodedDbr, ECA } from "./dbr.ts";
import {
  ADDRESS_FROM_SOURCE,
  type CaMessage,
  clearChannelMessage,
  CMD,
  createChanRequest,
  datagramMessages,
  DBE,
  decodeCString,
  decodeHeader,
  eventAddRequest,
  eventCancelRequest,
  readNotifyRequest,
  searchRequest,
  versionMessage,
} from "./messages.ts";
import { concatBytes } from "../core/bytes.ts";

const log = getLog("ca.client");

/** Options of {@link createCaClient}. */
export interface CaClientOptions {
  /** Environment (`EPICS_CA_*`); default the process environment. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Search destinations overriding the environment. */
  addresses?: SearchDestination[];
  /** User name announced to servers; default `USER` or "diss". */
  user?: string;
  /** Host name announced to servers; default `Deno.hostname()`. */
  host?: string;
  /** First search retry interval (ms); doubles per round up to {@link maxSearchIntervalMs}. */
  searchIntervalMs?: number;
  /** Longest search retry interval (ms); default 2000. */
  maxSearchIntervalMs?: number;
  /** Silence before a circuit is probed with ECHO (ms); default 30000. */
  echoAfterMs?: number;
}

/** A DBR value as received. */
export type CaValue = DecodedDbr;

/** Connection states of a channel. */
export type ChannelState = "searching" | "connecting" | "connected" | "closed";

/** Options of {@link CaChannel.subscribe}. */
export interface SubscribeOptions {
  /** DBR type requested; default the TIME type of the native type. */
  type?: number;
  /** Element count; default 0 (the current length). */
  count?: number;
  /** Event mask; default VALUE|ALARM. */
  mask?: number;
}

/** A channel to one PV; survives server restarts. */
export interface CaChannel {
  /** PV name. */
  readonly name: string;
  /** Connection state. */
  readonly state: ChannelState;
  /** Native DBF type (0..6), -1 before the first connection. */
  readonly nativeType: number;
  /** Native element count, 0 before the first connection. */
  readonly nativeCount: number;
  /** Resolves when connected; rejects when `signal` aborts first or the channel is closed. */
  connected(signal?: AbortSignal): Promise<void>;
  /** Reads the value once (READ_NOTIFY); default type: TIME type of the native type. */
  get(options?: { type?: number; count?: number; signal?: AbortSignal }): Promise<CaValue>;
  /** Subscribes; the listener gets every update (also after reconnects). Returns the canceller. */
  subscribe(listener: (value: CaValue) => void, options?: SubscribeOptions): () => void;
  /** Registers a connection listener (true on connect, false on disconnect). */
  onConnection(listener: (connected: boolean) => void): () => void;
  /** Clears the channel. */
  close(): void;
}

/** A running client. */
export interface CaClient {
  /** Creates (or returns the existing) channel for `name`; searching starts at once. */
  channel(name: string): CaChannel;
  /** Closes every channel, circuit and the search socket. */
  close(): Promise<void>;
}

/** Error of a failed CA request, with its ECA status. */
export class CaRequestError extends Error {
  /** ECA status code. */
  readonly eca: number;
  constructor(message: string, eca: number) {
    super(message);
    this.name = "CaRequestError";
    this.eca = eca;
  }
}

/** TIME DBR type for a native type (DBR_TIME_STRING for STRING, ...). */
export function timeTypeOf(nativeType: number): number {
  return DBR.TIME_STRING + Math.max(0, Math.min(6, nativeType));
}

interface Subscription {
  id: number;
  listener: (v: CaValue) => void;
  options: SubscribeOptions;
  type: number;
  active: boolean;
}

interface Pending {
  resolve(v: CaValue): void;
  reject(e: Error): void;
  type: number;
  chan: ChannelImpl;
}

class ChannelImpl implements CaChannel {
  readonly name: string;
  readonly cid: number;
  state: ChannelState = "searching";
  nativeType = -1;
  nativeCount = 0;
  sid = 0;
  access = 0;
  circuit: ClientCircuit | undefined;
  subs = new Map<number, Subscription>();
  connListeners = new Set<(c: boolean) => void>();
  #client: ClientCore;

  constructor(client: ClientCore, name: string, cid: number) {
    this.#client = client;
    this.name = name;
    this.cid = cid;
  }

  connected(signal?: AbortSignal): Promise<void> {
    if (this.state === "connected") return Promise.resolve();
    if (this.state === "closed") return Promise.reject(new Error(`channel ${this.name} is closed`));
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        off();
        reject(new Error(`timed out: no server answered for ${this.name}`));
      };
      const off = this.onConnection((up) => {
        if (!up) return;
        off();
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
      if (signal?.aborted) onAbort();
      else signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  get(options: { type?: number; count?: number; signal?: AbortSignal } = {}): Promise<CaValue> {
    return this.#client.read(this, options);
  }

  subscribe(listener: (value: CaValue) => void, options: SubscribeOptions = {}): () => void {
    return this.#client.subscribe(this, listener, options);
  }

  onConnection(listener: (connected: boolean) => void): () => void {
    this.connListeners.add(listener);
    return () => this.connListeners.delete(listener);
  }

  close(): void {
    this.#client.closeChannel(this);
  }

  setConnected(up: boolean): void {
    for (const l of [...this.connListeners]) {
      try {
        l(up);
      } catch (err) {
        log.error("Connection listener failed", { pv: this.name, error: (err as Error).message });
      }
    }
  }
}

class ClientCore implements CaClient {
  #config: CaClientEnvConfig;
  #user: string;
  #host: string;
  #channels = new Map<string, ChannelImpl>();
  #byCid = new Map<number, ChannelImpl>();
  #circuits = new Map<string, ClientCircuit>();
  #opening = new Map<string, Promise<ClientCircuit | undefined>>();
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #udp: Deno.DatagramConn | undefined;
  #udpLoop: Promise<void> | undefined;
  #searchTimer: ReturnType<typeof setTimeout> | undefined;
  #searchInterval: number;
  #minInterval: number;
  #maxInterval: number;
  #sequence = 0;
  #closed = false;
  #echoAfter: number;

  constructor(options: CaClientOptions) {
    const env = options.env ?? Deno.env.toObject();
    this.#config = readClientEnv(env);
    if (options.addresses) this.#config.addresses = options.addresses;
    this.#user = options.user ?? env.USER ?? env.LOGNAME ?? "diss";
    let host = options.host;
    if (host === undefined) {
      try {
        host = Deno.hostname();
      } catch {
        host = "localhost";
      }
    }
    this.#host = host;
    this.#minInterval = options.searchIntervalMs ?? 30;
    this.#maxInterval = options.maxSearchIntervalMs ?? 2000;
    this.#searchInterval = this.#minInterval;
    this.#echoAfter = options.echoAfterMs ?? 30_000;
  }

  #id(): number {
    const id = this.#nextId;
    this.#nextId = (this.#nextId + 1) >>> 0 || 1;
    return id;
  }

  channel(name: string): CaChannel {
    if (this.#closed) throw new Error("CA client is closed");
    let ch = this.#channels.get(name);
    if (!ch) {
      ch = new ChannelImpl(this, name, this.#id());
      this.#channels.set(name, ch);
      this.#byCid.set(ch.cid, ch);
      this.#startSearching(true);
    }
    return ch;
  }

  // ---- search ---------------------------------------------------------------------------------

  #ensureUdp(): Deno.DatagramConn {
    if (this.#udp) return this.#udp;
    const udp = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 });
    this.#udp = udp;
    this.#udpLoop = (async () => {
      try {
        while (!this.#closed) {
          const [data, addr] = await udp.receive();
          this.#onDatagram(data, addr as Deno.NetAddr);
        }
      } catch {
        // socket closed
      }
    })();
    return udp;
  }

  #startSearching(reset: boolean): void {
    if (this.#closed) return;
    if (reset) this.#searchInterval = this.#minInterval;
    if (this.#searchTimer !== undefined) {
      if (!reset) return;
      clearTimeout(this.#searchTimer);
    }
    this.#searchTimer = setTimeout(() => this.#searchRound(), 0);
  }

  #searchRound(): void {
    this.#searchTimer = undefined;
    if (this.#closed) return;
    const wanted = [...this.#channels.values()].filter((c) => c.state === "searching");
    if (wanted.length === 0) return;
    const udp = this.#ensureUdp();
    // one datagram per destination: VERSION + as many SEARCHes as fit in 1024 bytes
    const batches: Uint8Array[][] = [];
    let batch: Uint8Array[] = [];
    let size = 16;
    for (const ch of wanted) {
      const req = searchRequest(ch.name, ch.cid);
      if (size + req.length > 1024 && batch.length > 0) {
        batches.push(batch);
        batch = [];
        size = 16;
      }
      batch.push(req);
      size += req.length;
    }
    batches.push(batch);
    for (const b of batches) {
      const seq = this.#sequence = (this.#sequence + 1) >>> 0;
      const dgram = concatBytes([versionMessage(1, seq), ...b]);
      for (const dest of this.#config.addresses) {
        udp.send(dgram, { transport: "udp", hostname: dest.hostname, port: dest.port }).catch(
          (err) => log.debug("Search send failed", { dest: dest.hostname, error: err.message }),
        );
      }
    }
    const interval = this.#searchInterval;
    this.#searchInterval = Math.min(this.#maxInterval, interval * 2);
    this.#searchTimer = setTimeout(() => this.#searchRound(), interval);
  }

  #onDatagram(data: Uint8Array, from: Deno.NetAddr): void {
    for (const msg of datagramMessages(data)) {
      if (msg.header.cmd !== CMD.SEARCH) continue;
      const ch = this.#byCid.get(msg.header.p2);
      if (!ch || ch.state !== "searching") continue;
      const p1 = msg.header.p1;
      const hostname = p1 === ADDRESS_FROM_SOURCE
        ? from.hostname
        : [24, 16, 8, 0].map((s) => (p1 >>> s) & 0xff).join(".");
      const port = msg.payload.length >= 2 ? msg.header.type : 5064;
      ch.state = "connecting";
      this.#attach(ch, hostname, port);
    }
  }

  // ---- circuits --------------------------------------------------------------------------------

  async #attach(ch: ChannelImpl, hostname: string, port: number): Promise<void> {
    const key = `${hostname}:${port}`;
    let circuit: ClientCircuit | undefined = this.#circuits.get(key);
    if (!circuit || circuit.closed) {
      let opening = this.#opening.get(key);
      if (!opening) {
        opening = openCircuit({
          hostname,
          port,
          user: this.#user,
          host: this.#host,
          maxPayload: this.#config.maxArrayBytes,
          echoAfterMs: this.#echoAfter,
          onMessage: (m) => this.#onMessage(key, m),
          onClose: (reason) => this.#onCircuitClosed(key, reason),
        }).then(
          (c) => {
            this.#circuits.set(key, c);
            log.debug("Circuit open", { server: key });
            return c;
          },
          (err) => {
            log.info("Cannot connect to server", { server: key, error: err.message });
            return undefined;
          },
        ).finally(() => this.#opening.delete(key));
        this.#opening.set(key, opening);
      }
      circuit = await opening;
    }
    if (this.#closed || ch.state !== "connecting") return;
    if (!circuit || circuit.closed) {
      ch.state = "searching";
      this.#startSearching(false);
      return;
    }
    if (this.#closed) {
      circuit.close();
      return;
    }
    ch.circuit = circuit;
    circuit.send(createChanRequest(ch.name, ch.cid));
  }

  #onCircuitClosed(key: string, reason: string): void {
    this.#circuits.delete(key);
    if (this.#closed) return;
    log.info("Server disconnected", { server: key, reason });
    for (const ch of this.#channels.values()) {
      if (ch.circuit && ch.circuit.key === key) this.#disconnect(ch, reason);
    }
  }

  #disconnect(ch: ChannelImpl, reason: string): void {
    const was = ch.state === "connected";
    ch.circuit = undefined;
    ch.state = "searching";
    for (const [ioid, p] of this.#pending) {
      if (p.chan === ch) {
        this.#pending.delete(ioid);
        p.reject(new CaRequestError(`${ch.name} disconnected: ${reason}`, ECA.UNAVAILINSERV));
      }
    }
    if (was) ch.setConnected(false);
    this.#startSearching(true);
  }

  #onMessage(key: string, msg: CaMessage): void {
    const h = msg.header;
    switch (h.cmd) {
      case CMD.ACCESS_RIGHTS: {
        const ch = this.#byCid.get(h.p1);
        if (ch) ch.access = h.p2;
        break;
      }
      case CMD.CREATE_CHAN: {
        const ch = this.#byCid.get(h.p1);
        if (!ch || ch.state !== "connecting" || ch.circuit?.key !== key) break;
        ch.sid = h.p2;
        ch.nativeType = h.type;
        ch.nativeCount = h.count;
        ch.state = "connected";
        for (const sub of ch.subs.values()) this.#sendSubscribe(ch, sub);
        ch.setConnected(true);
        break;
      }
      case CMD.CREATE_CH_FAIL:
      case CMD.SERVER_DISCONN: {
        const ch = this.#byCid.get(h.p1);
        if (ch && ch.circuit?.key === key) this.#disconnect(ch, "channel gone on the server");
        break;
      }
      case CMD.READ_NOTIFY: {
        const p = this.#pending.get(h.p2);
        if (!p) break;
        this.#pending.delete(h.p2);
        if (h.p1 !== ECA.NORMAL) {
          p.reject(new CaRequestError(`read of ${p.chan.name} failed (ECA ${h.p1})`, h.p1));
          break;
        }
        try {
          p.resolve(decodeDbr(h.type, h.count, msg.payload));
        } catch (err) {
          p.reject(err as Error);
        }
        break;
      }
      case CMD.EVENT_ADD: {
        if (h.size === 0) break; // cancel confirmation
        for (const ch of this.#channels.values()) {
          const sub = ch.circuit?.key === key ? ch.subs.get(h.p2) : undefined;
          if (!sub || !sub.active) continue;
          if (h.p1 !== ECA.NORMAL) {
            log.warning("Monitor update with error status", { pv: ch.name, eca: h.p1 });
            break;
          }
          let value: CaValue;
          try {
            value = decodeDbr(h.type, h.count, msg.payload);
          } catch (err) {
            log.warning("Undecodable monitor update", {
              pv: ch.name,
              error: (err as Error).message,
            });
            break;
          }
          try {
            sub.listener(value);
          } catch (err) {
            log.error("Monitor listener failed", { pv: ch.name, error: (err as Error).message });
          }
          break;
        }
        break;
      }
      case CMD.ERROR: {
        const inner = decodeHeader(msg.payload);
        const text = inner ? decodeCString(msg.payload.subarray(inner.headerLength)) : "";
        const p = inner ? this.#pending.get(inner.header.p2) : undefined;
        if (p && inner && inner.header.cmd === CMD.READ_NOTIFY) {
          this.#pending.delete(inner.header.p2);
          p.reject(
            new CaRequestError(`read of ${p.chan.name} failed: ${text} (ECA ${h.p2})`, h.p2),
          );
        } else log.warning("Server reported an error", { server: key, eca: h.p2, text });
        break;
      }
      default:
        break;
    }
  }

  // ---- requests --------------------------------------------------------------------------------

  read(
    ch: ChannelImpl,
    options: { type?: number; count?: number; signal?: AbortSignal },
  ): Promise<CaValue> {
    if (ch.state !== "connected" || !ch.circuit) {
      return Promise.reject(new CaRequestError(`${ch.name} is not connected`, ECA.BADCHID));
    }
    const type = options.type ?? timeTypeOf(ch.nativeType);
    const ioid = this.#id();
    const circuit = ch.circuit;
    return new Promise<CaValue>((resolve, reject) => {
      const onAbort = () => {
        this.#pending.delete(ioid);
        reject(new CaRequestError(`read of ${ch.name} timed out`, ECA.TIMEOUT));
      };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      const done = () => options.signal?.removeEventListener("abort", onAbort);
      this.#pending.set(ioid, {
        type,
        chan: ch,
        resolve: (v) => {
          done();
          resolve(v);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      });
      circuit.send(readNotifyRequest(type, options.count ?? 0, ch.sid, ioid));
    });
  }

  subscribe(
    ch: ChannelImpl,
    listener: (v: CaValue) => void,
    options: SubscribeOptions,
  ): () => void {
    const sub: Subscription = { id: this.#id(), listener, options, type: -1, active: true };
    ch.subs.set(sub.id, sub);
    if (ch.state === "connected") this.#sendSubscribe(ch, sub);
    return () => {
      if (!sub.active) return;
      sub.active = false;
      ch.subs.delete(sub.id);
      if (ch.state === "connected" && ch.circuit && sub.type >= 0) {
        ch.circuit.send(eventCancelRequest(sub.type, sub.options.count ?? 0, ch.sid, sub.id));
      }
    };
  }

  #sendSubscribe(ch: ChannelImpl, sub: Subscription): void {
    sub.type = sub.options.type ?? timeTypeOf(ch.nativeType);
    ch.circuit?.send(
      eventAddRequest(
        sub.type,
        sub.options.count ?? 0,
        ch.sid,
        sub.id,
        sub.options.mask ?? (DBE.VALUE | DBE.ALARM),
      ),
    );
  }

  closeChannel(ch: ChannelImpl): void {
    if (ch.state === "closed") return;
    if (ch.state === "connected" && ch.circuit) {
      ch.circuit.send(clearChannelMessage(ch.sid, ch.cid));
    }
    ch.state = "closed";
    for (const sub of ch.subs.values()) sub.active = false;
    ch.subs.clear();
    this.#channels.delete(ch.name);
    this.#byCid.delete(ch.cid);
    for (const [ioid, p] of this.#pending) {
      if (p.chan === ch) {
        this.#pending.delete(ioid);
        p.reject(new CaRequestError(`${ch.name} closed`, ECA.BADCHID));
      }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    for (const ch of [...this.#channels.values()]) this.closeChannel(ch);
    this.#closed = true;
    if (this.#searchTimer !== undefined) clearTimeout(this.#searchTimer);
    this.#searchTimer = undefined;
    const opening = [...this.#opening.values()];
    const settled = await Promise.all(opening);
    const circuits = [...this.#circuits.values(), ...settled.filter((c) => c !== undefined)];
    for (const c of circuits) c!.close();
    await Promise.all(circuits.map((c) => c!.done));
    this.#udp?.close();
    await this.#udpLoop;
  }
}

/** Creates a CA client. */
export function createCaClient(options: CaClientOptions = {}): CaClient {
  return new ClientCore(options);
}
