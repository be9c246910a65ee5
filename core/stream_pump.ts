/**
 * The socket side of a sans-I/O stream protocol connection (a CA circuit, a pvAccess server
 * connection): one reader task feeding received bytes in, one writer task taking output out,
 * both ending the connection on error or EOF. The protocol object never sees the socket.
 *
 * @module
 */

/** What the pump drives. */
export interface StreamProtocol {
  /** Feeds received bytes. */
  receive(bytes: Uint8Array): void;
  /** Whether output is ready now. */
  hasOutput(): boolean;
  /** Takes the ready output (pieces written in order). */
  takeOutput(): Uint8Array[];
  /** The pieces of the last {@link takeOutput} were written. */
  releaseOutput(): void;
  /** Resolves when more input may be read (back-pressure). */
  waitForRoom(): Promise<void>;
  /** Releases everything; called once when the connection ends. */
  close(): void;
}

/** Hooks a protocol object uses to reach its pump. */
export interface PumpHooks {
  /** Output became available: wakes the writer. */
  wake(): void;
  /** Ends the connection (protocol error, server shutdown). */
  end(): void;
}

/** Options of {@link pumpStream}. */
export interface PumpOptions {
  /** Read buffer size (bytes). */
  readBuffer?: number;
  /** Called after each read (e.g. to track idleness). */
  onRead?(): void;
  /** Called with the error that ended a read or write (not after a deliberate end). */
  onError?(what: "read" | "write", error: unknown): void;
  /** Called once when the connection ended. */
  onEnd?(): void;
}

/**
 * Writes all pieces in order, copying small ones into `scratch` (reused between calls: it is only
 * touched while no write from it is pending) and writing big ones directly. Small pieces before
 * a big one (its header) go out together with the big one's first bytes, so that a message never
 * costs a tiny write of its own.
 */
export async function writePieces(
  conn: Deno.Conn,
  pieces: Uint8Array[],
  scratch: Uint8Array,
): Promise<void> {
  const big = scratch.length / 4;
  let fill = 0;
  for (const piece of pieces) {
    if (piece.length >= big) {
      let head = 0;
      if (fill > 0) {
        head = Math.min(scratch.length - fill, piece.length);
        scratch.set(piece.subarray(0, head), fill);
        await writeFully(conn, scratch.subarray(0, fill + head));
      }
      fill = 0;
      await writeFully(conn, head > 0 ? piece.subarray(head) : piece);
      continue;
    }
    if (fill + piece.length > scratch.length) {
      await writeFully(conn, scratch.subarray(0, fill));
      fill = 0;
    }
    scratch.set(piece, fill);
    fill += piece.length;
  }
  if (fill > 0) await writeFully(conn, scratch.subarray(0, fill));
}

async function writeFully(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let pos = 0;
  while (pos < bytes.length) pos += await conn.write(bytes.subarray(pos));
}

/**
 * Runs `make(hooks)`'s protocol over `conn` until either side ends; resolves when both tasks
 * finished and the socket is closed.
 */
export async function pumpStream<P extends StreamProtocol>(
  conn: Deno.TcpConn,
  make: (hooks: PumpHooks) => P,
  options: PumpOptions = {},
): Promise<void> {
  try {
    conn.setNoDelay(true);
    conn.setKeepAlive(true);
  } catch {
    // Not fatal.
  }
  let wakeWriter: (() => void) | undefined;
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    protocol.close();
    try {
      conn.close();
    } catch {
      // Already closed.
    }
    wakeWriter?.();
    options.onEnd?.();
  };
  const protocol: P = make({
    wake: () => {
      const w = wakeWriter;
      wakeWriter = undefined;
      w?.();
    },
    end: () => end(),
  });
  const writer = (async () => {
    const scratch = new Uint8Array(256 * 1024);
    try {
      while (!ended) {
        if (!protocol.hasOutput()) {
          await new Promise<void>((resolve) => (wakeWriter = resolve));
          continue;
        }
        await writePieces(conn, protocol.takeOutput(), scratch);
        protocol.releaseOutput();
      }
    } catch (error) {
      if (!ended) options.onError?.("write", error);
    } finally {
      end();
    }
  })();
  const reader = (async () => {
    const buffer = new Uint8Array(options.readBuffer ?? 256 * 1024);
    try {
      while (!ended) {
        await protocol.waitForRoom();
        if (ended) break;
        const n = await conn.read(buffer);
        if (n === null) break;
        options.onRead?.();
        protocol.receive(buffer.subarray(0, n));
      }
    } catch (error) {
      if (!ended) options.onError?.("read", error);
    } finally {
      end();
    }
  })();
  await Promise.all([reader, writer]);
}
