/**
 * One pvAccess server connection as plain code over bytes (spec §5, §6): handshake, channels,
 * GET_FIELD, GET, PUT, MONITOR (pipeline and acknowledgements), DESTROY/CANCEL, ECHO and TCP
 * SEARCH. Bytes go in through {@link ServerConnection.receive}; messages come out of
 * {@link ServerConnection.takeOutput}, which also produces monitor updates on demand, so a slow
 * client only ever gets the newest value and the queue stays bounded.
 *
 * @module
 */

import type { ClientInfo, WriteAccessHook } from "../ca/mod.ts";
import {
  beginMessage,
  Cmd,
  controlMessage,
  Ctrl,
  endMessage,
  isControl,
  type Message,
  MessageFramer,
  Sub,
} from "./messages.ts";
import {
  expandBits,
  type FieldDesc,
  readChanged,
  readFieldDesc,
  readValue,
  selectionBits,
  type StructDesc,
  type StructValue,
  type TypeCache,
  writeFieldDesc,
  writePartial,
} from "./pvdata.ts";
import { optionTrue, parsePvRequest } from "./request.ts";
import { decodeSearch, encodeSearchResponse, searchHits, type ServerIdentity } from "./search.ts";
import type { PvaSource } from "./source.ts";
import { errorMessage } from "../core/errors.ts";
import {
  BitSet,
  errorStatus,
  OK_STATUS,
  PvaProtocolError,
  type Status,
  StatusType,
  type WireReader,
  WireWriter,
} from "./wire.ts";

/** Log sink of a connection. */
export type ConnectionLog = (
  level: "debug" | "info" | "warning" | "error",
  message: string,
  fields: Record<string, unknown>,
) => void;

/** Limits of one connection. */
export interface ConnectionLimits {
  /** Largest accepted message (segments joined), bytes. */
  maxMessage: number;
  /** Output bytes queued before reading pauses and monitors wait. */
  maxQueued: number;
  /** Channels per connection. */
  maxChannels: number;
  /** Operations per connection. */
  maxOperations: number;
}

/** Default {@link ConnectionLimits}. */
export const DEFAULT_LIMITS: ConnectionLimits = {
  maxMessage: 16 * 1024 * 1024,
  maxQueued: 8 * 1024 * 1024,
  maxChannels: 4096,
  maxOperations: 16384,
};

/** Options of {@link ServerConnection}. */
export interface ConnectionOptions {
  /** Finds the source serving a PV name. */
  resolve(name: string): PvaSource | undefined;
  identity: ServerIdentity;
  /** Peer IP address. */
  address: string;
  /** Decides whether a client may write a PV (checked on every PUT; default allow). */
  writeAccess?: WriteAccessHook;
  limits?: Partial<ConnectionLimits>;
  /** Output became available. */
  wake(): void;
  /** The connection must be closed (protocol error or {@link ServerConnection.close}). */
  onClose(reason: string): void;
  log: ConnectionLog;
}

interface Channel {
  sid: number;
  cid: number;
  name: string;
  source: PvaSource;
  ops: Set<number>;
}

interface Operation {
  kind: "get" | "put" | "monitor";
  ioid: number;
  channel: Channel;
  /** Fields selected by the pvRequest (bit 0 = all), expanded for masking. */
  mask: BitSet;
  /** Bits to send in replies. */
  sendBits: BitSet;
  busy: boolean;
  cancelled: boolean;
}

interface MonitorOp extends Operation {
  kind: "monitor";
  started: boolean;
  pipeline: boolean;
  window: number;
  dirty: boolean;
  unsubscribe(): void;
}

/** SET_BYTE_ORDER then CONNECTION_VALIDATION, as the server sends them on accept. */
export function serverGreeting(littleEndian: boolean): Uint8Array[] {
  const w = new WireWriter(littleEndian);
  const at = beginMessage(w, Cmd.CONNECTION_VALIDATION, true);
  w.u32(0x10000).u16(0x7fff).size(2).string("anonymous").string("ca");
  endMessage(w, at);
  return [controlMessage(Ctrl.SET_BYTE_ORDER, true, littleEndian), ...w.finish()];
}

