/**
 * One CA virtual circuit as plain state: bytes in ({@link Circuit.receive}), bytes out
 * ({@link Circuit.takeOutput}). Requests are handled strictly in order (an async write handler
 * holds back the requests after it). Replies go to a FIFO; subscription updates are only marked
 * dirty and encoded when the writer asks for output, so a slow client costs at most one pending
 * update per subscription.
 *
 * @module
 */

import { type DbrCodec, ECA, isEcaError } from "./codec.ts";
import {
  ACCESS,
  accessRightsMessage,
  caErrorMessage,
  type CaHeader,
  type CaMessage,
  CaProtocolError,
  CMD,
  createChanReply,
  createChFailMessage,
  DBE,
  decodeCString,
  DO_REPLY,
  echoHeader,
  encodeHeader,
  encodeMessage,
  headerLength,
  MessageReader,
  notFoundMessage,
  padded,
  searchReplyTcp,
  serverDisconnMessage,
  versionMessage,
} from "./messages.ts";
import type { ChannelHolder, ChannelTarget, SubscriberSink } from "./store.ts";
import {
  type ClientInfo,
  NATIVE_TYPE_CODES,
  type WriteAccessHook,
  WriteRefusedError,
} from "./pv.ts";
import { errorMessage } from "../core/errors.ts";

/** Resource limits of one circuit. */
export interface CircuitLimits {
  /** Channels per circuit (exceeding closes the circuit). */
  maxChannels: number;
  /** Subscriptions per circuit (exceeding closes the circuit). */
  maxSubscriptions: number;
  /** Payload limit of non-write requests (bytes). */
  maxRequestPayload: number;
  /** Parsed-but-unhandled requests before input is paused. */
  maxQueuedRequests: number;
  /** Queued reply bytes before request handling (and input) pauses. */
  maxQueuedReplyBytes: number;
}

/** Default limits. */
export const DEFAULT_LIMITS: Readonly<CircuitLimits> = Object.freeze({
  maxChannels: 20_000,
  maxSubscriptions: 50_000,
  maxRequestPayload: 16_384,
  maxQueuedRequests: 4_096,
  maxQueuedReplyBytes: 64 * 1024 * 1024,
});

/** What a circuit needs from the server. */
export interface CircuitContext {
  /** Resolves a channel name. */
  resolve(name: string): ChannelTarget | undefined;
  /** The codec. */
  codec: DbrCodec;
  /** TCP port (for SEARCH over TCP). */
  tcpPort: number;
  /** Peer IP address. */
  address: string;
  /** Write access decision at channel creation. */
  writeAccess?: WriteAccessHook;
  /** Limits (defaults: {@link DEFAULT_LIMITS}). */
  limits?: Partial<CircuitLimits>;
  /** Called when output became available (schedule a flush). */
  wake(): void;
  /** Called once when the circuit must be closed (protocol error or limit). */
  onClose(reason: string): void;
  /**
   * Told how many bytes this circuit alone keeps alive changed (replies and update headers it
   * queued or is writing; shared payloads are counted by the store instead).
   */
  onHeldBytes?(delta: number): void;
  /** Monotonic time in ms (default `performance.now`), for {@link Circuit.writePendingSince}. */
  now?(): number;
  /** Logs one event (key=value fields). */
  log?(level: "info" | "warning" | "debug", message: string, fields: Record<string, unknown>): void;
}

interface Channel extends ChannelHolder {
  cid: number;
  sid: number;
  target: ChannelTarget;
  rights: number;
  subscriptions: Set<Subscription>;
}

interface Subscription extends SubscriberSink {
  id: number;
  channel: Channel;
  type: number;
  count: number;
  mask: number;
  /** First update after EVENT_ADD is still due. */
  initial: boolean;
}

