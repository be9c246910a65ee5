/**
 * GVCP client: one UDP socket to one device, one outstanding command at a time, retries of the
 * identical datagram on timeout, PENDING_ACK deadline extension, control privilege (CCP) with a
 * heartbeat that reads CCP at a third of the heartbeat timeout, and unicast discovery.
 *
 * Malformed or stale acknowledges are dropped and counted, never fatal.
 *
 * @module
 */

import {
  Bootstrap,
  CCP_CONTROL,
  CCP_EXCLUSIVE,
  decodeAck,
  decodeDiscoveryAck,
  decodeReadMemAck,
  decodeReadRegAck,
  type DiscoveryInfo,
  encodeCommand,
  FLAG_ACK_REQUIRED,
  GVCP_MEM_CHUNK,
  GvcpCommand,
  GvcpFormatError,
  PENDING_ACK,
  readMemPayload,
  readRegPayload,
  statusText,
  writeMemPayload,
  writeRegPayload,
} from "./gvcp.ts";
import { errorMessage } from "../../core/errors.ts";

/** Where a GVCP client sends its commands. */
export interface GvcpAddress {
  host: string;
  port: number;
}

/** Options of {@link GvcpClient}. */
export interface GvcpClientOptions extends GvcpAddress {
  /** Local address to bind (default 0.0.0.0, or 127.0.0.1 for a loopback device). */
  localAddress?: string;
  /** Time to wait for one acknowledge, ms (default 500). */
  timeoutMs?: number;
  /** Attempts per command, including the first (default 3). */
  attempts?: number;
}

/** No acknowledge came after all attempts. */
export class GvcpTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GvcpTimeoutError";
  }
}

/** The device answered with an error status. */
export class GvcpStatusError extends Error {
  /** The GVCP status code. */
  readonly status: number;
  constructor(message: string, status: number) {
    super(message);
    this.name = "GvcpStatusError";
    this.status = status;
  }
}

const COMMAND_NAMES: Record<number, string> = {
  [GvcpCommand.DISCOVERY]: "DISCOVERY",
  [GvcpCommand.READREG]: "READREG",
  [GvcpCommand.WRITEREG]: "WRITEREG",
  [GvcpCommand.READMEM]: "READMEM",
  [GvcpCommand.WRITEMEM]: "WRITEMEM",
};

/** Status codes for which a retry cannot help. */
const FINAL_STATUSES = new Set([0x8001, 0x8002, 0x8003, 0x8004, 0x8005, 0x8006]);

function hex(n: number): string {
  return "0x" + n.toString(16);
}

interface Pending {
  command: number;
  reqId: number;
  resolve(payload: Uint8Array): void;
  reject(error: Error): void;
  /** Called on PENDING_ACK with the announced extra time in ms. */
  extend(ms: number): void;
}

/** A GVCP client bound to one local UDP socket. */
export class GvcpClient {
  readonly host: string;
  readonly port: number;
  #conn: Deno.DatagramConn;
  #timeoutMs: number;
  #attempts: number;
  #nextId = 1;
  #queue: Promise<unknown> = Promise.resolve();
  #pending: Pending | undefined;
  #closed = false;
  #reader: Promise<void>;
  #heartbeat: ReturnType<typeof setTimeout> | undefined;
  #heartbeatStop: AbortController | undefined;
  /** Datagrams dropped because they were not a well-formed acknowledge. */
  malformed = 0;
  /** Well-formed acknowledges that matched no outstanding command (late retries, strangers). */
  stale = 0;

  constructor(options: GvcpClientOptions) {
    this.host = options.host;
    this.port = options.port;
    this.#timeoutMs = options.timeoutMs ?? 500;
    this.#attempts = options.attempts ?? 3;
    const localAddress = options.localAddress ??
      (options.host.startsWith("127.") ? "127.0.0.1" : "0.0.0.0");
    this.#conn = Deno.listenDatagram({ transport: "udp", hostname: localAddress, port: 0 });
    this.#reader = this.#readLoop();
  }

  /** `host:port` of the device, for messages. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** The local address the socket is bound to. */
  get localAddr(): Deno.NetAddr {
    return this.#conn.addr as Deno.NetAddr;
  }

  async #readLoop(): Promise<void> {
    while (!this.#closed) {
      let data: Uint8Array;
      try {
        [data] = await this.#conn.receive();
      } catch {
        if (this.#closed) return;
        continue;
      }
      this.#onDatagram(data);
    }
  }

