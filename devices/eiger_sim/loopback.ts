/**
 * In-process stream link between the simulator and the EIGER backend, without ZeroMQ, CBOR or
 * compression: simulated messages become decoded stream events directly. For tests of the
 * control logic; the real path is `stream.ts` (simulator) and `devices/eiger/stream_source.ts`.
 *
 * @module
 */

import type { StreamEvent, StreamMessage } from "../eiger/series.ts";
import type { SimMessage, SimStreamOutput } from "./detector.ts";

/** Converts a simulated message to the decoded form the backend works on. */
export function simToDecoded(msg: SimMessage): StreamMessage {
  switch (msg.type) {
    case "start":
      return {
        type: "start",
        seriesId: msg.seriesId,
        uniqueId: msg.uniqueId,
        channels: msg.channels,
        numberOfImages: msg.numberOfImages,
        width: msg.width,
        height: msg.height,
        imageDtype: msg.dtype,
      };
    case "image": {
      const data: Record<string, {
        dims: [number, number];
        dtype: typeof msg.dtype;
        pixels: typeof msg.data[string];
      }> = {};
      for (const [name, pixels] of Object.entries(msg.data)) {
        data[name] = { dims: [msg.height, msg.width], dtype: msg.dtype, pixels };
      }
      return {
        type: "image",
        seriesId: msg.seriesId,
        uniqueId: msg.uniqueId,
        imageId: msg.imageId,
        realTime: msg.realTime[0] / msg.realTime[1],
        timestamp: msg.seriesDate.getTime() / 1000 + msg.startTime[0] / msg.startTime[1],
        data,
      };
    }
    case "end":
      return { type: "end", seriesId: msg.seriesId, uniqueId: msg.uniqueId };
  }
}

/** A loopback link: give `output` to the simulator and `open` to the backend. */
export interface LoopbackStream {
  output: SimStreamOutput;
  open: (signal: AbortSignal) => AsyncIterable<StreamEvent>;
}

/** Creates a loopback link (one consumer). */
export function createLoopbackStream(): LoopbackStream {
  const queue: StreamEvent[] = [];
  let wake: (() => void) | undefined;
  const push = (event: StreamEvent) => {
    queue.push(event);
    wake?.();
  };
  const output: SimStreamOutput = {
    send(msg) {
      if (msg.type === "image" && msg.corrupt) {
        push({ kind: "error", message: `corrupt bslz4 data in image ${msg.imageId}` });
      } else push({ kind: "message", message: simToDecoded(msg) });
    },
    drop() {
      push({ kind: "disconnected", reason: "peer closed the connection" });
      push({ kind: "connected" });
    },
  };
  async function* open(signal: AbortSignal): AsyncIterable<StreamEvent> {
    yield { kind: "connected" };
    while (!signal.aborted) {
      const event = queue.shift();
      if (event !== undefined) {
        yield event;
        continue;
      }
      let onAbort: (() => void) | undefined;
      await new Promise<void>((resolve) => {
        wake = resolve;
        onAbort = resolve;
        signal.addEventListener("abort", onAbort, { once: true });
      });
      signal.removeEventListener("abort", onAbort!);
      wake = undefined;
    }
  }
  return { output, open };
}