/** Per-circuit state machine. */
export class Circuit {
  /** What the client announced (CLIENT_NAME/HOST_NAME) and its peer address. */
  readonly client: ClientInfo;
  /** Client protocol minor version (from its VERSION). */
  clientMinor = 13;
  /** Circuit priority (from the client's VERSION). */
  priority = 0;
  #ctx: CircuitContext;
  #limits: Readonly<CircuitLimits>;
  #reader: MessageReader;
  #queue: CaMessage[] = [];
  #pumping = false;
  #closed = false;
  /** Queued replies (undefined while none: an idle circuit holds no arrays). */
  #out: Uint8Array[] | undefined;
  #outBytes = 0;
  /** Releases of shared payloads queued in `#out`. */
  #outHolds: (() => void)[] | undefined;
  /** Releases of shared payloads handed out by the last {@link takeOutput}. */
  #sentHolds: (() => void)[] | undefined;
  /** Subscriptions with a pending update; channels and subscriptions by id (made on first use). */
  #dirtySet: Set<Subscription> | undefined;
  #eventsOn = true;
  #channelMap: Map<number, Channel> | undefined;
  #subscriptionMap: Map<number, Subscription> | undefined;
  #nextSid = 1;
  #roomWaiters: (() => void)[] | undefined;
  #drainWaiters: (() => void)[] | undefined;
  /** Own bytes in `#out` (not shared payloads). */
  #outOwn = 0;
  /** Own bytes handed out by the last {@link takeOutput} and not yet released. */
  #sentOwn = 0;
  /** When the output handed out by the last {@link takeOutput} was taken (until released). */
  #takenAt: number | undefined;

