/**
 * Drives a {@link Circuit} without sockets: feed request bytes, collect and parse its output.
 *
 * @module
 */

import { Circuit, type CircuitLimits } from "../../ca/circuit.ts";
import type { DbrCodec } from "../../ca/codec.ts";
import { type CaMessage, MessageReader } from "../../ca/messages.ts";
import { PvStore } from "../../ca/store.ts";
import type { WriteAccessHook } from "../../ca/pv.ts";
import { stubCodec } from "./stub_codec.ts";

/** A circuit plus its store and bookkeeping of wake-ups and closes. */
export interface CircuitHarness {
  /** The circuit under test. */
  circuit: Circuit;
  /** The PV store it resolves names in. */
  store: PvStore;
  /** Number of wake() calls. */
  wakes: number;
  /** Close reasons reported through onClose. */
  closed: string[];
  /** Log lines (level, message). */
  logs: string[];
  /** Feeds bytes, waits until all requests are handled, returns the parsed output. */
  exchange(...requests: Uint8Array[]): Promise<CaMessage[]>;
  /** Takes and parses the pending output. */
  output(maxBytes?: number): CaMessage[];
}

/** Options of {@link makeHarness}. */
export interface HarnessOptions {
  /** Store to share between harnesses (default: a new one). */
  store?: PvStore;
  /** Codec (default: the stub codec). */
  codec?: DbrCodec;
  /** Limits. */
  limits?: Partial<CircuitLimits>;
  /** Write access hook. */
  writeAccess?: WriteAccessHook;
}

/** Creates a circuit on a fresh (or given) store; the initial VERSION is already taken. */
export function makeHarness(options: HarnessOptions = {}): CircuitHarness {
  const codec = options.codec ?? stubCodec;
  const store = options.store ?? new PvStore(codec);
  const harness: CircuitHarness = {
    store,
    wakes: 0,
    closed: [],
    logs: [],
    circuit: undefined as unknown as Circuit,
    async exchange(...requests: Uint8Array[]) {
      for (const r of requests) harness.circuit.receive(r);
      await harness.circuit.idle();
      return harness.output();
    },
    output(maxBytes?: number) {
      const reader = new MessageReader({ maxPayload: 1 << 30 });
      const out: CaMessage[] = [];
      for (const piece of harness.circuit.takeOutput(maxBytes)) out.push(...reader.push(piece));
      return out;
    },
  };
  harness.circuit = new Circuit({
    resolve: (name) => store.resolve(name),
    codec,
    tcpPort: 5064,
    address: "127.0.0.1",
    writeAccess: options.writeAccess,
    limits: options.limits,
    wake: () => void harness.wakes++,
    onClose: (reason) => void harness.closed.push(reason),
    log: (level, message, fields) =>
      void harness.logs.push(`${level} ${message} ${JSON.stringify(fields)}`),
  });
  harness.output();
  return harness;
}