/** A server-side pvAccess connection (sans I/O). */
export class ServerConnection {
  /** Byte order of everything we send (host order on x86: little-endian, like PVXS). */
  readonly littleEndian = true;
  #opts: ConnectionOptions;
  #limits: ConnectionLimits;
  #framer: MessageFramer;
  #rxTypes: TypeCache = new Map();
  #out: Uint8Array[] = [];
  #outBytes = 0;
  #channels = new Map<number, Channel>();
  #ops = new Map<number, Operation>();
  #monitors: MonitorOp[] = [];
  #nextSid = 0x0705_0301;
  #closed = false;
  #validated = false;
  #roomWaiters: (() => void)[] = [];
  /** Releases of values referenced by queued output, and by the output being written. */
  #outHolds: (() => void)[] = [];
  #sentHolds: (() => void)[] = [];
  /** Who the client says it is. */
  client: ClientInfo;

  constructor(options: ConnectionOptions) {
    this.#opts = options;
    this.#limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.#framer = new MessageFramer({ server: true, maxMessage: this.#limits.maxMessage });
    this.client = { user: "", host: "", address: options.address };
    for (const piece of serverGreeting(this.littleEndian)) this.#push(piece);
  }

  /** Whether the connection is still open. */
  get open(): boolean {
    return !this.#closed;
  }

  /** Whether the client completed CONNECTION_VALIDATION. */
  get validated(): boolean {
    return this.#validated;
  }

  /** Open channels. */
  get channelCount(): number {
    return this.#channels.size;
  }

  /** Bytes queued for sending (monitor updates not yet produced excluded). */
  get queuedBytes(): number {
    return this.#outBytes;
  }

