/**
 * The simulator's stream v2 output: a ZeroMQ PUSH socket (ZMTP 3) that sends each message as one
 * frame. `drop()` closes the socket with its connections and listens again on the same port, like
 * a DCU stream service restart: the consumer sees its connection end mid-series.
 *
 * @module
 */

import { getLog } from "../../core/log.ts";
import { listenPush, type PushServer } from "../eiger/zmtp_socket.ts";
import type { SimMessage, SimStreamOutput } from "./detector.ts";
import { encodeSimMessageParts } from "./encode.ts";

/** Options of {@link startZmqStreamOutput}. */
export interface ZmqStreamOutputOptions {
  hostname: string;
  /** 0 = any free port. */
  port: number;
  signal: AbortSignal;
}

/** A running PUSH output. */
export interface ZmqStreamOutput extends SimStreamOutput {
  /** Bound port. */
  readonly port: number;
  /** Closes the socket. */
  close(): Promise<void>;
}

/** Starts the PUSH socket. */
export function startZmqStreamOutput(options: ZmqStreamOutputOptions): ZmqStreamOutput {
  const log = getLog("eiger_sim.stream");
  let push: PushServer = listenPush({
    hostname: options.hostname,
    port: options.port,
    signal: options.signal,
  });
  const port = push.port;
  let chain: Promise<void> = Promise.resolve();
  /** Steps queued on `chain` and not yet done (while any, messages wait their turn there). */
  let pending = 0;
  let closed = false;
  const rate = new SeriesRate((report) => log.info("Series streamed", { ...report }));
  const enqueue = (step: () => Promise<void> | void) => {
    pending++;
    chain = chain.then(step).catch((error) => {
      log.warn("Stream output failed", { error: (error as Error).message });
    }).finally(() => pending--);
  };
  return {
    port,
    send(message: SimMessage) {
      if (closed) return;
      // The frame in pieces: the pre-compressed payloads are not copied per image.
      const frame = encodeSimMessageParts(message);
      // Queued at once when the socket takes it (the usual case at speed); else in order later.
      try {
        if (pending === 0 && push.trySend([frame])) {
          rate.sent(message, performance.now());
          return;
        }
      } catch (error) {
        log.warn("Stream output failed", { error: (error as Error).message });
        return;
      }
      enqueue(async () => {
        await push.send([frame], options.signal);
        rate.sent(message, performance.now());
      });
    },
    drop() {
      enqueue(async () => {
        await push.flush(options.signal);
        await push.close();
        if (closed) return;
        push = listenPush({ hostname: options.hostname, port, signal: options.signal });
      });
    },
    async close() {
      closed = true;
      await push.close();
      await chain;
      await push.close();
    },
  };
}

/** What {@link SeriesRate} reports at the end of a series. */
export interface SeriesRateReport {
  series: number;
  images: number;
  /** From the first to the last image handed to the socket. */
  seconds: number;
  /** Images per second actually achieved ((images - 1) / seconds; 0 below two images). */
  rate: number;
}

/** Measures the frame rate a series was actually sent at (reported when its `end` goes out). */
export class SeriesRate {
  #report: (report: SeriesRateReport) => void;
  #series: number | undefined;
  #images = 0;
  #first = 0;
  #last = 0;

  /** Creates a meter calling `report` at each series end. */
  constructor(report: (report: SeriesRateReport) => void) {
    this.#report = report;
  }

  /** Notes that `message` was handed to the socket at time `now` (ms). */
  sent(message: SimMessage, now: number): void {
    if (message.type === "start") {
      this.#series = message.seriesId;
      this.#images = 0;
    } else if (message.type === "image" && message.seriesId === this.#series) {
      if (this.#images === 0) this.#first = now;
      this.#last = now;
      this.#images++;
    } else if (message.type === "end" && message.seriesId === this.#series) {
      const seconds = (this.#last - this.#first) / 1000;
      const rate = this.#images > 1 && seconds > 0 ? (this.#images - 1) / seconds : 0;
      this.#report({
        series: message.seriesId,
        images: this.#images,
        seconds: Number(seconds.toFixed(4)),
        rate: Math.round(rate),
      });
      this.#series = undefined;
    }
  }
}
