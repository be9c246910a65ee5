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
import { encodeSimMessage } from "./encode.ts";

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
  let closed = false;
  const enqueue = (step: () => Promise<void> | void) => {
    chain = chain.then(step).catch((error) => {
      log.warn("Stream output failed", { error: (error as Error).message });
    });
  };
  return {
    port,
    send(message: SimMessage) {
      if (closed) return;
      const frame = encodeSimMessage(message);
      enqueue(() => push.send([frame], options.signal));
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
