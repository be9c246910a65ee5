/**
 * The backend's image stream: a reconnecting ZeroMQ PULL connection whose frames are decoded by
 * a {@link StreamDecoder} (a pool of decode workers, `decode_pool.ts`) into stream events that
 * come out in arrival order, interleaved with the connection changes.
 *
 * Both the socket reader and the consumer of the events keep the event loop free: when results
 * arrived in a burst (many frames read at once, or decode workers answering together after the
 * thread was busy), each loop hands the thread back after a few milliseconds of work
 * ({@link TurnBudget}), so Channel Access is served between the frames of a fast series.
 *
 * @module
 */

import { connectPull } from "./zmtp_socket.ts";
import type { StreamEvent } from "./series.ts";
import { type DecodePoolOptions, DEFAULT_BACKLOG, StreamDecoder } from "./decode_pool.ts";
import { TurnBudget } from "../../core/turn_budget.ts";
import { FrameBufferPool } from "./frame_buffers.ts";
import type { TargetHolder } from "./image_target.ts";

/** Options of {@link zmqStreamOpener}. */
export interface ZmqStreamOptions {
  host: string;
  port: number;
  /** Reconnect back-off (default: connectPull's). */
  reconnect?: { initialMs?: number; maxMs?: number };
  /** Decode workers and backlog bound (default: {@link StreamDecoder}'s defaults). */
  decode?: Partial<DecodePoolOptions>;
  /** Series stacks lent by the controller: images are decoded into them in place. */
  target?: TargetHolder;
}

/**
 * A stream opener for the backend: a reconnecting ZeroMQ PULL connection to the DCU whose
 * frames are decoded off the event loop into stream events; connection changes are reported in
 * order with the frames. The decode workers live as long as one opened stream.
 */
export function zmqStreamOpener(
  options: ZmqStreamOptions,
): (signal: AbortSignal) => AsyncIterable<StreamEvent> {
  return async function* (signal: AbortSignal): AsyncIterable<StreamEvent> {
    const queue: StreamEvent[] = [];
    let wake: (() => void) | undefined;
    let finished = false;
    let failure: unknown;
    const push = (event: StreamEvent) => {
      queue.push(event);
      wake?.();
    };
    // As many free receive buffers as frames may wait (within the pool's byte bound).
    const receiveBuffers = new FrameBufferPool(options.decode?.backlog ?? DEFAULT_BACKLOG);
    const decoder = new StreamDecoder({ frames: receiveBuffers, ...options.decode }, push);
    const unwatch = options.target?.watch({
      target: (target) => decoder.setTarget(target),
      prepare: (imageBytes) => decoder.prepare(imageBytes),
    });
    const readBudget = new TurnBudget();
    const consumeBudget = new TurnBudget();
    const reader = (async () => {
      try {
        for await (
          const frames of connectPull({
            host: options.host,
            port: options.port,
            signal,
            reconnect: options.reconnect,
            allocate: (size) => receiveBuffers.take(size),
            onConnect: () => decoder.pushEvent({ kind: "connected" }),
            onDisconnect: (reason) => decoder.pushEvent({ kind: "disconnected", reason }),
          })
        ) {
          for (const frame of frames) decoder.push(frame);
          // Decoding on the event loop (no workers), or a burst of small frames.
          const pause = readBudget.pause();
          if (pause !== undefined) await pause;
        }
        if (!signal.aborted) await decoder.idle();
      } catch (error) {
        failure = error;
      } finally {
        finished = true;
        wake?.();
      }
    })();
    try {
      while (true) {
        // Work done for the events so far (the consumer and what it set off) counts here.
        const pause = consumeBudget.pause();
        if (pause !== undefined) await pause;
        const event = queue.shift();
        if (event !== undefined) {
          yield event;
          continue;
        }
        if (finished) break;
        await new Promise<void>((resolve) => wake = resolve);
        wake = undefined;
        consumeBudget.restart();
      }
      if (failure !== undefined && !signal.aborted) throw failure;
    } finally {
      await reader;
      unwatch?.();
      decoder.close();
    }
  };
}
