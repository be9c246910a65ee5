/**
 * A small pvAccess client (for tests, benchmarks and tools): TCP connection with handshake,
 * channels, GET_FIELD, GET, PUT, MONITOR (optionally pipelined), plus a UDP name search.
 * Decoding uses the same codec as the server, including the received-type cache.
 *
 * ```ts
 * const client = await PvaClient.connect("127.0.0.1", 5075);
 * const { value } = await client.get("DEMO:x");
 * client.close();
 * ```
 *
 * @module
 */

import {
  beginMessage,
  Cmd,
  Ctrl,
  endMessage,
  Flags,
  isControl,
  LargeMessagePool,
  type Message,
  MessageFramer,
  Sub,
} from "./messages.ts";
import {
  type FieldDesc,
  readChanged,
  readFieldDesc,
  type StructDesc,
  type StructValue,
  type TypeCache,
  writeFieldDesc,
  writePartial,
  writeValue,
} from "./pvdata.ts";
import { buildPvRequest } from "./request.ts";
import { decodeSearchResponse, encodeSearch, type SearchResponse } from "./search.ts";
import { BitSet, isSuccess, type Status, WireReader, WireWriter } from "./wire.ts";
import { decodeHeader, HEADER_SIZE, isBigEndian } from "./messages.ts";

/** A failed operation: the server's Status. */
export class PvaStatusError extends Error {
  constructor(readonly status: Status) {
    super(status.message || `status ${status.type}`);
    this.name = "PvaStatusError";
  }
}

/** Options of {@link PvaClient.connect}. */
export interface PvaClientOptions {
  /** Authentication: "ca" (with user/host) or "anonymous" (default "ca"). */
  auth?: "ca" | "anonymous";
  user?: string;
  host?: string;
  /** Largest accepted message. */
  maxMessage?: number;
  /**
   * Reusable-buffer decode: large monitor updates are received into one recycled buffer, and
   * their numeric arrays (NTNDArray pixels) are views of it — valid only during the `onUpdate`
   * call (copy what must be kept). Saves allocating and first-touching a fresh buffer per image.
   * GET/PUT replies are never recycled.
   */
  recycleLargeMessages?: boolean;
}

/** One monitor update. */
export interface MonitorUpdate {
  /** The full value, updated in place with the changed fields. */
  value: StructValue;
  changed: BitSet;
  overrun: BitSet;
}

/** A running subscription. */
export interface Subscription {
  /** The type from the INIT reply. */
  readonly type: StructDesc;
  /** Stops and destroys the subscription. */
  close(): void;
}

interface Pending {
  resolve(m: WireReader): void;
  reject(e: Error): void;
}

/** A connected client. */
export class PvaClient {
  #conn: Deno.TcpConn;
  #framer: MessageFramer;
  #pool: LargeMessagePool | undefined;
  #rx: TypeCache = new Map();
  #little = true;
  #nextCid = 0x12345678;
  #nextIoid = 0x10002000;
  #channels = new Map<string, Promise<{ sid: number; cid: number }>>();
  #createWaiters = new Map<number, Pending>();
  #pending = new Map<number, Pending>();
  #monitors = new Map<number, (r: WireReader, sub: number) => void>();
  #validated: Promise<void>;
  #closed = false;
  #writeChain: Promise<void> = Promise.resolve();
  /** Closed with this error (connection lost). */
  error: Error | undefined;
  /** Resolves when the connection ended. */
  readonly done: Promise<void>;

