/**
 * A scripted terminal for viewer tests: records output, answers capability queries (or not),
 * feeds keys, and reports raw-mode switches.
 *
 * @module
 */

import type { TerminalIo } from "../../lib/view/tty.ts";

/** Options of {@link fakeTerminal}. */
export interface FakeTerminalOptions {
  /** Reply to the capability queries (undefined: the terminal stays silent). */
  replies?: string;
  /** Whether stdin is a terminal (default true). */
  input?: boolean;
  /** Whether stdout is a terminal (default true). */
  output?: boolean;
  cols?: number;
  rows?: number;
  /** Called after every write with the whole output so far. */
  onWrite?: (text: string) => void;
}

/** The fake terminal and what it saw. */
export interface FakeTerminal extends TerminalIo {
  /** Everything written, decoded. */
  text(): string;
  /** Raw-mode switches in order. */
  rawCalls: boolean[];
  /** Types keys (bytes as a string). */
  type(keys: string): void;
  /** Ends the input (read returns null). */
  endInput(): void;
  /** Simulates a window size change. */
  resize(cols: number, rows: number): void;
}

/** Creates a {@link FakeTerminal}. */
export function fakeTerminal(options: FakeTerminalOptions = {}): FakeTerminal {
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  let out = "";
  const queue: (Uint8Array | null)[] = [];
  let waiter: ((c: Uint8Array | null) => void) | undefined;
  let cols = options.cols ?? 100;
  let rows = options.rows ?? 30;
  const resizeListeners = new Set<() => void>();
  const push = (c: Uint8Array | null) => {
    const w = waiter;
    waiter = undefined;
    if (w) w(c);
    else queue.push(c);
  };
  return {
    outputIsTerminal: options.output ?? true,
    inputIsTerminal: options.input ?? true,
    rawCalls: [],
    write(bytes) {
      const text = typeof bytes === "string" ? bytes : decoder.decode(bytes);
      out += text;
      if (text.includes("\x1b[c") && options.replies !== undefined) {
        push(encoder.encode(options.replies));
      }
      options.onWrite?.(out);
      return Promise.resolve();
    },
    size: () => ({ cols, rows }),
    setRaw(on) {
      this.rawCalls.push(on);
    },
    read() {
      if (queue.length > 0) return Promise.resolve(queue.shift()!);
      return new Promise((resolve) => (waiter = resolve));
    },
    onResize(listener) {
      resizeListeners.add(listener);
      return () => resizeListeners.delete(listener);
    },
    text: () => out,
    type(keys) {
      push(encoder.encode(keys));
    },
    endInput() {
      push(null);
    },
    resize(c, r) {
      cols = c;
      rows = r;
      for (const l of resizeListeners) l();
    },
  };
}