  /** Feeds received bytes; protocol errors close the connection. */
  receive(bytes: Uint8Array): void {
    if (this.#closed) return;
    try {
      this.#framer.push(bytes);
      for (;;) {
        const m = this.#framer.next();
        if (m === undefined) break;
        if (isControl(m)) continue; // SET_MARKER, ACK_MARKER, echo control: ignored
        this.#handle(m);
        if (this.#closed) return;
      }
    } catch (err) {
      const reason = errorMessage(err);
      const bad = err instanceof PvaProtocolError;
      this.#opts.log(
        bad ? "warning" : "error",
        bad ? "PVA connection closed: bad input" : "PVA connection closed: internal error",
        { peer: this.#opts.address, reason },
      );
      this.close(reason);
    }
  }

  /** Whether anything can be sent now. */
  hasOutput(): boolean {
    if (this.#closed) return false;
    return this.#out.length > 0 || this.#monitors.some((m) => this.#monitorReady(m));
  }

  /**
   * Takes queued output; when the queue is empty, produces the next round of monitor updates.
   * Pieces may reference shared value arrays: write them before calling again.
   */
  takeOutput(): Uint8Array[] {
    this.releaseOutput();
    if (this.#out.length === 0) this.#produceMonitorUpdates();
    const out = this.#out;
    this.#out = [];
    this.#outBytes = 0;
    this.#sentHolds = this.#outHolds;
    this.#outHolds = [];
    const waiters = this.#roomWaiters.splice(0);
    for (const w of waiters) w();
    return out;
  }

  /** Says the pieces of the last {@link takeOutput} were written: their values may be recycled. */
  releaseOutput(): void {
    const holds = this.#sentHolds;
    this.#sentHolds = [];
    for (const release of holds) release();
  }

  /** Resolves when the output queue is below the limit (the reader pauses until then). */
  waitForRoom(): Promise<void> {
    if (this.#closed || this.#outBytes < this.#limits.maxQueued) return Promise.resolve();
    return new Promise((resolve) => this.#roomWaiters.push(resolve));
  }

  /** Destroys every channel and operation; tells the owner to close. */
  close(reason = "closed"): void {
    if (this.#closed) return;
    this.#closed = true;
    this.releaseOutput();
    for (const release of this.#outHolds.splice(0)) release();
    for (const m of this.#monitors) m.unsubscribe();
    this.#monitors = [];
    this.#ops.clear();
    this.#channels.clear();
    this.#out = [];
    this.#outBytes = 0;
    for (const w of this.#roomWaiters.splice(0)) w();
    this.#opts.onClose(reason);
  }

  #push(piece: Uint8Array): void {
    this.#out.push(piece);
    this.#outBytes += piece.length;
  }

  #send(command: number, body: (w: WireWriter) => void): void {
    const w = new WireWriter(this.littleEndian);
    const at = beginMessage(w, command, true);
    body(w);
    endMessage(w, at);
    const wasEmpty = this.#out.length === 0;
    for (const p of w.finish()) this.#push(p);
    if (wasEmpty) this.#opts.wake();
  }

  #handle(m: Message): void {
    const r = m.reader();
    switch (m.command) {
      case Cmd.CONNECTION_VALIDATION:
        return this.#onValidation(r);
      case Cmd.ECHO: {
        const payload = m.payload.slice();
        return this.#send(Cmd.ECHO, (w) => w.bytes(payload));
      }
      case Cmd.SEARCH:
        return this.#onSearch(r);
      case Cmd.CREATE_CHANNEL:
        return this.#onCreateChannel(r);
      case Cmd.DESTROY_CHANNEL:
        return this.#onDestroyChannel(r);
      case Cmd.GET_FIELD:
        return this.#onGetField(r);
      case Cmd.GET:
        return this.#onGetPut(r, "get");
      case Cmd.PUT:
        return this.#onGetPut(r, "put");
      case Cmd.MONITOR:
        return this.#onMonitor(r);
      case Cmd.DESTROY_REQUEST: {
        r.u32();
        const ioid = r.u32();
        this.#destroyOp(ioid);
        return;
      }
      case Cmd.CANCEL_REQUEST: {
        r.u32();
        const op = this.#ops.get(r.u32());
        if (op?.busy) op.cancelled = true;
        return;
      }
      case Cmd.PUT_GET:
      case Cmd.ARRAY:
      case Cmd.PROCESS:
      case Cmd.RPC:
        return this.#onUnsupported(m.command, r);
      default:
        // AUTHNZ and unknown commands: skipped (the framer consumed the payload).
        this.#opts.log("debug", "PVA command ignored", { command: m.command });
        return;
    }
  }

  #onValidation(r: WireReader): void {
    r.u32(); // client receive buffer size
    r.u16(); // registry size
    r.u16(); // QoS
    const method = r.string();
    let status: Status = OK_STATUS;
    if (r.remaining > 0) {
      const type = readFieldDesc(r, this.#rxTypes);
      if (type !== null) {
        const cred = readValue(r, type, this.#rxTypes) as StructValue;
        if (method === "ca" && type.kind === "structure") {
          this.client = {
            user: typeof cred.user === "string" ? cred.user : "",
            host: typeof cred.host === "string" ? cred.host : "",
            address: this.#opts.address,
          };
        }
      }
    }
    if (method !== "ca" && method !== "anonymous" && method !== "") {
      status = errorStatus("Client selects unadvertised auth");
    }
    this.#validated = true;
    this.#opts.log("debug", "PVA client validated", {
      peer: this.#opts.address,
      method,
      user: this.client.user,
      host: this.client.host,
    });
    this.#send(Cmd.CONNECTION_VALIDATED, (w) => w.status(status));
  }

  #onSearch(r: WireReader): void {
    const request = decodeSearch(r);
    const ids = searchHits(request, (name) => this.#opts.resolve(name) !== undefined);
    if (ids === undefined) return;
    const reply = encodeSearchResponse(
      this.#opts.identity,
      request.sequence,
      ids.length > 0,
      ids,
      this.littleEndian,
    );
    const wasEmpty = this.#out.length === 0;
    this.#push(reply);
    if (wasEmpty) this.#opts.wake();
  }

  #onCreateChannel(r: WireReader): void {
    const n = r.u16();
    for (let i = 0; i < n; i++) {
      const cid = r.u32();
      const name = r.string();
      const source = name === "" ? undefined : this.#opts.resolve(name);
      if (source === undefined || this.#channels.size >= this.#limits.maxChannels) {
        const text = source === undefined
          ? `Refused to create Channel: no PV ${name}`
          : "Refused to create Channel: too many channels";
        this.#send(Cmd.CREATE_CHANNEL, (w) =>
          w.u32(cid).u32(0xffffffff).status({
            type: StatusType.FATAL,
            message: text,
            callTree: "",
          }));
        continue;
      }
      const sid = this.#nextSid++ >>> 0;
      this.#channels.set(sid, { sid, cid, name, source, ops: new Set() });
      this.#send(Cmd.CREATE_CHANNEL, (w) => w.u32(cid).u32(sid).status(OK_STATUS));
    }
  }

  #onDestroyChannel(r: WireReader): void {
    const sid = r.u32();
    const cid = r.u32();
    const ch = this.#channels.get(sid);
    if (ch === undefined) return;
    this.#dropChannel(ch);
    this.#send(Cmd.DESTROY_CHANNEL, (w) => w.u32(sid).u32(cid));
  }

  #dropChannel(ch: Channel): void {
    for (const ioid of [...ch.ops]) this.#destroyOp(ioid);
    this.#channels.delete(ch.sid);
  }

  /** Server-side removal of a PV: tells the client its channel is gone. */
  disconnectChannelsOf(source: PvaSource): void {
    for (const ch of [...this.#channels.values()]) {
      if (ch.source !== source) continue;
      this.#dropChannel(ch);
      this.#send(Cmd.DESTROY_CHANNEL, (w) => w.u32(ch.sid).u32(ch.cid));
    }
  }

  #destroyOp(ioid: number): void {
    const op = this.#ops.get(ioid);
    if (op === undefined) return;
    this.#ops.delete(ioid);
    op.channel.ops.delete(ioid);
    if (op.kind === "monitor") {
      (op as MonitorOp).unsubscribe();
      this.#monitors = this.#monitors.filter((m) => m !== op);
    }
  }

  #onGetField(r: WireReader): void {
    const sid = r.u32();
    const ioid = r.u32();
    const sub = r.remaining > 0 ? r.string() : "";
    const ch = this.#channels.get(sid);
    if (ch === undefined) {
      this.#send(Cmd.GET_FIELD, (w) => w.u32(ioid).status(errorStatus("no such channel")));
      return;
    }
    let type: FieldDesc | undefined = ch.source.type;
    for (const part of sub === "" ? [] : sub.split(".")) {
      type = type?.kind === "structure"
        ? type.fields.find((m) => m.name === part)?.type
        : undefined;
    }
    if (type === undefined) {
      this.#send(Cmd.GET_FIELD, (w) => w.u32(ioid).status(errorStatus(`no field ${sub}`)));
      return;
    }
    const found = type;
    this.#send(Cmd.GET_FIELD, (w) => {
      w.u32(ioid).status(OK_STATUS);
      writeFieldDesc(w, found);
    });
  }

  /** Reads an INIT's pvRequest; returns the selection or an error text. */
  #readRequest(
    r: WireReader,
    type: StructDesc,
  ): { mask: BitSet; options: Record<string, string> } | string {
    const reqType = readFieldDesc(r, this.#rxTypes);
    const reqValue = reqType === null ? undefined : readValue(r, reqType, this.#rxTypes);
    const request = parsePvRequest(reqType, reqValue);
    const selected = selectionBits(type, request.fields);
    if (selected.isEmpty()) return "pvRequest must select at least one field";
    return { mask: expandBits(type, selected), options: request.options };
  }

  #replyStatus(command: number, ioid: number, sub: number, status: Status): void {
    this.#send(command, (w) => w.u32(ioid).u8(sub).status(status));
  }

  /**
   * Reads an INIT (channel, free request ID, pvRequest) and returns the new operation's common
   * part, or undefined after replying with an error Status.
   */
  #beginInit(
    command: number,
    kind: Operation["kind"],
    sid: number,
    ioid: number,
    sub: number,
    r: WireReader,
  ): { op: Operation; options: Record<string, string> } | undefined {
    const fail = (text: string) => {
      this.#replyStatus(command, ioid, sub, errorStatus(text));
      return undefined;
    };
    const ch = this.#channels.get(sid);
    if (ch === undefined) return fail("no such channel");
    if (this.#ops.has(ioid)) return fail("request ID in use");
    if (this.#ops.size >= this.#limits.maxOperations) return fail("too many requests");
    const req = this.#readRequest(r, ch.source.type);
    if (typeof req === "string") return fail(req);
    const op: Operation = {
      kind,
      ioid,
      channel: ch,
      mask: req.mask,
      sendBits: req.mask.get(0) ? BitSet.of(0) : req.mask,
      busy: false,
      cancelled: false,
    };
    return { op, options: req.options };
  }

  /** Registers an operation and sends its INIT reply (OK and the type). */
  #register(command: number, sub: number, op: Operation): void {
    this.#ops.set(op.ioid, op);
    op.channel.ops.add(op.ioid);
    this.#send(command, (w) => {
      w.u32(op.ioid).u8(sub).status(OK_STATUS);
      writeFieldDesc(w, op.channel.source.type);
    });
  }

  #onGetPut(r: WireReader, kind: "get" | "put"): void {
    const command = kind === "get" ? Cmd.GET : Cmd.PUT;
    const sid = r.u32();
    const ioid = r.u32();
    const sub = r.u8();
    if (sub & Sub.INIT) {
      const init = this.#beginInit(command, kind, sid, ioid, sub, r);
      if (init !== undefined) this.#register(command, sub, init.op);
      return;
    }
    const op = this.#ops.get(ioid);
    if (op === undefined || op.kind !== kind || op.channel.sid !== sid) {
      this.#opts.log("debug", "PVA request for an unknown ID ignored", { ioid, sid });
      return;
    }
    if (op.busy) {
      return this.#replyStatus(command, ioid, sub, errorStatus("request already in progress"));
    }
    const destroy = (sub & Sub.DESTROY) !== 0;
    if (kind === "get" || (sub & Sub.GET)) {
      this.#sendValue(command, op, sub);
      if (destroy) this.#destroyOp(ioid);
      return;
    }
    // PUT write: decode now (the payload view dies with this call), apply asynchronously.
    const type = op.channel.source.type;
    const value: StructValue = {};
    const changed = readChanged(r, type, value, this.#rxTypes);
    this.#write(op, sub, value, changed, destroy);
  }

  #sendValue(command: number, op: Operation, sub: number): void {
    const source = op.channel.source;
    const value = source.value();
    const release = source.hold?.();
    if (release) this.#outHolds.push(release);
    this.#send(command, (w) => {
      w.u32(op.ioid).u8(sub).status(OK_STATUS).bitSet(op.sendBits);
      writePartial(w, source.type, value, op.sendBits);
    });
  }

  #write(op: Operation, sub: number, value: StructValue, changed: BitSet, destroy: boolean) {
    const ch = op.channel;
    if (this.#opts.writeAccess && !this.#opts.writeAccess(ch.name, this.client)) {
      this.#opts.log("warning", "PVA write refused: no write access", {
        pv: ch.name,
        peer: this.#opts.address,
      });
      this.#replyStatus(Cmd.PUT, op.ioid, sub, errorStatus("Write access denied"));
      if (destroy) this.#destroyOp(op.ioid);
      return;
    }
    op.busy = true;
    op.cancelled = false;
    ch.source.put(value, changed, this.client).then(
      () => OK_STATUS,
      (err) => errorStatus(errorMessage(err)),
    ).then((status) => {
      op.busy = false;
      if (this.#closed || this.#ops.get(op.ioid) !== op) return;
      if (!op.cancelled) this.#replyStatus(Cmd.PUT, op.ioid, sub, status);
      if (destroy) this.#destroyOp(op.ioid);
    });
  }

  #onMonitor(r: WireReader): void {
    const sid = r.u32();
    const ioid = r.u32();
    const sub = r.u8();
    if (sub & Sub.INIT) {
      const init = this.#beginInit(Cmd.MONITOR, "monitor", sid, ioid, sub, r);
      if (init === undefined) return;
      const fail = (text: string) => this.#replyStatus(Cmd.MONITOR, ioid, sub, errorStatus(text));
      const req = init.options;
      const pipeline = (sub & Sub.PIPELINE) !== 0;
      const nfree = pipeline ? r.u32() : 0;
      const queueText = req.queueSize;
      if (pipeline && queueText !== undefined) {
        const q = Number(queueText);
        if (!Number.isInteger(q) || q < 2) return fail("queueSize must be >= 2 with pipeline");
      }
      if (pipeline && req.pipeline !== undefined && !optionTrue(req.pipeline)) {
        return fail("pipelined INIT without pipeline=true");
      }
      const ch = init.op.channel;
      const op: MonitorOp = {
        ...init.op,
        kind: "monitor",
        started: false,
        pipeline,
        window: nfree,
        dirty: true,
        unsubscribe: () => {},
      };
      op.unsubscribe = ch.source.subscribe(() => {
        if (op.dirty) return;
        op.dirty = true;
        if (op.started && this.#out.length === 0) this.#opts.wake();
      });
      this.#monitors.push(op);
      this.#register(Cmd.MONITOR, sub, op);
      return;
    }
    const op = this.#ops.get(ioid);
    if (op === undefined || op.kind !== "monitor" || op.channel.sid !== sid) {
      this.#opts.log("debug", "PVA monitor message for an unknown ID ignored", { ioid, sid });
      return;
    }
    const mon = op as MonitorOp;
    if (sub & Sub.PIPELINE) {
      const nfree = r.u32();
      if (mon.pipeline) mon.window = Math.min(mon.window + nfree, 0x7fffffff);
    }
    if (sub & Sub.DESTROY) {
      this.#destroyOp(ioid);
      return;
    }
    if (sub & Sub.PROCESS) {
      const start = (sub & Sub.GET) !== 0;
      if (start && !mon.started) mon.dirty = true; // first update after start is complete
      mon.started = start;
    }
    if (this.#monitorReady(mon) && this.#out.length === 0) this.#opts.wake();
  }

  #monitorReady(m: MonitorOp): boolean {
    return m.started && m.dirty && (!m.pipeline || m.window > 0);
  }

  #produceMonitorUpdates(): void {
    if (this.#closed || this.#monitors.length === 0) return;
    // Round robin: rotate so the one served first this time goes last next time.
    const ready = this.#monitors.filter((m) => this.#monitorReady(m));
    if (ready.length === 0) return;
    this.#monitors = [...this.#monitors.filter((m) => !ready.includes(m)), ...ready];
    for (const m of ready) {
      if (this.#outBytes >= this.#limits.maxQueued) break;
      m.dirty = false;
      if (m.pipeline) m.window--;
      const source = m.channel.source;
      const value = source.value();
      const release = source.hold?.();
      if (release) this.#outHolds.push(release);
      const w = new WireWriter(this.littleEndian);
      const at = beginMessage(w, Cmd.MONITOR, true);
      w.u32(m.ioid).u8(0).bitSet(m.sendBits);
      writePartial(w, source.type, value, m.sendBits);
      w.u8(0); // empty overrun set
      endMessage(w, at);
      for (const p of w.finish()) this.#push(p);
    }
  }

  #onUnsupported(command: number, r: WireReader): void {
    r.u32();
    const ioid = r.u32();
    const sub = r.u8();
    if (sub & Sub.INIT) {
      this.#replyStatus(command, ioid, sub, errorStatus("operation not supported by this server"));
    }
  }
}