  private constructor(conn: Deno.TcpConn, options: PvaClientOptions) {
    this.#conn = conn;
    const pool = options.recycleLargeMessages ? new LargeMessagePool() : undefined;
    this.#pool = pool;
    this.#framer = new MessageFramer({
      server: false,
      maxMessage: options.maxMessage ?? 256 * 1024 * 1024,
      allocate: pool && ((size) => pool.allocate(size)),
    });
    let validated!: () => void;
    let failed!: (e: Error) => void;
    this.#validated = new Promise((res, rej) => {
      validated = res;
      failed = rej;
    });
    this.#validated.catch(() => {});
    this.done = this.#readLoop(options, validated, failed);
  }

  /** Connects and completes the handshake. */
  static async connect(
    hostname: string,
    port: number,
    options: PvaClientOptions = {},
  ): Promise<PvaClient> {
    const conn = await Deno.connect({ hostname, port, transport: "tcp" });
    conn.setNoDelay(true);
    const client = new PvaClient(conn, options);
    await client.#validated;
    return client;
  }

  async #readLoop(
    options: PvaClientOptions,
    validated: () => void,
    failed: (e: Error) => void,
  ): Promise<void> {
    // Small reads between large messages: what a read brings of the next large message beyond
    // its header is copied into that message's own buffer, the rest is read straight into it.
    const buf = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        // The rest of a large message is read straight into its own buffer.
        const window = this.#framer.receiveWindow();
        const n = await this.#conn.read(window ?? buf);
        if (n === null) throw new Error("connection closed by server");
        if (window !== undefined) this.#framer.received(n);
        else this.#framer.push(buf.subarray(0, n));
        for (;;) {
          const m = this.#framer.next();
          if (m === undefined) break;
          if (isControl(m)) {
            if (m.command === Ctrl.SET_BYTE_ORDER) this.#little = !isBigEndian(m.flags);
            continue;
          }
          this.#handle(m, options, validated);
        }
      }
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      if (!this.#closed) this.error = e;
      failed(e);
      for (const p of [...this.#pending.values(), ...this.#createWaiters.values()]) p.reject(e);
      this.#pending.clear();
      this.#createWaiters.clear();
      this.#closed = true;
      try {
        this.#conn.close();
      } catch {
        // Already closed.
      }
    }
  }

  #handle(m: Message, options: PvaClientOptions, validated: () => void): void {
    const r = m.reader();
    switch (m.command) {
      case Cmd.CONNECTION_VALIDATION: {
        const auth = options.auth ?? "ca";
        this.#send(Cmd.CONNECTION_VALIDATION, (w) => {
          w.u32(0x10000).u16(0x7fff).u16(0).string(auth);
          if (auth === "ca") {
            w.u8(0x80).string("").size(2).string("user").u8(0x60).string("host").u8(0x60);
            w.string(options.user ?? "").string(options.host ?? "");
          } else w.u8(0xff);
        });
        return;
      }
      case Cmd.CONNECTION_VALIDATED: {
        const status = r.status();
        if (!isSuccess(status)) throw new PvaStatusError(status);
        validated();
        return;
      }
      case Cmd.CREATE_CHANNEL: {
        const cid = r.u32();
        this.#createWaiters.get(cid)?.resolve(r);
        this.#createWaiters.delete(cid);
        return;
      }
      case Cmd.DESTROY_CHANNEL:
        return;
      case Cmd.GET:
      case Cmd.PUT:
      case Cmd.GET_FIELD: {
        const ioid = r.u32();
        const p = this.#pending.get(ioid);
        if (p) {
          this.#pending.delete(ioid);
          p.resolve(r);
        }
        return;
      }
      case Cmd.MONITOR: {
        const ioid = r.u32();
        const sub = r.u8();
        const init = this.#pending.get(ioid);
        if (init && (sub & Sub.INIT)) {
          this.#pending.delete(ioid);
          init.resolve(r);
          return;
        }
        this.#monitors.get(ioid)?.(r, sub);
        // Decoded and handed over synchronously: the buffer may take the next update.
        // The decoder's misalignment lets the next buffer start so that the pixels land aligned.
        if (m.owned) this.#pool?.recycle(m.payload, r.misalignment);
        return;
      }
      default:
        return; // ECHO replies, MESSAGE, beacons: ignored
    }
  }

  #send(command: number, body: (w: WireWriter) => void): void {
    const w = new WireWriter(this.#little);
    const at = beginMessage(w, command, false);
    body(w);
    endMessage(w, at);
    const pieces = w.finish();
    this.#writeChain = this.#writeChain.then(async () => {
      for (const p of pieces) {
        let at = 0;
        while (at < p.length) at += await this.#conn.write(p.subarray(at));
      }
    }).catch(() => {});
  }

  /** Sends raw bytes (tests of bad input). */
  sendRaw(bytes: Uint8Array): Promise<void> {
    this.#writeChain = this.#writeChain.then(async () => {
      let at = 0;
      while (at < bytes.length) at += await this.#conn.write(bytes.subarray(at));
    }).catch(() => {});
    return this.#writeChain;
  }

  #request(ioid: number, send: () => void): Promise<WireReader> {
    if (this.#closed) return Promise.reject(this.error ?? new Error("closed"));
    return new Promise((resolve, reject) => {
      this.#pending.set(ioid, { resolve, reject });
      send();
    });
  }

  /** Creates (once) the channel for `name`. */
  channel(name: string): Promise<{ sid: number; cid: number }> {
    let ch = this.#channels.get(name);
    if (ch) return ch;
    const cid = this.#nextCid++;
    ch = new Promise<WireReader>((resolve, reject) => {
      if (this.#closed) return reject(this.error ?? new Error("closed"));
      this.#createWaiters.set(cid, { resolve, reject });
      this.#send(Cmd.CREATE_CHANNEL, (w) => w.u16(1).u32(cid).string(name));
    }).then((r) => {
      const sid = r.u32();
      const status = r.status();
      if (!isSuccess(status)) throw new PvaStatusError(status);
      return { sid, cid };
    });
    ch.catch(() => this.#channels.delete(name));
    this.#channels.set(name, ch);
    return ch;
  }

  /** GET_FIELD: the PV's type. */
  async getField(name: string, subField = ""): Promise<FieldDesc | null> {
    const { sid } = await this.channel(name);
    const ioid = this.#nextIoid++;
    const r = await this.#request(
      ioid,
      () => this.#send(Cmd.GET_FIELD, (w) => w.u32(sid).u32(ioid).string(subField)),
    );
    const status = r.status();
    if (!isSuccess(status)) throw new PvaStatusError(status);
    return readFieldDesc(r, this.#rx);
  }

  async #init(
    command: number,
    name: string,
    fields: string[],
    options: Record<string, string>,
    nfree?: number,
  ): Promise<{ sid: number; ioid: number; type: StructDesc }> {
    const { sid } = await this.channel(name);
    const ioid = this.#nextIoid++;
    const req = buildPvRequest(fields, options);
    const sub = Sub.INIT | (nfree !== undefined ? Sub.PIPELINE : 0);
    const r = await this.#request(ioid, () =>
      this.#send(command, (w) => {
        w.u32(sid).u32(ioid).u8(sub);
        writeFieldDesc(w, req.type);
        writeValue(w, req.type, req.value);
        if (nfree !== undefined) w.u32(nfree);
      }));
    if (command !== Cmd.MONITOR) r.u8();
    const status = r.status();
    if (!isSuccess(status)) throw new PvaStatusError(status);
    const type = readFieldDesc(r, this.#rx);
    if (type === null || type.kind !== "structure") throw new Error("INIT reply without a type");
    return { sid, ioid, type };
  }

  /** GET of `name` (optionally only `fields`). */
  async get(
    name: string,
    fields: string[] = [],
  ): Promise<{ type: StructDesc; value: StructValue; changed: BitSet }> {
    const { sid, ioid, type } = await this.#init(Cmd.GET, name, fields, {});
    const r = await this.#request(
      ioid,
      () => this.#send(Cmd.GET, (w) => w.u32(sid).u32(ioid).u8(Sub.DESTROY | Sub.GET)),
    );
    r.u8();
    const status = r.status();
    if (!isSuccess(status)) throw new PvaStatusError(status);
    const value: StructValue = {};
    const changed = readChanged(r, type, value, this.#rx);
    return { type, value, changed };
  }

  /**
   * PUT of the top-level fields in `value` (e.g. `{ value: 2.5 }`); resolves when the server
   * accepted, rejects with {@link PvaStatusError} when it refused.
   */
  async put(
    name: string,
    value: StructValue,
    options: Record<string, string> = {},
  ): Promise<void> {
    const { sid, ioid, type } = await this.#init(Cmd.PUT, name, [], options);
    const bits = new BitSet();
    let bit = 1;
    for (const m of type.fields) {
      if (m.name in value) bits.set(bit);
      bit += m.type.kind === "structure" ? countBits(m.type) : 1;
    }
    const r = await this.#request(ioid, () =>
      this.#send(Cmd.PUT, (w) => {
        w.u32(sid).u32(ioid).u8(Sub.DESTROY).bitSet(bits);
        writePartial(w, type, value, bits);
      }));
    r.u8();
    const status = r.status();
    if (!isSuccess(status)) throw new PvaStatusError(status);
  }

  /**
   * Subscribes to `name`. With `pipeline`, the server may send `queueSize` updates before an
   * acknowledgement; this client acknowledges after each half queue unless `autoAck` is false
   * (then call the returned `ack`).
   */
  async monitor(
    name: string,
    onUpdate: (u: MonitorUpdate) => void,
    options: {
      fields?: string[];
      pipeline?: boolean;
      queueSize?: number;
      autoAck?: boolean;
      onEnd?: (status: Status) => void;
    } = {},
  ): Promise<Subscription & { ack(n: number): void }> {
    const queueSize = options.queueSize ?? 4;
    const pipeline = options.pipeline ?? false;
    const reqOptions: Record<string, string> = pipeline
      ? { pipeline: "true", queueSize: String(queueSize) }
      : {};
    const { sid, ioid, type } = await this.#init(
      Cmd.MONITOR,
      name,
      options.fields ?? [],
      reqOptions,
      pipeline ? queueSize : undefined,
    );
    const value: StructValue = {};
    let unacked = 0;
    const ack = (n: number) =>
      this.#send(Cmd.MONITOR, (w) => w.u32(sid).u32(ioid).u8(Sub.PIPELINE).u32(n));
    this.#monitors.set(ioid, (r, sub) => {
      if (sub & Sub.DESTROY) {
        this.#monitors.delete(ioid);
        options.onEnd?.(r.status());
        return;
      }
      const changed = readChanged(r, type, value, this.#rx);
      const overrun = r.bitSet();
      onUpdate({ value, changed, overrun });
      if (pipeline && options.autoAck !== false) {
        unacked++;
        if (unacked >= Math.max(1, Math.floor(queueSize / 2))) {
          ack(unacked);
          unacked = 0;
        }
      }
    });
    this.#send(Cmd.MONITOR, (w) => w.u32(sid).u32(ioid).u8(Sub.GET | Sub.PROCESS));
    return {
      type,
      ack,
      close: () => {
        this.#monitors.delete(ioid);
        if (!this.#closed) this.#send(Cmd.DESTROY_REQUEST, (w) => w.u32(sid).u32(ioid));
      },
    };
  }

  /** Sends an ECHO and waits for nothing (keep-alive). */
  echo(payload = new Uint8Array()): void {
    this.#send(Cmd.ECHO, (w) => w.bytes(payload));
  }

  /** Closes the connection. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

function countBits(type: StructDesc): number {
  let n = 1;
  for (const m of type.fields) n += m.type.kind === "structure" ? countBits(m.type) : 1;
  return n;
}

/**
 * Searches `names` by unicast UDP to `hostname:port`; resolves with the first positive reply
 * or undefined after `timeoutMs`.
 */
export async function searchUdp(
  names: string[],
  hostname: string,
  port: number,
  timeoutMs = 2000,
): Promise<SearchResponse | undefined> {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const replyPort = (socket.addr as Deno.NetAddr).port;
  const bytes = encodeSearch(
    0x66696e64,
    0x80,
    replyPort,
    names.map((name, i) => ({ id: i + 1, name })),
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await socket.send(bytes, { transport: "udp", hostname, port });
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), timeoutMs);
    });
    const receive = (async () => {
      for (;;) {
        const [d] = await socket.receive();
        if (d.length < HEADER_SIZE) continue;
        const h = decodeHeader(d);
        if (h.command !== Cmd.SEARCH_RESPONSE || !(h.flags & Flags.SERVER)) continue;
        const r = new WireReader(
          d.subarray(HEADER_SIZE, HEADER_SIZE + h.size),
          !isBigEndian(h.flags),
        );
        return decodeSearchResponse(r);
      }
    })();
    return await Promise.race([receive, timeout]);
  } finally {
    clearTimeout(timer);
    socket.close();
  }
}
