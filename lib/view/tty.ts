/**
 * Terminal I/O of the viewer: a small interface (so tests can script a terminal), the real one on
 * Deno's stdin/stdout, capability probing with a timeout, and the screen session that switches to
 * the alternate screen in raw mode and always restores the terminal.
 *
 * @module
 */

import {
  CAPABILITY_QUERY,
  hasDa1Reply,
  parseTerminalReplies,
  type TerminalReplies,
} from "./terminal_replies.ts";

/** What the viewer needs from a terminal. */
export interface TerminalIo {
  /** Whether stdout is a terminal (graphics make sense). */
  readonly outputIsTerminal: boolean;
  /** Whether stdin is a terminal (keys and query replies can arrive). */
  readonly inputIsTerminal: boolean;
  /** Writes all bytes. */
  write(bytes: Uint8Array | string): Promise<void>;
  /** Size in cells. */
  size(): { cols: number; rows: number };
  /** Switches stdin raw mode on or off (no-op when stdin is not a terminal). */
  setRaw(on: boolean): void;
  /** Reads the next input chunk; null at end of input. */
  read(): Promise<Uint8Array | null>;
  /** Registers a window-size-change listener; returns its remover. */
  onResize(listener: () => void): () => void;
}

const encoder = new TextEncoder();

/** The real terminal: Deno.stdin/Deno.stdout, SIGWINCH for resizes. */
export function denoTerminal(): TerminalIo {
  const buf = new Uint8Array(4096);
  return {
    outputIsTerminal: Deno.stdout.isTerminal(),
    inputIsTerminal: Deno.stdin.isTerminal(),
    async write(bytes) {
      const data = typeof bytes === "string" ? encoder.encode(bytes) : bytes;
      let off = 0;
      while (off < data.length) off += await Deno.stdout.write(data.subarray(off));
    },
    size() {
      try {
        const { columns, rows } = Deno.consoleSize();
        return { cols: columns, rows };
      } catch {
        return { cols: 80, rows: 24 };
      }
    },
    setRaw(on) {
      if (Deno.stdin.isTerminal()) Deno.stdin.setRaw(on);
    },
    async read() {
      const n = await Deno.stdin.read(buf);
      return n === null ? null : buf.slice(0, n);
    },
    onResize(listener) {
      if (Deno.build.os === "windows") return () => {};
      Deno.addSignalListener("SIGWINCH", listener);
      return () => Deno.removeSignalListener("SIGWINCH", listener);
    },
  };
}

/**
 * Pumps terminal input into a queue so that capability replies and keys share one reader.
 * {@link InputPump.next} waits for the next chunk or a deadline.
 */
export class InputPump {
  #queue: Uint8Array[] = [];
  #waiter: ((chunk: Uint8Array | null) => void) | undefined;
  #ended = false;
  #io: TerminalIo;
  #started = false;

  constructor(io: TerminalIo) {
    this.#io = io;
  }

  /** Starts reading (once). Reading errors end the input. */
  start(): void {
    if (this.#started || !this.#io.inputIsTerminal) return;
    this.#started = true;
    (async () => {
      try {
        while (true) {
          const chunk = await this.#io.read();
          if (chunk === null) break;
          this.#deliver(chunk);
        }
      } catch {
        // stdin closed or not readable: no more input
      }
      this.#ended = true;
      this.#deliver(null);
    })();
  }

  #deliver(chunk: Uint8Array | null): void {
    const w = this.#waiter;
    if (w) {
      this.#waiter = undefined;
      w(chunk);
    } else if (chunk) this.#queue.push(chunk);
  }

  /** Whether the input has ended. */
  get ended(): boolean {
    return this.#ended && this.#queue.length === 0;
  }

  /** Next chunk, or null at end of input, or undefined when `timeoutMs` passed first. */
  next(timeoutMs?: number): Promise<Uint8Array | null | undefined> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#ended || !this.#started) return Promise.resolve(null);
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      this.#waiter = (chunk) => {
        if (timer !== undefined) clearTimeout(timer);
        resolve(chunk);
      };
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.#waiter = undefined;
          resolve(undefined);
        }, timeoutMs);
      }
    });
  }

  /** Puts a chunk back at the front (bytes read during probing that were keys). */
  unshift(chunk: Uint8Array): void {
    if (chunk.length > 0) this.#queue.unshift(chunk);
  }
}

/** Result of {@link probeTerminal}. */
export interface ProbeResult {
  /** Parsed replies (empty when the terminal answered nothing). */
  replies: TerminalReplies;
  /** Whether the DA1 reply arrived before the deadline. */
  answered: boolean;
}

const latin1 = new TextDecoder("latin1");

/**
 * Sends the capability queries and collects replies until the DA1 answer (which terminals send
 * last) or until `timeoutMs` passed — a terminal that answers nothing never blocks the viewer.
 */
export async function probeTerminal(
  io: TerminalIo,
  input: InputPump,
  timeoutMs: number,
): Promise<ProbeResult> {
  await io.write(CAPABILITY_QUERY);
  const deadline = Date.now() + timeoutMs;
  let text = "";
  while (!hasDa1Reply(text)) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    const chunk = await input.next(left);
    if (chunk === undefined || chunk === null) break;
    text += latin1.decode(chunk);
  }
  return { replies: parseTerminalReplies(text), answered: hasDa1Reply(text) };
}

/** Escape sequences entering the viewer screen: alternate screen, hidden cursor, cleared. */
export const ENTER_SCREEN = "\x1b[?1049h\x1b[?25l\x1b[2J";
/** Escape sequences leaving it: attributes reset, cursor shown, main screen back. */
export const LEAVE_SCREEN = "\x1b[0m\x1b[?25h\x1b[?1049l";

/** A raw-mode session; {@link ScreenSession.restore} is idempotent and never throws. */
export class ScreenSession {
  #io: TerminalIo;
  #active = false;
  #onUnload = () => this.restoreSync();

  constructor(io: TerminalIo) {
    this.#io = io;
  }

  /** Enters raw mode (input) and the alternate screen (output). */
  async enter(useScreen: boolean): Promise<void> {
    this.#active = true;
    globalThis.addEventListener("unload", this.#onUnload);
    this.#io.setRaw(true);
    if (useScreen) await this.#io.write(ENTER_SCREEN);
    this.#screen = useScreen;
  }

  #screen = false;

  /** Leaves the alternate screen and raw mode. */
  async restore(): Promise<void> {
    if (!this.#active) return;
    this.#active = false;
    globalThis.removeEventListener("unload", this.#onUnload);
    try {
      if (this.#screen) await this.#io.write(LEAVE_SCREEN);
    } catch {
      // output gone: nothing to restore there
    }
    try {
      this.#io.setRaw(false);
    } catch {
      // stdin gone
    }
  }

  /** Synchronous last-resort restore (process unload). */
  restoreSync(): void {
    if (!this.#active) return;
    this.#active = false;
    try {
      if (this.#screen) Deno.stdout.writeSync(encoder.encode(LEAVE_SCREEN));
      this.#io.setRaw(false);
    } catch {
      // nothing left to do
    }
  }
}