  constructor(ctx: CircuitContext) {
    this.#ctx = ctx;
    this.#limits = mergedLimits(ctx.limits);
    this.client = { user: "", host: "", address: ctx.address };
    this.#reader = new MessageReader({
      maxPayload: (h) => this.#maxPayload(h),
      requireAligned: true,
    });
    this.#push(versionMessage(0, 0));
  }

  get #channels(): ReadonlyMap<number, Channel> {
    return this.#channelMap ?? NO_CHANNELS;
  }

  get #subscriptions(): ReadonlyMap<number, Subscription> {
    return this.#subscriptionMap ?? NO_SUBSCRIPTIONS;
  }

  get #dirty(): ReadonlySet<Subscription> {
    return this.#dirtySet ?? NO_SUBSCRIPTION_SET;
  }

  #markDirty(sub: Subscription): void {
    (this.#dirtySet ??= new Set()).add(sub);
  }

  /** Whether the circuit was closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Number of open channels. */
  get channelCount(): number {
    return this.#channels.size;
  }

  /** Number of subscriptions. */
  get subscriptionCount(): number {
    return this.#subscriptions.size;
  }

  /** Bytes queued in the reply FIFO (subscription updates excluded). */
  get queuedBytes(): number {
    return this.#outBytes;
  }

  /**
   * Bytes this circuit alone keeps alive: queued replies and the unshared part of the output it
   * is writing (shared payloads are counted by the store).
   */
  get heldBytes(): number {
    return this.#outOwn + this.#sentOwn;
  }

  /**
   * Since when (the context's `now()`) the output of the last {@link takeOutput} is being
   * written, or undefined when no write is pending. The oldest pending write marks the slowest
   * client.
   */
  get writePendingSince(): number | undefined {
    return this.#takenAt;
  }

  /** Number of subscriptions with a pending update. */
  get dirtyCount(): number {
    return this.#dirty.size;
  }

  /** Whether more input should be read now (false = apply back-pressure). */
  wantsInput(): boolean {
    return !this.#closed && this.#queue.length < this.#limits.maxQueuedRequests &&
      this.#outBytes < this.#limits.maxQueuedReplyBytes;
  }

  /** Resolves when {@link wantsInput} may have become true (or the circuit closed). */
  waitForRoom(): Promise<void> {
    if (this.wantsInput() || this.#closed) return Promise.resolve();
    return new Promise((resolve) => (this.#roomWaiters ??= []).push(resolve));
  }

  #signalRoom(): void {
    if (this.#roomWaiters === undefined) return;
    if (!this.wantsInput() && !this.#closed) return;
    this.#wakeRoomWaiters();
  }

  #wakeRoomWaiters(): void {
    const waiters = this.#roomWaiters;
    this.#roomWaiters = undefined;
    for (const w of waiters ?? []) w();
  }

  #signalDrained(): void {
    const waiters = this.#drainWaiters;
    this.#drainWaiters = undefined;
    for (const w of waiters ?? []) w();
  }

  /** Feeds received bytes. Protocol errors close the circuit. */
  receive(bytes: Uint8Array): void {
    if (this.#closed) return;
    let messages: CaMessage[];
    try {
      messages = this.#reader.push(bytes);
    } catch (error) {
      this.#fail(errorMessage(error));
      return;
    }
    if (messages.length === 0) return;
    for (const m of messages) this.#queue.push(m);
    if (!this.#pumping) void this.#pump();
  }

  /** Resolves when all queued requests have been handled. */
  async idle(): Promise<void> {
    while (this.#pumping) await new Promise<void>((r) => (this.#roomWaiters ??= []).push(r));
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        while (this.#outBytes >= this.#limits.maxQueuedReplyBytes && !this.#closed) {
          await new Promise<void>((r) => (this.#drainWaiters ??= []).push(r));
        }
        if (this.#closed) break;
        const message = this.#queue.shift()!;
        try {
          const pending = this.#handle(message);
          if (pending) await pending;
        } catch (error) {
          if (error instanceof CaProtocolError) {
            this.#fail(error.message);
            break;
          }
          this.#log("warning", "Request failed", { cmd: message.header.cmd, error });
        }
        if (this.#queue.length < this.#limits.maxQueuedRequests) this.#signalRoom();
      }
    } finally {
      this.#pumping = false;
      // Drop the queue's grown storage while idle.
      if (this.#queue.length === 0) this.#queue.length = 0;
      this.#wakeRoomWaiters();
    }
  }

  #maxPayload(h: CaHeader): number {
    if (h.cmd === CMD.WRITE || h.cmd === CMD.WRITE_NOTIFY) {
      const channel = this.#channels.get(h.p1);
      if (channel && this.#ctx.codec.isWritable(h.type)) {
        // The channel's full capacity in the requested type (checked before allocating).
        const size = padded(this.#ctx.codec.sizeN(h.type, channel.target.maxCount));
        return Math.max(this.#limits.maxRequestPayload, size);
      }
    }
    return this.#limits.maxRequestPayload;
  }

  #fail(reason: string): void {
    if (this.#closed) return;
    this.#log("warning", "Closing circuit", { reason, peer: this.#ctx.address });
    this.close();
    this.#ctx.onClose(reason);
  }

  #log(level: "info" | "warning" | "debug", message: string, fields: Record<string, unknown>) {
    this.#ctx.log?.(level, message, fields);
  }

  #push(bytes: Uint8Array): void {
    if (this.#closed) return;
    (this.#out ??= []).push(bytes);
    this.#outBytes += bytes.length;
    this.#own(bytes.length);
    this.#ctx.wake();
  }

  /** Counts bytes queued in `#out` that only this circuit holds. */
  #own(bytes: number): void {
    this.#outOwn += bytes;
    this.#ctx.onHeldBytes?.(bytes);
  }

  #error(request: CaHeader, cid: number, status: number, text: string): void {
    this.#push(caErrorMessage(request, cid, status, text));
  }

  #handle(message: CaMessage): Promise<void> | void {
    const h = message.header;
    switch (h.cmd) {
      case CMD.VERSION:
        if (h.type > 99) throw new CaProtocolError(`bad priority ${h.type}`);
        this.priority = h.type;
        this.clientMinor = h.count;
        return;
      case CMD.CLIENT_NAME:
        this.client.user = decodeCString(message.payload).slice(0, 511);
        this.#updateRights();
        return;
      case CMD.HOST_NAME:
        this.client.host = decodeCString(message.payload).slice(0, 511);
        this.#updateRights();
        return;
      case CMD.ECHO:
        this.#push(echoHeader(h, message.payload.length ? message.payload : undefined));
        return;
      case CMD.READ_SYNC:
        this.#push(echoHeader(h));
        return;
      case CMD.EVENTS_OFF:
        this.#eventsOn = false;
        return;
      case CMD.EVENTS_ON:
        this.#eventsOn = true;
        if (this.#dirty.size > 0) this.#ctx.wake();
        return;
      case CMD.SEARCH:
        return this.#search(message);
      case CMD.CREATE_CHAN:
        return this.#createChannel(message);
      case CMD.CLEAR_CHANNEL:
        return this.#clearChannel(h);
      case CMD.READ_NOTIFY:
      case CMD.READ:
        return this.#read(h);
      case CMD.WRITE:
      case CMD.WRITE_NOTIFY:
        return this.#write(message);
      case CMD.EVENT_ADD:
        return this.#eventAdd(message);
      case CMD.EVENT_CANCEL:
        return this.#eventCancel(h);
      default:
        this.#error(h, 0xffffffff, ECA.INTERNAL, `unsupported command ${h.cmd}`);
        throw new CaProtocolError(`unsupported command ${h.cmd}`);
    }
  }

  #search(message: CaMessage): void {
    const h = message.header;
    const name = decodeCString(message.payload);
    if (name !== "" && this.#ctx.resolve(name)) {
      this.#push(searchReplyTcp(this.#ctx.tcpPort, h.p1));
    } else if (h.type === DO_REPLY) {
      this.#push(notFoundMessage(h));
    }
  }

  #createChannel(message: CaMessage): void {
    const h = message.header;
    const name = decodeCString(message.payload);
    const target = name === "" ? undefined : this.#ctx.resolve(name);
    if (!target) {
      this.#push(createChFailMessage(h.p1));
      return;
    }
    if (this.#channels.size >= this.#limits.maxChannels) {
      throw new CaProtocolError(`too many channels (limit ${this.#limits.maxChannels})`);
    }
    while (this.#channels.has(this.#nextSid)) this.#nextSid = (this.#nextSid + 1) >>> 0;
    const sid = this.#nextSid;
    this.#nextSid = (this.#nextSid + 1) >>> 0;
    const channel: Channel = {
      cid: h.p1,
      sid,
      target,
      rights: this.#rightsFor(target),
      subscriptions: new Set(),
      disconnect: () => {
        if (!this.#channels.has(sid)) return;
        this.#dropChannel(channel);
        this.#push(serverDisconnMessage(channel.cid));
      },
    };
    (this.#channelMap ??= new Map()).set(sid, channel);
    target.record.holders.add(channel);
    const count = this.clientMinor < 9 ? Math.min(target.maxCount, 0xfffe) : target.maxCount;
    this.#push(accessRightsMessage(channel.cid, channel.rights));
    this.#push(
      createChanReply(NATIVE_TYPE_CODES[target.native], count, channel.cid, channel.sid),
    );
  }

  #rightsFor(target: Channel["target"]): number {
    const write = target.writable &&
      (this.#ctx.writeAccess?.(target.record.name, this.client) ?? true);
    return write ? ACCESS.READ | ACCESS.WRITE : ACCESS.READ;
  }

  /**
   * After the client changed its user or host name: recomputes every channel's access rights and
   * sends ACCESS_RIGHTS for those that changed (as rsrv does).
   */
  #updateRights(): void {
    for (const channel of this.#channels.values()) {
      const rights = this.#rightsFor(channel.target);
      if (rights === channel.rights) continue;
      channel.rights = rights;
      this.#push(accessRightsMessage(channel.cid, rights));
    }
  }

  #dropChannel(channel: Channel): void {
    for (const sub of channel.subscriptions) {
      this.#dirtySet?.delete(sub);
      this.#subscriptionMap?.delete(sub.id);
      channel.target.record.subscribers.delete(sub);
    }
    channel.subscriptions.clear();
    channel.target.record.holders.delete(channel);
    this.#channelMap?.delete(channel.sid);
  }

  #clearChannel(h: CaHeader): void {
    const channel = this.#channels.get(h.p1);
    if (!channel) {
      this.#error(h, 0xffffffff, ECA.BADCHID, "unknown channel");
      return;
    }
    this.#dropChannel(channel);
    this.#push(echoHeader({ ...h, size: 0 }));
  }

  /** Channel by SID or an ERROR(BADCHID) reply. */
  #channelFor(h: CaHeader): Channel | undefined {
    const channel = this.#channels.get(h.p1);
    if (!channel) this.#error(h, 0xffffffff, ECA.BADCHID, "unknown channel");
    return channel;
  }

  /**
   * A DBR type beyond the last one closes the circuit without a reply, as rsrv does (its
   * `INVALID_DB_REQ` check makes read, read-notify, event-add and write handlers fail the client).
   */
  #checkTypeInRange(h: CaHeader): void {
    if (h.type > LAST_DBR_TYPE) {
      throw new CaProtocolError(`DBR type ${h.type} out of range (command ${h.cmd})`);
    }
  }

  #read(h: CaHeader): void {
    this.#checkTypeInRange(h);
    const channel = this.#channelFor(h);
    if (!channel) return;
    const { codec } = this.#ctx;
    const target = channel.target;
    if (h.count > target.maxCount) {
      this.#error(h, channel.cid, ECA.BADCOUNT, "count exceeds native count");
      return;
    }
    const count = h.count === 0 ? Math.min(target.length(), target.maxCount) : h.count;
    if (!codec.isReadable(h.type)) {
      // A valid but write-only type (PUT_ACKT/ACKS): the read fails like in rsrv.
      this.#replyFailure(h, channel, count, ECA.GETFAIL);
      return;
    }
    if (this.clientMinor < 9 && padded(codec.sizeN(h.type, count)) > 0x3ff0) {
      this.#replyFailure(h, channel, count, ECA["16KARRAYCLIENT"]);
      return;
    }
    if ((channel.rights & ACCESS.READ) === 0) {
      this.#replyFailure(h, channel, count, ECA.NORDACCESS);
      return;
    }
    let payload: Uint8Array;
    try {
      payload = target.encoded(h.type, count);
    } catch (error) {
      this.#log("warning", "Read failed", {
        pv: target.record.name,
        type: h.type,
        count,
        peer: this.#ctx.address,
        error,
      });
      this.#replyFailure(h, channel, count, isEcaError(error) ? error.eca : ECA.GETFAIL);
      return;
    }
    if (this.#closed) return;
    (this.#outHolds ??= []).push(target.hold(payload));
    const p1 = h.cmd === CMD.READ ? channel.cid : ECA.NORMAL;
    this.#pushData(
      { cmd: h.cmd, size: payload.length, type: h.type, count, p1, p2: h.p2 },
      payload,
      true,
    );
  }

  #replyFailure(h: CaHeader, channel: Channel, count: number, status: number): void {
    if (h.cmd === CMD.READ) {
      this.#error(h, channel.cid, status, channel.target.record.name);
      return;
    }
    const size = padded(this.#ctx.codec.sizeN(h.type, count));
    this.#pushData(
      { cmd: h.cmd, size, type: h.type, count, p1: status, p2: h.p2 },
      new Uint8Array(size),
      false,
    );
  }

  /** Queues a header plus a (possibly `shared`) payload without copying the payload. */
  #pushData(header: CaHeader, payload: Uint8Array, shared: boolean): void {
    if (this.#closed) return;
    const head = encodeHeader(header);
    const out = this.#out ??= [];
    out.push(head);
    this.#outBytes += head.length;
    if (payload.length > 0) {
      out.push(payload);
      this.#outBytes += payload.length;
    }
    this.#own(head.length + (shared ? 0 : payload.length));
    this.#ctx.wake();
  }

  #write(message: CaMessage): Promise<void> | void {
    const h = message.header;
    const notify = h.cmd === CMD.WRITE_NOTIFY;
    const channel = this.#channelFor(h);
    if (!channel) return;
    this.#checkTypeInRange(h);
    const fail = (status: number, text: string) => {
      // Nothing more for a channel that was removed meanwhile (SERVER_DISCONN already sent).
      if (this.#channels.get(channel.sid) !== channel) return;
      if (notify) {
        this.#push(
          encodeMessage({
            cmd: CMD.WRITE_NOTIFY,
            type: h.type,
            count: h.count,
            p1: status,
            p2: h.p2,
          }),
        );
      } else {
        this.#error(h, channel.cid, status, text);
      }
    };
    const done = () => {
      if (notify && this.#channels.get(channel.sid) === channel) {
        this.#push(
          encodeMessage({
            cmd: CMD.WRITE_NOTIFY,
            type: h.type,
            count: h.count,
            p1: ECA.NORMAL,
            p2: h.p2,
          }),
        );
      }
    };
    const { codec } = this.#ctx;
    const target = channel.target;
    if ((channel.rights & ACCESS.WRITE) === 0) {
      fail(ECA.NOWTACCESS, target.record.name);
      return;
    }
    if (!codec.isWritable(h.type)) {
      fail(ECA.PUTFAIL, "DBR type not writable");
      return;
    }
    if (h.count === 0 || h.count > target.maxCount) {
      fail(ECA.BADCOUNT, "bad element count");
      return;
    }
    if (h.type === DBR_PUT_ACKT || h.type === DBR_PUT_ACKS) {
      // Alarm acknowledgement: accepted and ignored (no alarm acknowledgement state here).
      done();
      return;
    }
    let value;
    try {
      value = codec.decodeWrite(
        h.type,
        h.count,
        message.payload,
        target.native,
        target.enumLabels(),
      );
    } catch (error) {
      fail(isEcaError(error) ? error.eca : ECA.PUTFAIL, String((error as Error).message ?? error));
      return;
    }
    const refused = (error: unknown) => {
      if (!(error instanceof WriteRefusedError)) {
        this.#log("warning", "Write handler failed", { pv: target.record.name, error });
      }
      fail(isEcaError(error) ? error.eca : ECA.PUTFAIL, (error as Error)?.message ?? "refused");
    };
    return target.write(value, this.client).then(done, refused);
  }

  #eventAdd(message: CaMessage): void {
    const h = message.header;
    this.#checkTypeInRange(h);
    const channel = this.#channelFor(h);
    if (!channel) return;
    const target = channel.target;
    if (!this.#ctx.codec.isReadable(h.type)) {
      this.#error(h, channel.cid, ECA.BADTYPE, "bad DBR type");
      return;
    }
    if (h.count > target.maxCount) {
      this.#error(h, channel.cid, ECA.BADCOUNT, "count exceeds native count");
      return;
    }
    let mask = DBE.VALUE | DBE.ALARM;
    if (message.payload.length >= 14) {
      mask = new DataView(message.payload.buffer, message.payload.byteOffset).getUint16(12);
    }
    const existing = this.#subscriptions.get(h.p2);
    if (existing) this.#removeSubscription(existing);
    if (this.#subscriptions.size >= this.#limits.maxSubscriptions) {
      throw new CaProtocolError(`too many subscriptions (limit ${this.#limits.maxSubscriptions})`);
    }
    const sub: Subscription = {
      id: h.p2,
      channel,
      type: h.type,
      count: h.count,
      mask,
      initial: true,
      notify: () => {
        if (this.#closed) return;
        const wasEmpty = this.#dirty.size === 0;
        this.#markDirty(sub);
        if (wasEmpty && this.#eventsOn) this.#ctx.wake();
      },
    };
    (this.#subscriptionMap ??= new Map()).set(sub.id, sub);
    channel.subscriptions.add(sub);
    target.record.subscribers.add(sub);
    this.#markDirty(sub);
    this.#ctx.wake();
  }

  #removeSubscription(sub: Subscription): void {
    this.#dirtySet?.delete(sub);
    this.#subscriptionMap?.delete(sub.id);
    sub.channel.subscriptions.delete(sub);
    sub.channel.target.record.subscribers.delete(sub);
  }

  #eventCancel(h: CaHeader): void {
    const sub = this.#subscriptions.get(h.p2);
    if (!sub || sub.channel.sid !== h.p1) {
      this.#error(h, this.#channels.get(h.p1)?.cid ?? 0xffffffff, ECA.BADMONID, "bad monitor id");
      return;
    }
    this.#removeSubscription(sub);
    this.#push(
      encodeMessage({ cmd: CMD.EVENT_ADD, type: sub.type, count: sub.count, p1: h.p1, p2: sub.id }),
    );
  }

  /** Encodes the current update of one dirty subscription into `out`. */
  #update(sub: Subscription, out: Uint8Array[]): number {
    const target = sub.channel.target;
    const count = sub.count === 0 ? Math.min(target.length(), target.maxCount) : sub.count;
    let payload: Uint8Array;
    let status: number = ECA.NORMAL;
    let own = 0;
    try {
      if ((sub.channel.rights & ACCESS.READ) === 0) throw { eca: ECA.NORDACCESS };
      payload = target.encoded(sub.type, count);
      (this.#sentHolds ??= []).push(target.hold(payload));
    } catch (error) {
      status = (error as { eca?: number })?.eca ?? ECA.GETFAIL;
      if (status !== ECA.NORDACCESS) {
        this.#log("warning", "Monitor update failed", { pv: target.record.name, error });
      }
      payload = new Uint8Array(padded(this.#ctx.codec.sizeN(sub.type, count)));
      own = payload.length;
    }
    const header: CaHeader = {
      cmd: CMD.EVENT_ADD,
      size: payload.length,
      type: sub.type,
      count,
      p1: status,
      p2: sub.id,
    };
    const head = encodeHeader(header);
    out.push(head);
    if (payload.length > 0) out.push(payload);
    own += head.length;
    this.#sentOwn += own;
    this.#ctx.onHeldBytes?.(own);
    sub.initial = false;
    return headerLength(header) + payload.length;
  }

  /** Whether {@link takeOutput} would return something. */
  hasOutput(): boolean {
    return this.#out !== undefined || (this.#eventsOn && this.#dirty.size > 0);
  }

  /**
   * Takes queued output: all FIFO replies, then the latest update of dirty subscriptions, until
   * about `maxBytes` are collected (at least one message). Payloads may be shared between
   * circuits: the caller must not modify them, and they stay valid until {@link releaseOutput},
   * the next `takeOutput` or {@link close}.
   */
  takeOutput(maxBytes = 1 << 20): Uint8Array[] {
    this.releaseOutput();
    let out: Uint8Array[];
    let bytes = 0;
    if (this.#out !== undefined) {
      out = this.#out;
      bytes = this.#outBytes;
      this.#out = undefined;
      this.#outBytes = 0;
      this.#sentOwn = this.#outOwn;
      this.#outOwn = 0;
      this.#sentHolds = this.#outHolds;
      this.#outHolds = undefined;
      this.#signalDrained();
      this.#signalRoom();
    } else {
      out = [];
    }
    if (this.#eventsOn) {
      for (const sub of this.#dirty) {
        if (bytes >= maxBytes) break;
        this.#dirtySet!.delete(sub);
        bytes += this.#update(sub, out);
      }
    }
    if (out.length > 0) this.#takenAt = this.#ctx.now?.() ?? performance.now();
    return out;
  }

  /**
   * Says that the pieces of the last {@link takeOutput} were written (or dropped), so that the
   * store may recycle their shared payloads.
   */
  releaseOutput(): void {
    this.#takenAt = undefined;
    if (this.#sentOwn > 0) {
      const own = this.#sentOwn;
      this.#sentOwn = 0;
      this.#ctx.onHeldBytes?.(-own);
    }
    const holds = this.#sentHolds;
    if (holds === undefined) return;
    this.#sentHolds = undefined;
    for (const release of holds) release();
  }

  /** Releases every channel and subscription (no further output). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.releaseOutput();
    for (const release of this.#outHolds ?? []) release();
    this.#outHolds = undefined;
    for (const channel of [...this.#channels.values()]) this.#dropChannel(channel);
    this.#queue = [];
    this.#out = undefined;
    this.#outBytes = 0;
    if (this.#outOwn > 0) this.#ctx.onHeldBytes?.(-this.#outOwn);
    this.#outOwn = 0;
    this.#dirtySet = undefined;
    this.#signalDrained();
    this.#wakeRoomWaiters();
  }
}

const NO_CHANNELS: ReadonlyMap<number, never> = new Map<number, never>();
const NO_SUBSCRIPTIONS: ReadonlyMap<number, never> = new Map<number, never>();
const NO_SUBSCRIPTION_SET: ReadonlySet<never> = new Set<never>();

/** Limits merged with the defaults, once per distinct `limits` object (shared by circuits). */
const mergedLimitsCache = new WeakMap<Partial<CircuitLimits>, CircuitLimits>();
function mergedLimits(limits: Partial<CircuitLimits> | undefined): Readonly<CircuitLimits> {
  if (limits === undefined) return DEFAULT_LIMITS;
  let merged = mergedLimitsCache.get(limits);
  if (merged === undefined) {
    merged = { ...DEFAULT_LIMITS, ...limits };
    mergedLimitsCache.set(limits, merged);
  }
  return merged;
}

const DBR_PUT_ACKT = 35;
const LAST_DBR_TYPE = 38;
const DBR_PUT_ACKS = 36;