  #onDatagram(data: Uint8Array): void {
    let ack;
    try {
      ack = decodeAck(data);
    } catch (err) {
      if (err instanceof GvcpFormatError) {
        this.malformed++;
        return;
      }
      throw err;
    }
    const p = this.#pending;
    if (p === undefined || ack.ackId !== p.reqId) {
      this.stale++;
      return;
    }
    if (ack.ack === PENDING_ACK) {
      if (ack.payload.length < 4) {
        this.malformed++;
        return;
      }
      p.extend(new DataView(ack.payload.buffer, ack.payload.byteOffset).getUint16(2));
      return;
    }
    if (ack.ack !== p.command + 1) {
      this.stale++;
      return;
    }
    this.#pending = undefined;
    if ((ack.status & 0x8000) !== 0) {
      p.reject(
        new GvcpStatusError(
          `${COMMAND_NAMES[p.command] ?? hex(p.command)} to ${this.address}: ${
            statusText(ack.status)
          }`,
          ack.status,
        ),
      );
    } else {
      p.resolve(ack.payload);
    }
  }

  /** Sends one command and resolves with the acknowledge payload (serialised, with retries). */
  request(command: number, payload: Uint8Array, what: string): Promise<Uint8Array> {
    const run = this.#queue.then(() => this.#requestNow(command, payload, what));
    this.#queue = run.catch(() => {});
    return run;
  }

  #requestNow(command: number, payload: Uint8Array, what: string): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new Error(`GVCP client for ${this.address} closed`));
    const reqId = this.#nextId;
    this.#nextId = this.#nextId >= 0xffff ? 1 : this.#nextId + 1;
    const packet = encodeCommand(command, reqId, payload, FLAG_ACK_REQUIRED);
    return new Promise<Uint8Array>((resolve, reject) => {
      let attempt = 0;
      let busyRetries = 0;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const finish = () => {
        clearTimeout(timer);
        if (this.#pending === pending) this.#pending = undefined;
      };
      const send = () => {
        attempt++;
        this.#conn.send(packet, { transport: "udp", hostname: this.host, port: this.port })
          .catch((err) => {
            finish();
            reject(new Error(`GVCP send to ${this.address} failed: ${err.message ?? err}`));
          });
        arm(this.#timeoutMs);
      };
      const arm = (ms: number) => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          if (attempt < this.#attempts) {
            send();
          } else {
            finish();
            reject(
              new GvcpTimeoutError(
                `camera at ${this.address} did not answer ${what} ` +
                  `(${this.#attempts} attempts of ${this.#timeoutMs} ms)`,
              ),
            );
          }
        }, ms);
      };
      const pending: Pending = {
        command,
        reqId,
        resolve: (p) => {
          finish();
          resolve(p);
        },
        reject: (e) => {
          if (
            e instanceof GvcpStatusError && !FINAL_STATUSES.has(e.status) && e.status === 0x8007 &&
            busyRetries++ < this.#attempts
          ) {
            this.#pending = pending;
            send();
            return;
          }
          finish();
          reject(new Error(`${e.message} (${what})`));
        },
        extend: (ms) => arm(Math.max(ms, 1) + this.#timeoutMs),
      };
      this.#pending = pending;
      send();
    });
  }

  /** Reads one 32-bit register. */
  async readRegister(address: number): Promise<number> {
    const payload = await this.request(
      GvcpCommand.READREG,
      readRegPayload([address]),
      `READREG ${hex(address)}`,
    );
    const values = decodeReadRegAck(payload);
    if (values.length < 1) throw new GvcpFormatError(`READREG ${hex(address)}: empty ack`);
    return values[0];
  }

  /** Writes one 32-bit register. */
  async writeRegister(address: number, value: number): Promise<void> {
    await this.request(
      GvcpCommand.WRITEREG,
      writeRegPayload([[address, value]]),
      `WRITEREG ${hex(address)}=${hex(value >>> 0)}`,
    );
  }

  /** Reads `length` bytes from `address` in chunks of at most 512 bytes (counts rounded to 4). */
  async readMemory(address: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    for (let at = 0; at < length; at += GVCP_MEM_CHUNK) {
      const want = Math.min(GVCP_MEM_CHUNK, length - at);
      const count = (want + 3) & ~3;
      const payload = await this.request(
        GvcpCommand.READMEM,
        readMemPayload(address + at, count),
        `READMEM ${hex(address + at)}+${count}`,
      );
      const data = decodeReadMemAck(payload, address + at);
      if (data.length < want) {
        throw new GvcpFormatError(
          `READMEM ${hex(address + at)}: ${data.length} bytes, asked ${count}`,
        );
      }
      out.set(data.subarray(0, want), at);
    }
    return out;
  }

  /** Writes bytes (length a multiple of 4) in chunks of at most 512 bytes. */
  async writeMemory(address: number, data: Uint8Array): Promise<void> {
    if (data.length % 4 !== 0) throw new RangeError("WRITEMEM length must be a multiple of 4");
    for (let at = 0; at < data.length; at += GVCP_MEM_CHUNK) {
      const chunk = data.subarray(at, Math.min(data.length, at + GVCP_MEM_CHUNK));
      await this.request(
        GvcpCommand.WRITEMEM,
        writeMemPayload(address + at, chunk),
        `WRITEMEM ${hex(address + at)}+${chunk.length}`,
      );
    }
  }

  /** Unicast DISCOVERY to the device; resolves with its identity. */
  async discover(): Promise<DiscoveryInfo> {
    const payload = await this.request(GvcpCommand.DISCOVERY, new Uint8Array(0), "DISCOVERY");
    return decodeDiscoveryAck(payload);
  }

  /**
   * Takes control (CCP = control, or exclusive). A device held by another application answers
   * ACCESS_DENIED (a real camera) or not at all (the aravis fake): both become an error saying
   * that another application may hold control. Verifies by reading CCP back.
   */
  async takeControl(exclusive = false): Promise<void> {
    const current = await this.readRegister(Bootstrap.CCP);
    const holder = (current & (CCP_CONTROL | CCP_EXCLUSIVE)) !== 0;
    try {
      await this.writeRegister(Bootstrap.CCP, exclusive ? CCP_EXCLUSIVE : CCP_CONTROL);
    } catch (err) {
      const why = errorMessage(err);
      if (holder || (err instanceof Error && /ACCESS_DENIED/.test(why))) {
        throw new Error(
          `camera at ${this.address} refused control: another application holds it (${why})`,
        );
      }
      throw err;
    }
    const after = await this.readRegister(Bootstrap.CCP);
    if ((after & (CCP_CONTROL | CCP_EXCLUSIVE)) === 0) {
      throw new Error(`camera at ${this.address} did not grant control (CCP=${hex(after)})`);
    }
  }

  /**
   * Starts the heartbeat: reads CCP every `periodMs`; calls `onLost` once (and stops) when the
   * read fails after its retries or shows control gone.
   */
  startHeartbeat(periodMs: number, onLost: (reason: string) => void): void {
    this.stopHeartbeat();
    const stop = new AbortController();
    this.#heartbeatStop = stop;
    const beat = async () => {
      if (stop.signal.aborted) return;
      let reason: string | undefined;
      try {
        const ccp = await this.readRegister(Bootstrap.CCP);
        if ((ccp & (CCP_CONTROL | CCP_EXCLUSIVE)) === 0) {
          reason = `camera at ${this.address} dropped our control (CCP=${hex(ccp)})`;
        }
      } catch (err) {
        reason = `heartbeat lost: ${errorMessage(err)}`;
      }
      if (stop.signal.aborted) return;
      if (reason !== undefined) {
        this.#heartbeatStop = undefined;
        onLost(reason);
        return;
      }
      this.#heartbeat = setTimeout(beat, periodMs);
    };
    this.#heartbeat = setTimeout(beat, periodMs);
  }

  /** Stops the heartbeat (no-op when not running). */
  stopHeartbeat(): void {
    this.#heartbeatStop?.abort();
    this.#heartbeatStop = undefined;
    clearTimeout(this.#heartbeat);
  }

  /** Releases control (CCP = 0); errors are returned as text, never thrown. */
  async releaseControl(): Promise<string | undefined> {
    this.stopHeartbeat();
    try {
      await this.writeRegister(Bootstrap.CCP, 0);
      return undefined;
    } catch (err) {
      return errorMessage(err);
    }
  }

  /** Closes the socket; outstanding commands fail. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.stopHeartbeat();
    this.#pending?.reject(new Error(`GVCP client for ${this.address} closed`));
    this.#pending = undefined;
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    await this.#reader;
  }
}
